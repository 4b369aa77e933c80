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

/* In the order of enum tensor_dtype. */
static const struct {
	const char *name;
	size_t size;
	double lo, hi;		/* the integer types' range */
} dtypes[] = {
	{ "FP32", 4, 0, 0 }, { "FP16", 2, 0, 0 }, { "FP64", 8, 0, 0 },
	{ "INT8", 1, -128.0, 127.0 }, { "INT16", 2, -32768.0, 32767.0 },
	{ "INT32", 4, -2147483648.0, 2147483647.0 }, { "INT64", 8, -9223372036854775808.0, 9223372036854775807.0 },
	{ "UINT8", 1, 0, 255.0 }, { "UINT16", 2, 0, 65535.0 }, { "UINT32", 4, 0, 4294967295.0 },
	{ "UINT64", 8, 0, 18446744073709551615.0 },
	{ "BOOL", 1, 0, 1 },
};

int tensor_dtype(const char *s)
{
	for (size_t i = 0; s && i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (strcmp(s, dtypes[i].name) == 0)
			return (int)i;
	return -1;
}

size_t tensor_dtype_size(enum tensor_dtype t) { return dtypes[t].size; }
const char *tensor_dtype_name(enum tensor_dtype t) { return dtypes[t].name; }

static int is_int_type(enum tensor_dtype t)
{
	return t >= TENSOR_INT8 && t <= TENSOR_UINT64;
}

/* One JSON value of datatype dt as a float; -1 with err naming path. */
static int json_value(json_t *v, enum tensor_dtype dt, float *out, const char *path, char *err, size_t errlen)
{
	double d;

	if (dt == TENSOR_BOOL) {
		if (!json_is_boolean(v)) {
			snprintf(err, errlen, "%s is not true or false (datatype BOOL)", path);
			return -1;
		}
		*out = json_is_true(v) ? 1.0f : 0.0f;
		return 0;
	}
	if (is_int_type(dt)) {
		if (!json_is_integer(v)) {
			snprintf(err, errlen, "%s is not an integer (datatype %s)", path, dtypes[dt].name);
			return -1;
		}
		d = (double)json_integer_value(v);
		if (d < dtypes[dt].lo || d > dtypes[dt].hi) {
			snprintf(err, errlen, "%s is out of range for %s", path, dtypes[dt].name);
			return -1;
		}
		*out = (float)d;
		return 0;
	}
	if (!json_is_number(v)) {
		snprintf(err, errlen, "%s is not a number", path);
		return -1;
	}
	d = json_number_value(v);
	if (!isfinite((float)d)) {
		snprintf(err, errlen, "%s is out of range for FP32", path);
		return -1;
	}
	*out = (float)d;
	return 0;
}

/* Recursive walk; path holds the name so far ("input[2]") for messages. */
static int walk(json_t *v, const int64_t *dims, int ndims, enum tensor_dtype dt, float **out,
		char *path, size_t pathlen, char *err, size_t errlen)
{
	size_t used = strlen(path);

	if (ndims == 0)
		return json_value(v, dt, (*out)++, path, err, errlen);
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
		if (walk(json_array_get(v, i), dims + 1, ndims - 1, dt, out, path, pathlen, err, errlen) < 0)
			return -1;
	}
	path[used] = '\0';
	return 0;
}

int tensor_from_json(json_t *v, const int64_t *dims, int ndims, enum tensor_dtype dt, float *out,
		     const char *what, char *err, size_t errlen)
{
	char path[128];

	snprintf(path, sizeof(path), "%s", what);
	return walk(v, dims, ndims, dt, &out, path, sizeof(path), err, errlen);
}

/* n bytes at p, little-endian, as an unsigned integer (the wire's order on any host). */
static uint64_t le(const unsigned char *p, size_t n)
{
	uint64_t x = 0;

	while (n-- > 0)
		x = x << 8 | p[n];
	return x;
}

/* IEEE 754 binary16 to float: every half is exactly a float. */
static float half_to_float(uint16_t h)
{
	unsigned e = (h >> 10) & 0x1f, m = h & 0x3ff;
	float f;

	if (e == 0)
		f = ldexpf((float)m, -24);			/* zero, subnormal */
	else if (e == 31)
		f = m ? NAN : INFINITY;
	else
		f = ldexpf((float)(m | 0x400), (int)e - 25);	/* (1024 + m) * 2^(e-25) */
	return (h & 0x8000) ? -f : f;
}

int tensor_from_bytes(const unsigned char *p, size_t count, enum tensor_dtype dt, float *out,
		      const char *what, char *err, size_t errlen)
{
	size_t sz = dtypes[dt].size;

	for (size_t i = 0; i < count; i++, p += sz) {
		uint64_t u = le(p, sz);
		double d;
		union { uint32_t u; float f; } f32;
		union { uint64_t u; double d; } f64;

		switch (dt) {
		case TENSOR_FP32: f32.u = (uint32_t)u; d = f32.f; break;
		case TENSOR_FP16: d = half_to_float((uint16_t)u); break;
		case TENSOR_FP64: f64.u = u; d = f64.d; break;
		case TENSOR_INT8: d = (int8_t)u; break;
		case TENSOR_INT16: d = (int16_t)u; break;
		case TENSOR_INT32: d = (int32_t)u; break;
		case TENSOR_INT64: d = (double)(int64_t)u; break;
		case TENSOR_BOOL:
			if (u > 1) {
				snprintf(err, errlen, "%s[%zu] is byte %u: BOOL is 0 or 1", what, i, (unsigned)u);
				return -1;
			}
			/* fall through */
		default: d = (double)u; break;	/* the UINT types */
		}
		if (!isfinite((float)d)) {
			snprintf(err, errlen, "%s[%zu] is %s", what, i,
				 isnan(d) ? "NaN" : "out of range for FP32");
			return -1;
		}
		out[i] = (float)d;
	}
	return 0;
}

void tensor_to_bytes(const float *v, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i++) {
		union { float f; uint32_t u; } x = { .f = v[i] };

		for (int b = 0; b < 4; b++)
			*out++ = (unsigned char)(x.u >> (8 * b));
	}
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
