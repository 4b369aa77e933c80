/*
 * api: the HTTP endpoints (/predict, KServe v2, /metrics). One evhttp
 * generic callback routes every request; inference requests become batch
 * jobs and are answered from the loop when their batch comes back.
 */
#ifndef WG_API_H
#define WG_API_H

#include <jansson.h>

struct evhttp_request;
struct worker;

/* What a request asked for; the label in wakegate_worker_requests_total. */
enum api_route {
	R_PREDICT, R_INFER, R_SERVER_META, R_MODEL_META, R_MODEL_READY,
	R_LIVE, R_READY, R_METRICS,
	R_SLEEP, R_WAKE_UP, R_IS_SLEEPING, R_COLLECTIVE_RPC, R_RESET_PREFIX_CACHE,
	R_REPO_INDEX, R_REPO_LOAD, R_REPO_UNLOAD,
	R_NONE
};

/* The evhttp generic callback; arg is the struct worker. */
void api_request(struct evhttp_request *req, void *arg);

/* The batcher's per-batch callback (arg: the worker): feeds the metrics. */
void api_on_batch(int samples, double seconds, void *arg);

/*
 * Replies, for the endpoints in other files (sleep.c). Every reply goes
 * through these, so that it is counted and a shutdown waits until it is
 * written. api_reply_json takes the reference to body; api_reply_empty
 * sends no body and no Content-Type, as vLLM's control endpoints do.
 */
void api_reply_json(struct worker *w, struct evhttp_request *req, enum api_route r, int code, json_t *body);
void api_reply_error(struct worker *w, struct evhttp_request *req, enum api_route r, int code,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void api_reply_empty(struct worker *w, struct evhttp_request *req, enum api_route r, int code);

#endif
