/*
 * sleepapi: the calls that put a replica's backend to sleep and wake it,
 * in the protocol its upstream's sleep_api names:
 *   vllm    sleep level N:  POST /sleep?level=N
 *           wake level 1:   POST /wake_up
 *           wake level 2:   POST /wake_up, POST /collective_rpc {"method":"reload_weights"},
 *                           POST /reset_prefix_cache   (vLLM's own order after a level-2 sleep)
 *   triton  sleep level 2:  POST /v2/repository/models/MODEL/unload
 *           wake level 2:   POST /v2/repository/models/MODEL/load
 * Each call must answer 2xx; the first that does not ends the sequence
 * with its status and body in why.
 *
 * Ownership: the caller owns the call until its callback (after which it is
 * freed) or sleepapi_cancel(); the call owns its connection.
 */
#ifndef WG_SLEEPAPI_H
#define WG_SLEEPAPI_H

#include <stdint.h>

struct event_base;
struct conf_upstream;
struct sleepapi_call;

enum sleepapi_op { SLEEPAPI_SLEEP, SLEEPAPI_WAKE };

/* ok 1: every call answered 2xx; 0: why says which did not. The call is freed after this returns. */
typedef void (*sleepapi_cb)(int ok, const char *why, void *arg);

/* Starts op for level (1 or 2) on the backend at url; NULL when it cannot start (no memory, bad url). */
struct sleepapi_call *sleepapi_start(struct event_base *base, const struct conf_upstream *cf, const char *url,
				     enum sleepapi_op op, int level, int64_t timeout_ms, sleepapi_cb cb, void *arg);
/* Stops a call in flight; its callback never runs. */
void sleepapi_cancel(struct sleepapi_call *c);

#endif
