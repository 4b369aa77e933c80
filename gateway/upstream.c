/*
 * upstream: the set of upstreams, the way of one request through its
 * upstream (proxy now, or hold and wake), the answers held requests get, and
 * the 100ms tick that drives every replica's life (replica.c).
 */
#include "config.h"
#include "gateway/upstream.h"
#include "gateway/log_escape.h"
#include "gateway/accesslog.h"
#include "gateway/conf.h"
#include "gateway/cost.h"
#include "gateway/keepalive.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/proxy_hdr.h"
#include "gateway/ratelimit.h"
#include "gateway/rules.h"
#include "gateway/scale.h"
#include "gateway/store.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct upstream *all;
static struct event *tick_ev;

#define TICK_MS 100
#define DEFAULT_ETA_S 10
#define UPSTREAM_PAUSE_S 0.1	/* a replica's pause after a broken forward: see req_done */
#define UPSTREAM_REFUSED_PAUSE_S 1.0	/* ...after a refused connect: see req_resend */

static void up_labels(const struct upstream *u, char *buf, size_t len)
{
	char name[256];
	metrics_escape(u->name, name, sizeof(name));
	snprintf(buf, len, "upstream=\"%s\"", name);
}

/*
 * The label set of u's series, with code="status" when status > 0: every
 * request asks for the same one or two, so the last of each is kept (keyed by
 * the name, not the pointer: a reload may free an upstream and reuse its
 * address). Valid until the next call.
 */
static const char *up_label(const struct upstream *u, int status)
{
	static char name[2][200], label[2][300];
	static int code_of[2] = { -1, -1 };
	int i = status > 0;

	if (code_of[i] == status && strcmp(name[i], u->name) == 0)
		return label[i];
	if (status > 0) {
		char esc[256];
		metrics_escape(u->name, esc, sizeof(esc));
		snprintf(label[i], sizeof(label[i]), "upstream=\"%s\",code=\"%d\"", esc, status);
	} else {
		up_labels(u, label[i], sizeof(label[i]));
	}
	if (strlen(u->name) < sizeof(name[i])) {
		snprintf(name[i], sizeof(name[i]), "%s", u->name);
		code_of[i] = status;
	} else {
		code_of[i] = -1;	/* too long to keep: made each time */
	}
	return label[i];
}

/*
 * Held and active gauges: after a change to the hold queue, and every tick
 * (in-flight counts move with every request; /metrics is at most a tick behind).
 */
static void up_gauges(struct upstream *u)
{
	const char *l = up_label(u, 0);
	int inflight = 0;
	for (int i = 0; i < u->nrep; i++)
		inflight += u->rep[i].in_flight;
	metrics_set(gw.metrics, "wakegate_held_requests", l, u->hold.n);
	metrics_set(gw.metrics, "wakegate_active_requests", l, inflight + u->hold.n);
}

int upstream_eta_s(const struct upstream *u)
{
	if (u->boot_s <= 0)
		return DEFAULT_ETA_S;
	int s = (int)ceil(u->boot_s + u->warm_s);
	return s < 1 ? 1 : s;
}

void upstream_metrics_declare(struct metrics *m)
{
	static const double secs[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120 };
	int ns = (int)(sizeof(secs) / sizeof(secs[0]));
	metrics_declare(m, "wakegate_requests_total", METRICS_COUNTER, "Requests answered, by upstream and status code.", NULL, 0);
	metrics_declare(m, "wakegate_held_requests", METRICS_GAUGE, "Requests waiting in the hold queue.", NULL, 0);
	metrics_declare(m, "wakegate_active_requests", METRICS_GAUGE, "Requests in flight plus held.", NULL, 0);
	metrics_declare(m, "wakegate_hold_seconds", METRICS_HISTOGRAM, "Time requests spent in the hold queue.", secs, ns);
	metrics_declare(m, "wakegate_upstream_seconds", METRICS_HISTOGRAM, "Time from forwarding to the last byte.", secs, ns);
	metrics_declare(m, "wakegate_cold_starts_total", METRICS_COUNTER, "Replicas started.", NULL, 0);
	metrics_declare(m, "wakegate_boot_seconds", METRICS_HISTOGRAM, "Launch to health ok.", secs, ns);
	metrics_declare(m, "wakegate_warmup_seconds", METRICS_HISTOGRAM, "Health ok to READY.", secs, ns);
	metrics_declare(m, "wakegate_replica_state", METRICS_GAUGE, "1 for the state each replica is in.", NULL, 0);
	metrics_declare(m, "wakegate_gpu_seconds_total", METRICS_COUNTER, "Seconds replicas have been running.", NULL, 0);
	metrics_declare(m, "wakegate_idle_seconds_total", METRICS_COUNTER, "Seconds replicas were READY with nothing in flight.", NULL, 0);
	cost_metrics_declare(m);
	keepalive_metrics_declare(m);
}

struct upstream *upstream_find(const char *name)
{
	for (struct upstream *u = all; u; u = u->next)
		if (u->cf && strcmp(u->name, name) == 0)
			return u;
	return NULL;
}

struct upstream *upstream_list(void)
{
	return all;
}

/* The one place a wg_request is freed; it must be out of the hold queue. */
static void req_free(struct wg_request *r)
{
	if (r->in_hold && r->hold)
		hold_remove(r->hold, r);
	ratelimit_slots_release(r->slots);
	free(r);
}

/* Counts a finished request and writes its access log line. */
static void req_account(struct wg_request *r, int status, uint64_t bytes, double upstream_ms)
{
	struct upstream *u = r->up;
	metrics_add(gw.metrics, "wakegate_requests_total", up_label(u, status), 1);
	rules_request_end(u->name, status, r->rep ? upstream_ms : (gw_now() - r->t_arrive) * 1000);
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
	req_free(r);
}

/* Once a request: a resent one held again is counted by its first wait. */
static void hold_observe(struct wg_request *r)
{
	if (r->hold_observed)
		return;
	r->hold_observed = 1;
	metrics_observe(gw.metrics, "wakegate_hold_seconds", up_label(r->up, 0), r->hold_ms / 1000);
	cost_hold(r->up, r->hold_ms / 1000);
}

/* A held request waited hold timeout: 503 with the expected boot time. */
static void on_hold_timeout(struct wg_request *r, void *arg)
{
	struct upstream *u = arg;
	char msg[300];
	snprintf(msg, sizeof(msg), "upstream \"%s\": no replica ready after %.1fs in the hold queue",
		 u->name, gw_now() - r->t_arrive);
	log_warn("%s", msg);
	r->hold_ms = (gw_now() - r->t_arrive) * 1000;
	hold_observe(r);
	req_reject(r, 503, msg, upstream_eta_s(u));
	up_gauges(u);
}

/* A held client left: logged as 499, nothing is sent. */
static void on_hold_gone(struct wg_request *r, void *arg)
{
	struct upstream *u = arg;
	log_info("upstream \"%s\": a held client left after %.2fs", u->name, gw_now() - r->t_arrive);
	r->hold_ms = (gw_now() - r->t_arrive) * 1000;
	hold_observe(r);
	req_reject(r, 499, NULL, 0);
	up_gauges(u);
}

void upstream_fail_held(struct upstream *u, int code, const char *reason, int retry_after)
{
	struct wg_request *r;
	while ((r = hold_pop(&u->hold)) != NULL) {
		r->hold_ms = (gw_now() - r->t_arrive) * 1000;
		hold_observe(r);
		req_reject(r, code, reason, retry_after);
	}
	up_gauges(u);
}

void upstream_mark_cold(struct upstream *u, double now)
{
	struct wg_request *r;
	TAILQ_FOREACH(r, &u->hold.q, hold_link)
		r->cold = 1;
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
static struct replica *upstream_free_slot(struct upstream *u);

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
	struct replica *next;

	log_notice("upstream \"%s\": replica %d refused request %s before it was sent; sending it again",
		   u->name, rep->id, r->id);
	rep->pause_until = gw_now() + UPSTREAM_REFUSED_PAUSE_S;
	r->resent = 1;
	r->rep = NULL;
	next = u->hold.n ? NULL : upstream_free_slot(u);
	if (next) {
		req_forward(next, r);
		return;
	}
	if (req_hold(u, r) == 0)
		upstream_wake(u);
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
		upstream_dispatch(u);
		up_gauges(u);
		return;
	}
	double now = gw_now();
	u->last_activity = now;
	u->last_activity_ms = gw_wall_ms();
	store_activity(gw.store, u->name, u->last_activity_ms);
	metrics_observe(gw.metrics, "wakegate_upstream_seconds", up_label(u, 0), res->upstream_ms / 1000);
	int status = res->client_gone && !res->status ? 499 : res->status;
	req_account(r, status, res->bytes_out, res->upstream_ms);
	r->req = NULL;
	req_free(r);
	/*
	 * A broken forward (the gateway's own 502/504, no body byte relayed) may mean the
	 * worker just died and its exit is not seen yet (SIGCHLD, or the last process of its
	 * group still going): send it nothing for a moment, so that held requests wait for
	 * the exit and a new replica rather than get 502s. The tick dispatches after.
	 */
	if (res->status >= 502 && res->status <= 504 && res->bytes_out == 0)
		rep->pause_until = now + UPSTREAM_PAUSE_S;
	upstream_dispatch(u);
	keepalive_on_done(u);
}

/* Sends r to rep, which is READY with a free slot. */
static void req_forward(struct replica *rep, struct wg_request *r)
{
	r->rep = rep;
	rep->in_flight++;
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
static struct replica *upstream_free_slot(struct upstream *u)
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

/* Drains the hold queue into READY replicas, oldest first, within max_conns. */
void upstream_dispatch(struct upstream *u)
{
	static int depth;
	if (depth)
		return;		/* a done callback inside a forward: the outer loop goes on */
	depth++;
	struct replica *rep;
	int moved = 0;
	while (u->hold.n && (rep = upstream_free_slot(u)) != NULL) {
		struct wg_request *r = hold_pop(&u->hold);
		req_forward(rep, r);
		moved++;
	}
	depth--;
	if (moved)
		up_gauges(u);
}

/* Wakes a replica for held requests when none is on its way up. */
void upstream_wake(struct upstream *u)
{
	double now = gw_now();
	for (int i = 0; i < u->nrep; i++) {
		enum replica_state s = u->rep[i].state;
		if (s == REPLICA_BOOTING || s == REPLICA_WARMING || s == REPLICA_READY)
			return;
	}
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (rep->launch)
			continue;	/* still stopping: the tick wakes it after the exit */
		if (rep->state == REPLICA_STOPPED || (rep->state == REPLICA_FAILED && now >= rep->retry_at)) {
			replica_wake(rep);
			return;
		}
	}
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
			 proxy_hdr_method(evhttp_request_get_command(req)), evhttp_request_get_uri(req));
		accesslog_time(r->time_local, sizeof(r->time_local));
	}
	const char *id = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-Id");
	if (log_token_ok(id, sizeof(r->id))) {	/* else replaced: logged, forwarded and returned alike */
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

void upstream_handle(struct upstream *u, struct evhttp_request *req, const struct conf_location *loc,
		     struct ratelimit_slots *slots)
{
	struct wg_request *r = calloc(1, sizeof(*r));
	if (!r) {
		ratelimit_slots_release(slots);
		proxy_send_error(req, 500, "out of memory", 0);
		return;
	}
	r->slots = slots;
	r->req = req;
	r->up = u;
	r->t_arrive = gw_now();
	r->connect_timeout_ms = loc->proxy_connect_timeout_ms;
	r->read_timeout_ms = loc->proxy_read_timeout_ms;
	req_fill(r, req);
	keepalive_on_request(u);
	if (gw.stopping) {
		req_reject(r, 503, "wakegate is shutting down", 0);
		return;
	}
	struct replica *rep = u->hold.n ? NULL : upstream_free_slot(u);
	if (rep) {
		req_forward(rep, r);
		return;
	}
	/* a replica that just failed to boot: say why now rather than hold for nothing */
	double now = gw_now();
	int coming = 0;
	struct replica *failed = NULL;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *x = &u->rep[i];
		if (x->state == REPLICA_BOOTING || x->state == REPLICA_WARMING || x->state == REPLICA_READY ||
		    x->state == REPLICA_DRAINING || x->state == REPLICA_STOPPED ||
		    (x->state == REPLICA_FAILED && (x->crashed_ready || now >= x->retry_at)))
			coming = 1;
		else if (x->state == REPLICA_FAILED)
			failed = x;
	}
	if (!coming && failed) {
		char msg[400];
		snprintf(msg, sizeof(msg), "upstream \"%s\": %s", u->name, failed->reason);
		req_reject(r, 503, msg, (int)ceil(failed->retry_at - now));
		return;
	}
	if (req_hold(u, r) < 0) {
		/* with "hold 0" nothing is ever held: still wake, so that a retry finds it warm */
		upstream_wake(u);
		return;
	}
	up_gauges(u);
	upstream_wake(u);
	upstream_dispatch(u);
}

/* Every 100ms: each replica's timers, and retired upstreams freed once quiet. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	double now = gw_now();
	struct upstream **pp = &all;
	while (*pp) {
		struct upstream *u = *pp;
		int busy = u->hold.n;
		for (int i = 0; i < u->nrep; i++) {
			replica_tick(&u->rep[i], now);
			struct replica *rep = &u->rep[i];
			busy += rep->in_flight + rep->idle_query + (rep->launch != NULL) +
				(rep->state != REPLICA_STOPPED && rep->state != REPLICA_FAILED);
		}
		scale_tick(u, now);
		if (u->hold.n)
			upstream_dispatch(u);	/* after a pause_until */
		up_gauges(u);
		if (!u->cf && !busy && !gw.stopping) {
			/* retired by a reload and now quiet */
			log_notice("upstream \"%s\": removed", u->name);
			*pp = u->next;
			for (int i = 0; i < u->nrep; i++)
				replica_free(&u->rep[i]);
			free(u->name);
			free(u);
			continue;
		}
		pp = &u->next;
	}
}

/* Copies the numbers, so a retired upstream never reads a freed conf. */
static void params_from(struct upstream_params *p, const struct conf_upstream *cf)
{
	p->boot_timeout_ms = cf->boot_timeout_ms > 0 ? cf->boot_timeout_ms : 60000;
	p->idle_timeout_ms = cf->idle_timeout_ms > 0 ? cf->idle_timeout_ms : 300000;
	p->hold_timeout_ms = cf->hold_timeout_ms > 0 ? cf->hold_timeout_ms : 120000;
	p->stop_grace_ms = cf->stop_grace_ms >= 0 ? cf->stop_grace_ms : 10000;
	p->min_warm = cf->min_warm;
	p->hold_max = cf->hold_max >= 0 ? cf->hold_max : 1000;
	p->max_conns = cf->max_conns > 0 ? cf->max_conns : 16;
}

int upstream_configure(const struct conf *c)
{
	if (!tick_ev) {
		tick_ev = event_new(gw.base, -1, EV_PERSIST, tick_cb, NULL);
		struct timeval tv = { 0, TICK_MS * 1000 };
		if (!tick_ev || event_add(tick_ev, &tv) < 0)
			return -1;
	}
	for (struct upstream *u = all; u; u = u->next)
		u->cf = NULL;
	for (const struct conf_upstream *cf = c->upstreams; cf; cf = cf->next) {
		struct upstream *u = NULL;
		for (struct upstream *x = all; x; x = x->next)
			if (strcmp(x->name, cf->name) == 0 && !x->cf)
				u = x;
		if (!u) {
			u = calloc(1, sizeof(*u));
			if (!u)
				return -1;
			u->name = strdup(cf->name);
			u->nrep = 1;
			for (int i = 0; i < UPSTREAM_MAX_REPLICAS; i++) {
				u->rep[i].up = u;
				u->rep[i].id = i;
			}
			hold_init(&u->hold, gw.base, on_hold_timeout, on_hold_gone, u);
			u->next = all;
			all = u;
			for (int i = 0; i < u->nrep; i++)
				store_replica_state(gw.store, u->name, i, "STOPPED", "");
		} else {
			log_info("upstream \"%s\": kept across reload", u->name);
		}
		u->cf = cf;
		params_from(&u->p, cf);
		scale_configure(u);
		up_gauges(u);
	}
	for (struct upstream *u = all; u; u = u->next)
		if (!u->cf) {
			log_notice("upstream \"%s\": no longer in the conf, stopping it", u->name);
			upstream_fail_held(u, 503, "upstream removed by a reload", 0);
			for (int i = 0; i < u->nrep; i++)
				replica_drain(&u->rep[i]);
		}
	return 0;
}

void upstream_shutdown(void)
{
	for (struct upstream *u = all; u; u = u->next) {
		upstream_fail_held(u, 503, "wakegate is shutting down", 0);
		for (int i = 0; i < u->nrep; i++)
			replica_drain(&u->rep[i]);
	}
}

int upstream_all_done(void)
{
	for (struct upstream *u = all; u; u = u->next) {
		if (u->hold.n)
			return 0;
		for (int i = 0; i < u->nrep; i++) {
			struct replica *rep = &u->rep[i];
			if (rep->in_flight || rep->launch)
				return 0;
		}
	}
	return 1;
}

void upstream_free_all(void)
{
	if (tick_ev)
		event_free(tick_ev);
	tick_ev = NULL;
	while (all) {
		struct upstream *u = all;
		all = u->next;
		upstream_fail_held(u, 503, "wakegate is shutting down", 0);
		for (int i = 0; i < u->nrep; i++)
			replica_free(&u->rep[i]);
		free(u->name);
		free(u);
	}
	keepalive_free_all();
	cost_free_all();
}
