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
 * Checks that v is nested arrays shaped exactly dims[0..ndims) (ndims 1: a
 * flat array) of numbers, and writes them row-major into out (room for the
 * product of dims). what names v in errors. 0, or -1 with err.
 */
int tensor_from_json(json_t *v, const int64_t *dims, int ndims, float *out,
		     const char *what, char *err, size_t errlen);

/* The number of values: the product of dims (0 when a dim is < 1 or it overflows). */
size_t tensor_count(const int64_t *dims, int ndims);

/* A new JSON array: rows arrays of cols numbers, or (rows == 0) one flat array of cols. */
json_t *tensor_to_json(const float *v, int rows, int cols);

/* "[64]" or "[-1,64]" (with_batch) into buf, for messages. */
void tensor_shape_str(const int64_t *dims, int ndims, int with_batch, char *buf, size_t len);

#endif
