/*
 * worker: the state wakegate-worker's parts share. main.c owns it and
 * everything it points to; api.c answers HTTP requests with it.
 */
#ifndef WG_WORKER_H
#define WG_WORKER_H

#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct model;
struct batch;
struct stats;
struct evhttp_request;

#define WORKER_MAX_NDIM 8

struct worker {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *listener;	/* NULL once draining */
	struct model *model;
	struct batch *batch;
	struct stats *stats;

	const char *name;		/* the model name in /v2/models/NAME */
	const char *version;		/* --model-version: KServe's versions and model_version */
	const char *device_kind;	/* "cpu" or "cuda" */
	int64_t in_shape[WORKER_MAX_NDIM];	/* per sample, without the batch */
	int in_ndim, in_dim, out_dim;
	int max_batch, queue_max;
	long delay_ms;
	int warmup;
	size_t max_body;		/* bytes of request body */
	double load_s, warmup_s;

	/* sleep.c: the sleep state; see sleep.h */
	int sleep_state;		/* enum sleep_state */
	int sleep_level;		/* the level asleep at (or falling to); 0 awake */
	int ctl_op;			/* enum batch_ctl running, 0 when none */
	int ctl_from;			/* the sleep level when it started */
	struct evhttp_request *ctl_req;	/* waiting for that control; NULL once answered or gone */
	int ctl_route;			/* enum api_route of ctl_req */
	int unloaded;			/* asleep through repo.c's unload (the messages say "load") */

	size_t leak_per_request;	/* --leak-per-request (tests only) */
	void *leaked;			/* the leaked blocks, chained; never freed */
	size_t leaked_bytes;

	int draining;			/* SIGTERM/SIGINT seen */
	int drained;			/* the batcher has answered everything queued */
	int unflushed;			/* replies handed to evhttp, not yet written */
	int fatal;			/* worker_fatal() was called: exiting WORKER_EXIT_DEAD */
	int exit_code;
};

/* main.c: ends the loop once draining is done and every reply is written. */
void worker_check_done(struct worker *w);
/*
 * main.c: the model is dead (a sticky CUDA error, see model_dead()): stop
 * accepting, answer what is queued (with errors), then exit WORKER_EXIT_DEAD
 * so that whoever started the worker starts a fresh process. Once only.
 */
void worker_fatal(struct worker *w, const char *why);
#define WORKER_EXIT_DEAD 3

#endif
