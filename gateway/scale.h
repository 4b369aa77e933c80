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

struct upstream;

/* Replicas to keep warm now: min_warm inside its window (or all day), at least replicas min=. */
int scale_min_warm(const struct upstream *u, double now);
/* 1 when minute-of-day m is in [from, to) (to < from wraps midnight). */
int scale_in_window(int m, int from, int to);
/* Every tick, after the replicas' own: wakes for min_warm, scales up or down. */
void scale_tick(struct upstream *u, double now);
/* After a (re)configure: the number of replica slots follows replicas max=. */
void scale_configure(struct upstream *u);

#endif
