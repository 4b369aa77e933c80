/*
 * fuzz_request: feeds arbitrary bytes to the worker's request-body checks,
 * request_parse() (gpu-worker/request.c, the function api.c calls), as a
 * POST /predict and a POST /v2/models/M/infer body. Each body is tried
 * against three model inputs: [64] (the shipped digits models) and [1,8,8]
 * with --max-batch 32 (the worker's default) and main.c's body limit, and
 * [2,3] with --max-batch 4, a 768-byte limit (so that the 413 path runs) and
 * a short message buffer. What must hold:
 *  - an accepted body gives 1..max_batch samples of the model's size, read
 *    back exactly from the reply JSON the worker would write for them;
 *  - a refused one gives 400, 413 or 500 with a message the worker can
 *    send: non-empty and valid UTF-8 (json_pack refuses anything else),
 *    even when cut short; and leaves nothing to free.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gpu-worker/request.h"
#include "gpu-worker/tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_model {
	int64_t shape[8];
	int ndim, dim, max_batch;
	size_t errlen;		/* api.c's is 512; a short one tests the cut */
	size_t max_body;	/* 0: main.c's */
};

static const struct fz_model fz_models[] = {
	{ { 64 }, 1, 64, 32, 512, 0 },
	{ { 1, 8, 8 }, 3, 64, 32, 512, 0 },
	{ { 2, 3 }, 2, 6, 4, 40, 768 },
};

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

/* One body against one model as one API, the way api.c's do_inference() calls it. */
static void fz_parse(const struct fz_model *m, const char *body, size_t size, long long json_len, int v2)
{
	size_t max_body = m->max_body ? m->max_body : 65536 + (size_t)m->max_batch * (size_t)m->dim * 40;
	struct request_input in;
	char err[512];
	json_t *reply;
	int code;

	memset(err, 0, sizeof(err));
	code = request_parse(size && size <= max_body ? body : NULL, size, json_len, v2, m->shape, m->ndim,
			     m->max_batch, max_body, &in, err, m->errlen);
	if (code == 0) {
		if (in.n < 1 || in.n > m->max_batch || !in.in)
			abort();	/* the batch limit let something through */
		if ((in.flat && (v2 || in.n != 1)) || (in.id && !v2))
			abort();
		fz_reply(in.in, in.n, m->dim, in.flat);
		request_input_clear(&in);
		request_input_clear(&in);
		return;
	}
	if (code != 400 && code != 413 && code != 500)
		abort();
	if ((code == 413) != (size > max_body))
		abort();
	if (in.in || in.id || !err[0] || strlen(err) >= m->errlen)
		abort();	/* a refusal frees what it made and always says why */
	reply = json_pack("{s:s}", "error", err);
	if (!reply)
		abort();	/* api.c's reply_error would send "{}" */
	json_decref(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < sizeof(fz_models) / sizeof(fz_models[0]); i++) {
		const void *nul = size ? memchr(data, 0, size) : NULL;

		fz_parse(&fz_models[i], (const char *)data, size, -1, 0);
		fz_parse(&fz_models[i], (const char *)data, size, -1, 1);
		/* the binary tensor extension: the JSON up to the first NUL, binary data after it */
		if (nul)
			fz_parse(&fz_models[i], (const char *)data, size, (const uint8_t *)nul - data, 1);
	}
	return 0;
}
