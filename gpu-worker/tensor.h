/*
 * tensor: JSON arrays of numbers <-> float buffers, for the request and
 * reply bodies. Errors name the place: "input[2][5] is not a number".
 */
#ifndef WG_TENSOR_H
#define WG_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/*
 * KServe v2 datatypes an input may come in. The model computes in FP32:
 * the others are converted on the way in (see wakegate-worker(8),
 * DATATYPES); BYTES has no number to convert to and is refused.
 */
enum tensor_dtype {
	TENSOR_FP32, TENSOR_FP16, TENSOR_FP64,
	TENSOR_INT8, TENSOR_INT16, TENSOR_INT32, TENSOR_INT64,
	TENSOR_UINT8, TENSOR_UINT16, TENSOR_UINT32, TENSOR_UINT64,
	TENSOR_BOOL
};

/* The datatype named s ("FP16"), or -1 (BYTES, BF16, anything else). */
int tensor_dtype(const char *s);
/* Bytes of one element in the binary tensor extension's layout (BOOL: 1). */
size_t tensor_dtype_size(enum tensor_dtype t);
const char *tensor_dtype_name(enum tensor_dtype t);

/*
 * Checks that v is nested arrays shaped exactly dims[0..ndims) (ndims 1: a
 * flat array) of values of datatype dt (numbers; integers in the type's
 * range for the INT/UINT types; true/false for BOOL), and writes them
 * row-major as floats into out (room for the product of dims). what names
 * v in errors. 0, or -1 with err.
 */
int tensor_from_json(json_t *v, const int64_t *dims, int ndims, enum tensor_dtype dt, float *out,
		     const char *what, char *err, size_t errlen);

/*
 * The binary tensor extension: count elements of dt, little-endian, packed,
 * at p, into floats. A value that is not a finite FP32 (NaN, an infinity,
 * an FP64 out of range) is refused, as in JSON. 0, or -1 with err naming
 * the element ("what[12]").
 */
int tensor_from_bytes(const unsigned char *p, size_t count, enum tensor_dtype dt, float *out,
		      const char *what, char *err, size_t errlen);

/* n floats as little-endian FP32 bytes into out (4n bytes): the binary output. */
void tensor_to_bytes(const float *v, size_t n, unsigned char *out);

/* The number of values: the product of dims (0 when a dim is < 1 or it overflows). */
size_t tensor_count(const int64_t *dims, int ndims);

/* A new JSON array: rows arrays of cols numbers, or (rows == 0) one flat array of cols. */
json_t *tensor_to_json(const float *v, int rows, int cols);

/* "[64]" or "[-1,64]" (with_batch) into buf, for messages. */
void tensor_shape_str(const int64_t *dims, int ndims, int with_batch, char *buf, size_t len);

#endif
