/*
 * replay_sched: the wakes that "prewarm schedule" (gateway/schedule.c) would
 * make for one upstream, in the simulated time of a trace. It learns only
 * from whole days before the day it is in, like the gateway.
 */
#ifndef WG_REPLAY_SCHED_H
#define WG_REPLAY_SCHED_H

#include "tools/trace.h"

#include <stddef.h>
#include <stdint.h>

/* Wake times (ms, ascending) for the requests q[0..n) of one upstream,
 * sorted by arrival, between start_ms and end_ms. Trace time 0 is a
 * midnight (so epoch timestamps give UTC days). Returns the count and sets
 * *out to an array the caller frees (NULL when none); -1 when out of memory. */
long replay_sched_wakes(const struct trace_req *q, size_t n, int64_t start_ms, int64_t end_ms,
	int64_t boot_ms, int64_t **out);

#endif
