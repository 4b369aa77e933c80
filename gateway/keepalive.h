/*
 * keepalive: when an idle replica stops and when it is woken ahead of
 * traffic (issue 6), around the pure policy in policy.h.
 *
 * An idle gap of an upstream is the time from the end of its last request
 * (the moment nothing is in flight and nothing is held) to the arrival of
 * the next request. Every upstream records its gaps; "keepalive adaptive"
 * acts on them: when the upstream goes idle, policy_decide() says how long
 * the replica stays up and whether to wake it again (a pre-warm) before the
 * next request is due. The histogram lives in Redis (PREFIX hist:UPSTREAM,
 * policy_hist_format()'s string), read at start and merged with the new
 * gaps every few seconds, so it survives restarts and gateways share it.
 * State is kept in the upstream (u->ka: it survives a reload) until
 * keepalive_free().
 */
#ifndef WG_KEEPALIVE_H
#define WG_KEEPALIVE_H

#include <stdint.h>
#include "gateway/replica.h"

struct upstream;
struct metrics;
struct json_t;
struct policy_conf;
struct policy_hist;

void keepalive_metrics_declare(struct metrics *m);

/* Hooks from dispatch.c: a request arrived (before it is forwarded or held); a request ended. */
void keepalive_on_request(struct upstream *u);
void keepalive_on_done(struct upstream *u);

/*
 * Every tick (upstream.c): stops an idle READY replica after the keep-alive
 * time (cause idle), and once a second syncs the gaps with Redis, decides
 * again when the conf or the time-of-day plan changed, and wakes for the
 * schedule.
 */
void keepalive_tick(struct upstream *u, double now);

/* How long u's READY replicas may stay idle now, in ms (idle_timeout unless adaptive). */
int64_t keepalive_idle_ms(const struct upstream *u);


/*
 * Wakes a replica of u ahead of traffic (a pre-warm: counted in
 * wakegate_prewarms_total, not as a cold start) unless one is up or on its
 * way; why goes to the log. Until a request comes, an idle replica then
 * stays up at least hold_s seconds from now. 0 when a replica was woken.
 */
int keepalive_prewarm(struct upstream *u, enum replica_cause cause, const char *why, double hold_s);

/* The policy, its last decision, the gaps and the time-of-day plan, as a new JSON object for /status. */
struct json_t *keepalive_status_json(const struct upstream *u);

/* u's idle gaps (what eviction reads: gpu.c), or NULL before the first request. */
const struct policy_hist *keepalive_hist(const struct upstream *u);

/* Frees u's part and its schedule's (when the upstream goes). */
void keepalive_free(struct upstream *u);

#endif
