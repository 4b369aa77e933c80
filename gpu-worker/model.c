/*
 * model: builds a feed-forward network from a checked safetensors file.
 * The layer list in "wakegate.layers" is validated against the tensors
 * (known ops, tensors present, shapes chaining from "wakegate.input_shape")
 * and the weights are copied into one page-aligned host array that the
 * model owns (its working weights). The file stays mapped, its pages let
 * go of, so that a level-1 wake copies the weights again from the page
 * cache without opening or parsing anything; level 2 closes it too.
 */
#include "gpu-worker/model.h"

#include <jansson.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-worker/ops.h"
#include "gpu-worker/safetensors.h"

#define MODEL_MAX_DIM (1 << 24)		/* floats per sample at any layer */
#define MODEL_MAX_LAYERS 1024

struct model {
	char *path;			/* for a level-2 wake and reload_weights */
	char *name;
	int64_t input_shape[ST_MAX_DIMS];
	int input_ndim;
	int input_dim, output_dim, max_dim;
	struct ops_layer *layers;	/* w and b point into params */
	int nlayers;
	float *params;			/* nparams floats in params_len bytes; NULL asleep on the CPU */
	size_t nparams, params_len;
	struct st_file *f;		/* the mapped file; NULL at level 2 */
	struct st_ident id;		/* the file loaded, to tell whether it changed */
	const struct st_tensor **tw, **tb;	/* per layer, into f; NULL at level 2 */
	int level;			/* sleep level: 0 awake, 1, 2 */
	enum model_device dev;
	struct ops_cuda_net *cuda;	/* set while dev == MODEL_CUDA */
	char devname[160];
	struct ops_cuda_opts cuda_opts;	/* for the next model_use_device(MODEL_CUDA) */
	int dead;			/* a run failed for good (OPS_DEAD); atomic: the loop reads it */
	float *buf[2];			/* CPU activations, bufcap floats each */
	size_t bufcap;
};

/* Writes "PATH: message" into err. */
static void model_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void model_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s: %s", path, msg);
}

/* "[64,10]" into buf, for messages. */
static const char *model_shape_str(const int64_t *shape, int ndim, char *buf, size_t len)
{
	size_t n = 0;

	n += (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < ndim && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? "," : "", (long long)shape[i]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
	return buf;
}

/* The file name without folder and extension; caller frees. */
static char *model_stem(const char *path)
{
	const char *base = strrchr(path, '/');
	char *s, *dot;

	s = strdup(base ? base + 1 : path);
	if (s && (dot = strrchr(s, '.')) && dot != s)
		*dot = '\0';
	return s;
}

/* Parses a metadata value that must itself be JSON; NULL with err. Caller decrefs. */
static json_t *model_meta_json(const struct st_file *f, const char *key, int required,
	char *err, size_t errlen)
{
	const char *s = st_meta(f, key);
	json_error_t jerr;
	json_t *v;

	if (!s) {
		if (required)
			model_fail(err, errlen, st_path(f), "no \"%s\" in __metadata__", key);
		else
			err[0] = '\0';
		return NULL;
	}
	v = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
	if (!v)
		model_fail(err, errlen, st_path(f), "__metadata__ \"%s\" is not valid JSON: %s", key, jerr.text);
	return v;
}

/* Fills m's input shape from "wakegate.input_shape"; 0 or -1 with err. */
static int model_parse_input(struct model *m, const struct st_file *f, char *err, size_t errlen)
{
	json_t *a = model_meta_json(f, "wakegate.input_shape", 1, err, errlen), *e;
	int64_t dim = 1;
	size_t i;
	int rc = -1;

	if (!a)
		return -1;
	if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > ST_MAX_DIMS) {
		model_fail(err, errlen, st_path(f), "wakegate.input_shape is not an array of 1 to %d sizes",
			ST_MAX_DIMS);
		goto out;
	}
	json_array_foreach(a, i, e) {
		json_int_t n = json_is_integer(e) ? json_integer_value(e) : 0;

		if (n < 1 || n > MODEL_MAX_DIM || (dim *= n) > MODEL_MAX_DIM) {
			model_fail(err, errlen, st_path(f),
				"wakegate.input_shape[%zu] is not a positive size (at most %d floats a sample)",
				i, MODEL_MAX_DIM);
			goto out;
		}
		m->input_shape[i] = n;
	}
	m->input_ndim = (int)json_array_size(a);
	m->input_dim = (int)dim;
	rc = 0;
out:
	json_decref(a);
	return rc;
}

/* Checks one dense layer against the running width *cur; adds its size to *nparams. */
static int model_check_dense(const struct st_file *f, int idx, json_t *l, int *cur, size_t *nparams,
	const struct st_tensor **wt, const struct st_tensor **bt, char *err, size_t errlen)
{
	const char *wn = json_string_value(json_object_get(l, "weight"));
	const char *bn = json_string_value(json_object_get(l, "bias"));
	char s1[96], s2[96];

	if (!wn || !bn) {
		model_fail(err, errlen, st_path(f), "layer %d (dense): needs \"weight\" and \"bias\" tensor names", idx);
		return -1;
	}
	if (!(*wt = st_tensor_find(f, wn))) {
		model_fail(err, errlen, st_path(f), "layer %d (dense): no tensor \"%s\" in the file", idx, wn);
		return -1;
	}
	if (!(*bt = st_tensor_find(f, bn))) {
		model_fail(err, errlen, st_path(f), "layer %d (dense): no tensor \"%s\" in the file", idx, bn);
		return -1;
	}
	if ((*wt)->ndim != 2 || (*wt)->shape[0] < 1 || (*wt)->shape[0] > MODEL_MAX_DIM ||
	    (*wt)->shape[1] < 1 || (*wt)->shape[1] > MODEL_MAX_DIM) {
		model_fail(err, errlen, st_path(f), "layer %d (dense): weight \"%s\" has shape %s, not [out,in]",
			idx, wn, model_shape_str((*wt)->shape, (*wt)->ndim, s1, sizeof(s1)));
		return -1;
	}
	if ((*bt)->ndim != 1 || (*bt)->shape[0] != (*wt)->shape[0]) {
		model_fail(err, errlen, st_path(f), "layer %d (dense): bias \"%s\" has shape %s, weight \"%s\" has %s",
			idx, bn, model_shape_str((*bt)->shape, (*bt)->ndim, s1, sizeof(s1)), wn,
			model_shape_str((*wt)->shape, (*wt)->ndim, s2, sizeof(s2)));
		return -1;
	}
	if ((*wt)->shape[1] != *cur) {
		model_fail(err, errlen, st_path(f),
			"layer %d (dense): weight \"%s\" takes %lld inputs but %s gives %d",
			idx, wn, (long long)(*wt)->shape[1],
			idx == 0 ? "wakegate.input_shape" : "the layer before", *cur);
		return -1;
	}
	*cur = (int)(*wt)->shape[0];
	*nparams += (size_t)(*wt)->count + (size_t)(*bt)->count;
	return 0;
}

#define MODEL_HUGE (2u << 20)	/* a transparent huge page on x86-64 */

/*
 * The working weights: an anonymous mapping rather than malloc, so that
 * freeing them at sleep gives the pages back to the system at once, whatever
 * their size (glibc keeps some freed heap memory for later). From 4 MB up it
 * asks for transparent huge pages: with 4 kB pages a 1 GB model took 262144
 * page faults, about as long as the copy itself (bench/wake); with 2 MB
 * pages, 512. Faulting the mapping in beforehand (MADV_POPULATE_WRITE) made
 * no difference measurable on the build machine, so it is not done. Advice
 * only: without huge pages it works the same, slower.
 */
static int model_params_alloc(struct model *m)
{
	size_t len = (m->nparams ? m->nparams : 1) * sizeof(float);
	void *p;

	if (len >= 2 * MODEL_HUGE)
		len = (len + MODEL_HUGE - 1) & ~((size_t)MODEL_HUGE - 1);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	if (len >= 2 * MODEL_HUGE)
		(void)madvise(p, len, MADV_HUGEPAGE);
	m->params = p;
	m->params_len = len;
	return 0;
}

/* Frees the working weights; every layer's w and b become NULL. */
static void model_params_free(struct model *m)
{
	if (m->params)
		munmap(m->params, m->params_len);
	m->params = NULL;
	m->params_len = 0;
	for (int i = 0; m->layers && i < m->nlayers; i++)
		m->layers[i].w = m->layers[i].b = NULL;
}

/* Allocates the working weights and copies them from the mapped file; 0 or -1 with err. */
static int model_params_fill(struct model *m, char *err, size_t errlen)
{
	size_t off = 0;

	if (model_params_alloc(m) < 0) {
		model_fail(err, errlen, m->path, "out of memory for %zu weights", m->nparams);
		return -1;
	}
	for (int i = 0; i < m->nlayers; i++) {
		if (m->layers[i].kind != OPS_DENSE)
			continue;
		st_tensor_pread_f32(m->f, m->tw[i], m->params + off);
		m->layers[i].w = m->params + off;
		off += m->tw[i]->count;
		st_tensor_pread_f32(m->f, m->tb[i], m->params + off);
		m->layers[i].b = m->params + off;
		off += m->tb[i]->count;
	}
	/* The copy is what runs; the file's pages need not count in the RSS too. */
	st_release_pages(m->f);
	return 0;
}

/* Builds m's layer table and copies the weights; 0 or -1 with err. */
static int model_parse_layers(struct model *m, const struct st_file *f, char *err, size_t errlen)
{
	json_t *a = model_meta_json(f, "wakegate.layers", 1, err, errlen), *l;
	const struct st_tensor **tw = NULL, **tb = NULL;
	size_t i, nparams = 0;
	int cur = m->input_dim, rc = -1;

	if (!a)
		return -1;
	if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > MODEL_MAX_LAYERS) {
		model_fail(err, errlen, st_path(f), "wakegate.layers is not an array of 1 to %d layers",
			MODEL_MAX_LAYERS);
		goto out;
	}
	m->nlayers = (int)json_array_size(a);
	m->layers = calloc((size_t)m->nlayers, sizeof(*m->layers));
	tw = calloc((size_t)m->nlayers, sizeof(*tw));
	tb = calloc((size_t)m->nlayers, sizeof(*tb));
	if (!m->layers || !tw || !tb) {
		model_fail(err, errlen, st_path(f), "out of memory");
		goto out;
	}
	m->max_dim = cur;
	json_array_foreach(a, i, l) {
		const char *op = json_string_value(json_object_get(l, "op"));
		struct ops_layer *ly = &m->layers[i];

		if (!json_is_object(l) || !op) {
			model_fail(err, errlen, st_path(f), "layer %zu: not an object with an \"op\" string", i);
			goto out;
		}
		ly->in = cur;
		if (strcmp(op, "dense") == 0) {
			ly->kind = OPS_DENSE;
			if (model_check_dense(f, (int)i, l, &cur, &nparams, &tw[i], &tb[i], err, errlen) < 0)
				goto out;
		} else if (strcmp(op, "relu") == 0) {
			ly->kind = OPS_RELU;
		} else if (strcmp(op, "softmax") == 0) {
			ly->kind = OPS_SOFTMAX;
		} else {
			model_fail(err, errlen, st_path(f), "layer %zu: unknown op \"%.40s\" (known: dense, relu, softmax)",
				i, op);
			goto out;
		}
		ly->out = cur;
		if (cur > m->max_dim)
			m->max_dim = cur;
	}
	m->output_dim = cur;
	m->nparams = nparams;
	m->tw = tw;
	m->tb = tb;
	tw = tb = NULL;
	rc = 0;
out:
	free(tw);
	free(tb);
	json_decref(a);
	return rc;
}

/* The optional "wakegate.labels" must name each output; 0 or -1 with err. */
static int model_check_labels(const struct model *m, const struct st_file *f, char *err, size_t errlen)
{
	json_t *a = model_meta_json(f, "wakegate.labels", 0, err, errlen), *e;
	size_t i;
	int rc = -1;

	if (!a)
		return err[0] ? -1 : 0;
	if (!json_is_array(a) || json_array_size(a) != (size_t)m->output_dim) {
		model_fail(err, errlen, st_path(f), "wakegate.labels is not an array of %d names (one per output)",
			m->output_dim);
		goto out;
	}
	json_array_foreach(a, i, e) {
		if (!json_is_string(e)) {
			model_fail(err, errlen, st_path(f), "wakegate.labels[%zu] is not a string", i);
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(a);
	return rc;
}

struct model *model_load(const char *path, char *err, size_t errlen)
{
	struct st_file *f;
	struct model *m;
	const char *name;

	if (!(f = st_open(path, err, errlen)))
		return NULL;
	if (!(m = calloc(1, sizeof(*m)))) {
		model_fail(err, errlen, path, "out of memory");
		st_close(f);
		return NULL;
	}
	m->dev = MODEL_CPU;
	m->f = f;
	st_ident(f, &m->id);
	m->cuda_opts = (struct ops_cuda_opts){ .device = 0, .cublas_min = OPS_CUBLAS_MIN_DEFAULT };
	name = st_meta(f, "wakegate.name");
	m->name = name && name[0] ? strdup(name) : model_stem(path);
	m->path = strdup(path);
	if (!m->name || !m->path) {
		model_fail(err, errlen, path, "out of memory");
		goto fail;
	}
	if (model_parse_input(m, f, err, errlen) < 0 || model_parse_layers(m, f, err, errlen) < 0 ||
	    model_check_labels(m, f, err, errlen) < 0 || model_params_fill(m, err, errlen) < 0)
		goto fail;
	return m;
fail:
	model_free(m);
	return NULL;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	ops_cuda_net_free(m->cuda);
	free(m->buf[0]);
	free(m->buf[1]);
	model_params_free(m);
	free(m->tw);
	free(m->tb);
	st_close(m->f);
	free(m->layers);
	free(m->name);
	free(m->path);
	free(m);
}

const char *model_name(const struct model *m)
{
	return m->name;
}

int model_input_dim(const struct model *m)
{
	return m->input_dim;
}

int model_output_dim(const struct model *m)
{
	return m->output_dim;
}

const int64_t *model_input_shape(const struct model *m, int *ndim)
{
	*ndim = m->input_ndim;
	return m->input_shape;
}

int model_layer_count(const struct model *m)
{
	return m->nlayers;
}

int model_cpu_threads_init(void)
{
	return ops_cpu_threads_init();
}

int model_cuda_available(char *why, size_t whylen)
{
	return ops_cuda_available(why, whylen);
}

/* CPU drops the device copy; CUDA uploads the weights unless they are there already. */
int model_use_device(struct model *m, enum model_device dev, char *err, size_t errlen)
{
	struct ops_cuda_net *net;
	char why[256];

	if (m->level) {
		snprintf(err, errlen, "the model is asleep (level %d): wake it first", m->level);
		return -1;
	}
	if (dev == MODEL_CPU) {
		ops_cuda_net_free(m->cuda);
		m->cuda = NULL;
		m->dev = MODEL_CPU;
		return 0;
	}
	if (dev != MODEL_CUDA) {
		snprintf(err, errlen, "unknown device %d", (int)dev);
		return -1;
	}
	if (m->cuda)
		return 0;
	if (!ops_cuda_available(why, sizeof(why))) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	net = ops_cuda_net_new(m->layers, m->nlayers, &m->cuda_opts, m->devname, sizeof(m->devname), err, errlen);
	if (!net)
		return -1;
	m->cuda = net;
	m->dev = MODEL_CUDA;
	return 0;
}

void model_cuda_options(struct model *m, int device, long cublas_min)
{
	m->cuda_opts.device = device;
	m->cuda_opts.cublas_min = cublas_min;
}

const char *model_gemm(const struct model *m)
{
	return m->dev == MODEL_CUDA ? ops_cuda_net_gemm(m->cuda) : "cpu";
}

int model_dead(const struct model *m)
{
	return __atomic_load_n(&m->dead, __ATOMIC_ACQUIRE);
}

enum model_device model_device(const struct model *m)
{
	return m->dev;
}

const char *model_device_name(const struct model *m)
{
	return m->dev == MODEL_CUDA ? m->devname : "cpu";
}

/* Grows the two CPU activation buffers to n floats each. */
static int model_reserve(struct model *m, size_t n)
{
	for (int i = 0; i < 2 && n > m->bufcap; i++) {
		float *p = realloc(m->buf[i], n * sizeof(float));

		if (!p)
			return -1;
		m->buf[i] = p;
	}
	if (n > m->bufcap)
		m->bufcap = n;
	return 0;
}

/*
 * The CPU path runs an even number of rows: OpenBLAS's sgemm takes another
 * code path for a single last row, whose rounding differs, so a sample's
 * answer would depend on how many others shared its batch. With the rows
 * padded to even (a row of zeros, its results dropped) every sample gets
 * the same bits alone or batched, for layers whose output width is even
 * (measured with OpenBLAS 0.3.21: 2080 sample positions in batches of 1 to
 * 64, for 64x64, 64x10, 1024x1024, 4096x4096; an odd width such as 37 still
 * varies in the last bits, within 1e-6).
 */
int model_run(struct model *m, const float *in, int batch, float *out, char *err, size_t errlen)
{
	float *cur, *next, *t;
	size_t n;
	int rows = batch + (batch & 1);
	int rc;

	if (batch < 1) {
		snprintf(err, errlen, "batch of %d samples: must be at least 1", batch);
		return -1;
	}
	if (m->level) {
		snprintf(err, errlen, "the model is asleep (level %d)", m->level);
		return -1;
	}
	if (__builtin_mul_overflow((size_t)rows, (size_t)m->max_dim, &n) || n > SIZE_MAX / sizeof(float)) {
		snprintf(err, errlen, "batch of %d samples is too large", batch);
		return -1;
	}
	if ((rc = ops_fault_inject(err, errlen)) == 0 && m->dev == MODEL_CUDA)
		rc = ops_cuda_net_run(m->cuda, in, batch, out, err, errlen);
	if (rc == OPS_DEAD)
		__atomic_store_n(&m->dead, 1, __ATOMIC_RELEASE);
	if (rc != 0 || m->dev == MODEL_CUDA)
		return rc == 0 ? 0 : -1;
	if (model_reserve(m, n) < 0) {
		snprintf(err, errlen, "out of memory for a batch of %d samples", batch);
		return -1;
	}
	cur = m->buf[0];
	next = m->buf[1];
	memcpy(cur, in, (size_t)batch * m->input_dim * sizeof(float));
	if (rows > batch)
		memset(cur + (size_t)batch * m->input_dim, 0, (size_t)m->input_dim * sizeof(float));
	for (int i = 0; i < m->nlayers; i++) {
		const struct ops_layer *l = &m->layers[i];

		switch (l->kind) {
		case OPS_DENSE:
			ops_cpu_dense(cur, rows, l->in, l->out, l->w, l->b, next);
			t = cur;
			cur = next;
			next = t;
			break;
		case OPS_RELU:
			ops_cpu_relu(cur, (size_t)rows * l->out);
			break;
		case OPS_SOFTMAX:
			ops_cpu_softmax(cur, rows, l->out);
			break;
		}
	}
	memcpy(out, cur, (size_t)batch * m->output_dim * sizeof(float));
	return 0;
}

/* ---- sleep levels ---- */

int model_sleep_level(const struct model *m)
{
	return m->level;
}

size_t model_weight_bytes(const struct model *m)
{
	return m->nparams * sizeof(float);
}

size_t model_host_bytes(const struct model *m)
{
	return m->params ? m->nparams * sizeof(float) : 0;
}

size_t model_device_bytes(const struct model *m)
{
	return m->cuda ? ops_cuda_net_device_bytes(m->cuda) : 0;
}

/* The activation buffers go too: they grow back on the next run. */
static void model_buffers_free(struct model *m)
{
	free(m->buf[0]);
	free(m->buf[1]);
	m->buf[0] = m->buf[1] = NULL;
	m->bufcap = 0;
}

/* Level 2's part: the mapping and the per-layer tensor pointers into it, then the page cache. */
static void model_drop_file(struct model *m)
{
	char err[512];

	free(m->tw);
	free(m->tb);
	m->tw = m->tb = NULL;
	st_close(m->f);
	m->f = NULL;
	if (st_drop_cache(m->path, err, sizeof(err)) < 0)
		fprintf(stderr, "model: level 2: cannot drop the page cache: %s\n", err);
}

int model_sleep(struct model *m, int level, char *err, size_t errlen)
{
	if (level < 1 || level > 2) {
		snprintf(err, errlen, "sleep level %d: must be 1 or 2", level);
		return -1;
	}
	if (level <= m->level)
		return 0;
	if (m->dev == MODEL_CUDA) {
		if (level == 1) {
			if (ops_cuda_net_sleep(m->cuda, err, errlen) < 0)
				return -1;
		} else {
			/* From 0 or 1: the device net goes with its pinned copy. */
			ops_cuda_net_free(m->cuda);
			m->cuda = NULL;
		}
	}
	if (m->dev == MODEL_CPU || level == 2) {
		model_params_free(m);
		model_buffers_free(m);
	}
	if (level == 2)
		model_drop_file(m);
	m->level = level;
	return 0;
}

/* Does fresh have the same input shape and layers as m? Else err says how they differ. */
static int model_same_shape(const struct model *m, const struct model *fresh, char *err, size_t errlen)
{
	if (fresh->input_dim != m->input_dim || fresh->input_ndim != m->input_ndim ||
	    memcmp(fresh->input_shape, m->input_shape, sizeof(int64_t) * (size_t)m->input_ndim) != 0) {
		model_fail(err, errlen, m->path, "the file now takes %d inputs a sample, the model served %d",
			fresh->input_dim, m->input_dim);
		return 0;
	}
	if (fresh->nlayers != m->nlayers) {
		model_fail(err, errlen, m->path, "the file now has %d layers, the model served %d",
			fresh->nlayers, m->nlayers);
		return 0;
	}
	for (int i = 0; i < m->nlayers; i++) {
		if (fresh->layers[i].kind != m->layers[i].kind || fresh->layers[i].out != m->layers[i].out) {
			model_fail(err, errlen, m->path, "layer %d changed (op or size) since the model was loaded", i);
			return 0;
		}
	}
	return 1;
}

/*
 * Moves fresh's weights, file and layers into m, and m's old ones into
 * fresh, which the caller then frees: one swap, nothing copied twice.
 */
static void model_take(struct model *m, struct model *fresh)
{
#define MODEL_SWAP(field) do { __typeof__(m->field) t_ = m->field; m->field = fresh->field; fresh->field = t_; } while (0)
	MODEL_SWAP(layers);
	MODEL_SWAP(params);
	MODEL_SWAP(params_len);
	MODEL_SWAP(nparams);
	MODEL_SWAP(f);
	MODEL_SWAP(id);
	MODEL_SWAP(tw);
	MODEL_SWAP(tb);
#undef MODEL_SWAP
}

/* Level-2 wake and reload: the whole file again, checked to be the same network. */
static struct model *model_load_same(struct model *m, char *err, size_t errlen)
{
	struct model *fresh = model_load(m->path, err, errlen);

	if (fresh && !model_same_shape(m, fresh, err, errlen)) {
		model_free(fresh);
		return NULL;
	}
	return fresh;
}

int model_wake(struct model *m, char *err, size_t errlen)
{
	struct model *fresh;

	if (m->level == 0)
		return 0;
	if (m->level == 1) {
		if (m->dev == MODEL_CUDA) {
			if (ops_cuda_net_wake(m->cuda, err, errlen) < 0)
				return -1;
		} else if (model_params_fill(m, err, errlen) < 0) {
			model_params_free(m);
			return -1;
		}
		m->level = 0;
		return 0;
	}
	if (!(fresh = model_load_same(m, err, errlen)))
		return -1;
	model_take(m, fresh);
	model_free(fresh);
	if (m->dev == MODEL_CUDA &&
	    !(m->cuda = ops_cuda_net_new(m->layers, m->nlayers, &m->cuda_opts, m->devname, sizeof(m->devname), err, errlen))) {
		model_params_free(m);
		model_drop_file(m);
		return -1;
	}
	m->level = 0;
	return 0;
}

int model_reload(struct model *m, int *changed, char *err, size_t errlen)
{
	struct st_ident now;
	struct model *fresh;
	struct ops_cuda_net *net = NULL;

	*changed = 0;
	if (m->level) {
		snprintf(err, errlen, "the model is asleep (level %d): wake it first", m->level);
		return -1;
	}
	if (st_ident_path(m->path, &now, err, errlen) < 0)
		return -1;
	if (memcmp(&now, &m->id, sizeof(now)) == 0)
		return 0;	/* the very file loaded: its weights are the ones running */
	if (!(fresh = model_load_same(m, err, errlen)))
		return -1;
	if (m->dev == MODEL_CUDA &&
	    !(net = ops_cuda_net_new(fresh->layers, fresh->nlayers, &m->cuda_opts, m->devname, sizeof(m->devname), err, errlen))) {
		model_free(fresh);
		return -1;
	}
	model_take(m, fresh);
	if (net) {
		fresh->cuda = m->cuda;	/* the old net goes with fresh */
		m->cuda = net;
	}
	model_free(fresh);
	*changed = 1;
	return 0;
}
