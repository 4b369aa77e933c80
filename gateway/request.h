/*
 * request: what the gateway keeps about one client request from routing to
 * its last byte (held, then proxied). upstream.c owns it: made in
 * upstream_handle(), freed after the access log line is written. req is the
 * libevent request; it is NULL once the client left while the request was
 * held (libevent owns or freed it then).
 */
#ifndef WG_REQUEST_H
#define WG_REQUEST_H

#include <stdint.h>
#include <sys/queue.h>

struct evhttp_request;
struct upstream;
struct replica;
struct event;
struct hold;
struct ratelimit_slots;

struct wg_request {
	struct evhttp_request *req;
	struct upstream *up;
	struct replica *rep;		/* while proxied */
	int64_t connect_timeout_ms;
	int64_t read_timeout_ms;
	char id[64];
	char remote[64];
	char line[512];			/* "POST /predict HTTP/1.1" */
	char time_local[40];		/* nginx's $time_local at arrival */
	double t_arrive;		/* gw_now() */
	double hold_ms;
	int held;			/* it waited in the hold queue */
	int cold;			/* it waited for a cold start */
	char cold_value[32];		/* X-Wakegate-Cold value */
	/* hold queue */
	TAILQ_ENTRY(wg_request) hold_link;
	struct event *hold_timer;
	struct hold *hold;		/* the queue it stands in */
	struct event *gone_watch;	/* EV_CLOSED on the client's socket while held */
	int in_hold;
	struct ratelimit_slots *slots;	/* limit_conn slots (ratelimit.c), released in req_free() */
	int resent;			/* its forward failed unsent once and it was sent again (upstream.c) */
	int hold_observed;		/* its hold time is in wakegate_hold_seconds already (a resent one may wait twice) */
};

TAILQ_HEAD(wg_request_list, wg_request);

#endif
