/*
 * limit_table: the states of one limit zone, in a small hash table with a
 * least-recently-used list; each state is charged what nginx's slab would,
 * so that a zone of N bytes holds as many keys as nginx's would.
 */
#include "config.h"
#include "gateway/limit_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* SipHash-2-4: a seeded hash, so that clients cannot pick colliding keys. */
#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

uint64_t ltable_hash(const unsigned char *p, size_t len, uint64_t k0, uint64_t k1)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, full = len & ~(size_t)7;

	for (i = 0; i < full; i += 8) {
		memcpy(&m, p + i, 8);	/* little-endian hosts; the seed is random anyway */
		v3 ^= m;
		SIPROUND; SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; j < (len & 7); j++)
		b |= (uint64_t)p[full + j] << (8 * j);
	v3 ^= b;
	SIPROUND; SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND; SIPROUND; SIPROUND; SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* What nginx's slab charges for an allocation: the next power of two. */
static size_t slab_cost(size_t bytes)
{
	size_t c = 8;
	while (c < bytes)
		c <<= 1;
	return c;
}

size_t ltable_req_cost(size_t keylen) { return slab_cost(80 + keylen); }
size_t ltable_conn_cost(size_t keylen) { return slab_cost(36 + keylen); }

static int table_init(struct ltable *t, size_t size)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = 16;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		return -1;
	t->size = size;
	t->cnt.size = size;
	if (getrandom(&t->k0, sizeof(t->k0), GRND_NONBLOCK) != sizeof(t->k0) ||
	    getrandom(&t->k1, sizeof(t->k1), GRND_NONBLOCK) != sizeof(t->k1)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t->k0 = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)t;
		t->k1 = (uint64_t)ts.tv_sec ^ 0xda942042e4dd58b5ULL;
	}
	return 0;
}

static void table_fini(struct ltable *t)
{
	struct lstate *s = t->head, *nx;
	for (; s; s = nx) {
		nx = s->next;
		free(s);
	}
	free(t->buckets);
	t->buckets = NULL;
}

struct lstate *ltable_find(const struct ltable *t, uint64_t h, const void *key, size_t len)
{
	struct lstate *s = t->buckets[h & (t->nbuckets - 1)];
	for (; s; s = s->hnext)
		if (s->hash == h && s->keylen == len && memcmp(s->key, key, len) == 0)
			return s;
	return NULL;
}

static void lru_unlink(struct ltable *t, struct lstate *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		t->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		t->tail = s->prev;
	s->prev = s->next = NULL;
}

static void lru_push(struct ltable *t, struct lstate *s)
{
	s->prev = NULL;
	s->next = t->head;
	if (t->head)
		t->head->prev = s;
	else
		t->tail = s;
	t->head = s;
}

void ltable_touch(struct ltable *t, struct lstate *s)
{
	if (t->head == s)
		return;
	lru_unlink(t, s);
	lru_push(t, s);
}

void ltable_remove(struct ltable *t, struct lstate *s)
{
	struct lstate **pp = &t->buckets[s->hash & (t->nbuckets - 1)];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	lru_unlink(t, s);
	t->n--;
	t->used -= s->cost;
	free(s);
}

/* Doubles the bucket array when the table outgrows it; failure only costs speed. */
static void table_grow(struct ltable *t)
{
	size_t nb = t->nbuckets * 2;
	struct lstate **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct lstate *s = t->buckets[i], *nx;
		for (; s; s = nx) {
			nx = s->hnext;
			s->hnext = b[s->hash & (nb - 1)];
			b[s->hash & (nb - 1)] = s;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

/* Adds a state the caller checked does not exist; NULL when it does not fit. */
struct lstate *ltable_insert(struct ltable *t, uint64_t h, const void *key, size_t len, size_t cost)
{
	if (t->used + cost > t->size)
		return NULL;
	struct lstate *s = calloc(1, sizeof(*s) + len);
	if (!s)
		return NULL;
	s->hash = h;
	s->keylen = (uint16_t)len;
	s->cost = (uint32_t)cost;
	memcpy(s->key, key, len);
	if (t->n >= t->nbuckets)
		table_grow(t);
	struct lstate **b = &t->buckets[h & (t->nbuckets - 1)];
	s->hnext = *b;
	*b = s;
	lru_push(t, s);
	t->n++;
	t->used += cost;
	return s;
}

/*
 * What both kinds of zone hold: a copy of the name (NULL: "") and a table.
 * Returns 0, or -1 (errno set) with nothing left to free.
 */
int ltable_zone_init(char **zname, struct ltable *t, const char *name, size_t size)
{
	*zname = strdup(name ? name : "");
	if (!*zname || table_init(t, size) < 0) {
		free(*zname);
		return -1;
	}
	return 0;
}

/* Frees what zone_init made. */
void ltable_zone_fini(char *zname, struct ltable *t)
{
	table_fini(t);
	free(zname);
}

void ltable_counters(const struct ltable *t, struct limit_counters *c)
{
	*c = t->cnt;
	c->states = t->n;
	c->bytes = t->used;
	c->size = t->size;
}
