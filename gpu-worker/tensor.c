/* tensor: JSON <-> float arrays with checked shapes (see tensor.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpu-worker/tensor.h"

size_t tensor_count(const int64_t *dims, int ndims)
{
	size_t n = 1;

	for (int i = 0; i < ndims; i++) {
		if (dims[i] < 1 || (size_t)dims[i] > ((size_t)1 << 40) / n)
			return 0;
		n *= (size_t)dims[i];
	}
	return n;
}

/* Recursive walk; path holds the name so far ("input[2]") for messages. */
static int walk(json_t *v, const int64_t *dims, int ndims, float **out, char *path, size_t pathlen,
		char *err, size_t errlen)
{
	size_t used = strlen(path);

	if (ndims == 0) {
		double d;
		if (!json_is_number(v)) {
			snprintf(err, errlen, "%s is not a number", path);
			return -1;
		}
		d = json_number_value(v);
		if (!isfinite((float)d)) {
			snprintf(err, errlen, "%s is out of range for FP32", path);
			return -1;
		}
		*(*out)++ = (float)d;
		return 0;
	}
	if (!json_is_array(v)) {
		snprintf(err, errlen, "%s is not an array", path);
		return -1;
	}
	if ((int64_t)json_array_size(v) != dims[0]) {
		snprintf(err, errlen, "%s has %zu values, expected %lld", path,
			 json_array_size(v), (long long)dims[0]);
		return -1;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		snprintf(path + used, pathlen - used, "[%zu]", i);
		if (walk(json_array_get(v, i), dims + 1, ndims - 1, out, path, pathlen, err, errlen) < 0)
			return -1;
	}
	path[used] = '\0';
	return 0;
}

int tensor_from_json(json_t *v, const int64_t *dims, int ndims, float *out,
		     const char *what, char *err, size_t errlen)
{
	char path[128];

	snprintf(path, sizeof(path), "%s", what);
	return walk(v, dims, ndims, &out, path, sizeof(path), err, errlen);
}

/*
 * Floats print with 9 significant digits (enough to read back the same
 * float); jansson's JSON_REAL_PRECISION does this at dump time.
 */
json_t *tensor_to_json(const float *v, int rows, int cols)
{
	json_t *a = json_array();

	if (rows == 0) {
		for (int c = 0; c < cols; c++)
			json_array_append_new(a, json_real(v[c]));
		return a;
	}
	for (int r = 0; r < rows; r++)
		json_array_append_new(a, tensor_to_json(v + (size_t)r * (size_t)cols, 0, cols));
	return a;
}

void tensor_shape_str(const int64_t *dims, int ndims, int with_batch, char *buf, size_t len)
{
	size_t o = 0;

	o += (size_t)snprintf(buf, len, "[%s", with_batch ? "-1" : "");
	for (int i = 0; i < ndims && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%lld", (with_batch || i) ? "," : "",
				      (long long)dims[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
}
