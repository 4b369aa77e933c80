/*
 * rollout: replacing replicas warm-first (issue 16). A replica is replaced
 * when it runs an old version of its upstream (a reload changed the launch,
 * the model_file symlink was flipped, or POST /upstreams/NAME/rollout) or
 * when it crossed a recycle line (memory, requests, age). Either way a new
 * replica is started in a free slot, warmed, and only once it is READY is
 * the old one drained (its in-flight requests finish): traffic never waits
 * on a switch. If the new one fails to boot or warm, the old one keeps
 * serving, the error is logged and kept for /status, and no more tries are
 * made for that version (until the next reload or rollout request).
 * A cold upstream has nothing to replace: its next start is the new version.
 *
 * Ownership: rollout.c owns the recycle fields of each replica (recycle,
 * replacing, the /metrics connection used to read its memory) and the
 * rollout fields of each upstream. It asks replica.c for moves and learns
 * of them by subscribing; upstream.c calls its tick and its free hook.
 */
#ifndef WG_ROLLOUT_H
#define WG_ROLLOUT_H

#include <jansson.h>

struct metrics;
struct upstream;
struct replica;

/* Why a replica is recycled (struct replica's recycle). */
enum { ROLLOUT_RECYCLE_NONE, ROLLOUT_RECYCLE_MEMORY, ROLLOUT_RECYCLE_REQUESTS, ROLLOUT_RECYCLE_AGE };

/* Subscribes to replica moves (once, at start). */
void rollout_init(void);
void rollout_metrics_declare(struct metrics *m);
/* After a conf (start or reload) set u->cf: a changed launch or model file is a new version. */
void rollout_configure(struct upstream *u);
/*
 * POST /upstreams/NAME/rollout: resolves model_file again; a new version if
 * it changed, else a restart of every running replica on the same one (both
 * warm-first). Writes what it did to msg.
 */
void rollout_request(struct upstream *u, char *msg, size_t len);
/* Every tick: recycle lines, then replacements started or finished. */
void rollout_tick(struct upstream *u, double now);
/* Before a replica is freed (its upstream goes): its /metrics connection. */
void rollout_replica_free(struct replica *rep);
/* /status: {"version", "model_file", "generation", "rollout": "idle|switching|failed", "error"} */
void rollout_status_json(const struct upstream *u, json_t *o);
/* /status, per replica: "version", "requests", "memory_bytes", "recycle" */
void rollout_replica_json(const struct replica *rep, json_t *ro);

#endif
