/* limit_conn: connection counts per key with nginx's semantics (see limit.h). */
#include "config.h"
#include "gateway/limit_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

limit_conn_zone *limit_conn_zone_new(const char *name, size_t size)
{
	if (size < LIMIT_CONN_STATE_BYTES) {
		errno = EINVAL;
		return NULL;
	}
	limit_conn_zone *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	if (ltable_zone_init(&z->name, &z->t, name, size) < 0) {
		free(z);
		return NULL;
	}
	return z;
}

void limit_conn_zone_free(limit_conn_zone *zone)
{
	if (!zone)
		return;
	ltable_zone_fini(zone->name, &zone->t);
	free(zone);
}

const char *limit_conn_zone_name(const limit_conn_zone *zone) { return zone->name; }

void limit_conn_zone_counters(const limit_conn_zone *zone, struct limit_counters *c)
{
	ltable_counters(&zone->t, c);
}

static struct lstate *conn_find(const limit_conn_zone *zone, const void *key, size_t keylen, uint64_t *h)
{
	const struct ltable *t = &zone->t;
	*h = ltable_hash(key, keylen, t->k0, t->k1);
	return ltable_find(t, *h, key, keylen);
}

int limit_conn_acquire(limit_conn_zone *zone, const void *key, size_t keylen, uint32_t max)
{
	struct ltable *t = &zone->t;
	uint64_t h;
	if (keylen == 0 || keylen > LIMIT_CONN_KEY_MAX)
		return 0;
	struct lstate *s = conn_find(zone, key, keylen, &h);
	if (s) {
		if (s->value >= max) {
			t->cnt.rejected++;
			return -1;
		}
	} else {
		s = max ? ltable_insert(t, h, key, keylen, ltable_conn_cost(keylen)) : NULL;
		if (!s) {
			t->cnt.rejected++;
			return -1;
		}
	}
	s->value++;
	t->cnt.passed++;
	return 0;
}

void limit_conn_release(limit_conn_zone *zone, const void *key, size_t keylen)
{
	uint64_t h;
	if (keylen == 0 || keylen > LIMIT_CONN_KEY_MAX)
		return;
	struct lstate *s = conn_find(zone, key, keylen, &h);
	if (!s)
		return;
	if (--s->value == 0)
		ltable_remove(&zone->t, s);
}

uint32_t limit_conn_count(const limit_conn_zone *zone, const void *key, size_t keylen)
{
	uint64_t h;
	if (keylen == 0 || keylen > LIMIT_CONN_KEY_MAX)
		return 0;
	struct lstate *s = conn_find(zone, key, keylen, &h);
	return s ? (uint32_t)s->value : 0;
}
