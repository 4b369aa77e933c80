/*
 * split_phase: the split phase (phase.h, after auth and model, before the
 * limits). In a location with "split KEY { ... }" it evaluates KEY for the
 * request (the variables limit_req_zone keys read, ratelimit.c), hashes it
 * as nginx's split_clients does (split.c) and sets r->up to the bucket's
 * upstream; the request then goes its usual way: limits, degrade rules,
 * hold or forward, waking that upstream when it is cold. A key no bucket
 * takes keeps the location's proxy_pass. Counts
 * wakegate_split_requests_total{upstream}. Owns nothing: the split is the
 * conf's, the request stays the engine's.
 */
#ifndef WG_SPLIT_PHASE_H
#define WG_SPLIT_PHASE_H

/* Registers the split phase and declares its metric (at start, once, after gw.metrics is made). */
void split_phase_init(void);

#endif
