/*
 * api: the HTTP endpoints (/predict, KServe v2, /metrics). One evhttp
 * generic callback routes every request; inference requests become batch
 * jobs and are answered from the loop when their batch comes back.
 */
#ifndef WG_API_H
#define WG_API_H

struct evhttp_request;

/* The evhttp generic callback; arg is the struct worker. */
void api_request(struct evhttp_request *req, void *arg);

/* The batcher's per-batch callback (arg: the worker): feeds the metrics. */
void api_on_batch(int samples, double seconds, void *arg);

#endif
