/*
 * replay_ladder: two more ways to run one upstream's worker in
 * wakegate-replay's simulated time, each a pure function of the trace:
 *
 * - the clairvoyant oracle, a bound and not a policy: it knows every
 *   arrival, stays up through each gap shorter than one boot, and otherwise
 *   stops and starts again exactly one boot before the next request. No
 *   request ever waits; among the schedules where none waits, it has the
 *   least GPU time (billed per second).
 * - the sleep ladder of the gateway ("sleep level=1 after=T", "sleep
 *   level=2 after=T", idle_timeout): READY -> ASLEEP1 -> ASLEEP2 -> STOPPED
 *   on idle timers counted from the end of the last request's work; a
 *   request at a level waits that level's wake time, one that finds the
 *   process stopped waits a boot. A sleeping process is billed at a
 *   fraction of the GPU's price per level: 1 when the GPU stays rented
 *   while it sleeps, 0 when it is freed for other models.
 *
 * Nothing here allocates; the caller owns every array.
 */
#ifndef WG_REPLAY_LADDER_H
#define WG_REPLAY_LADDER_H

#include "tools/trace.h"

#include <stddef.h>
#include <stdint.h>

/* The ladder's parameters; index 1 and 2 are the levels, 0 is unused. */
struct ladder_conf {
	int64_t after_ms[3];	/* idle time before the level; -1: the level is skipped */
	int64_t stop_ms;	/* idle time before the process stops; -1: never */
	int64_t wake_ms[3];	/* a request's wait to wake from the level */
	double price[3];	/* fraction of the GPU price billed while at the level */
};

/* The defaults the man page gives (wakegate-replay(1), POLICIES). */
void ladder_conf_default(struct ladder_conf *c);

/* Parses "level1=TIME,level2=TIME,stop=TIME,wake1=TIME,wake2=TIME,
 * price1=F,price2=F" (any subset, any order; a level or stop may be "off")
 * over the defaults already in c. Returns 0, or -1 with *err set. */
int ladder_conf_parse(struct ladder_conf *c, const char *opts, const char **err);

/* What one upstream's worker did under the oracle or the ladder. Adds to
 * what is there, so that one struct sums the upstreams of a trace. */
struct ladder_out {
	double billed_ms;	/* price-weighted, each run rounded up to the granularity */
	double alive_ms;	/* the process up, at any level, before rounding */
	double asleep_ms[3];	/* time at level 1 and 2 */
	uint64_t cold;		/* runs that a request waited a boot for */
	uint64_t wakes[3];	/* wakes from level 1 and 2 that a request waited for */
	uint64_t runs;		/* process starts */
};

/* The oracle on q[0..n), one upstream's requests sorted by arrival; each
 * request's wait (always 0) goes to wait[0..n). */
void replay_oracle(const struct trace_req *q, size_t n, int64_t boot_ms, int64_t gran_ms,
	struct ladder_out *out, int64_t *wait);

/* The ladder on q[0..n), sorted by arrival; the last run is cut at
 * span_end (the trace's end) unless work goes on past it. Each request's
 * wait goes to wait[0..n). */
void replay_ladder(const struct ladder_conf *c, const struct trace_req *q, size_t n, int64_t boot_ms,
	int64_t gran_ms, int64_t span_end, struct ladder_out *out, int64_t *wait);

#endif
