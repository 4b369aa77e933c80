/*
 * dispatch: the upstream phase (see dispatch.c): proxy a routed request
 * now, or hold it and wake a replica; drain held requests into READY
 * replicas; answer them when none can come.
 */
#ifndef WG_DISPATCH_H
#define WG_DISPATCH_H

#include "gateway/replica.h"

struct upstream;

/* Registers the upstream phase and the replica subscriber (at start, once). */
void dispatch_init(void);
/* Sets up u's hold queue (when the upstream is made). */
void dispatch_hold_init(struct upstream *u);
/* Wakes a replica for u when none is up or on its way up. */
void dispatch_wake(struct upstream *u, enum replica_cause cause);
/* Drains the hold queue into READY replicas, oldest first, within max_conns. */
void dispatch_drain(struct upstream *u);
/* Answers every held request with code (503 and its reason), Retry-After retry_after when > 0. */
void dispatch_fail_held(struct upstream *u, int code, const char *reason, int retry_after);
/* Every tick: wakes for held requests, and drains after a pause. */
void dispatch_tick(struct upstream *u, double now);
/* The held and active gauges of u. */
void dispatch_gauges(struct upstream *u);

#endif
