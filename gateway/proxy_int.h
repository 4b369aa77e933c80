/*
 * proxy_int: what proxy.c (the forwards), proxy_pool.c (the keep-alive
 * pool and its sockets) and proxy_1xx.c (1xx heads) share. Private to
 * those files.
 */
#ifndef WG_PROXY_INT_H
#define WG_PROXY_INT_H

#include "gateway/proxy.h"
#include "gateway/proxy_hdr.h"

#include <stdint.h>
#include <time.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/event_struct.h>
#include <event2/http.h>

#define PROXY_IDLE_MIN 32		/* idle keep-alive connections always allowed per replica */
#define PROXY_PEAK_WINDOW_MS 10000	/* ...and as many as were in flight at once lately */
#define PROXY_CLIENT_HIGH (1024 * 1024)	/* client output above this pauses the backend */
#define PROXY_MAX_HEADERS (64 * 1024)	/* a larger response header is a 502 */
#define PROXY_PROGRESS_MS 500		/* at most one progress cb per forward this often */
#define PROXY_EARLY_BODY (64 * 1024)	/* bodies above this may get an answer before they are sent */
#define PROXY_STALL_MS 500		/* how often to look for evhttp's stall (see stall_cb) */

struct proxy_fwd {
	LIST_ENTRY(proxy_fwd) link;	/* pool->active, or pool->deferred once finished */
	struct proxy_pool *pool;
	struct evhttp_request *creq;
	struct evhttp_connection *cconn;
	struct evhttp_request *ureq;
	struct evhttp_connection *uconn;
	struct event uwatch;		/* read interest of our own on the backend socket (uwatch_on) */
	struct evbuffer_cb_entry *ucb;	/* upstream_1xx_cb on the backend's input, while the answer is awaited */
	struct event *ctimer;		/* connect timeout of a new upstream connection */
	struct event *stimer;		/* stall check, with EVHTTP_CON_READ_ON_WRITE_ERROR */
	struct event *defer;		/* delivers done when we finished inside proxy_forward */
	int64_t connect_ms, read_ms;
	char reqid[PROXY_REQID_MAX];
	char *extra_name, *extra_value;
	char *uri;		/* proxy_opts.uri, copied; NULL: the client's */
	char **set_headers;	/* proxy_opts.set_headers, copied; NULL: none */
	proxy_done_cb done;
	proxy_progress_cb progress;
	void *arg;
	struct proxy_result res;
	struct timespec t0;
	double progress_at;		/* ms after t0 of the last progress cb, -1: none yet */
	int uerr;			/* last evhttp_request_error, -1 when none */
	unsigned in_setup:1, finished:1, reused:1, retried:1, connected:1,
		headers_sent:1, paused:1, connect_timed_out:1, stalled:1, deliver_late:1,
		unsent_back:1, maybe_sent:1, cwatch_on:1, uwatch_on:1, in_flush:1, unacked:1,
		client_started:1,	/* proxy_opts.client_started */
		bad_framing:1;		/* the answer's Content-Length headers disagree: 502, no retry */
};

/* An idle keep-alive connection and the timeout it was last given. */
struct pooled {
	struct evhttp_connection *c;
	int64_t timeout_ms;
};

struct proxy_pool {
	struct event_base *base;
	char *host;
	int port;
	char hostport[300];
	struct pooled *idle;		/* stack: the most recently used on top */
	int nidle, cap;
	int nactive;			/* forwards in flight */
	int peak, peak_prev;		/* most in flight in this window and the last one */
	struct timespec peak_t0;	/* start of this window */
	LIST_HEAD(, proxy_fwd) active;
	LIST_HEAD(, proxy_fwd) deferred;
	int freeing;
	struct proxy_transport tr;	/* bev_new NULL: plain TCP */
};

/* An idle keep-alive connection, or a new one (it connects on first use);
 * *timeout_ms: the timeout it has (0: none set yet). NULL on failure. */
struct evhttp_connection *proxy_pool_take(struct proxy_pool *p, int fresh_only, int64_t *timeout_ms);

/* Takes c back after a clean answer, or frees it (see proxy_pool.c): also
 * when the backend left bytes unread on it (reqid names the answer in the log). */
void proxy_pool_put(struct proxy_pool *p, struct evhttp_connection *c, int64_t timeout_ms, const char *reqid);

/* Watches f->uconn's input for 1xx heads before the answer (proxy_1xx.c);
 * f->uconn is set. proxy_1xx_stop ends the watch, before uconn goes back
 * to the pool or is freed; it may be called when none is on. */
void proxy_1xx_watch(struct proxy_fwd *f);
void proxy_1xx_stop(struct proxy_fwd *f);

/* Counts one more forward in flight (started at now) and keeps the recent peak. */
void proxy_pool_count_up(struct proxy_pool *p, const struct timespec *now);


#endif
