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

/* Hooks: a replica's process was launched / ended (replica.c); a held request left the queue after s seconds. */
void cost_run_start(const struct replica *rep);
void cost_run_end(const struct replica *rep);
void cost_hold(const struct upstream *u, double s);

/* The figures /status shows for u, as a new JSON object (the caller owns it). */
struct json_t *cost_status_json(const struct upstream *u);

void cost_free_all(void);

#endif
