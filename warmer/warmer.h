/*
 * warmer: warmup inference against a booted worker, on the caller's libevent
 * loop (libcurl multi driven by the loop's events and timers). The gateway
 * runs one per replica between health-ok and READY; wakegate-warmer runs one
 * by hand.
 */
#ifndef WG_WARMER_H
#define WG_WARMER_H

#include <stddef.h>

struct event_base;

struct warmer_opts {
	const char *base_url;	/* "http://127.0.0.1:9001" */
	const char *model;	/* KServe v2 model name, for the default request */
	const char *path;	/* NULL: POST /v2/models/MODEL/infer */
	const char *body;	/* NULL: zeros shaped from GET /v2/models/MODEL */
	size_t body_len;
	int count;		/* requests to send, at least 1 */
	int until_stable;	/* keep going (up to 10 * count) until the last 3 latencies agree within 20% */
	long timeout_ms;	/* the whole warmup */
	/* https:// base_url (both zero: libcurl's defaults, the system's CAs, peer verified) */
	const char *tls_ca;	/* PEM CA file the replica's certificate must chain to; NULL: system's */
	int tls_insecure;	/* 1: do not verify the replica's certificate or name */
};

struct warmer_result {
	int sent;
	int ok;
	double first_ms;	/* latency of the first request */
	double last_ms;		/* latency of the last request */
	double total_ms;	/* wall time of the whole warmup */
};

struct warmer;

/*
 * Called once, on the loop, when the warmup ends. ok=1 when every request got
 * a 2xx; else ok=0 and reason says what failed ("POST /v2/...: HTTP 500").
 * The warmer is freed after the callback returns; do not cancel it there.
 */
typedef void (*warmer_done_cb)(int ok, const char *reason,
			       const struct warmer_result *res, void *arg);

/* Starts a warmup; returns its handle, or NULL (then cb is never called). */
struct warmer *warmer_start(struct event_base *base, const struct warmer_opts *o,
			    warmer_done_cb cb, void *arg);
/* Stops a running warmup and frees it; cb is not called. */
void warmer_cancel(struct warmer *w);

#endif
