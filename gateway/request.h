/*
 * request: what the gateway keeps about one client request from its arrival
 * to its last byte. phase.c makes it when evhttp hands the request over and
 * runs it through the phases (phase.h); the phase that answers or forwards
 * it owns it from then on, and request_free() is the one place it is freed,
 * after the access log line is written. req is the libevent request; it is
 * NULL once the client left while the request was parked (libevent owns or
 * freed it then).
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
struct conf_server;
struct conf_location;
struct ratelimit_slots;
struct conf_header;
struct wg_request;

/* A parked client left; r->req is NULL already (see park.h). */
typedef void (*park_gone_fn)(struct wg_request *r, void *arg);

struct wg_request {
	struct evhttp_request *req;
	/* the phases (phase.c) */
	void *listener;			/* server.c's listener it came in on */
	const struct conf_server *srv;	/* valid while conf_gen is the conf's */
	const struct conf_location *loc;
	unsigned conf_gen;		/* phase_conf_gen() when routed */
	int phase;			/* the phase it is in (enum phase_id) */
	struct upstream *up;		/* chosen by the route phase, maybe changed by degrade */
	struct ratelimit_slots *slots;	/* limit_conn slots, released in request_free() */
	/* parked (park.c): the watch on the client's socket while it waits */
	struct event *park_watch;
	park_gone_fn park_gone;
	void *park_arg;
	int parked;
	/* the upstream phase (dispatch.c) */
	struct replica *rep;		/* while proxied */
	char *fwd_uri;			/* proxy_pass URI: the target to send (malloc'd); NULL: the client's */
	struct conf_header *fwd_headers;	/* a copy of the location's proxy_set_header lines (owned) */
	int progress_ok;		/* the location's hold_progress (read after a reload may free it) */
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
	int in_hold;
	int resent;			/* its forward failed unsent once and it was sent again */
	int hold_observed;		/* its hold time is in wakegate_hold_seconds already */
	/* issue 17: the client (auth.c sets tenant and priority; dispatch.c the rest) */
	char tenant[64];		/* $tenant: the API key's tenant; "" without a key */
	int priority;			/* rank in the hold queue: higher goes first */
	double deadline;		/* gw_now() by which it must be answered; 0: none */
	double inflight_since;		/* gw_now() when forwarded (tenant.c's GPU-seconds share) */
	const char *auth_header;	/* auth.c: the header of a known key, taken off at forward (static string); NULL: none */
	double hold_promote_at;
	int sse_started;		/* progress.c sent an event stream's headers: the rest follows on it */
	struct event *progress_timer;	/* progress.c: a comment a second while held; NULL: none */		/* hold.c: goes before higher priorities from then (half its hold timeout) */
};

TAILQ_HEAD(wg_request_list, wg_request);

/* A new request for req, or NULL when out of memory. */
struct wg_request *request_new(struct evhttp_request *req, void *listener);
/* Frees r: out of the hold queue and unparked first, its limit_conn slots given back. */
void request_free(struct wg_request *r);
/* How request_free() gives limit_conn slots back (ratelimit.c sets it at start). */
void request_set_slots_release(void (*fn)(struct ratelimit_slots *slots));

#endif
