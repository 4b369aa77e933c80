/*
 * hold: FIFO of waiting requests with a timer each and a watch on the
 * client's connection. libevent 2.1 stops reading a connection once its
 * request is handed to us, so it would not notice a client that leaves while
 * held: we watch the socket for EV_CLOSED ourselves and free the connection
 * (and with it the request) when the client is gone. The caller then only
 * sees r->req == NULL. The close callback covers a connection that libevent
 * itself tears down (it detaches the request first: evcon becomes NULL).
 */
#include "config.h"
#include "common/evtricks.h"
#include "gateway/hold.h"
#include "gateway/client_conn.h"
#include "gateway/gw.h"
#include "gateway/log.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Takes r out of the queue with its timer, socket watch and close callback. */
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
	if (r->gone_watch) {
		event_free(r->gone_watch);
		r->gone_watch = NULL;
	}
	if (r->req) {
		struct evhttp_connection *c = evhttp_request_get_connection(r->req);
		if (c)
			client_set_closecb(c, NULL, NULL);
	}
}

/* The client's socket saw EOF or an error while held: it left. */
static void hold_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wg_request *r = arg;
	struct hold *h = r->hold;
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0 && !(what & EV_CLOSED)) {
		/* pipelined bytes, not a close: keep watching */
		event_add(r->gone_watch, NULL);
		return;
	}
	struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
	struct evhttp_request *req = r->req;
	hold_unlink(h, r);
	r->req = NULL;
	if (conn)
		evhttp_connection_free(conn);	/* frees req too */
	else
		evhttp_request_free(req);
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

/* The client closed while held: drop it from the queue, free what libevent left us. */
static void hold_close_cb(struct evhttp_connection *c, void *arg)
{
	struct wg_request *r = arg;
	struct hold *h = r->hold;
	struct evhttp_request *req = r->req;
	r->req = NULL;		/* hold_unlink must not touch the dying connection */
	hold_unlink(h, r);
	/* detached from its connection: nobody else will free it */
	if (req && evhttp_request_get_connection(req) == NULL)
		evhttp_request_free(req);
	h->on_gone(r, h->arg);
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
	struct evhttp_connection *c = evhttp_request_get_connection(r->req);
	if (c) {
		if (client_set_closecb(c, hold_close_cb, r) != 0) {
			hold_unlink(h, r);
			return -1;
		}
		evutil_socket_t fd = evtricks_conn_fd(c);
		if (fd >= 0 && (event_base_get_features(h->base) & EV_FEATURE_EARLY_CLOSE)) {
			r->gone_watch = event_new(h->base, fd, EV_CLOSED, hold_watch_cb, r);
			if (r->gone_watch)
				event_add(r->gone_watch, NULL);
		}
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
