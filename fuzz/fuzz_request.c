/*
 * fuzz_request: feeds arbitrary bytes to the worker's request-body handling
 * as a POST /predict and a POST /v2/models/M/infer body.
 *
 * api.c reads the body inside the evhttp callback and has no entry point
 * that takes bytes, so this harness parses the JSON as read_json() does
 * (json_loadb, object only) and repeats do_predict()'s and do_infer()'s
 * shape checks around the pure functions of tensor.c, which it does test
 * for real: tensor_from_json, tensor_count, tensor_shape_str and
 * tensor_to_json on the checked input. Each body is tried against two
 * model input shapes, [64] (the shipped digits models) and [1,8,8], with
 * --max-batch 32 (the worker's default). Once api.c exposes a pure parse
 * function, the mirror below goes and the harness calls that instead.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gpu-worker/tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_NDIM 8		/* WORKER_MAX_NDIM */
#define FZ_MAX_BATCH 32

struct fz_model {
	int64_t shape[FZ_MAX_NDIM];
	int ndim, dim;
};

static const struct fz_model fz_models[] = {
	{ { 64 }, 1, 64 },
	{ { 1, 8, 8 }, 3, 64 },
};

/* api.c's json_depth: the first-element chain's depth. */
static int fz_depth(json_t *v)
{
	int d = 0;

	while (json_is_array(v) && json_array_size(v) > 0) {
		v = json_array_get(v, 0);
		d++;
	}
	return json_is_array(v) ? d + 1 : d;
}

/*
 * The checked samples dumped as the worker dumps a reply, and read back:
 * 9 significant digits must give every float back exactly.
 */
static void fz_reply(const float *in, int n, int cols, int flat)
{
	json_t *a = tensor_to_json(in, flat ? 0 : n, cols), *back;
	char *s = json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(9));

	if (!s)
		abort();
	back = json_loads(s, 0, NULL);
	if (!back || json_array_size(back) != (size_t)(flat ? cols : n))
		abort();
	for (int r = 0; r < (flat ? 1 : n); r++) {
		json_t *row = flat ? back : json_array_get(back, (size_t)r);
		for (int c = 0; c < cols; c++) {
			float v = (float)json_number_value(json_array_get(row, (size_t)c));
			if (v != in[(size_t)r * (size_t)cols + (size_t)c])
				abort();	/* the reply does not say what was computed */
		}
	}
	json_decref(back);
	free(s);
	json_decref(a);
}

/* do_predict's checks: {"input": [[...], ...]} or {"input": [...]}. */
static void fz_predict(const struct fz_model *m, json_t *root)
{
	json_t *input = json_object_get(root, "input");
	int64_t dims[FZ_MAX_NDIM + 1];
	char err[256];
	float *in;
	int flat, n;

	if (!json_is_array(input))
		return;
	flat = json_array_size(input) > 0 && fz_depth(input) == m->ndim;
	n = flat ? 1 : (int)json_array_size(input);
	if (n < 1 || n > FZ_MAX_BATCH)
		return;
	dims[0] = n;
	memcpy(dims + 1, m->shape, sizeof(int64_t) * (size_t)m->ndim);
	in = malloc(sizeof(float) * (size_t)n * (size_t)m->dim);
	if (!in)
		return;
	if (tensor_from_json(input, flat ? dims + 1 : dims, flat ? m->ndim : m->ndim + 1,
			     in, "input", err, sizeof(err)) == 0)
		fz_reply(in, n, m->dim, flat);
	else if (!err[0])
		abort();	/* a refusal always says why */
	free(in);
}

/* do_infer's checks: one FP32 tensor named "input", shape [-1,...], data flat or nested. */
static void fz_infer(const struct fz_model *m, json_t *root)
{
	json_t *inputs = json_object_get(root, "inputs"), *t, *name, *dt, *shape, *data;
	int64_t dims[FZ_MAX_NDIM + 1];
	char err[256], want[128];
	size_t count;
	float *in;
	int ok, rc;

	if (!json_is_array(inputs) || json_array_size(inputs) != 1)
		return;
	t = json_array_get(inputs, 0);
	if (!json_is_object(t))
		return;
	name = json_object_get(t, "name");
	dt = json_object_get(t, "datatype");
	if (!json_is_string(name) || strcmp(json_string_value(name), "input") != 0 ||
	    !json_is_string(dt) || strcmp(json_string_value(dt), "FP32") != 0)
		return;
	tensor_shape_str(m->shape, m->ndim, 1, want, sizeof(want));
	shape = json_object_get(t, "shape");
	ok = json_is_array(shape) && (int)json_array_size(shape) == m->ndim + 1;
	for (int i = 0; ok && i <= m->ndim; i++) {
		json_t *d = json_array_get(shape, (size_t)i);
		ok = json_is_integer(d) && (i == 0 || json_integer_value(d) == m->shape[i - 1]);
		if (ok)
			dims[i] = json_integer_value(d);
	}
	if (!ok) {
		/* the 400's text names what came */
		char *got = shape ? json_dumps(shape, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		snprintf(err, sizeof(err), "shape %s does not match the model's input %s",
			 got ? got : "(missing)", want);
		free(got);
		return;
	}
	if (dims[0] < 1 || dims[0] > FZ_MAX_BATCH)
		return;
	data = json_object_get(t, "data");
	if (!json_is_array(data))
		return;
	count = tensor_count(dims, m->ndim + 1);
	if (count != (size_t)dims[0] * (size_t)m->dim)
		abort();	/* the checked shape is batch x the model's input */
	in = malloc(sizeof(float) * count);
	if (!in)
		return;
	if (fz_depth(data) == 1) {
		int64_t flat = (int64_t)count;
		rc = tensor_from_json(data, &flat, 1, in, "inputs[0].data", err, sizeof(err));
	} else {
		rc = tensor_from_json(data, dims, m->ndim + 1, in, "inputs[0].data", err, sizeof(err));
	}
	if (rc == 0)
		fz_reply(in, (int)dims[0], m->dim, 0);
	else if (!err[0])
		abort();
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *root;

	if (size > (1u << 20))
		return 0;	/* the worker refuses bodies this large with 413 */
	root = json_loadb((const char *)data, size, 0, &jerr);
	if (!root)
		return 0;
	if (json_is_object(root)) {
		for (size_t i = 0; i < sizeof(fz_models) / sizeof(fz_models[0]); i++) {
			fz_predict(&fz_models[i], root);
			fz_infer(&fz_models[i], root);
		}
	}
	json_decref(root);
	return 0;
}
