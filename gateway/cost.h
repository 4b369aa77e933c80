/*
 * cost: what each upstream's replicas cost (issue 6). A run is one replica
 * process from its launch to its end; each run is billed rounded UP to the
 * upstream's billing_granularity (1s, 1m, 1h), as a cloud bills it. The
 * always-on comparison is one replica running, as one run, from the time
 * this gateway first saw the upstream (its start, or the reload that added
 * it) to now, rounded the same way. Counters are this gateway's since it
 * started (Prometheus' way); the store keeps the lifetime sums. The state is
 * kept by upstream name, so it survives a reload; cost_free_all() at exit.
 */
#ifndef WG_COST_H
#define WG_COST_H

struct upstream;
struct replica;
struct metrics;
struct json_t;

void cost_metrics_declare(struct metrics *m);

/* Subscribes to the replicas' process events: a launch starts a run, an exit bills it (at start, once). */
void cost_init(void);
/* A held request left the queue after s seconds (dispatch.c). */
void cost_hold(const struct upstream *u, double s);
/* Every tick (upstream.c): refreshes u's gauges once a second. */
void cost_tick(struct upstream *u, double now);

/* The figures /status shows for u, as a new JSON object (the caller owns it). */
struct json_t *cost_status_json(const struct upstream *u);

/* Frees u's part (when the upstream goes). */
void cost_free(struct upstream *u);

#endif
