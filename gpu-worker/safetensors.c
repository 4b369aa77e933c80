/*
 * safetensors: the file is mapped read-only and every number in the header
 * is checked against the mapping before any tensor pointer is handed out,
 * so a truncated or hostile file gives an error and never a read out of
 * bounds.
 */
#include "gpu-worker/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u * 1024 * 1024)	/* as the reference implementation */

struct st_file {
	char *path;
	int fd;				/* kept open for st_tensor_pread_f32(); -1 when none */
	void *map;
	size_t size;
	struct st_ident id;
	json_t *header;			/* owns the tensor names and metadata strings */
	const unsigned char *data;	/* the data section, inside map */
	uint64_t data_len;
	struct st_tensor *tensors;
	int ntensors;
};

/* One tensor's byte range, for the overlap check. */
struct st_range {
	uint64_t begin, end;
	const char *name;
};

/* Writes "PATH: message" into err. */
static void st_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void st_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s: %s", path, msg);
}

/* Dtypes of the safetensors spec: known ones are refused by name, others as unknown. */
static int st_dtype_known(const char *d)
{
	static const char *const known[] = { "F64", "F16", "BF16", "I64", "I32", "I16", "I8",
		"U64", "U32", "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3",
		"F6_E3M2", "F4", "C64", NULL };

	for (int i = 0; known[i]; i++)
		if (strcmp(d, known[i]) == 0)
			return 1;
	return 0;
}

/* Checks one header entry and fills t and r; 0 or -1 with err. */
static int st_parse_tensor(struct st_file *f, const char *name, json_t *v,
	struct st_tensor *t, struct st_range *r, char *err, size_t errlen)
{
	json_t *dtype, *shape, *offs, *e;
	const char *d;
	uint64_t count = 1, nbytes;
	json_int_t b, en;
	size_t i;

	if (!json_is_object(v)) {
		st_fail(err, errlen, f->path, "tensor \"%s\": entry is not a JSON object", name);
		return -1;
	}
	dtype = json_object_get(v, "dtype");
	shape = json_object_get(v, "shape");
	offs = json_object_get(v, "data_offsets");
	if (!json_is_string(dtype)) {
		st_fail(err, errlen, f->path, "tensor \"%s\": missing or non-string \"dtype\"", name);
		return -1;
	}
	d = json_string_value(dtype);
	if (strcmp(d, "F32") != 0) {
		if (st_dtype_known(d))
			st_fail(err, errlen, f->path, "tensor \"%s\": dtype %s is not supported (only F32)", name, d);
		else
			st_fail(err, errlen, f->path, "tensor \"%s\": unknown dtype \"%.40s\" (only F32 is supported)",
				name, d);
		return -1;
	}
	if (!json_is_array(shape)) {
		st_fail(err, errlen, f->path, "tensor \"%s\": missing or non-array \"shape\"", name);
		return -1;
	}
	if (json_array_size(shape) > ST_MAX_DIMS) {
		st_fail(err, errlen, f->path, "tensor \"%s\": shape has %zu dimensions (at most %d)",
			name, json_array_size(shape), ST_MAX_DIMS);
		return -1;
	}
	t->ndim = (int)json_array_size(shape);
	json_array_foreach(shape, i, e) {
		json_int_t n;

		if (!json_is_integer(e) || (n = json_integer_value(e)) < 0) {
			st_fail(err, errlen, f->path, "tensor \"%s\": shape[%zu] is not a non-negative integer",
				name, i);
			return -1;
		}
		if (__builtin_mul_overflow(count, (uint64_t)n, &count) || count > UINT64_MAX / 4) {
			st_fail(err, errlen, f->path, "tensor \"%s\": shape is too large (overflows)", name);
			return -1;
		}
		t->shape[i] = n;
	}
	nbytes = count * 4;
	if (!json_is_array(offs) || json_array_size(offs) != 2 ||
	    !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1))) {
		st_fail(err, errlen, f->path, "tensor \"%s\": \"data_offsets\" is not [begin,end]", name);
		return -1;
	}
	b = json_integer_value(json_array_get(offs, 0));
	en = json_integer_value(json_array_get(offs, 1));
	if (b < 0 || en < 0 || b > en) {
		st_fail(err, errlen, f->path, "tensor \"%s\": data_offsets [%lld,%lld] are not 0 <= begin <= end",
			name, (long long)b, (long long)en);
		return -1;
	}
	if ((uint64_t)en > f->data_len) {
		st_fail(err, errlen, f->path,
			"tensor \"%s\": data_offsets [%lld,%lld] past the end of the data (%llu bytes)",
			name, (long long)b, (long long)en, (unsigned long long)f->data_len);
		return -1;
	}
	if ((uint64_t)(en - b) != nbytes) {
		st_fail(err, errlen, f->path,
			"tensor \"%s\": shape holds %llu floats (%llu bytes) but data_offsets [%lld,%lld] span %lld bytes",
			name, (unsigned long long)count, (unsigned long long)nbytes,
			(long long)b, (long long)en, (long long)(en - b));
		return -1;
	}
	t->name = name;
	t->count = count;
	t->data = f->data + b;
	r->begin = (uint64_t)b;
	r->end = (uint64_t)en;
	r->name = name;
	return 0;
}

static int st_range_cmp(const void *a, const void *b)
{
	const struct st_range *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/* Parses the header into f's tensor table; 0 or -1 with err. */
static int st_parse_header(struct st_file *f, const char *json, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	const char *key;
	json_t *v, *meta;
	struct st_range *ranges;
	size_t n;
	int rc = -1;

	f->header = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!f->header) {
		st_fail(err, errlen, f->path, "header is not valid JSON: %s (line %d, column %d)",
			jerr.text, jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(f->header)) {
		st_fail(err, errlen, f->path, "header is not a JSON object");
		return -1;
	}
	meta = json_object_get(f->header, "__metadata__");
	if (meta) {
		if (!json_is_object(meta)) {
			st_fail(err, errlen, f->path, "\"__metadata__\" is not a JSON object");
			return -1;
		}
		json_object_foreach(meta, key, v) {
			if (!json_is_string(v)) {
				st_fail(err, errlen, f->path, "__metadata__ \"%s\": value is not a string", key);
				return -1;
			}
		}
	}
	n = json_object_size(f->header) - (meta ? 1 : 0);
	f->tensors = calloc(n ? n : 1, sizeof(*f->tensors));
	ranges = calloc(n ? n : 1, sizeof(*ranges));
	if (!f->tensors || !ranges) {
		st_fail(err, errlen, f->path, "out of memory");
		goto out;
	}
	json_object_foreach(f->header, key, v) {
		if (strcmp(key, "__metadata__") == 0)
			continue;
		if (st_parse_tensor(f, key, v, &f->tensors[f->ntensors], &ranges[f->ntensors], err, errlen) < 0)
			goto out;
		f->ntensors++;
	}
	qsort(ranges, n, sizeof(*ranges), st_range_cmp);
	for (size_t i = 1; i < n; i++) {
		if (ranges[i].begin < ranges[i - 1].end) {
			st_fail(err, errlen, f->path, "tensors \"%s\" [%llu,%llu] and \"%s\" [%llu,%llu] overlap",
				ranges[i - 1].name, (unsigned long long)ranges[i - 1].begin,
				(unsigned long long)ranges[i - 1].end, ranges[i].name,
				(unsigned long long)ranges[i].begin, (unsigned long long)ranges[i].end);
			goto out;
		}
	}
	rc = 0;
out:
	free(ranges);
	return rc;
}

struct st_file *st_open(const char *path, char *err, size_t errlen)
{
	struct st_file *f;
	struct stat sb;
	uint64_t hlen = 0;
	const unsigned char *p;
	int fd;

	f = calloc(1, sizeof(*f));
	if (f)
		f->fd = -1;
	if (!f || !(f->path = strdup(path))) {
		free(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		st_fail(err, errlen, path, "%s", strerror(errno));
		goto fail;
	}
	if (fstat(fd, &sb) < 0) {
		st_fail(err, errlen, path, "%s", strerror(errno));
		close(fd);
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		st_fail(err, errlen, path, "not a regular file");
		close(fd);
		goto fail;
	}
	if (sb.st_size < 8) {
		st_fail(err, errlen, path, "file is %lld bytes, too short for a safetensors header",
			(long long)sb.st_size);
		close(fd);
		goto fail;
	}
	f->size = (size_t)sb.st_size;
	f->id = (struct st_ident){ .dev = (uint64_t)sb.st_dev, .ino = (uint64_t)sb.st_ino,
		.size = (uint64_t)sb.st_size,
		.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec };
	f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
	f->fd = fd;
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		st_fail(err, errlen, path, "mmap: %s", strerror(errno));
		goto fail;
	}
	p = f->map;
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | p[i];
	if (hlen > f->size - 8) {
		st_fail(err, errlen, path, "header length %llu is past the end of the file (%zu bytes)",
			(unsigned long long)hlen, f->size);
		goto fail;
	}
	if (hlen > ST_MAX_HEADER) {
		st_fail(err, errlen, path, "header length %llu is too large (at most %u)",
			(unsigned long long)hlen, ST_MAX_HEADER);
		goto fail;
	}
	f->data = p + 8 + hlen;
	f->data_len = f->size - 8 - hlen;
	if (st_parse_header(f, (const char *)p + 8, (size_t)hlen, err, errlen) < 0)
		goto fail;
	return f;
fail:
	st_close(f);
	return NULL;
}

void st_close(struct st_file *f)
{
	if (!f)
		return;
	if (f->map)
		munmap(f->map, f->size);
	if (f->fd >= 0)
		close(f->fd);
	json_decref(f->header);
	free(f->tensors);
	free(f->path);
	free(f);
}

const char *st_path(const struct st_file *f)
{
	return f->path;
}

int st_tensor_count(const struct st_file *f)
{
	return f->ntensors;
}

const struct st_tensor *st_tensor_at(const struct st_file *f, int i)
{
	return i >= 0 && i < f->ntensors ? &f->tensors[i] : NULL;
}

const struct st_tensor *st_tensor_find(const struct st_file *f, const char *name)
{
	for (int i = 0; i < f->ntensors; i++)
		if (strcmp(f->tensors[i].name, name) == 0)
			return &f->tensors[i];
	return NULL;
}

const char *st_meta(const struct st_file *f, const char *key)
{
	json_t *meta = json_object_get(f->header, "__metadata__");

	return json_string_value(json_object_get(meta, key));
}

void st_tensor_read_f32(const struct st_tensor *t, float *dst)
{
	memcpy(dst, t->data, (size_t)t->count * 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	for (uint64_t i = 0; i < t->count; i++) {
		uint32_t u;

		memcpy(&u, &dst[i], 4);
		u = __builtin_bswap32(u);
		memcpy(&dst[i], &u, 4);
	}
#endif
}

int st_tensor_pread_f32(const struct st_file *f, const struct st_tensor *t, float *dst)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	size_t len = (size_t)t->count * 4, done = 0;
	off_t off = (off_t)(t->data - (const unsigned char *)f->map);

	while (f->fd >= 0 && done < len) {
		ssize_t n = pread(f->fd, (char *)dst + done, len - done, off + (off_t)done);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		done += (size_t)n;
	}
	if (done == len)
		return 0;
#endif
	st_tensor_read_f32(t, dst);	/* through the mapping, converting the byte order */
	return 0;
}

void st_release_pages(struct st_file *f)
{
	/* Advice only: on failure the pages simply stay counted in the RSS. */
	(void)madvise(f->map, f->size, MADV_DONTNEED);
}

int st_drop_cache(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		st_fail(err, errlen, path, "%s", strerror(errno));
		return -1;
	}
	rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	if (rc != 0) {
		st_fail(err, errlen, path, "posix_fadvise: %s", strerror(rc));
		return -1;
	}
	return 0;
}

void st_ident(const struct st_file *f, struct st_ident *id)
{
	*id = f->id;
}

int st_ident_path(const char *path, struct st_ident *id, char *err, size_t errlen)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		st_fail(err, errlen, path, "%s", strerror(errno));
		return -1;
	}
	*id = (struct st_ident){ .dev = (uint64_t)sb.st_dev, .ino = (uint64_t)sb.st_ino,
		.size = (uint64_t)sb.st_size,
		.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec };
	return 0;
}
