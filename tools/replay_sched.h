/*
 * replay_sched: the wakes that "prewarm schedule" (gateway/schedule.c) would
 * make for one upstream, in the simulated time of a trace. It learns only
 * from whole days before the day it is in, like the gateway.
 */
#ifndef WG_REPLAY_SCHED_H
#define WG_REPLAY_SCHED_H

#include "gateway/policy_tod.h"
#include "tools/trace.h"

#include <stddef.h>
#include <stdint.h>

/* Wake times (ms, ascending) for the requests q[0..n) of one upstream,
 * sorted by arrival, between start_ms and end_ms. Trace time 0 is a
 * midnight (so epoch timestamps give UTC days). Returns the count and sets
 * *out to an array the caller frees (NULL when none); -1 when out of memory. */
long replay_sched_wakes(const struct trace_req *q, size_t n, int64_t start_ms, int64_t end_ms,
	int64_t boot_ms, int64_t **out);

/*
 * The time-of-day keep-alive of "keepalive adaptive" (gateway/policy_tod.h)
 * in simulated time: per-minute request counts of the trace, and a plan
 * made at the start of each day from the 7 days before it, as the gateway
 * makes it from the counts it keeps in Redis. Day d's weekday is
 * (wday0 + d) % 7 for d = floor(t_ms / 1 day), 0 = Sunday.
 */
struct replay_tod {
	const struct policy_conf *pc;
	uint32_t *counts;	/* owned: counts[(d - d0) * 1440 + minute] */
	int64_t d0, nd;		/* first day, number of days */
	int wday0;
	int64_t day;		/* the day plan is for; INT64_MIN: none yet */
	struct policy_tod plan;
};

/* 0, or -1 when out of memory (or the trace spans more than a century). */
int replay_tod_init(struct replay_tod *t, const struct policy_conf *pc, const struct trace_req *q,
	size_t n, int wday0);
void replay_tod_free(struct replay_tod *t);

/* The decision for an idle period that starts at idle_ms, given
 * policy_decide()'s d: policy_tod_apply() with the plan of idle_ms's day. */
struct policy_decision replay_tod_decide(struct replay_tod *t, struct policy_decision d, int64_t idle_ms);

#endif
