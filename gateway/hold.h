/*
 * hold: the bounded queue of requests that wait for a replica (highest
 * priority first, FIFO within one; see hold_pop for starvation), one per
 * upstream. The queue does not own the requests: it links them, arms each
 * one's timeout, and parks its client (park.h). Timeout and client loss are
 * reported through callbacks; the callee decides the answer.
 */
#ifndef WG_HOLD_H
#define WG_HOLD_H

#include <stdint.h>
#include "gateway/request.h"

struct event_base;

/* Both are called with r already unlinked from the queue. timeout: r waited
 * too long and must be answered. gone: the client left; r->req is NULL (its
 * connection and request are freed) and r only needs its own cleanup. */
typedef void (*hold_cb)(struct wg_request *r, void *arg);

struct hold {
	struct wg_request_list q;
	int n;
	struct event_base *base;
	hold_cb on_timeout;
	hold_cb on_gone;
	void *arg;
};

void hold_init(struct hold *h, struct event_base *base, hold_cb on_timeout, hold_cb on_gone, void *arg);
/* 0 when queued; -1 when the queue already holds max (overflow: not queued). */
int hold_push(struct hold *h, struct wg_request *r, int max, int64_t timeout_ms);
/* The oldest request of the highest priority, or a lower one that waited half its timeout; unlinked (its timer and close watch removed), or NULL. */
struct wg_request *hold_pop(struct hold *h);
/* Unlinks r wherever it stands in the queue. */
void hold_remove(struct hold *h, struct wg_request *r);

#endif
