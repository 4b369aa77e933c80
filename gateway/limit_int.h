/*
 * limit_int: what the limit files share (limit.c: limit_req, limit_conn.c,
 * limit_table.c: the keyed state table). Not for the rest of the gateway,
 * which uses limit.h.
 */
#ifndef WG_LIMIT_INT_H
#define WG_LIMIT_INT_H

#include "gateway/limit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A bucket (limit_req) or a connection count (limit_conn) for one key. */
struct lstate {
	struct lstate *hnext;		/* hash chain */
	struct lstate *prev, *next;	/* LRU list, most recent first */
	uint64_t hash;
	uint64_t last;			/* limit_req: ms of the last update */
	uint64_t value;			/* limit_req: excess; limit_conn: count */
	uint32_t pins;			/* limit_req: checks in flight */
	uint32_t cost;			/* bytes charged to the zone */
	uint16_t keylen;
	bool fresh;			/* never updated: excess counts as 0 */
	unsigned char key[];
};

/* The states of one zone. */
struct ltable {
	struct lstate **buckets;
	size_t nbuckets;		/* a power of two */
	size_t n;
	struct lstate *head, *tail;
	size_t size, used;
	uint64_t k0, k1;		/* hash seed: keys come from clients */
	struct limit_counters cnt;
};

struct limit_zone {
	struct ltable t;
	uint64_t rate;
	char *name;
};

struct limit_conn_zone {
	struct ltable t;
	char *name;
};

size_t ltable_conn_cost(size_t keylen);
void ltable_counters(const struct ltable *t, struct limit_counters *c);
struct lstate *ltable_find(const struct ltable *t, uint64_t h, const void *key, size_t len);
uint64_t ltable_hash(const unsigned char *p, size_t len, uint64_t k0, uint64_t k1);
struct lstate *ltable_insert(struct ltable *t, uint64_t h, const void *key, size_t len, size_t cost);
void ltable_remove(struct ltable *t, struct lstate *s);
size_t ltable_req_cost(size_t keylen);
void ltable_touch(struct ltable *t, struct lstate *s);
void ltable_zone_fini(char *zname, struct ltable *t);
int ltable_zone_init(char **zname, struct ltable *t, const char *name, size_t size);

#endif
