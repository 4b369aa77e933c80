/*
 * request: an inference request body (POST /predict or KServe v2 infer)
 * from bytes to checked input floats. No evhttp and no worker state, so
 * the real checks are what fuzz/fuzz_request.c feeds.
 */
#ifndef WG_REQUEST_H
#define WG_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A checked body. The caller owns in and id: request_input_clear() frees them. */
struct request_input {
	int n;			/* samples, 1..max_batch */
	int flat;		/* /predict got one flat sample: answer one flat row */
	float *in;		/* n * product(in_shape) floats, row-major */
	json_t *id;		/* v2 "id" to echo (a new reference), or NULL */
	int out_binary;		/* v2: answer the output as binary data (the binary tensor extension) */
};

/*
 * Checks an inference body (v2 0: POST /predict, 1: POST /v2/models/M/infer)
 * against the model's input: in_shape[0..in_ndim) per sample, at most
 * max_batch samples, at most max_body bytes (body is not read when len is 0
 * or over max_body, so it may then be NULL). Returns 0 and fills *out, or the
 * HTTP status to answer (400, 413, 500) with the message, valid UTF-8, in err;
 * on error *out holds nothing to free.
 *
 * json_len is the Inference-Header-Content-Length header of a v2 request
 * (KServe's binary tensor data extension): the JSON is the body's first
 * json_len bytes and the input's binary data (its "binary_data_size"
 * parameter) follows it. -1 when the header is absent: the whole body is
 * JSON. v2 inputs of FP16, FP64, the INT and UINT types and BOOL are
 * converted to the model's FP32.
 */
int request_parse(const char *body, size_t len, long long json_len, int v2, const int64_t *in_shape,
		  int in_ndim, int max_batch, size_t max_body, struct request_input *out,
		  char *err, size_t errlen);

/* Frees what request_parse() put in *in; safe to call twice. */
void request_input_clear(struct request_input *in);

#endif
