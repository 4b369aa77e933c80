/*
 * scale: how many replicas an upstream runs. "min_warm N at HH:MM-HH:MM"
 * keeps N warm inside a daily window (local time) only; "replicas min=N
 * max=N" with "target_concurrency N" starts another replica while held plus
 * in-flight requests per READY replica exceed the target, and drains an extra
 * replica that had nothing in flight for idle_timeout. "scale_p99 T for F"
 * starts another once the p99 of the last 10s stayed above T for F, then
 * waits for it to be READY and one more window. Routing to the least
 * busy READY replica is dispatch.c's.
 */
#ifndef WG_SCALE_H
#define WG_SCALE_H

#include "gateway/scale_rule.h"

struct upstream;
struct evhttp_connection;

/* scale_on's reading of one replica slot (scale_gauge.c owns conn). */
struct scale_gauge {
	struct evhttp_connection *conn;	/* to the replica's url; NULL: none yet */
	char url[128];			/* the replica URL conn goes to */
	char host[256];
	char gauge[128];		/* the gauge name, copied (the conf may go on reload) */
	char up_name[128];		/* for the log */
	int idx;
	int pending;			/* a GET /metrics is on its way */
	int have;			/* value is a reading of the replica's current run */
	int warned;			/* the last failure is logged already */
	double value, at;		/* the reading, and when (gw_now) */
	double next;			/* the next GET no earlier than */
};

/* Scaling's part of an upstream (u->scale): made by scale_tick on first use, freed by scale_free. */
struct scale_up {
	struct scale_rule_state rule;	/* scale_on's window and the cooldown */
	struct scale_gauge g[8];	/* UPSTREAM_MAX_REPLICAS: one per replica slot */
	int shown;			/* its gauges are in /metrics: kept up to date (0 once scale_on is gone) */
};

/* scale_gauge.c: fetches the readings on the tick; sums the fresh ones (returns how many). */
void scale_gauge_tick(struct upstream *u, struct scale_up *s, double now);
int scale_gauge_sum(const struct upstream *u, const struct scale_up *s, double now, double *sum);
void scale_gauge_free(struct scale_up *s);
/* /status's "scale" of u: the target in force, the cooldown left, scale_on's mean and window. */
struct json_t;
struct json_t *scale_status_json(const struct upstream *u);
/* Declares scale_on's gauges (at start, with the other upstream metrics). */
struct metrics;
void scale_metrics_declare(struct metrics *m);
/* Frees u->scale (the upstream is being freed). */
void scale_free(struct upstream *u);

/* Replicas to keep warm now: min_warm inside its window (or all day), at least replicas min=. */
int scale_min_warm(const struct upstream *u, double now);
/* 1 when minute-of-day m is in [from, to) (to < from wraps midnight). */
int scale_in_window(int m, int from, int to);
/*
 * scale_p99's decision alone (kubernetes upstreams apply it to the
 * Deployment's count, k8s_scale.c): 1 when one more replica is due now,
 * with ready READY and coming on their way, at most max; why says so for
 * the log. The caller that acts on it sets u->p99_high_since to 0.
 */
int scale_p99_due(struct upstream *u, int ready, int coming, int max, double now, char *why, size_t whylen);
/*
 * scale_on's decision alone, for kubernetes upstreams (the readings are
 * fetched by scale_tick from each READY pod): 1 when one more is due now
 * (logged); *keep: 1 while one fewer would bring the mean above the
 * threshold again (the count must not go down).
 */
int scale_on_due(struct upstream *u, int ready, int coming, int max, double now, int *keep);
/* Every tick, after the replicas' own: wakes for min_warm, scales up or down. */
void scale_tick(struct upstream *u, double now);
/* After a (re)configure: the number of replica slots follows replicas max=. */
void scale_configure(struct upstream *u);

#endif
