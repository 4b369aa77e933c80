/*
 * limit: limit_req and limit_conn with nginx's semantics (see limit.h).
 * States live in a small hash table per zone with a least-recently-used
 * list; the table charges each state what nginx's slab would, so that a
 * zone of N bytes holds as many keys as nginx's would.
 */
#include "config.h"
#include "gateway/limit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

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

/* SipHash-2-4: a seeded hash, so that clients cannot pick colliding keys. */
#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

static uint64_t siphash(const unsigned char *p, size_t len, uint64_t k0, uint64_t k1)
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

static size_t req_cost(size_t keylen) { return slab_cost(80 + keylen); }
static size_t conn_cost(size_t keylen) { return slab_cost(36 + keylen); }

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

static struct lstate *table_find(const struct ltable *t, uint64_t h, const void *key, size_t len)
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

static void lru_touch(struct ltable *t, struct lstate *s)
{
	if (t->head == s)
		return;
	lru_unlink(t, s);
	lru_push(t, s);
}

static void table_remove(struct ltable *t, struct lstate *s)
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
static struct lstate *table_insert(struct ltable *t, uint64_t h, const void *key, size_t len, size_t cost)
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
static int zone_init(char **zname, struct ltable *t, const char *name, size_t size)
{
	*zname = strdup(name ? name : "");
	if (!*zname || table_init(t, size) < 0) {
		free(*zname);
		return -1;
	}
	return 0;
}

/* Frees what zone_init made. */
static void zone_fini(char *zname, struct ltable *t)
{
	table_fini(t);
	free(zname);
}

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
	if (zone_init(&z->name, &z->t, name, size) < 0) {
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
	zone_fini(zone->name, &zone->t);
	free(zone);
}

const char *limit_zone_name(const limit_zone *zone) { return zone->name; }
uint64_t limit_zone_rate(const limit_zone *zone) { return zone->rate; }

void limit_zone_set_rate(limit_zone *zone, uint64_t rate)
{
	if (rate)
		zone->rate = rate;
}

static void counters_of(const struct ltable *t, struct limit_counters *c)
{
	*c = t->cnt;
	c->states = t->n;
	c->bytes = t->used;
	c->size = t->size;
}

void limit_zone_counters(const limit_zone *zone, struct limit_counters *c)
{
	counters_of(&zone->t, c);
}

bool limit_zone_has(const limit_zone *zone, const void *key, size_t keylen)
{
	const struct ltable *t = &zone->t;
	return table_find(t, siphash(key, keylen, t->k0, t->k1), key, keylen) != NULL;
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
		table_remove(t, s);
	}
}

/* A new state for key, evicting as nginx would; NULL when none fits. */
static struct lstate *req_new_state(limit_zone *z, uint64_t h, const void *key, size_t len, uint64_t now)
{
	size_t cost = req_cost(len);
	req_expire(z, now, false);
	struct lstate *s = table_insert(&z->t, h, key, len, cost);
	if (!s) {
		req_expire(z, now, true);
		s = table_insert(&z->t, h, key, len, cost);
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
		uint64_t h = siphash(r->key, r->keylen, t->k0, t->k1);
		struct lstate *s = table_find(t, h, r->key, r->keylen);
		uint64_t burst = (uint64_t)r->burst * 1000;
		if (s) {
			lru_touch(t, s);
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

limit_conn_zone *limit_conn_zone_new(const char *name, size_t size)
{
	if (size < LIMIT_CONN_STATE_BYTES) {
		errno = EINVAL;
		return NULL;
	}
	limit_conn_zone *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	if (zone_init(&z->name, &z->t, name, size) < 0) {
		free(z);
		return NULL;
	}
	return z;
}

void limit_conn_zone_free(limit_conn_zone *zone)
{
	if (!zone)
		return;
	zone_fini(zone->name, &zone->t);
	free(zone);
}

const char *limit_conn_zone_name(const limit_conn_zone *zone) { return zone->name; }

void limit_conn_zone_counters(const limit_conn_zone *zone, struct limit_counters *c)
{
	counters_of(&zone->t, c);
}

static struct lstate *conn_find(const limit_conn_zone *zone, const void *key, size_t keylen, uint64_t *h)
{
	const struct ltable *t = &zone->t;
	*h = siphash(key, keylen, t->k0, t->k1);
	return table_find(t, *h, key, keylen);
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
		s = max ? table_insert(t, h, key, keylen, conn_cost(keylen)) : NULL;
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
		table_remove(&zone->t, s);
}

uint32_t limit_conn_count(const limit_conn_zone *zone, const void *key, size_t keylen)
{
	uint64_t h;
	if (keylen == 0 || keylen > LIMIT_CONN_KEY_MAX)
		return 0;
	struct lstate *s = conn_find(zone, key, keylen, &h);
	return s ? (uint32_t)s->value : 0;
}

/* Key templates: literal runs and variables, as nginx's complex values. */
struct key_part {
	bool is_var;
	enum limit_var var;
	char *text;		/* literal text, or the name passed to the callback */
	size_t len;
};

struct limit_key {
	struct key_part *parts;
	size_t n;
	char *src;
};

static const struct {
	const char *name;
	enum limit_var var;
} key_vars[] = {
	{ "binary_remote_addr", LIMIT_VAR_BINARY_REMOTE_ADDR },
	{ "remote_addr", LIMIT_VAR_REMOTE_ADDR },
	{ "host", LIMIT_VAR_HOST },
	{ "uri", LIMIT_VAR_URI },
	{ "request_uri", LIMIT_VAR_REQUEST_URI },
	{ "server_name", LIMIT_VAR_SERVER_NAME },
};

static int key_add(limit_key *k, bool is_var, enum limit_var var, const char *text, size_t len)
{
	struct key_part *p = realloc(k->parts, (k->n + 1) * sizeof(*p));
	if (!p)
		return -1;
	k->parts = p;
	p = &k->parts[k->n];
	p->is_var = is_var;
	p->var = var;
	p->len = len;
	p->text = malloc(len + 1);
	if (!p->text)
		return -1;
	memcpy(p->text, text, len);
	p->text[len] = '\0';
	k->n++;
	return 0;
}

static bool var_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Resolves a variable name to its kind; for $http_NAME makes "name-with-dashes". */
static int key_add_var(limit_key *k, const char *name, size_t len, char *err, size_t errlen)
{
	char low[256];
	if (len >= sizeof(low)) {
		snprintf(err, errlen, "unknown \"%.*s\" variable", (int)len, name);
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		low[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
	low[len] = '\0';
	if (len > 5 && strncmp(low, "http_", 5) == 0) {
		for (size_t i = 5; i < len; i++)
			if (low[i] == '_')
				low[i] = '-';
		if (key_add(k, true, LIMIT_VAR_HTTP, low + 5, len - 5) < 0)
			goto nomem;
		return 0;
	}
	for (size_t i = 0; i < sizeof(key_vars) / sizeof(key_vars[0]); i++) {
		if (strcmp(low, key_vars[i].name) == 0) {
			if (key_add(k, true, key_vars[i].var, low, len) < 0)
				goto nomem;
			return 0;
		}
	}
	snprintf(err, errlen, "unknown \"%.*s\" variable", (int)len, name);
	return -1;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

limit_key *limit_key_compile(const char *src, char *err, size_t errlen)
{
	limit_key *k = calloc(1, sizeof(*k));
	if (!k || !(k->src = strdup(src))) {
		free(k);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	const char *p = src;
	while (*p) {
		if (*p != '$') {
			const char *q = p;
			while (*q && *q != '$')
				q++;
			if (key_add(k, false, 0, p, (size_t)(q - p)) < 0) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			p = q;
			continue;
		}
		p++;
		const char *name = p;
		size_t len;
		if (*p == '{') {
			name = ++p;
			while (var_char(*p))
				p++;
			len = (size_t)(p - name);
			if (*p != '}') {
				snprintf(err, errlen, "the closing bracket in \"%.*s\" variable is missing",
					(int)len, name);
				goto fail;
			}
			p++;
		} else {
			while (var_char(*p))
				p++;
			len = (size_t)(p - name);
		}
		if (len == 0) {
			snprintf(err, errlen, "invalid variable name in \"%s\"", src);
			goto fail;
		}
		if (key_add_var(k, name, len, err, errlen) < 0)
			goto fail;
	}
	return k;
fail:
	limit_key_free(k);
	return NULL;
}

void limit_key_free(limit_key *key)
{
	if (!key)
		return;
	for (size_t i = 0; i < key->n; i++)
		free(key->parts[i].text);
	free(key->parts);
	free(key->src);
	free(key);
}

const char *limit_key_source(const limit_key *key) { return key->src; }

bool limit_key_is_constant(const limit_key *key)
{
	for (size_t i = 0; i < key->n; i++)
		if (key->parts[i].is_var)
			return false;
	return true;
}

ssize_t limit_key_eval(const limit_key *key, limit_var_fn fn, void *arg, void *buf, size_t bufsize)
{
	unsigned char *out = buf;
	size_t len = 0;
	for (size_t i = 0; i < key->n; i++) {
		const struct key_part *p = &key->parts[i];
		const void *val = p->text;
		size_t vlen = p->len;
		if (p->is_var) {
			val = NULL;
			vlen = 0;
			fn(arg, p->var, p->text, p->len, &val, &vlen);
			if (!val)
				vlen = 0;
		}
		if (vlen > bufsize - len)
			return -1;
		if (vlen)
			memcpy(out + len, val, vlen);
		len += vlen;
	}
	return (ssize_t)len;
}
