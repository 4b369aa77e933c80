/* request: inference bodies from bytes to checked floats (see request.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-worker/request.h"
#include "gpu-worker/tensor.h"
#include "gpu-worker/worker.h"

/* Bytes of the valid UTF-8 sequence at s (n bytes left), or 0: as jansson's own check. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp, min;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	if (s[0] < 0xe0) {
		len = 2, min = 0x80, cp = s[0] & 0x1f;
	} else if (s[0] < 0xf0) {
		len = 3, min = 0x800, cp = s[0] & 0x0f;
	} else {
		len = 4, min = 0x10000, cp = s[0] & 0x07;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Makes err valid UTF-8 and returns code. Messages quote the client's
 * strings and jansson's error text and may be cut at errlen, so bytes that
 * are not UTF-8 become '?': the reply is built with json_pack, which
 * refuses a string that is not UTF-8.
 */
static int clean(char *err, int code)
{
	size_t n = strlen(err), k;

	for (size_t i = 0; i < n; i += k)
		if ((k = utf8_seq((unsigned char *)err + i, n - i)) == 0) {
			err[i] = '?';
			k = 1;
		}
	return code;
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Writes the message into err; returns code. */
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return code;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return clean(err, code);
}

/* Depth of the first-element chain: 0 for a number, 1 for [1,2], 2 for [[1,2]]. */
static int json_depth(json_t *v)
{
	int d = 0;

	while (json_is_array(v) && json_array_size(v) > 0) {
		v = json_array_get(v, 0);
		d++;
	}
	return json_is_array(v) ? d + 1 : d;
}

/* The batch size checks both APIs share; 0 or 400. */
static int check_batch(long long n, int max_batch, char *err, size_t errlen)
{
	if (n == 0)
		return fail(err, errlen, 400, "empty batch: no samples");
	if (n < 0)
		return fail(err, errlen, 400, "batch size %lld is not valid", n);
	if (n > max_batch)
		return fail(err, errlen, 400, "batch of %lld samples is larger than --max-batch %d",
			    n, max_batch);
	return 0;
}

/* {"input": [[...], ...]} or {"input": [...]} (one sample). */
static int parse_predict(json_t *root, const int64_t *in_shape, int in_ndim, size_t in_dim, int max_batch,
			 struct request_input *out, char *err, size_t errlen)
{
	json_t *input = json_object_get(root, "input");
	int64_t dims[WORKER_MAX_NDIM + 1];
	int flat, n, rc;

	if (!input)
		return fail(err, errlen, 400, "missing \"input\"");
	if (!json_is_array(input))
		return fail(err, errlen, 400, "\"input\" must be an array of samples");
	flat = json_array_size(input) > 0 && json_depth(input) == in_ndim;
	if ((rc = check_batch(flat ? 1 : (long long)json_array_size(input), max_batch, err, errlen)))
		return rc;
	n = flat ? 1 : (int)json_array_size(input);
	dims[0] = n;
	memcpy(dims + 1, in_shape, sizeof(int64_t) * (size_t)in_ndim);
	if (!(out->in = malloc(sizeof(float) * (size_t)n * in_dim)))
		return fail(err, errlen, 500, "out of memory");
	if (tensor_from_json(input, flat ? dims + 1 : dims, flat ? in_ndim : in_ndim + 1,
			     out->in, "input", err, errlen) < 0) {
		free(out->in);
		out->in = NULL;
		return errlen ? clean(err, 400) : 400;
	}
	out->n = n;
	out->flat = flat;
	return 0;
}

/* Checks a v2 tensor header (name, datatype, shape) and fills dims; 0 or 400. */
static int check_v2_tensor(json_t *t, const int64_t *in_shape, int in_ndim, int max_batch, int64_t *dims,
			   char *err, size_t errlen)
{
	json_t *name = json_object_get(t, "name"), *dt = json_object_get(t, "datatype");
	json_t *shape = json_object_get(t, "shape");
	char want[128];
	int ok;

	if (!json_is_string(name) || strcmp(json_string_value(name), "input") != 0)
		return fail(err, errlen, 400, "unknown input %s%s%s: the model's input is \"input\"",
			    json_is_string(name) ? "\"" : "",
			    json_is_string(name) ? json_string_value(name) : "(no name)",
			    json_is_string(name) ? "\"" : "");
	if (!json_is_string(dt) || strcmp(json_string_value(dt), "FP32") != 0)
		return fail(err, errlen, 400, "datatype %s is not supported: use \"FP32\"",
			    json_is_string(dt) ? json_string_value(dt) : "(missing)");
	tensor_shape_str(in_shape, in_ndim, 1, want, sizeof(want));
	ok = json_is_array(shape) && (int)json_array_size(shape) == in_ndim + 1;
	for (int i = 0; ok && i <= in_ndim; i++) {
		json_t *d = json_array_get(shape, (size_t)i);
		ok = json_is_integer(d) && (i == 0 || json_integer_value(d) == in_shape[i - 1]);
		if (ok)
			dims[i] = json_integer_value(d);
	}
	if (!ok) {
		char *got = shape ? json_dumps(shape, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		int rc = fail(err, errlen, 400, "shape %s does not match the model's input %s",
			      got ? got : "(missing)", want);
		free(got);
		return rc;
	}
	return check_batch((long long)dims[0], max_batch, err, errlen);
}

/* KServe v2: one FP32 input tensor, data flat or nested. */
static int parse_infer(json_t *root, const int64_t *in_shape, int in_ndim, int max_batch,
		       struct request_input *out, char *err, size_t errlen)
{
	json_t *inputs = json_object_get(root, "inputs"), *t, *data, *id;
	int64_t dims[WORKER_MAX_NDIM + 1];
	size_t count;
	int rc;

	if (!json_is_array(inputs) || json_array_size(inputs) != 1)
		return fail(err, errlen, 400, "\"inputs\" must be an array of one tensor (the model has one input, \"input\")");
	t = json_array_get(inputs, 0);
	if (!json_is_object(t))
		return fail(err, errlen, 400, "inputs[0] must be an object");
	if ((rc = check_v2_tensor(t, in_shape, in_ndim, max_batch, dims, err, errlen)))
		return rc;
	data = json_object_get(t, "data");
	if (!json_is_array(data))
		return fail(err, errlen, 400, "inputs[0].data must be an array");
	count = tensor_count(dims, in_ndim + 1);
	if (!(out->in = malloc(sizeof(float) * count)))
		return fail(err, errlen, 500, "out of memory");
	if (json_depth(data) == 1) {
		int64_t flat = (int64_t)count;
		rc = tensor_from_json(data, &flat, 1, out->in, "inputs[0].data", err, errlen);
	} else {
		rc = tensor_from_json(data, dims, in_ndim + 1, out->in, "inputs[0].data", err, errlen);
	}
	if (rc < 0) {
		free(out->in);
		out->in = NULL;
		return errlen ? clean(err, 400) : 400;
	}
	out->n = (int)dims[0];
	if ((id = json_object_get(root, "id")))
		out->id = json_incref(id);
	return 0;
}

int request_parse(const char *body, size_t len, int v2, const int64_t *in_shape, int in_ndim,
		  int max_batch, size_t max_body, struct request_input *out, char *err, size_t errlen)
{
	size_t in_dim = in_ndim >= 1 && in_ndim <= WORKER_MAX_NDIM ? tensor_count(in_shape, in_ndim) : 0;
	json_error_t jerr;
	json_t *root;
	int rc;

	*out = (struct request_input){ 0 };
	if (in_dim == 0)
		return fail(err, errlen, 500, "the model's input shape is not usable");
	if (len > max_body)
		return fail(err, errlen, 413, "body of %zu bytes is larger than the limit of %zu", len, max_body);
	if (len == 0)
		return fail(err, errlen, 400, "empty body: expected a JSON object");
	root = json_loadb(body, len, 0, &jerr);
	if (!root)
		return fail(err, errlen, 400, "bad JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
	if (!json_is_object(root))
		rc = fail(err, errlen, 400, "the body must be a JSON object");
	else if (v2)
		rc = parse_infer(root, in_shape, in_ndim, max_batch, out, err, errlen);
	else
		rc = parse_predict(root, in_shape, in_ndim, in_dim, max_batch, out, err, errlen);
	json_decref(root);
	return rc;
}

void request_input_clear(struct request_input *in)
{
	free(in->in);
	json_decref(in->id);
	*in = (struct request_input){ 0 };
}
