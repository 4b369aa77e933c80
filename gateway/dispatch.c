/*
 * dispatch: the upstream phase. A routed request is proxied now to the
 * least busy READY replica with a free slot, or held and a replica woken;
 * held requests drain into replicas as they become READY (oldest first,
 * within max_conns) and get a clear 503 when none can come. It learns of
 * replica moves by subscribing (replica.h): READY drains the queue, FAILED
 * answers it unless a restart or another replica can take it.
 *
 * Ownership: from the upstream phase on, dispatch owns the wg_request and
 * frees it (request_free) after its access log line.
 */
#include "config.h"
#include "common/http.h"
#include "gateway/dispatch.h"
#include "gateway/accesslog.h"
#include "gateway/conf.h"
#include "gateway/cost.h"
#include "gateway/gw.h"
#include "gateway/keepalive.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/phase.h"
#include "gateway/proxy.h"
#include "gateway/proxy_hdr.h"
#include "gateway/store.h"
#include "gateway/upstream.h"

#include <event2/http.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISPATCH_PAUSE_S 0.1		/* a replica's pause after a broken forward: see req_done */
#define DISPATCH_REFUSED_PAUSE_S 1.0	/* ...after a refused connect: see req_resend */

/* Held and active gauges: after a change to the hold queue, and every tick. */
void dispatch_gauges(struct upstream *u)
{
	const char *l = upstream_label(u, 0);
	int inflight = 0;
	for (int i = 0; i < u->nrep; i++)
		inflight += u->rep[i].in_flight;
	metrics_set(gw.metrics, "wakegate_held_requests", l, u->hold.n);
	metrics_set(gw.metrics, "wakegate_active_requests", l, inflight + u->hold.n);
}

/* Counts a finished request and writes its access log line. */
static void req_account(struct wg_request *r, int status, uint64_t bytes, double upstream_ms)
{
	struct upstream *u = r->up;
	metrics_add(gw.metrics, "wakegate_requests_total", upstream_label(u, status), 1);
	degrade_sig_request_end(&u->sig, (int64_t)(gw_now() * 1000),
				(int64_t)(r->rep ? upstream_ms : (gw_now() - r->t_arrive) * 1000), status >= 500);
	accesslog_write(r, u->name, r->rep ? r->rep->url : NULL, status, bytes, upstream_ms);
	u->requests++;
}

/* Answers a request the gateway could not forward, and frees it. */
static void req_reject(struct wg_request *r, int code, const char *reason, int retry_after)
{
	if (r->held)
		r->hold_ms = (gw_now() - r->t_arrive) * 1000;
	if (r->req)
		proxy_send_error(r->req, code, reason, retry_after);
	req_account(r, r->req ? code : 499, 0, 0);
	r->req = NULL;
	request_free(r);
}

/* Once a request: a resent one held again is counted by its first wait. */
static void hold_observe(struct wg_request *r)
{
	if (r->hold_observed)
		return;
	r->hold_observed = 1;
	metrics_observe(gw.metrics, "wakegate_hold_seconds", upstream_label(r->up, 0), r->hold_ms / 1000);
	cost_hold(r->up, r->hold_ms / 1000);
}

/* A held request waited hold timeout: 503 with the expected boot time. */
static void on_hold_timeout(struct wg_request *r, void *arg)
{
	struct upstream *u = arg;
	char msg[300];
	snprintf(msg, sizeof(msg), "upstream \"%s\": no replica ready after %.1fs in the hold queue%s",
		 u->name, gw_now() - r->t_arrive, u->gpu_wait_since > 0 ? " (waiting for GPU memory)" : "");
	log_warn("%s", msg);
	r->hold_ms = (gw_now() - r->t_arrive) * 1000;
	hold_observe(r);
	req_reject(r, 503, msg, upstream_eta_s(u));
	dispatch_gauges(u);
}

/* A held client left: logged as 499, nothing is sent. */
static void on_hold_gone(struct wg_request *r, void *arg)
{
	struct upstream *u = arg;
	log_info("upstream \"%s\": a held client left after %.2fs", u->name, gw_now() - r->t_arrive);
	r->hold_ms = (gw_now() - r->t_arrive) * 1000;
	hold_observe(r);
	req_reject(r, 499, NULL, 0);
	dispatch_gauges(u);
}

void dispatch_hold_init(struct upstream *u)
{
	hold_init(&u->hold, gw.base, on_hold_timeout, on_hold_gone, u);
}

void dispatch_fail_held(struct upstream *u, int code, const char *reason, int retry_after)
{
	struct wg_request *r;
	while ((r = hold_pop(&u->hold)) != NULL) {
		r->hold_ms = (gw_now() - r->t_arrive) * 1000;
		hold_observe(r);
		req_reject(r, code, reason, retry_after);
	}
	dispatch_gauges(u);
}

/* Stream bytes count as activity, so a long stream keeps its replica up. */
static void req_progress(void *arg)
{
	struct wg_request *r = arg;
	r->up->last_activity = gw_now();
	r->up->last_activity_ms = gw_wall_ms();
	store_activity(gw.store, r->up->name, r->up->last_activity_ms);
}

static void req_forward(struct replica *rep, struct wg_request *r);
static struct replica *free_slot(struct upstream *u);

/* Puts r in u's hold queue; 0, or -1 when the queue is full and r was answered 503. */
static int req_hold(struct upstream *u, struct wg_request *r)
{
	r->held = 1;
	if (hold_push(&u->hold, r, u->p.hold_max, u->p.hold_timeout_ms) == 0)
		return 0;
	char msg[300];
	snprintf(msg, sizeof(msg), "upstream \"%s\": hold queue full (%d waiting)", u->name, u->hold.n);
	log_warn("%s", msg);
	req_reject(r, 503, msg, upstream_eta_s(u));
	return -1;
}

/*
 * rep's connection failed before a byte of r was sent (a worker that just
 * died refuses it; its exit may not be seen yet): as nginx's
 * proxy_next_upstream error, r goes once more, to another READY replica now
 * or held until one is. rep gets nothing for a while: a process that
 * refuses connections is on its way out (or in trouble), and its exit, once
 * seen, restarts it; a resent request refused again gets the 502.
 */
static void req_resend(struct wg_request *r, struct replica *rep)
{
	struct upstream *u = r->up;
	log_notice("upstream \"%s\": replica %d refused request %s before it was sent; sending it again",
		   u->name, rep->id, r->id);
	rep->pause_until = gw_now() + DISPATCH_REFUSED_PAUSE_S;
	r->resent = 1;
	r->rep = NULL;
	struct replica *next = u->hold.n ? NULL : free_slot(u);
	if (next) {
		req_forward(next, r);
		return;
	}
	if (req_hold(u, r) == 0)
		dispatch_wake(u, CAUSE_REQUEST);
}

/* The proxy finished a request: free its slot, record activity, drain the queue. */
static void req_done(const struct proxy_result *res, void *arg)
{
	struct wg_request *r = arg;
	struct upstream *u = r->up;
	struct replica *rep = r->rep;
	rep->in_flight--;
	if (res->unsent && r->req) {
		req_resend(r, rep);
		dispatch_drain(u);
		dispatch_gauges(u);
		return;
	}
	double now = gw_now();
	u->last_activity = now;
	u->last_activity_ms = gw_wall_ms();
	store_activity(gw.store, u->name, u->last_activity_ms);
	metrics_observe(gw.metrics, "wakegate_upstream_seconds", upstream_label(u, 0), res->upstream_ms / 1000);
	int status = res->client_gone && !res->status ? 499 : res->status;
	req_account(r, status, res->bytes_out, res->upstream_ms);
	r->req = NULL;
	request_free(r);
	/*
	 * A broken forward (the gateway's own 502/504, no body byte relayed) may mean the
	 * worker just died and its exit is not seen yet (SIGCHLD, or the last process of its
	 * group still going): send it nothing for a moment, so that held requests wait for
	 * the exit and a new replica rather than get 502s. The tick dispatches after.
	 */
	if (res->status >= 502 && res->status <= 504 && res->bytes_out == 0)
		rep->pause_until = now + DISPATCH_PAUSE_S;
	dispatch_drain(u);
	keepalive_on_done(u);
}

/* Sends r to rep, which is READY with a free slot. */
static void req_forward(struct replica *rep, struct wg_request *r)
{
	r->rep = rep;
	rep->in_flight++;
	rep->served++;
	/* which upstream, version and replica answered (issue 16); a resent request names the last one */
	if (r->req) {
		char who[200];
		struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
		snprintf(who, sizeof(who), "%s; version=%s; replica=%d", rep->up->name,
			 rep->vgen ? rep->ver.label : "-", rep->id);
		evhttp_remove_header(h, "X-Wakegate-Upstream");
		evhttp_add_header(h, "X-Wakegate-Upstream", who);
	}
	struct proxy_opts o = {
		.connect_timeout_ms = r->connect_timeout_ms,
		.read_timeout_ms = r->read_timeout_ms,
		.request_id = r->id,
		.unsent_back = !r->resent && !gw.stopping,
	};
	if (r->held) {
		r->hold_ms = (gw_now() - r->t_arrive) * 1000;
		hold_observe(r);
	}
	if (r->cold) {
		snprintf(r->cold_value, sizeof(r->cold_value), "%.2fs", r->hold_ms / 1000);
		o.extra_header_name = "X-Wakegate-Cold";
		o.extra_header_value = r->cold_value;
	}
	proxy_forward(rep->pool, r->req, &o, req_done, req_progress, r);
}

/* The least busy READY replica under max_conns, or NULL. */
static struct replica *free_slot(struct upstream *u)
{
	struct replica *best = NULL;
	double now = 0;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (rep->state != REPLICA_READY || !rep->pool || rep->in_flight >= u->p.max_conns)
			continue;
		if (rep->pause_until > 0 && rep->pause_until > (now > 0 ? now : (now = gw_now())))
			continue;
		if (!best || rep->in_flight < best->in_flight)
			best = rep;
	}
	return best;
}

void dispatch_drain(struct upstream *u)
{
	static int depth;
	if (depth)
		return;		/* a done callback inside a forward: the outer loop goes on */
	depth++;
	struct replica *rep;
	int moved = 0;
	while (u->hold.n && (rep = free_slot(u)) != NULL) {
		struct wg_request *r = hold_pop(&u->hold);
		req_forward(rep, r);
		moved++;
	}
	depth--;
	if (moved)
		dispatch_gauges(u);
}

void dispatch_wake(struct upstream *u, enum replica_cause cause)
{
	if (upstream_count(u, RS_UP))
		return;
	struct replica *rep = upstream_pick_wake(u, gw_now());	/* a sleeping one first: cheaper */
	if (rep)
		replica_wake(rep, cause);
}

/* Every tick: held requests wake a replica when none is up, or a failed one whose backoff ended. */
void dispatch_tick(struct upstream *u, double now)
{
	if (!u->hold.n || gw.stopping || !u->cf)
		return;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (rep->launch || rep->remote)
			continue;
		if (rep->state == REPLICA_FAILED && now >= rep->retry_at)
			replica_wake(rep, CAUSE_REQUEST);
	}
	dispatch_wake(u, CAUSE_REQUEST);
	dispatch_drain(u);	/* after a pause_until */
}

/* The held requests have waited for a cold start (their X-Wakegate-Cold). */
static void mark_cold(struct upstream *u)
{
	struct wg_request *r;
	TAILQ_FOREACH(r, &u->hold.q, hold_link)
		r->cold = 1;
}

/* Replica moves: READY drains the queue; FAILED answers it when nothing else can. */
static void dispatch_on_move(struct replica *rep, const struct replica_change *ch, void *arg)
{
	(void)arg;
	struct upstream *u = rep->up;
	if (ch->event != REPLICA_EV_MOVE)
		return;
	if (ch->to == REPLICA_READY) {
		if (RS(ch->from) & RS_COMING)
			mark_cold(u);
		dispatch_drain(u);
		return;
	}
	if (ch->to != REPLICA_FAILED || rep->crashed_ready || !u->hold.n)
		return;
	if (upstream_count(u, RS_UP))
		return;		/* another replica will take them */
	char msg[400];
	snprintf(msg, sizeof(msg), "upstream \"%s\": %s", u->name, rep->reason);
	dispatch_fail_held(u, 503, msg, (int)ceil(rep->retry_at - gw_now()));
}

/* snprintf(dst, len, "%s", src) without printf: this runs for every request. */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* What the access log needs, copied now: the request may be gone when it is written. */
static void req_fill(struct wg_request *r, struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (c)
		evhttp_connection_get_peer(c, &addr, &port);
	copy_str(r->remote, sizeof(r->remote), addr ? addr : "-");
	if (accesslog_enabled()) {	/* only the access log reads these: not on the hot path otherwise */
		snprintf(r->line, sizeof(r->line), "%s %.400s HTTP/1.1",
			 http_method_name(evhttp_request_get_command(req)), evhttp_request_get_uri(req));
		accesslog_time(r->time_local, sizeof(r->time_local));
	}
	const char *id = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-Id");
	if (id && *id && strlen(id) < sizeof(r->id)) {
		copy_str(r->id, sizeof(r->id), id);
	} else {
		/* 16 hex digits, as "%08lx%08lx" of two random(), without printf on every request */
		static const char hex[] = "0123456789abcdef";
		unsigned long a = (unsigned long)random(), b = (unsigned long)random();
		for (int i = 7; i >= 0; i--, a >>= 4, b >>= 4) {
			r->id[i] = hex[a & 15];
			r->id[8 + i] = hex[b & 15];
		}
		r->id[16] = '\0';
	}
}

/* The upstream phase: proxy now, or hold and wake. Always takes r (PHASE_AGAIN). */
static enum phase_rc dispatch_phase(struct wg_request *r)
{
	struct upstream *u = r->up;
	struct evhttp_request *req = r->req;
	r->t_arrive = gw_now();
	r->connect_timeout_ms = r->loc->proxy_connect_timeout_ms;
	r->read_timeout_ms = r->loc->proxy_read_timeout_ms;
	req_fill(r, req);
	keepalive_on_request(u);
	if (gw.stopping) {
		req_reject(r, 503, "wakegate is shutting down", 0);
		return PHASE_AGAIN;
	}
	struct replica *rep = u->hold.n ? NULL : free_slot(u);
	if (rep) {
		req_forward(rep, r);
		return PHASE_AGAIN;
	}
	/* a replica that just failed to boot: say why now rather than hold for nothing */
	double now = gw_now();
	int coming = 0;
	struct replica *failed = NULL;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *x = &u->rep[i];
		if (x->state != REPLICA_FAILED || x->crashed_ready || now >= x->retry_at)
			coming = 1;
		else
			failed = x;
	}
	if (!coming && failed) {
		char msg[400];
		snprintf(msg, sizeof(msg), "upstream \"%s\": %s", u->name, failed->reason);
		req_reject(r, 503, msg, (int)ceil(failed->retry_at - now));
		return PHASE_AGAIN;
	}
	if (req_hold(u, r) < 0) {
		/* with "hold 0" nothing is ever held: still wake, so that a retry finds it warm */
		dispatch_wake(u, CAUSE_REQUEST);
		return PHASE_AGAIN;
	}
	dispatch_gauges(u);
	dispatch_wake(u, CAUSE_REQUEST);
	dispatch_drain(u);
	return PHASE_AGAIN;
}

void dispatch_init(void)
{
	replica_subscribe(dispatch_on_move, NULL);
	phase_register(PHASE_UPSTREAM, dispatch_phase);
}
