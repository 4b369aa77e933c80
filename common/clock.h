/*
 * clock: the time every program reads. Monotonic for durations and timers,
 * wall for what leaves the process (Redis, /status, logs). The gw_ names
 * are the gateway's, kept so that its modules read as before; they depend
 * on this lower layer, not on the gateway's main.c.
 */
#ifndef WG_COMMON_CLOCK_H
#define WG_COMMON_CLOCK_H

#include <stdint.h>

/* Monotonic seconds, for durations. */
double gw_now(void);
/* Wall clock, ms since the epoch, for Redis and /status. */
int64_t gw_wall_ms(void);

#endif
