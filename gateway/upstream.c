/*
 * upstream: the upstreams the conf declares, kept across reloads, and the
 * one 100ms tick that drives every replica (replica.c, fleet.c) and every
 * module's per-upstream work (keep-alive and idle stops, scaling, held
 * requests, cost). See upstream.h.
 */
#include "config.h"
#include "common/http.h"
#include "gateway/upstream.h"
#include "gateway/conf.h"
#include "gateway/cost.h"
#include "gateway/dispatch.h"
#include "gateway/fleet.h"
#include "gateway/gpu.h"
#include "gateway/gw.h"
#include "gateway/k8s.h"
#include "gateway/keepalive.h"
#include "gateway/launch.h"
#include "gateway/replica_health.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/rollout.h"
#include "gateway/scale.h"
#include "gateway/store.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct event *tick_ev;

#define TICK_MS 100

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
	metrics_declare(m, "wakegate_replica_moves_total", METRICS_COUNTER,
			"Replica state moves, by upstream, from, to and cause.", NULL, 0);
	metrics_declare(m, "wakegate_wakes_total", METRICS_COUNTER, "Wakes from a sleep level, by upstream and level.", NULL, 0);
	metrics_declare(m, "wakegate_wake_seconds", METRICS_HISTOGRAM, "Wake calls sent to wake answered, by level.", secs, ns);
	metrics_declare(m, "wakegate_evictions_total", METRICS_COUNTER, "Replicas stopped or put to sleep to free GPU memory, by upstream and cause.", NULL, 0);
	metrics_declare(m, "wakegate_gpu_memory_bytes", METRICS_GAUGE, "GPU memory per device: declared, used by placed replicas, free.", NULL, 0);
	metrics_declare(m, "wakegate_gpu_memory_waits_total", METRICS_COUNTER, "Times an upstream had to wait for GPU memory to start or wake a replica.", NULL, 0);
	metrics_declare(m, "wakegate_gpu_seconds_total", METRICS_COUNTER, "Seconds replicas have been running.", NULL, 0);
	metrics_declare(m, "wakegate_idle_seconds_total", METRICS_COUNTER, "Seconds replicas were READY with nothing in flight.", NULL, 0);
	cost_metrics_declare(m);
	keepalive_metrics_declare(m);
	scale_metrics_declare(m);
	rollout_metrics_declare(m);
	k8s_metrics_declare(m);
}

/* Frees a retired, quiet upstream and the modules' parts of it. */
static void upstream_free(struct upstream *u)
{
	for (int i = 0; i < UPSTREAM_MAX_REPLICAS; i++) {	/* every one is linked (replica_init) */
		fleet_replica_free(&u->rep[i]);
		replica_health_free(&u->rep[i]);
		rollout_replica_free(&u->rep[i]);
		replica_free(&u->rep[i]);
	}
	keepalive_free(u);
	cost_free(u);
	scale_free(u);
	k8s_free(u);
	free(u->name);
	free(u);
}

/* Something of u is still going: requests, Redis calls, processes, replicas not down. */
static int upstream_busy(const struct upstream *u)
{
	int busy = u->hold.n;
	for (int i = 0; i < u->nrep; i++) {
		const struct replica *rep = &u->rep[i];
		busy += rep->in_flight + rep->idle_query + rep->lock_pending + (rep->launch != NULL) +
			!replica_in(rep, RS_DOWN);
	}
	return busy;
}

/*
 * A reload that changed an upstream's server lines (or turned it from
 * launched replicas into server lines or back): each replica whose address
 * is no longer its line's is let go (a server is never stopped: only the
 * gateway's hold on it ends), and the scale floor polls the new address.
 */
static void upstream_servers_changed(struct upstream *u)
{
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		int was_server = rep->launch && strcmp(rep->launch->ops->kind, CONF_LAUNCH_SERVER) == 0;
		if (!rep->launch || rep->remote || (!was_server && !u->cf->nservers))
			continue;
		if (was_server && i < u->cf->nservers && strcmp(rep->url, u->cf->servers[i]) == 0)
			continue;
		log_notice("upstream \"%s\" replica %d: %s changed by the reload", u->name, i,
			   was_server ? "its server line" : "launched replicas to server lines");
		replica_drain(rep, CAUSE_RELOAD, "server lines changed by a reload");
	}
}

/* Every 100ms: each replica, then each module's work on the upstream. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	double now = gw_now();
	gpu_tick();
	struct upstream *u = upstream_list(), *next;
	for (; u; u = next) {
		next = u->next;
		for (int i = 0; i < u->nrep; i++)
			if (!fleet_tick(&u->rep[i], now))	/* 1: another gateway runs it */
				replica_tick(&u->rep[i], now);
		replica_health_tick(u, now);
		keepalive_tick(u, now);
		scale_tick(u, now);
		k8s_tick(u, now);
		const char *refused = k8s_refused(u);
		if (refused && u->hold.n && !upstream_count(u, RS_UP))	/* no pod will come: say why now */
			dispatch_fail_held(u, 503, refused, upstream_eta_s(u));
		rollout_tick(u, now);
		dispatch_tick(u, now);
		cost_tick(u, now);
		dispatch_gauges(u);
		if (!u->cf && !upstream_busy(u) && !gw.stopping) {
			/* retired by a reload and now quiet */
			log_notice("upstream \"%s\": removed", u->name);
			upstream_set_remove(u);
			upstream_free(u);
		}
	}
}

/* Copies the numbers, so a retired upstream never reads a freed conf; the conf's are final (defaults included). */
static void params_from(struct upstream_params *p, const struct conf_upstream *cf)
{
	p->boot_timeout_ms = cf->boot_timeout_ms;
	p->idle_timeout_ms = cf->idle_timeout_ms;
	p->hold_timeout_ms = cf->hold_timeout_ms;
	p->stop_grace_ms = cf->stop_grace_ms;
	p->lock_ttl_ms = cf->lock_ttl_ms;
	p->min_warm = cf->min_warm;
	p->hold_max = cf->hold_max;
	p->max_conns = cf->max_conns;
	p->gpu_memory = cf->gpu_memory;
	p->gpu_mask = cf->gpu_mask;
	p->pin = cf->pin;
	p->priority = cf->priority;
}

static struct upstream *upstream_new(const char *name)
{
	struct upstream *u = calloc(1, sizeof(*u));
	if (!u || !(u->name = strdup(name))) {
		free(u);
		return NULL;
	}
	u->nrep = 1;
	for (int i = 0; i < UPSTREAM_MAX_REPLICAS; i++)
		replica_init(&u->rep[i], u, i);
	degrade_sig_init(&u->sig);
	dispatch_hold_init(u);
	upstream_set_add(u);
	for (int i = 0; i < u->nrep; i++)
		store_replica_state(gw.store, u->name, i, "STOPPED", "");
	return u;
}

int upstream_configure(const struct conf *c)
{
	if (!tick_ev) {
		dispatch_init();
		gpu_init();	/* its gate before the fleet's: place first, then claim */
		fleet_init();
		cost_init();
		rollout_init();
		tick_ev = event_new(gw.base, -1, EV_PERSIST, tick_cb, NULL);
		struct timeval tv = { 0, TICK_MS * 1000 };
		if (!tick_ev || event_add(tick_ev, &tv) < 0)
			return -1;
	}
	gpu_configure(c);
	for (struct upstream *u = upstream_list(); u; u = u->next)
		u->cf = NULL;
	for (const struct conf_upstream *cf = c->upstreams; cf; cf = cf->next) {
		struct upstream *u = NULL;
		for (struct upstream *x = upstream_list(); x; x = x->next)
			if (strcmp(x->name, cf->name) == 0 && !x->cf)
				u = x;
		if (!u) {
			u = upstream_new(cf->name);
			if (!u)
				return -1;
		} else {
			log_info("upstream \"%s\": kept across reload", u->name);
		}
		u->cf = cf;
		upstream_servers_changed(u);
		params_from(&u->p, cf);
		rollout_configure(u);
		scale_configure(u);
		dispatch_gauges(u);
	}
	for (struct upstream *u = upstream_list(); u; u = u->next)
		if (!u->cf) {
			log_notice("upstream \"%s\": no longer in the conf, stopping it", u->name);
			dispatch_fail_held(u, 503, "upstream removed by a reload", 0);
			for (int i = 0; i < u->nrep; i++)
				replica_drain(&u->rep[i], CAUSE_RELOAD, "upstream removed by a reload");
		}
	return 0;
}

void upstream_shutdown(void)
{
	for (struct upstream *u = upstream_list(); u; u = u->next) {
		dispatch_fail_held(u, 503, "wakegate is shutting down", 0);
		for (int i = 0; i < u->nrep; i++)
			replica_drain(&u->rep[i], CAUSE_SHUTDOWN, "shutting down");
	}
}

int upstream_all_done(void)
{
	for (struct upstream *u = upstream_list(); u; u = u->next) {
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
	struct upstream *u;
	while ((u = upstream_list()) != NULL) {
		upstream_set_remove(u);
		dispatch_fail_held(u, 503, "wakegate is shutting down", 0);
		upstream_free(u);
	}
}
