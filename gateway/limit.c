/*
 * limit: limit_req with nginx's semantics (see limit.h): the leaky bucket
 * per key. limit_conn is limit_conn.c's, the key templates limit_key.c's,
 * the state table both use limit_table.c's.
 */
#include "config.h"
#include "gateway/limit_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

const char *limit_status_name(enum limit_status status)
{
	static const char *const names[] = {
		"", "PASSED", "DELAYED", "REJECTED", "DELAYED_DRY_RUN", "REJECTED_DRY_RUN",
	};
	return (unsigned)status < sizeof(names) / sizeof(names[0]) ? names[status] : "";
}

/* As nginx's limit_req_zone: "Nr/s", "Nr/m" or "N"; N > 0. */
int limit_parse_rate(const char *s, size_t len, uint64_t *rate)
{
	uint64_t scale = 1, n = 0;
	if (len >= 3 && strncmp(s + len - 3, "r/s", 3) == 0) {
		len -= 3;
	} else if (len >= 3 && strncmp(s + len - 3, "r/m", 3) == 0) {
		scale = 60;
		len -= 3;
	}
	if (len == 0 || len > 12)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (n == 0 || n * 1000 / scale == 0)
		return -1;
	*rate = n * 1000 / scale;
	return 0;
}

limit_zone *limit_zone_new(const char *name, size_t size, uint64_t rate)
{
	if (size < LIMIT_REQ_STATE_BYTES || rate == 0) {
		errno = EINVAL;
		return NULL;
	}
	limit_zone *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	if (ltable_zone_init(&z->name, &z->t, name, size) < 0) {
		free(z);
		return NULL;
	}
	z->rate = rate;
	return z;
}

void limit_zone_free(limit_zone *zone)
{
	if (!zone)
		return;
	ltable_zone_fini(zone->name, &zone->t);
	free(zone);
}

const char *limit_zone_name(const limit_zone *zone) { return zone->name; }
uint64_t limit_zone_rate(const limit_zone *zone) { return zone->rate; }

void limit_zone_set_rate(limit_zone *zone, uint64_t rate)
{
	if (rate)
		zone->rate = rate;
}

void limit_zone_counters(const limit_zone *zone, struct limit_counters *c)
{
	ltable_counters(&zone->t, c);
}

bool limit_zone_has(const limit_zone *zone, const void *key, size_t keylen)
{
	const struct ltable *t = &zone->t;
	return ltable_find(t, ltable_hash(key, keylen, t->k0, t->k1), key, keylen) != NULL;
}

/* nginx's elapsed time: a clock a little behind counts as 0, far behind as 1. */
static uint64_t elapsed_ms(uint64_t now, uint64_t last)
{
	int64_t ms = (int64_t)(now - last);
	if (ms < -60000)
		return 1;
	if (ms < 0)
		return 0;
	return (uint64_t)ms;
}

/* rate * ms / 1000 without overflow: what the bucket drained in ms. */
static uint64_t drained(uint64_t rate, uint64_t ms)
{
	if (ms && rate > UINT64_MAX / ms)
		return UINT64_MAX;
	return rate * ms / 1000;
}

/* The excess a request at `now` would leave in state s. */
static uint64_t next_excess(const limit_zone *z, const struct lstate *s, uint64_t now)
{
	if (s->fresh)
		return 0;
	uint64_t d = drained(z->rate, elapsed_ms(now, s->last));
	uint64_t have = s->value + 1000;
	return d >= have ? 0 : have - d;
}

/*
 * nginx's ngx_http_limit_req_expire(): force drops the least recently used
 * state first; then up to two more (one or two without force) go if they
 * have been idle a minute and their bucket is empty. A state a check is
 * holding stops the sweep.
 */
static void req_expire(limit_zone *z, uint64_t now, bool force)
{
	struct ltable *t = &z->t;
	for (int i = force ? 0 : 1; i < 3; i++) {
		struct lstate *s = t->tail;
		if (!s || s->pins)
			return;
		if (i != 0 && !s->fresh) {
			int64_t ms = (int64_t)(now - s->last);
			uint64_t a = (uint64_t)(ms < 0 ? -ms : ms);
			if (a < 60000 || s->value > drained(z->rate, a))
				return;
		}
		if (i == 0)
			t->cnt.evicted++;
		ltable_remove(t, s);
	}
}

/* A new state for key, evicting as nginx would; NULL when none fits. */
static struct lstate *req_new_state(limit_zone *z, uint64_t h, const void *key, size_t len, uint64_t now)
{
	size_t cost = ltable_req_cost(len);
	req_expire(z, now, false);
	struct lstate *s = ltable_insert(&z->t, h, key, len, cost);
	if (!s) {
		req_expire(z, now, true);
		s = ltable_insert(&z->t, h, key, len, cost);
	}
	if (s)
		s->fresh = true;
	return s;
}

/*
 * Seconds until a request to s would fit in burst again, rounded up, at
 * least 1: the drain needed is excess + 1000 - burst, counted from last.
 */
static uint32_t retry_after(const limit_zone *z, const struct lstate *s, uint64_t burst_milli, uint64_t now)
{
	if (!s || s->fresh)
		return 1;
	uint64_t need = s->value + 1000 - burst_milli;
	uint64_t total = (need * 1000 + z->rate - 1) / z->rate;
	uint64_t ms = elapsed_ms(now, s->last);
	uint64_t wait = total > ms ? total - ms : 0;
	uint64_t sec = (wait + 999) / 1000;
	if (sec < 1)
		sec = 1;
	return sec > UINT32_MAX ? UINT32_MAX : (uint32_t)sec;
}

/* Per-rule scratch of one check: the state it holds and its new excess. */
struct req_slot {
	struct lstate *s;
	uint64_t excess;
};

enum limit_verdict limit_req_check_many(const struct limit_req_rule *rules, size_t n,
	uint64_t now, bool dry_run, struct limit_req_result *res)
{
	struct req_slot small[16], *slot = small;
	size_t i, j;

	memset(res, 0, sizeof(*res));
	res->verdict = LIMIT_PASS;
	res->status = LIMIT_UNCOUNTED;
	if (n > sizeof(small) / sizeof(small[0])) {
		slot = calloc(n, sizeof(*slot));
		if (!slot) {
			res->zone = rules[0].zone;
			res->retry_after_s = 1;
			goto rejected;
		}
	}

	/* Look every rule up in order; the first that overflows rejects. */
	for (i = 0; i < n; i++) {
		const struct limit_req_rule *r = &rules[i];
		limit_zone *z = r->zone;
		struct ltable *t = &z->t;
		slot[i].s = NULL;
		if (r->keylen == 0 || r->keylen > LIMIT_REQ_KEY_MAX)
			continue;
		uint64_t h = ltable_hash(r->key, r->keylen, t->k0, t->k1);
		struct lstate *s = ltable_find(t, h, r->key, r->keylen);
		uint64_t burst = (uint64_t)r->burst * 1000;
		if (s) {
			ltable_touch(t, s);
			uint64_t e = next_excess(z, s, now);
			if (e > burst) {
				res->zone = z;
				res->excess = e;
				res->retry_after_s = retry_after(z, s, burst, now);
				break;
			}
			slot[i].excess = e;
		} else {
			s = req_new_state(z, h, r->key, r->keylen, now);
			if (!s) {	/* nginx: "could not allocate node" */
				res->zone = z;
				res->retry_after_s = 1;
				break;
			}
			slot[i].excess = 0;
		}
		s->pins++;
		slot[i].s = s;
	}

	if (i < n) {
		/* Roll back: the earlier zones' states were only held. */
		for (j = 0; j < i; j++)
			if (slot[j].s)
				slot[j].s->pins--;
		goto rejected;
	}

	/* Commit, and find the longest delay (the last rule first, as nginx). */
	limit_zone *decider = NULL;
	uint64_t max_delay = 0;
	for (j = n; j-- > 0;) {
		struct lstate *s = slot[j].s;
		if (!s)
			continue;
		limit_zone *z = rules[j].zone;
		uint64_t ms = elapsed_ms(now, s->last);
		s->pins--;
		if (s->fresh || ms)
			s->last = now;
		s->fresh = false;
		s->value = slot[j].excess;
		uint64_t d = rules[j].delay == LIMIT_NODELAY ? UINT64_MAX : (uint64_t)rules[j].delay * 1000;
		if (s->value <= d)
			continue;
		uint64_t delay = (s->value - d) * 1000 / z->rate;
		if (delay > max_delay) {
			max_delay = delay;
			decider = z;
			res->excess = s->value;
		}
	}
	for (j = 0; j < n; j++) {
		if (!slot[j].s)
			continue;
		res->status = LIMIT_PASSED;
		if (rules[j].zone != decider)
			rules[j].zone->t.cnt.passed++;
	}
	if (decider) {
		decider->t.cnt.delayed++;
		res->zone = decider;
		res->status = dry_run ? LIMIT_DELAYED_DRY_RUN : LIMIT_DELAYED;
		if (!dry_run) {
			res->verdict = LIMIT_DELAY;
			res->delay_ms = max_delay;
		}
	}
	if (slot != small)
		free(slot);
	return res->verdict;

rejected:
	if (slot != small)
		free(slot);
	res->zone->t.cnt.rejected++;
	res->status = dry_run ? LIMIT_REJECTED_DRY_RUN : LIMIT_REJECTED;
	res->verdict = dry_run ? LIMIT_PASS : LIMIT_REJECT;
	return res->verdict;
}

enum limit_verdict limit_req_check(limit_zone *zone, const void *key, size_t keylen,
	uint64_t now_ms, uint32_t burst, uint32_t delay, bool dry_run, uint64_t *delay_ms)
{
	struct limit_req_rule r = { zone, key, keylen, burst, delay };
	struct limit_req_result res;
	limit_req_check_many(&r, 1, now_ms, dry_run, &res);
	if (delay_ms)
		*delay_ms = res.delay_ms;
	return res.verdict;
}
