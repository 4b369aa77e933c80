/*
 * ratelimit_redis: limit_req buckets kept in Redis ("limit_req_zone ...
 * redis"), so that several gateways share one limit. One EVAL per request
 * runs nginx's leaky bucket (the arithmetic of gateway/limit.c) on every
 * Redis rule of the request at once, with Redis' clock, atomically: the
 * first rule that overflows rejects and nothing is written; otherwise each
 * rule's state is written and the longest delay wins. Keys:
 *   PREFIX limit:ZONE:KEY   HASH e (excess, milli-requests), t (last, ms); expires once drained
 * The connection is this module's own redis_conn (redis_conn.h: AUTH, PING,
 * watchdog); while it is down rlr_ready() is 0 and ratelimit.c uses the
 * local buckets.
 * The loss and the return are logged once each.
 */
#ifndef WG_RATELIMIT_REDIS_H
#define WG_RATELIMIT_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct event_base;

/* Connects (on base's loop) when c has a redis and a zone with "redis", disconnects otherwise. */
void rlr_configure(const struct conf *c, struct event_base *base);
/* 1 while connected: a check can be sent. */
int rlr_ready(void);

struct rlr_rule {
	const char *zone;
	const void *key;
	size_t keylen;		/* > 0 */
	uint64_t rate;		/* milli-requests per second */
	uint32_t burst;
	uint32_t delay;		/* LIMIT_NODELAY for nodelay */
};

struct rlr_answer {
	int verdict;		/* enum limit_verdict, as Redis' bucket decided (also in a dry run) */
	size_t rule;		/* the rule that rejected or set the delay */
	uint64_t excess;	/* its excess, milli-requests */
	uint64_t delay_ms;
	uint32_t retry_after_s;
};

/* a == NULL: Redis failed or went away; the caller decides locally. */
typedef void (*rlr_cb)(const struct rlr_answer *a, void *arg);

/*
 * Sends one check of n rules. Returns a ticket for rlr_cancel(), and cb is
 * then called exactly once, later, on the loop (unless cancelled first);
 * NULL when it could not be sent (cb is never called).
 */
void *rlr_check(const struct rlr_rule *rules, size_t n, rlr_cb cb, void *arg);
/* The caller no longer wants the answer (its client left, or it gave up waiting). */
void rlr_cancel(void *ticket);
/* At exit. */
void rlr_free(void);

#endif
