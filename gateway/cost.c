/*
 * cost: GPU time billed, its cost, the always-on comparison, and hold time
 * percentiles, per upstream. See cost.h for what is counted. Once a second
 * (on the upstream tick) it refreshes the gauges, so /metrics is at most a
 * second behind; /status computes its figures at the time of the request.
 * It learns of runs by subscribing to the replicas' process events.
 */
#include "config.h"
#include "gateway/cost.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/store.h"
#include "gateway/upstream.h"

#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COST_HOLDS 1024		/* hold times kept per upstream for the percentiles */
#define COST_TICK_MS 1000

struct cost_up {
	double last_tick;	/* the once-a-second work last ran (gw_now) */
	char *name;
	double t_first;		/* gw_now() when first seen: the always-on period starts here */
	double run_start[UPSTREAM_MAX_REPLICAS];	/* gw_now() at launch; 0: not running */
	double lived_s;		/* finished runs, as they ran */
	double billed_s;	/* finished runs, each rounded up */
	int runs;		/* finished runs */
	double price;		/* the conf's, copied so that a retired upstream keeps them */
	char currency[8];
	int64_t gran_ms;
	double hold[COST_HOLDS];	/* the last COST_HOLDS hold times, a ring */
	int nhold, hold_next;
	int since_sent;		/* stats:UPSTREAM since_ms written (HSETNX: the first gateway's wins) */
};
static double t_started;	/* gw_now() when the metrics were declared: the gateway's start */

/* Rounds a run of s seconds up to whole billing units. */
static double cost_round(double s, int64_t gran_ms)
{
	double g = gran_ms > 0 ? (double)gran_ms / 1000 : 1;
	if (s <= 0)
		return 0;
	/* a run that lasted 60.0000001s of a 1m unit is one unit, not two */
	return ceil(s / g - 1e-9) * g;
}

/* u's state, made on first use and kept in u (NULL: out of memory). */
static struct cost_up *cost_get(const struct upstream *cu)
{
	struct upstream *u = (struct upstream *)cu;	/* the module's own part of it */
	struct cost_up *c = u->cost;
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c || !(c->name = strdup(u->name))) {
			free(c);
			return NULL;
		}
		double now = gw_now();
		c->t_first = t_started > 0 && now - t_started < 5 ? t_started : now;
		u->cost = c;
	}
	if (u->cf) {
		c->price = u->cf->price_per_hour;
		snprintf(c->currency, sizeof(c->currency), "%s", u->cf->currency);
		c->gran_ms = u->cf->billing_granularity_ms;	/* main's where the upstream has none (conf_check) */
	}
	return c;
}

/* The figures at time now: seconds lived and billed (finished runs plus the ones running). */
struct cost_fig {
	double lived_s, billed_s, cost, always_on_s, always_on_cost, saving;
	int running;
};

static struct cost_fig cost_figures(const struct cost_up *c, double now)
{
	struct cost_fig f = { c->lived_s, c->billed_s, 0, 0, 0, 0, 0 };
	for (int i = 0; i < UPSTREAM_MAX_REPLICAS; i++)
		if (c->run_start[i] > 0) {
			f.lived_s += now - c->run_start[i];
			f.billed_s += cost_round(now - c->run_start[i], c->gran_ms);
			f.running++;
		}
	f.cost = f.billed_s * c->price / 3600;
	f.always_on_s = cost_round(now - c->t_first, c->gran_ms);
	f.always_on_cost = f.always_on_s * c->price / 3600;
	f.saving = f.always_on_s > 0 ? 1 - f.billed_s / f.always_on_s : 0;
	return f;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles p50 and p99 of the hold times kept; -1 when none. */
static void cost_hold_pct(const struct cost_up *c, double *p50, double *p99)
{
	*p50 = *p99 = -1;
	if (!c->nhold)
		return;
	double v[COST_HOLDS];
	memcpy(v, c->hold, sizeof(double) * (size_t)c->nhold);
	qsort(v, (size_t)c->nhold, sizeof(double), cmp_double);
	int i50 = (int)ceil(0.50 * c->nhold) - 1, i99 = (int)ceil(0.99 * c->nhold) - 1;
	*p50 = v[i50 < 0 ? 0 : i50];
	*p99 = v[i99 < 0 ? 0 : i99];
}

/* Writes c's gauges and counters into the registry. */
static void cost_publish(struct cost_up *c, double now)
{
	if (!gw.metrics)
		return;
	struct cost_fig f = cost_figures(c, now);
	char l[600], lc[1200];
	prom_labels(l, sizeof(l), "upstream", c->name, NULL);
	prom_labels(lc, sizeof(lc), "upstream", c->name, "currency", c->currency, NULL);
	metrics_set(gw.metrics, "wakegate_gpu_billed_seconds_total", l, f.billed_s);
	metrics_set(gw.metrics, "wakegate_cost_total", lc, f.cost);
	metrics_set(gw.metrics, "wakegate_always_on_seconds", l, f.always_on_s);
	metrics_set(gw.metrics, "wakegate_always_on_cost", lc, f.always_on_cost);
	metrics_set(gw.metrics, "wakegate_saving_ratio", l, f.saving);
	double p50, p99;
	cost_hold_pct(c, &p50, &p99);
	if (p50 >= 0) {
		prom_labels(lc, sizeof(lc), "upstream", c->name, "quantile", "0.5", NULL);
		metrics_set(gw.metrics, "wakegate_hold_quantile_seconds", lc, p50);
		prom_labels(lc, sizeof(lc), "upstream", c->name, "quantile", "0.99", NULL);
		metrics_set(gw.metrics, "wakegate_hold_quantile_seconds", lc, p99);
	}
}

void cost_tick(struct upstream *u, double now)
{
	if (!u->cf)
		return;
	struct cost_up *c = cost_get(u);
	if (!c || now - c->last_tick < COST_TICK_MS / 1000.0)
		return;
	c->last_tick = now;
	cost_publish(c, now);
	if (!c->since_sent && store_connected(gw.store)) {
		char ms[32], key[512];
		snprintf(ms, sizeof(ms), "%lld", (long long)(gw_wall_ms() - (int64_t)((now - c->t_first) * 1000)));
		snprintf(key, sizeof(key), "stats:%s", c->name);
		store_hsetnx(gw.store, key, "since_ms", ms);
		c->since_sent = 1;
	}
}

void cost_metrics_declare(struct metrics *m)
{
	metrics_declare(m, "wakegate_gpu_billed_seconds_total", METRICS_COUNTER,
			"GPU seconds billed: each replica run rounded up to billing_granularity.", NULL, 0);
	metrics_declare(m, "wakegate_cost_total", METRICS_COUNTER,
			"Cost of the seconds billed at price_per_hour.", NULL, 0);
	metrics_declare(m, "wakegate_always_on_seconds", METRICS_GAUGE,
			"Seconds one replica always on would have been billed since this gateway started.", NULL, 0);
	metrics_declare(m, "wakegate_always_on_cost", METRICS_GAUGE,
			"Cost of one replica always on since this gateway started.", NULL, 0);
	metrics_declare(m, "wakegate_saving_ratio", METRICS_GAUGE,
			"1 - billed seconds / always-on seconds (0.8: 80% saved).", NULL, 0);
	metrics_declare(m, "wakegate_hold_quantile_seconds", METRICS_GAUGE,
			"Hold time percentiles over the last 1024 held requests.", NULL, 0);
	t_started = gw_now();
}

static void cost_run_start(const struct replica *rep)
{
	struct cost_up *c = cost_get(rep->up);
	if (c && rep->id >= 0 && rep->id < UPSTREAM_MAX_REPLICAS)
		c->run_start[rep->id] = rep->t_start > 0 ? rep->t_start : gw_now();
}

/* A run ended: billed once, rounded up, to the registry and the store. */
static void cost_run_end(const struct replica *rep)
{
	struct cost_up *c = cost_get(rep->up);
	if (!c || rep->id < 0 || rep->id >= UPSTREAM_MAX_REPLICAS || c->run_start[rep->id] <= 0)
		return;
	double now = gw_now(), lived = now - c->run_start[rep->id];
	double billed = cost_round(lived, c->gran_ms);
	c->run_start[rep->id] = 0;
	c->lived_s += lived;
	c->billed_s += billed;
	c->runs++;
	log_info("upstream \"%s\" replica %d: ran %.2fs, billed %.0fs, cost %.6f %s",
		 c->name, rep->id, lived, billed, billed * c->price / 3600, c->currency);
	store_add(gw.store, c->name, "gpu_billed_seconds", billed);
	store_add(gw.store, c->name, "runs", 1);
	if (c->price > 0)
		store_add(gw.store, c->name, "cost", billed * c->price / 3600);
	cost_publish(c, now);
}

void cost_hold(const struct upstream *u, double s)
{
	struct cost_up *c = cost_get(u);
	if (!c)
		return;
	c->hold[c->hold_next] = s;
	c->hold_next = (c->hold_next + 1) % COST_HOLDS;
	if (c->nhold < COST_HOLDS)
		c->nhold++;
}

json_t *cost_status_json(const struct upstream *u)
{
	struct cost_up *c = cost_get(u);
	if (!c)
		return json_null();
	struct cost_fig f = cost_figures(c, gw_now());
	double p50, p99;
	cost_hold_pct(c, &p50, &p99);
	json_t *o = json_object();
	json_object_set_new(o, "gpu_seconds", json_real(f.lived_s));
	json_object_set_new(o, "gpu_billed_seconds", json_real(f.billed_s));
	json_object_set_new(o, "billing_granularity_seconds", json_real((double)c->gran_ms / 1000));
	json_object_set_new(o, "runs", json_integer(c->runs + f.running));
	json_object_set_new(o, "price_per_hour", json_real(c->price));
	json_object_set_new(o, "currency", json_string(c->currency));
	json_object_set_new(o, "cost", json_real(f.cost));
	json_object_set_new(o, "always_on_seconds", json_real(f.always_on_s));
	json_object_set_new(o, "always_on_cost", json_real(f.always_on_cost));
	json_object_set_new(o, "saving_ratio", json_real(f.saving));
	json_object_set_new(o, "saving_percent", json_real(f.saving * 100));
	json_object_set_new(o, "cold_starts", json_integer(u->cold_starts));
	json_object_set_new(o, "hold_samples", json_integer(c->nhold));
	json_object_set_new(o, "hold_p50_seconds", p50 >= 0 ? json_real(p50) : json_null());
	json_object_set_new(o, "hold_p99_seconds", p99 >= 0 ? json_real(p99) : json_null());
	return o;
}

/* A replica's process started or ended. */
static void cost_on_replica(struct replica *rep, const struct replica_change *ch, void *arg)
{
	(void)arg;
	if (ch->event == REPLICA_EV_LAUNCHED)
		cost_run_start(rep);
	else if (ch->event == REPLICA_EV_EXITED)
		cost_run_end(rep);
}

void cost_init(void)
{
	replica_subscribe(cost_on_replica, NULL);
}

void cost_free(struct upstream *u)
{
	if (!u->cost)
		return;
	free(u->cost->name);
	free(u->cost);
	u->cost = NULL;
}
