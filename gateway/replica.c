/*
 * replica: one replica's life. replica_set_state() is the only writer of
 * rep->state; it logs every move, updates the state gauge and the store.
 * Health polling, boot timeout, drain grace and backoff are all driven by
 * the upstream module's 100ms tick (replica_tick), so a replica owns no
 * timer of its own.
 */
#include "config.h"
#include "common/url.h"
#include "gateway/upstream.h"
#include "gateway/conf.h"
#include "gateway/cost.h"
#include "gateway/keepalive.h"
#include "gateway/fleet.h"
#include "gateway/gw.h"
#include "gateway/launch.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/scale.h"
#include "gateway/store.h"
#include "gateway/tls.h"
#include "warmer/warmer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const state_names[REPLICA_NSTATES] = {
	"STOPPED", "BOOTING", "WARMING", "READY", "DRAINING", "FAILED"
};

const char *replica_state_name(enum replica_state s)
{
	return (unsigned)s < REPLICA_NSTATES ? state_names[s] : "?";
}

/* wakegate_replica_state: 1 for the current state, 0 for the others. */
static void replica_gauge(struct replica *rep)
{
	if (!gw.metrics)
		return;
	char labels[700], id[16];
	snprintf(id, sizeof(id), "%d", rep->id);
	for (int s = 0; s < REPLICA_NSTATES; s++) {
		prom_labels(labels, sizeof(labels), "upstream", rep->up->name, "replica", id,
			    "state", state_names[s], NULL);
		metrics_set(gw.metrics, "wakegate_replica_state", labels, rep->state == (enum replica_state)s);
	}
}

/* The one place a replica changes state. why: a short reason for the log, or NULL. */
static void replica_set_state(struct replica *rep, enum replica_state to, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void replica_set_state(struct replica *rep, enum replica_state to, const char *fmt, ...)
{
	char why[300] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
	}
	enum replica_state from = rep->state;
	rep->state = to;
	rep->gen++;
	rep->since = gw_now();
	enum log_level lvl = to == REPLICA_FAILED ? LOG_LVL_ERROR : LOG_LVL_NOTICE;
	if (*why)
		log_msg(lvl, "upstream \"%s\" replica %d: %s -> %s (%s)", rep->up->name, rep->id,
			state_names[from], state_names[to], why);
	else
		log_msg(lvl, "upstream \"%s\" replica %d: %s -> %s", rep->up->name, rep->id,
			state_names[from], state_names[to]);
	replica_gauge(rep);
	if (!rep->remote)	/* the holder publishes a remote one */
		store_replica_state(gw.store, rep->up->name, rep->id, state_names[to],
				    to == REPLICA_STOPPED ? "" : rep->url);
	fleet_state(rep);
}

void replica_move(struct replica *rep, enum replica_state to, const char *why)
{
	replica_set_state(rep, to, why ? "%s" : NULL, why);
}

/* 1 when a replica of this gateway that is not STOPPED holds port: a booting
 * worker has been given its port but may not have bound it yet. */
static int replica_port_taken(const struct replica *self, int port)
{
	for (const struct upstream *u = upstream_list(); u; u = u->next)
		for (int i = 0; i < u->nrep; i++) {
			const struct replica *r = &u->rep[i];
			if (r != self && r->state != REPLICA_STOPPED && r->port == port)
				return 1;
		}
	return 0;
}

/* The ports a local worker may get: the conf's replica_ports, or else below
 * the kernel's ephemeral range, whose ports any outgoing connection (ours to
 * Redis or a worker, a client's) may take as its source port between our
 * probe and the worker's bind. Above that range when too few are below it. */
static void replica_port_range(int *lo, int *hi)
{
	if (gw.conf && gw.conf->replica_port_lo) {	/* replica_ports LOW-HIGH */
		*lo = gw.conf->replica_port_lo, *hi = gw.conf->replica_port_hi;
		return;
	}
	int elo = 32768, ehi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%d %d", &elo, &ehi) != 2 || elo < 1 || ehi < elo || ehi > 65535)
			elo = 32768, ehi = 60999;
		fclose(f);
	}
	*lo = 10000, *hi = elo - 1;
	if (*hi - *lo < 1000)
		*lo = ehi + 1, *hi = 65535;
	if (*hi - *lo < 1000)
		*lo = 1024, *hi = 65535;	/* no room outside it: probe anywhere */
}

/* A loopback port nobody has bound and no other replica of ours was given,
 * from a random start in replica_port_range(), then onwards; -1 when none is
 * found. SO_REUSEADDR stays off, so a port still in TIME_WAIT is passed over. */
static int replica_pick_port(const struct replica *self)
{
	static unsigned next;
	int lo, hi;
	replica_port_range(&lo, &hi);
	unsigned n = (unsigned)(hi - lo + 1);
	if (!next)
		next = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int port = -1;
	for (unsigned tries = 0; tries < n && tries < 2000 && port < 0; tries++) {
		int p = lo + (int)(next++ % n);
		if (replica_port_taken(self, p))
			continue;
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			port = p;
		else if (errno != EADDRINUSE && errno != EACCES)
			break;
	}
	close(fd);	/* never listened: leaves no TIME_WAIT behind */
	return port;
}

static void deferred_conn_free(evutil_socket_t fd, short what, void *arg)
{
	evhttp_connection_free(arg);
}

/* Health connections may be inside their own callback: free them on the next loop turn. */
static void replica_health_close(struct replica *rep)
{
	if (rep->health_ev) {
		event_free(rep->health_ev);
		rep->health_ev = NULL;
	}
	rep->health_delay_ms = 0;
	if (!rep->health)
		return;
	struct timeval zero = { 0, 0 };
	if (event_base_once(gw.base, -1, EV_TIMEOUT, deferred_conn_free, rep->health, &zero) < 0)
		evhttp_connection_free(rep->health);
	rep->health = NULL;
	rep->health_pending = 0;
}

static void replica_health_again(struct replica *rep);

/* Cancels a running warmup and frees the copies its options point to. */
static void replica_warm_free(struct replica *rep)
{
	if (rep->warmer)
		warmer_cancel(rep->warmer);
	rep->warmer = NULL;
	free(rep->warm_model);
	free(rep->warm_path);
	free(rep->warm_body);
	rep->warm_model = rep->warm_path = rep->warm_body = NULL;
}

/* Writes the GPU and idle seconds counted so far to metrics and the store. */
static void replica_account(struct replica *rep, double now, int flush)
{
	if (rep->acct_at > 0 && rep->launch && rep->launch->ops->running(rep->launch)) {
		double dt = now - rep->acct_at;
		rep->gpu_s += dt;
		if (rep->state == REPLICA_READY && rep->in_flight == 0)
			rep->idle_s += dt;
		if (gw.metrics) {
			char labels[600];
			prom_labels(labels, sizeof(labels), "upstream", rep->up->name, NULL);
			metrics_add(gw.metrics, "wakegate_gpu_seconds_total", labels, dt);
			if (rep->state == REPLICA_READY && rep->in_flight == 0)
				metrics_add(gw.metrics, "wakegate_idle_seconds_total", labels, dt);
		}
	}
	rep->acct_at = now;
	if (flush || rep->gpu_s >= 10) {
		if (rep->gpu_s > 0)
			store_add(gw.store, rep->up->name, "gpu_seconds", rep->gpu_s);
		if (rep->idle_s > 0)
			store_add(gw.store, rep->up->name, "idle_seconds", rep->idle_s);
		rep->gpu_s = rep->idle_s = 0;
	}
}

/* SIGTERM now, SIGKILL after stop_grace (the launcher keeps the timer). */
static void replica_stop_process(struct replica *rep)
{
	if (rep->launch && rep->launch->ops->running(rep->launch) && !rep->stop_sent) {
		rep->stop_sent = 1;
		rep->launch->ops->stop(rep->launch, rep->up->p.stop_grace_ms);
	}
}

static void replica_pool_free(struct replica *rep)
{
	struct proxy_pool *p = rep->pool;
	rep->pool = NULL;
	if (p)
		proxy_pool_free(p);	/* in-flight requests get 502; their done callbacks run */
}

/*
 * Moves to FAILED: releases health, warmer, pool, asks the process to stop,
 * arms the backoff. Held requests get 503 unless they can wait for a restart.
 */
static void replica_fail(struct replica *rep, int crashed_ready, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void replica_fail(struct replica *rep, int crashed_ready, const char *fmt, ...)
{
	struct upstream *u = rep->up;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rep->reason, sizeof(rep->reason), fmt, ap);
	va_end(ap);
	rep->fails++;
	double backoff = rep->fails >= 6 ? 30 : (double)(1 << (rep->fails - 1));
	if (backoff > 30)
		backoff = 30;
	rep->retry_at = gw_now() + backoff;
	rep->crashed_ready = crashed_ready;
	replica_set_state(rep, REPLICA_FAILED, "%s; next try in %gs", rep->reason, backoff);
	replica_health_close(rep);
	replica_warm_free(rep);
	replica_pool_free(rep);
	replica_stop_process(rep);
	if (crashed_ready)
		return;
	for (int i = 0; i < u->nrep; i++) {
		enum replica_state s = u->rep[i].state;
		if (s == REPLICA_BOOTING || s == REPLICA_WARMING || s == REPLICA_READY)
			return;	/* another replica will take them */
	}
	char msg[400];
	snprintf(msg, sizeof(msg), "upstream \"%s\": %s", u->name, rep->reason);
	upstream_fail_held(u, 503, msg, (int)ceil(backoff));
}

/* The launcher saw the process end: what that means depends on the state. */
static void replica_exit_cb(int status, void *arg)
{
	struct replica *rep = arg;
	char how[sizeof(rep->launch->why)];
	if (status == LAUNCH_WHY)	/* command, http, kubernetes: the launcher says what happened */
		snprintf(how, sizeof(how), "%s", rep->launch->why);
	else if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "ended");
	replica_account(rep, gw_now(), 1);
	cost_run_end(rep);
	struct launch *l = rep->launch;
	rep->launch = NULL;
	rep->stop_sent = 0;
	/* safe: the exec driver touches nothing after calling us */
	launch_free(l);
	switch (rep->state) {
	case REPLICA_BOOTING:
		replica_fail(rep, 0, "%s%s", how, status == LAUNCH_WHY ? "" : " during boot");
		break;
	case REPLICA_WARMING:
		replica_fail(rep, 0, "%s during warmup", how);
		break;
	case REPLICA_READY:
		replica_fail(rep, 1, "%s while ready", how);
		break;
	case REPLICA_DRAINING:
		replica_pool_free(rep);
		replica_set_state(rep, REPLICA_STOPPED, "%s after %.1fs up", how, gw_now() - rep->t_start);
		break;
	default:
		log_info("upstream \"%s\" replica %d: process %s", rep->up->name, rep->id, how);
		break;
	}
}

/* Starts a replica from STOPPED or FAILED (after its backoff). 0, or -1 when it failed at once. */
int replica_wake(struct replica *rep)
{
	struct upstream *u = rep->up;
	if (!u->cf || gw.stopping || rep->launch || rep->remote)
		return -1;
	if (!fleet_claim(rep))
		return 0;	/* asking the other gateways first */
	char err[256];
	rep->port = replica_pick_port(rep);
	if (rep->port <= 0) {
		replica_fail(rep, 0, "no free local port");
		return -1;
	}
	snprintf(rep->url, sizeof(rep->url), "%s://127.0.0.1:%d", u->cf->tls ? "https" : "http", rep->port);
	rep->launch = launch_new(gw.base, u->cf, gw.conf->prefix,
				 replica_exit_cb, rep, err, sizeof(err));
	if (!rep->launch) {
		replica_fail(rep, 0, "cannot launch: %s", err);
		return -1;
	}
	if (rep->launch->ops->url)	/* command, http, kubernetes: the replica answers at url= */
		snprintf(rep->url, sizeof(rep->url), "%s", rep->launch->ops->url(rep->launch));
	rep->stop_sent = 0;
	rep->t_start = gw_now();
	rep->acct_at = rep->t_start;
	if (rep->launch->ops->start(rep->launch, u->name, rep->port, err, sizeof(err)) < 0) {
		launch_free(rep->launch);
		rep->launch = NULL;
		replica_fail(rep, 0, "cannot launch: %s", err);
		return -1;
	}
	cost_run_start(rep);
	if (!keepalive_waking(u)) {	/* a pre-warm is counted by keepalive.c, not as a cold start */
		u->cold_starts++;
		char labels[600];
		prom_labels(labels, sizeof(labels), "upstream", u->name, NULL);
		metrics_add(gw.metrics, "wakegate_cold_starts_total", labels, 1);
		store_add(gw.store, u->name, "cold_starts", 1);
	}
	replica_set_state(rep, REPLICA_BOOTING, "%s on %s", keepalive_waking(u) ? "pre-warm" :
			  u->hold.n ? "woken by a request" : scale_wake_reason(u), rep->url);
	replica_health_again(rep);
	return 0;
}

/* WARMING -> READY: make the pool, measure the warmup, drain held requests. */
static void replica_ready(struct replica *rep)
{
	struct upstream *u = rep->up;
	double now = gw_now();
	char host[256];
	int port;
	rep->pool = url_split(rep->url, host, sizeof(host), &port, NULL) == 0 ?
		tls_pool_new(gw.base, u->cf, rep->url, host, port) : NULL;
	if (!rep->pool) {
		replica_fail(rep, 0, "cannot make a connection pool");
		return;
	}
	rep->t_ready = now;
	rep->fails = 0;
	u->warm_s = now - rep->t_health;
	char labels[600];
	prom_labels(labels, sizeof(labels), "upstream", u->name, NULL);
	metrics_observe(gw.metrics, "wakegate_warmup_seconds", labels, u->warm_s);
	store_add(gw.store, u->name, "warmup_seconds", u->warm_s);
	/* a fresh replica counts as activity: the idle timer starts now, not at boot */
	u->last_activity = now;
	replica_set_state(rep, REPLICA_READY, "cold start took %.2fs", now - rep->t_start);
	upstream_mark_cold(u, now);
	upstream_dispatch(u);
}

/* The warmer is done: READY, or FAILED with its reason. */
static void replica_warm_done(int ok, const char *reason, const struct warmer_result *res, void *arg)
{
	struct replica *rep = arg;
	rep->warmer = NULL;	/* the warmer frees itself after this callback */
	if (rep->state != REPLICA_WARMING)
		return;
	if (!ok) {
		replica_fail(rep, 0, "warmup failed: %s", reason ? reason : "?");
		return;
	}
	log_info("upstream \"%s\" replica %d: warmup ok: %d requests, first %.1fms, last %.1fms, %.0fms in all",
		 rep->up->name, rep->id, res ? res->sent : 0, res ? res->first_ms : 0,
		 res ? res->last_ms : 0, res ? res->total_ms : 0);
	replica_warm_free(rep);
	replica_ready(rep);
}

/* A warmup body file, whole; malloc'd for the caller. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	fclose(f);
	if (buf)
		*len = n;
	return buf;
}

/* BOOTING -> WARMING: strings are copied, a reload may free the conf meanwhile. */
static void replica_start_warmup(struct replica *rep)
{
	struct upstream *u = rep->up;
	const struct conf_warmup *w = u->cf ? &u->cf->warmup : NULL;
	if (!w || w->off) {
		replica_ready(rep);
		return;
	}
	replica_set_state(rep, REPLICA_WARMING, "health ok after %.2fs", rep->t_health - rep->t_start);
	rep->warm_model = strdup(w->model ? w->model : u->name);
	rep->warm_path = w->path ? strdup(w->path) : NULL;
	if (w->body_file) {
		rep->warm_body = read_file(w->body_file, &rep->warm_body_len);
		if (!rep->warm_body) {
			replica_fail(rep, 0, "warmup body %s cannot be read", w->body_file);
			return;
		}
	}
	struct warmer_opts o = {
		.base_url = rep->url,
		.model = rep->warm_model,
		.path = rep->warm_path,
		.body = rep->warm_body,
		.body_len = rep->warm_body_len,
		.count = w->count > 0 ? w->count : 3,
		.until_stable = w->until_stable,
		.timeout_ms = w->timeout_ms > 0 ? (long)w->timeout_ms : 60000,
		.tls_ca = u->cf->tls_ca,
		.tls_insecure = u->cf->tls_insecure,
	};
	rep->warmer = warmer_start(gw.base, &o, replica_warm_done, rep);
	if (!rep->warmer)
		replica_fail(rep, 0, "warmup could not start");
}

static void replica_health_poll(struct replica *rep);

static void replica_health_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replica *rep = arg;
	if (rep->state == REPLICA_BOOTING)
		replica_health_poll(rep);
}

/*
 * A worker is often healthy a few ms after fork: poll again soon, backing
 * off from 5ms to the 100ms tick, so a cold start is not rounded up to it.
 */
static void replica_health_again(struct replica *rep)
{
	if (rep->state != REPLICA_BOOTING)
		return;
	if (!rep->health_ev)
		rep->health_ev = evtimer_new(gw.base, replica_health_timer_cb, rep);
	if (!rep->health_ev)
		return;
	rep->health_delay_ms = rep->health_delay_ms ? rep->health_delay_ms * 2 : 5;
	if (rep->health_delay_ms > 100)
		rep->health_delay_ms = 100;
	struct timeval tv = { 0, rep->health_delay_ms * 1000 };
	evtimer_add(rep->health_ev, &tv);
}

/* One health answer: 200 ends BOOTING; anything else polls again soon. */
static void replica_health_cb(struct evhttp_request *req, void *arg)
{
	struct replica *rep = arg;
	rep->health_pending = 0;
	if (rep->state != REPLICA_BOOTING)
		return;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code != 200 && rep->health && tls_url_is_https(rep->url)) {
		/* an untrusted certificate will not fix itself; else a new TLS session next time */
		char tbuf[200];
		int permanent;
		const char *twhy = tls_connection_error(rep->health, tbuf, sizeof(tbuf), &permanent);
		if (twhy && permanent) {
			replica_fail(rep, 0, "%s: %s", rep->url, twhy);
			return;
		}
		struct timeval zero = { 0, 0 };
		if (event_base_once(gw.base, -1, EV_TIMEOUT, deferred_conn_free, rep->health, &zero) < 0)
			evhttp_connection_free(rep->health);
		rep->health = NULL;
	}
	if (code != 200) {
		replica_health_again(rep);
		return;
	}
	struct upstream *u = rep->up;
	rep->t_health = gw_now();
	u->boot_s = rep->t_health - rep->t_start;
	char labels[600];
	prom_labels(labels, sizeof(labels), "upstream", u->name, NULL);
	metrics_observe(gw.metrics, "wakegate_boot_seconds", labels, u->boot_s);
	store_add(gw.store, u->name, "boot_seconds", u->boot_s);
	replica_health_close(rep);
	if (u->cf && !u->cf->warmup.off)
		replica_start_warmup(rep);
	else {
		replica_set_state(rep, REPLICA_WARMING, "health ok after %.2fs, warmup off", u->boot_s);
		replica_ready(rep);
	}
}

/* One GET of the health path at a time, on a connection kept for the boot. */
static void replica_health_poll(struct replica *rep)
{
	if (rep->health_pending)
		return;
	char host[256];
	int port;
	if (url_split(rep->url, host, sizeof(host), &port, NULL) < 0)
		return;
	if (!rep->health) {
		rep->health = tls_http_connection_new(gw.base, rep->up->cf, rep->url, host, port);
		if (!rep->health)
			return;
		evhttp_connection_set_timeout(rep->health, 2);
		evhttp_connection_set_retries(rep->health, 0);
	}
	struct evhttp_request *req = evhttp_request_new(replica_health_cb, rep);
	if (!req)
		return;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
	const char *path = rep->up->cf && rep->up->cf->health_path ? rep->up->cf->health_path : "/v2/health/ready";
	if (evhttp_make_request(rep->health, req, EVHTTP_REQ_GET, path) == 0)
		rep->health_pending = 1;
}

/* Idle check answer from the store: another gateway may have seen traffic. */
static void replica_idle_answer(int64_t ms, void *arg)
{
	struct replica *rep = arg;
	rep->idle_query = 0;
	struct upstream *u = rep->up;
	if (rep->state != REPLICA_READY || rep->in_flight || u->hold.n)
		return;
	int64_t now_ms = gw_wall_ms();
	if (ms > 0 && now_ms - ms < u->p.idle_timeout_ms && ms > u->last_activity_ms) {
		double ago = (double)(now_ms - ms) / 1000.0;
		log_info("upstream \"%s\": another gateway saw activity %.1fs ago, staying up", u->name, ago);
		u->last_activity = gw_now() - ago;
		return;
	}
	replica_set_state(rep, REPLICA_DRAINING, "idle for %.1fs", gw_now() - u->last_activity);
}

void replica_drain(struct replica *rep)
{
	switch (rep->state) {
	case REPLICA_BOOTING:
	case REPLICA_WARMING:
		replica_health_close(rep);
		replica_warm_free(rep);
		/* fall through */
	case REPLICA_READY:
		replica_set_state(rep, REPLICA_DRAINING, gw.stopping ? "shutting down" : NULL);
		break;
	default:
		break;
	}
}

void replica_tick(struct replica *rep, double now)
{
	struct upstream *u = rep->up;
	if (fleet_tick(rep, now))
		return;		/* another gateway runs it */
	replica_account(rep, now, 0);
	switch (rep->state) {
	case REPLICA_BOOTING:
		if ((now - rep->t_start) * 1000 >= (double)u->p.boot_timeout_ms) {
			replica_fail(rep, 0, "boot timed out after %gs", (double)u->p.boot_timeout_ms / 1000);
			break;
		}
		replica_health_poll(rep);
		break;
	case REPLICA_READY: {
		if (gw.stopping || !u->cf) {
			replica_drain(rep);
			break;
		}
		int ready = 0;
		for (int i = 0; i < u->nrep; i++)
			ready += u->rep[i].state == REPLICA_READY;
		if (rep->in_flight || u->hold.n || rep->idle_query || ready <= scale_min_warm(u, now))
			break;
		if ((now - u->last_activity) * 1000 < (double)keepalive_idle_ms(u))
			break;
		rep->idle_query = 1;
		store_newest_activity(gw.store, u->name, replica_idle_answer, rep);
		break;
	}
	case REPLICA_DRAINING:
		if (!rep->launch) {
			replica_pool_free(rep);
			replica_set_state(rep, REPLICA_STOPPED, "nothing was running");
			break;
		}
		if (rep->in_flight == 0 || (now - rep->since) * 1000 >= (double)u->p.stop_grace_ms)
			replica_stop_process(rep);
		break;
	case REPLICA_FAILED:
		if (rep->launch || now < rep->retry_at || gw.stopping || !u->cf)
			break;
		if (u->hold.n) {
			replica_wake(rep);
			break;
		}
		/* min_warm: FAILED counts as down */
		/* fall through */
	case REPLICA_STOPPED: {
		if (gw.stopping || !u->cf || rep->launch)
			break;
		int up = 0;
		for (int i = 0; i < u->nrep; i++) {
			enum replica_state s = u->rep[i].state;
			up += s == REPLICA_BOOTING || s == REPLICA_WARMING || s == REPLICA_READY;
		}
		if ((u->hold.n && up == 0) || up < scale_min_warm(u, now))
			replica_wake(rep);
		break;
	}
	default:
		break;
	}
}

/* At exit or when a retired upstream goes: nothing may be left running. */
void replica_free(struct replica *rep)
{
	fleet_replica_free(rep);
	if (rep->idle_query) {	/* the store must not answer into a freed replica */
		store_cancel(gw.store, rep);
		rep->idle_query = 0;
	}
	replica_health_close(rep);
	replica_warm_free(rep);
	replica_pool_free(rep);
	if (rep->launch) {
		launch_free(rep->launch);
		rep->launch = NULL;
	}
}
