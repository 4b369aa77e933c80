/*
 * schedule: "prewarm schedule" (issue 6). Every request is counted per
 * minute in Redis (HINCRBY PREFIX minute:UPSTREAM EPOCH_MINUTE N, where
 * EPOCH_MINUTE is minutes since 1970-01-01 UTC; fields older than 8 days are
 * deleted). A minute of the day (the gateway's local time) is busy when it
 * had at least one request on at least SCHEDULE_MIN_DAYS of the last
 * SCHEDULE_DAYS whole days (today not counted). A busy stretch starts at a
 * busy minute whose previous minute is not busy; the upstream is woken
 * (a pre-warm, not a cold start) LEAD minutes before each start, where LEAD
 * is the measured boot + warmup rounded up to whole minutes (at least 1;
 * 30s until one is measured, so 1); a start up to a minute past is still
 * woken for (a gateway that has just come up). A replica so woken stays up, if no
 * request comes, until idle_timeout after the start of the stretch (or
 * longer if the keep-alive says so). The table is read from Redis every 10
 * minutes and at each new day.
 *
 * The same counts of the last 7 whole local days give the time-of-day
 * keep-alive plan of "keepalive adaptive" (policy_tod.h), made again each
 * time the table is read (for an adaptive upstream with tod=on, whatever
 * its prewarm setting), never per request.
 */
#ifndef WG_SCHEDULE_H
#define WG_SCHEDULE_H

#include <stddef.h>

#define SCHEDULE_DAYS 7
#define SCHEDULE_DEFAULT_BOOT_MS 30000	/* boot + warmup until one is measured */
#define SCHEDULE_MIN_DAYS 4	/* at least half of the 7 days */

struct upstream;
struct json_t;
struct policy_tod;
struct policy_conf;

/* A request arrived at u (counted whatever u's prewarm setting: the counts are the history). */
void schedule_count(const struct upstream *u);
/* Once a second, from keepalive.c: flush the counts, refresh the table, wake when due. */
/*
 * Every second: flushes the counts, reads the table, and says whether the
 * schedule wants a pre-warm now: 1 with why and how long the replica should
 * stay up (hold_s); the caller wakes it and calls schedule_woke().
 */
int schedule_tick(struct upstream *u, char *why, size_t whylen, double *hold_s);
void schedule_woke(const struct upstream *u);
/* 1 once after a new time-of-day plan came: the keep-alive decides again. */
int schedule_replanned(const struct upstream *u);
/* The policy conf of u (fixed: idle_timeout; boot time: measured, 30s until
 * then): the one place it is made, for the keep-alive decision and the plan. */
void schedule_policy_conf(const struct upstream *u, struct policy_conf *pc);
/* The busy table's summary for /status; a new object, or NULL when schedule is off. */
struct json_t *schedule_status_json(const struct upstream *u);
/* u's time-of-day plan, owned by the schedule until the next read; NULL
 * when u has none (not adaptive, tod=off, or not read from Redis yet). */
const struct policy_tod *schedule_tod(const struct upstream *u);
/* The time-of-day slot (policy_tod_slot()) of the gateway's local time now. */
int schedule_tod_slot(void);
/* The plan for /status: a new object, or NULL when u is not adaptive. */
struct json_t *schedule_tod_json(const struct upstream *u);
/* Frees u's part (when the upstream goes). */
void schedule_free(struct upstream *u);

#endif
