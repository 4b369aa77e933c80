/*
 * sleep: vLLM's sleep API in wakegate-worker, with the shapes vLLM serves
 * (VLLM_SERVER_DEV_MODE), so that one gateway conf drives either:
 *
 *   POST /sleep?level=1|2      200, no body, once asleep (level 1 by default)
 *   POST /wake_up[?tags=...]   200, no body, once awake (tags accepted, all woken)
 *   GET  /is_sleeping          {"is_sleeping": bool}
 *   POST /collective_rpc       {"method":"reload_weights"} -> {"results":[null]}
 *   POST /reset_prefix_cache   200, no body (this model has no cache)
 *
 * The loop keeps the state below; the model itself is only touched on the
 * inference thread, through batch_control(), between batches. One control
 * runs at a time: another one meanwhile gets 409. Errors are {"error": ...}.
 *
 * Inference is refused (503, the reason in "error") from the moment a sleep
 * is asked for until a wake is: the jobs queued before the sleep are run
 * and answered first. During a wake, inference is queued and answered once
 * the model is back (or with 503 if the wake fails). Readiness is 503 while
 * asleep, falling asleep or waking; liveness stays 200.
 *
 * The loop thread only.
 */
#ifndef WG_SLEEP_H
#define WG_SLEEP_H

#include <stddef.h>

#include "gpu-worker/api.h"
#include "gpu-worker/batch.h"

struct worker;
struct evhttp_request;

/* The model's state as the loop sees it. */
enum sleep_state {
	SLEEP_AWAKE,		/* serving */
	SLEEP_FALLING,		/* a sleep was asked for: queued jobs run, new ones refused */
	SLEEP_ASLEEP,		/* at w->sleep_level; inference refused */
	SLEEP_WAKING,		/* a wake runs; inference queues behind it */
	SLEEP_RELOADING		/* reload_weights runs; inference queues behind it */
};

/* Answers one of the five endpoints above (r says which). */
void sleep_request(struct worker *w, struct evhttp_request *req, enum api_route r);

/*
 * Starts a control for another endpoint (repo.c's load and unload): 503
 * while shutting down, 409 while another control runs, else op runs and
 * req is answered when it is done: 200 with no body, or {"error": ...}.
 * For R_REPO_LOAD a wake is followed by a reload_weights (Triton's load
 * reads the model again), answered once both are done.
 */
void sleep_control(struct worker *w, struct evhttp_request *req, enum api_route r, enum batch_ctl op);

/*
 * 1 when inference (readiness 0) or the readiness check (readiness 1) must
 * answer 503 now, with why ("asleep (level 1): ...") in why.
 */
int sleep_refuses(const struct worker *w, int readiness, char *why, size_t whylen);

/* The process's resident set size from /proc/self/statm, in bytes (0 if unreadable). */
size_t sleep_rss_bytes(void);

#endif
