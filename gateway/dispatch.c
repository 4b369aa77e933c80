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
#include "gateway/header_set.h"
#include "gateway/keepalive.h"
#include "gateway/log.h"
#include "gateway/log_escape.h"
#include "gateway/path_norm.h"
#include "common/prom.h"
#include "gateway/metrics.h"
#include "gateway/phase.h"
#include "gateway/progress.h"
#include "gateway/proxy.h"
#include "gateway/proxy_hdr.h"
#include "gateway/store.h"
#include "gateway/tenant.h"
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
	tenant_request_done(r, status);
	u->requests++;
}

/* Answers a request the gateway could not forward, and frees it. */
static void req_reject(struct wg_request *r, int code, const char *reason, int retry_after)
{
	if (r->held)
		r->hold_ms = (gw_now() - r->t_arrive) * 1000;
	progress_stop(r);
	uint64_t bytes = 0;
	if (r->req && r->sse_started) {	/* its 200 and headers are out: the stream ends with an error event */
		progress_fail(r, code, reason);
	} else if (r->req) {
		bytes = proxy_error_size(reason);	/* the access log counts the answer's body */
		proxy_send_error(r->req, code, reason, retry_after);
	}
	req_account(r, r->req ? code : 499, bytes, 0);
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

/* A deadline refusal: "predicted" at arrival, or "expired" while held. */
static void deadline_count(const struct upstream *u, const char *reason)
{
	char labels[300], name[200];
	prom_escape(u->name, name, sizeof(name));
	snprintf(labels, sizeof(labels), "upstream=\"%s\",reason=\"%s\"", name, reason);
	metrics_add(gw.metrics, "wakegate_deadline_refused_total", labels, 1);
}

/*
 * boot_cancel: the last held request left (client gone, timeout, deadline)
 * and nothing else asked for the boot (its wake cause is a request, no
 * min_warm / replicas min=): the boot is drained, so the GPU is not paid for
 * an answer nobody waits for. A request that comes later wakes it anew
 * once it is STOPPED (dispatch_tick).
 */
static void boot_cancel_check(struct upstream *u)
{
	if (!u->cf || !u->cf->boot_cancel || u->hold.n || gw.stopping || u->cf->min_warm > 0 || u->cf->replicas_min > 0)
		return;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (rep->remote || !replica_in(rep, RS(REPLICA_BOOTING) | RS(REPLICA_WARMING)) ||
		    rep->wake_cause != CAUSE_REQUEST || rep->in_flight)
			continue;
		char labels[300], name[200];
		prom_escape(u->name, name, sizeof(name));
		snprintf(labels, sizeof(labels), "upstream=\"%s\"", name);
		metrics_add(gw.metrics, "wakegate_boot_cancelled_total", labels, 1);
		replica_drain(rep, CAUSE_BOOT_CANCEL, "every held request left");
	}
}

/* A held request waited hold timeout: 503 with the expected boot time. */
static void on_hold_timeout(struct wg_request *r, void *arg)
{
	struct upstream *u = arg;
	char msg[300];
	snprintf(msg, sizeof(msg), "upstream \"%s\": no replica ready after %.1fs in the hold queue%s",
		 u->name, gw_now() - r->t_arrive, u->gpu_wait_since > 0 ? " (waiting for GPU memory)" : "");
	if (r->deadline > 0 && gw_now() >= r->deadline - 0.05) {
		snprintf(msg, sizeof(msg), "upstream \"%s\": no replica ready within the request's max wait of %.1fs",
			 u->name, r->deadline - r->t_arrive);
		deadline_count(u, "expired");
	}
	log_warn("%s", msg);
	r->hold_ms = (gw_now() - r->t_arrive) * 1000;
	hold_observe(r);
	req_reject(r, 503, msg, upstream_eta_s(u));
	dispatch_gauges(u);
	boot_cancel_check(u);
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
	boot_cancel_check(u);
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
	int64_t timeout_ms = u->p.hold_timeout_ms;
	if (r->deadline > 0) {	/* held no longer than the client waits */
		int64_t left = (int64_t)((r->deadline - gw_now()) * 1000);
		if (left < timeout_ms)
			timeout_ms = left > 1 ? left : 1;
	}
	if (hold_push(&u->hold, r, u->p.hold_max, timeout_ms) == 0) {
		if (progress_wanted(r))
			progress_start(r, u);	/* on failure it waits as a plain client */
		return 0;
	}
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
	if (res->status && res->status < 500)	/* the deadlines' queue estimate */
		u->svc_s = u->svc_s > 0 ? 0.8 * u->svc_s + 0.2 * res->upstream_ms / 1000 : res->upstream_ms / 1000;
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

/*
 * "proxy_pass http://NAME/URI": the location's path in the request target
 * replaced by URI, as nginx does (an exact location's whole path; the query
 * kept). Malloc'd, or NULL: the target goes as the client sent it.
 * Locations match the normalised path (route_phase): a target whose path
 * is not already normal ("/x/../api/", "//api/", "/%61pi/",
 * "/api/../../etc") has its normalised path's rest sent, escaped again, as
 * nginx does, so that nothing climbs out of URI; else the client's own bytes.
 */
static struct conf_header *headers_copy(const struct conf_header *h);

static char *req_target(const struct wg_request *r)
{
	const struct conf_location *loc = r->loc;
	if (!loc || !loc->proxy_uri || !r->req)
		return NULL;
	char buf[4096], norm[4096], esc[4096];
	const char *t = proxy_hdr_uri(r->req, buf, sizeof(buf));
	const char *q = t + strcspn(t, "?");	/* the query, kept as the client sent it */
	size_t pl = strlen(loc->path);
	if (path_norm(t, norm, sizeof(norm)) != 0 || strncmp(norm, loc->path, pl) != 0)
		return NULL;	/* routed on this path: cannot happen */
	if (strlen(norm) != (size_t)(q - t) || strncmp(norm, t, (size_t)(q - t)) != 0) {
		if (path_escape(loc->exact ? "" : norm + pl, esc, sizeof(esc)) != 0 ||
		    strlen(esc) + strlen(q) >= sizeof(esc))
			return NULL;
		strcat(esc, q);
		t = esc;
		pl = 0;
	}
	const char *rest = loc->exact ? t + strcspn(t, "?") : t + pl;
	size_t n = strlen(loc->proxy_uri) + strlen(rest) + 1;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s%s", loc->proxy_uri, rest);
	return out;
}

/* Sends r to rep, which is READY with a free slot. */
static void req_forward(struct replica *rep, struct wg_request *r)
{
	r->rep = rep;
	r->inflight_since = gw_now();
	if (r->auth_header) {	/* the gateway's API key stays here (auth.h) */
		evhttp_remove_header(evhttp_request_get_input_headers(r->req), r->auth_header);
		r->auth_header = NULL;
	}
	rep->in_flight++;
	rep->served++;
	/* which upstream, version and replica answered (issue 16); a resent request names the last one */
	if (r->req) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
		if (!rep->who[0] || rep->who_at != rep->t_start || rep->who_vgen != rep->vgen) {
			snprintf(rep->who, sizeof(rep->who), "%s; version=%s; replica=%d", rep->up->name,
				 rep->vgen ? rep->ver.label : "-", rep->id);
			rep->who_at = rep->t_start;
			rep->who_vgen = rep->vgen;
		}
		if (r->resent)	/* sent once already: it names the last replica only */
			evhttp_remove_header(h, "X-Wakegate-Upstream");
		evhttp_add_header(h, "X-Wakegate-Upstream", rep->who);
	}
	struct proxy_opts o = {
		.connect_timeout_ms = r->connect_timeout_ms,
		.read_timeout_ms = r->read_timeout_ms,
		.request_id = r->id,
		.unsent_back = !r->resent && !gw.stopping,
		.client_started = r->sse_started,
	};
	progress_stop(r);
	if (r->held) {
		r->hold_ms = (gw_now() - r->t_arrive) * 1000;
		hold_observe(r);
	}
	if (r->cold) {
		snprintf(r->cold_value, sizeof(r->cold_value), "%.2fs", r->hold_ms / 1000);
		o.extra_header_name = "X-Wakegate-Cold";
		o.extra_header_value = r->cold_value;
	}
	/* r->loc may be gone (a reload while r was held): what the forward needs was copied at the phase */
	char **hdrs = r->fwd_headers ? header_set_expand(r->fwd_headers, r->req, rep->url) : NULL;
	o.uri = r->fwd_uri;
	o.set_headers = (const char *const *)hdrs;
	proxy_forward(rep->pool, r->req, &o, req_done, req_progress, r);
	header_set_free(hdrs);	/* proxy_forward keeps copies */
}

/* A copy of a location's proxy_set_header lines, owned by the request (request_free frees it). */
static struct conf_header *headers_copy(const struct conf_header *h)
{
	struct conf_header *head = NULL, **tail = &head;
	for (; h; h = h->next) {
		struct conf_header *c = calloc(1, sizeof(*c));
		if (!c || !(c->name = strdup(h->name)) || !(c->value = strdup(h->value))) {
			if (c)
				free(c->name);
			free(c);
			break;	/* out of memory: the lines copied so far */
		}
		*tail = c;
		tail = &c->next;
	}
	return head;
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
	char msg[sizeof(rep->reason) + 300];	/* the reason carries the worker's last output */
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

/*
 * Seconds until u could start one more request, from what was measured:
 * the soonest coming replica's boot + warmup left (or a whole wake when
 * nothing is up), plus the batches of held requests ahead of it times the
 * average upstream time. -1: nothing measured yet, so nothing to refuse on.
 */
static double predict_wait_s(const struct upstream *u, double now)
{
	double ready = -1;
	int nready = 0, ncoming = 0;
	double warm = u->cf && !u->cf->warmup.off ? u->warm_s : 0;
	for (int i = 0; i < u->nrep; i++) {
		const struct replica *x = &u->rep[i];
		if (x->state == REPLICA_READY) {
			nready++;
			ready = 0;
		} else if (replica_in(x, RS_COMING)) {
			ncoming++;
			double total = x->state == REPLICA_WAKING ? u->wake_s[x->wake_level == 2 ? 2 : 1] + warm
								  : u->boot_s + warm;
			if (total <= warm)
				continue;	/* not measured */
			double left = total - (now - (x->state == REPLICA_WAKING ? x->since : x->t_start));
			if (left < 0)
				left = 0;
			if (ready < 0 || left < ready)
				ready = left;
		}
	}
	if (ready < 0) {
		if (ncoming || (u->boot_s <= 0 && !upstream_count(u, RS_ASLEEP)))
			return -1;
		ready = upstream_eta_s(u);
	}
	int slots = (nready + ncoming > 0 ? nready + ncoming : 1) * (u->p.max_conns > 0 ? u->p.max_conns : 1);
	int ahead = u->hold.n / slots + (nready ? 1 : 0);	/* READY here means its slots are all busy */
	if (ahead > 0 && u->svc_s > 0)
		ready += ahead * u->svc_s;
	return ready;
}

/*
 * The request's deadline from X-Wakegate-Max-Wait, or the upstream's hold
 * max_wait=, into r->deadline (read on every request, so that a bad value
 * gets its 400 whether or not it would have waited). 0, or -1 when r was
 * answered 400.
 */
static int deadline_read(struct upstream *u, struct wg_request *r)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->req), "X-Wakegate-Max-Wait");
	int64_t mw = -1;
	if (h) {
		mw = conf_parse_time(h);
		if (mw < 0) {
			req_reject(r, 400, "invalid X-Wakegate-Max-Wait (a time: 500ms, 5s, 2m)", 0);
			return -1;
		}
	} else if (u->cf && u->cf->hold_max_wait_ms > 0) {
		mw = u->cf->hold_max_wait_ms;
	}
	/* "0" is a deadline too: a moment after arrival, so that it is never held */
	r->deadline = mw < 0 ? 0 : r->t_arrive + (mw > 0 ? (double)mw / 1000 : 1e-6);
	return 0;
}

/*
 * The request's deadline (deadline_read). When the predicted wait is beyond it the answer is 503 with
 * Retry-After at once (and a wake, so that a retry finds it warmer) rather
 * than a hold that would miss it. 1 when r was answered.
 */
static int deadline_refuse(struct upstream *u, struct wg_request *r, double now)
{
	if (r->deadline <= 0)
		return 0;
	int64_t mw = (int64_t)((r->deadline - r->t_arrive) * 1000 + 0.5);
	double w = predict_wait_s(u, now);
	if (mw > 0 && (w < 0 || w * 1000 <= (double)mw))
		return 0;
	char msg[300];
	snprintf(msg, sizeof(msg), "upstream \"%s\": predicted wait %.1fs is beyond the request's max wait of %.1fs",
		 u->name, w < 0 ? (double)upstream_eta_s(u) : w, (double)mw / 1000);
	log_info("%s", msg);
	deadline_count(u, "predicted");
	req_reject(r, 503, msg, w > 0 ? (int)ceil(w) : upstream_eta_s(u));
	dispatch_wake(u, CAUSE_REQUEST);
	return 1;
}

/* The upstream phase: proxy now, or hold and wake. Always takes r (PHASE_AGAIN). */
static enum phase_rc dispatch_phase(struct wg_request *r)
{
	struct upstream *u = r->up;
	struct evhttp_request *req = r->req;
	r->t_arrive = gw_now();
	r->connect_timeout_ms = r->loc->proxy_connect_timeout_ms;
	r->read_timeout_ms = r->loc->proxy_read_timeout_ms;
	/* the location is the conf's, which a reload frees while r may be held: copy what the forward reads */
	r->fwd_uri = req_target(r);
	if (r->loc->proxy_headers)
		r->fwd_headers = headers_copy(r->loc->proxy_headers);
	r->progress_ok = r->loc->hold_progress;
	req_fill(r, req);
	keepalive_on_request(u);
	if (gw.stopping) {
		req_reject(r, 503, "wakegate is shutting down", 0);
		return PHASE_AGAIN;
	}
	if (deadline_read(u, r) < 0)
		return PHASE_AGAIN;
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
		char msg[sizeof(failed->reason) + 300];
		snprintf(msg, sizeof(msg), "upstream \"%s\": %s", u->name, failed->reason);
		req_reject(r, 503, msg, (int)ceil(failed->retry_at - now));
		return PHASE_AGAIN;
	}
	if (deadline_refuse(u, r, now))
		return PHASE_AGAIN;
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
	metrics_declare(gw.metrics, "wakegate_deadline_refused_total", METRICS_COUNTER,
			"Requests answered 503 for their max wait: predicted at arrival, or expired while held.", NULL, 0);
	metrics_declare(gw.metrics, "wakegate_boot_cancelled_total", METRICS_COUNTER,
			"Boots stopped by boot_cancel: every held request had left.", NULL, 0);
	phase_register(PHASE_UPSTREAM, dispatch_phase);
}
