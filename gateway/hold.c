/*
 * hold: FIFO of waiting requests with a timer each; the client is parked
 * (park.c watches it) while it waits, so a client that leaves is freed then
 * and the callee only sees r->req == NULL.
 */
#include "config.h"
#include "common/evtricks.h"
#include "gateway/hold.h"
#include "gateway/park.h"

#include <event2/event.h>
#include <stdlib.h>

/* Takes r out of the queue with its timer and its park. */
static void hold_unlink(struct hold *h, struct wg_request *r)
{
	if (!r->in_hold)
		return;
	TAILQ_REMOVE(&h->q, r, hold_link);
	h->n--;
	r->in_hold = 0;
	r->hold = NULL;
	if (r->hold_timer) {
		event_free(r->hold_timer);
		r->hold_timer = NULL;
	}
	client_unpark(r);
}

/* The client left while held (park.c freed its connection). */
static void hold_gone(struct wg_request *r, void *arg)
{
	struct hold *h = arg;
	hold_unlink(h, r);
	h->on_gone(r, h->arg);
}

/* The request's hold timeout: the upstream answers it. */
static void hold_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wg_request *r = arg;
	struct hold *h = r->hold;
	hold_unlink(h, r);
	h->on_timeout(r, h->arg);
}

void hold_init(struct hold *h, struct event_base *base, hold_cb on_timeout, hold_cb on_gone, void *arg)
{
	TAILQ_INIT(&h->q);
	h->n = 0;
	h->base = base;
	h->on_timeout = on_timeout;
	h->on_gone = on_gone;
	h->arg = arg;
}

int hold_push(struct hold *h, struct wg_request *r, int max, int64_t timeout_ms)
{
	if (h->n >= max)
		return -1;
	r->hold_timer = evtimer_new(h->base, hold_timeout_cb, r);
	if (!r->hold_timer)
		return -1;
	if (timeout_ms < 0)
		timeout_ms = 0;
	struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000 };
	evtimer_add(r->hold_timer, &tv);
	TAILQ_INSERT_TAIL(&h->q, r, hold_link);
	h->n++;
	r->in_hold = 1;
	r->hold = h;
	if (client_park(h->base, r, hold_gone, h) != 0) {
		hold_unlink(h, r);
		return -1;
	}
	return 0;
}

struct wg_request *hold_pop(struct hold *h)
{
	struct wg_request *r = TAILQ_FIRST(&h->q);
	if (r)
		hold_unlink(h, r);
	return r;
}

void hold_remove(struct hold *h, struct wg_request *r)
{
	hold_unlink(h, r);
}
