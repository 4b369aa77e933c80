/*
 * store: shared state in Redis through one redis_conn (connect, AUTH, PING,
 * watchdog, backoff: see redis_conn.h) on the gateway's loop. The replica
 * locks are in store_lock.c.
 *
 * What the gateway writes is kept in memory too, so that Redis catches up
 * when it returns: the newest activity per upstream (written at most once a
 * second each), the last state of each replica, and counter deltas that could
 * not be sent.
 *
 * A newest-activity call keeps its state in its own privdata (struct
 * store_pend), freed by its reply callback, which redis_conn calls exactly
 * once; the callback gets c NULL while the connection is being let go of,
 * and then does not touch the store through it.
 */
#include "config.h"
#include "gateway/store_int.h"
#include "gateway/redis_conn.h"
#include "gateway/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#define STORE_TIMEOUT_MS 1000	/* a newest-activity answer waits no longer */
#define STORE_THROTTLE_MS 1000	/* one activity write a second per upstream */

/* The newest activity of one upstream, and its write throttle. */
struct store_act {
	struct store *s;
	char *upstream;
	int64_t value;		/* newest ms seen */
	int64_t last_write;	/* monotonic ms of the last ZADD, 0: never */
	int dirty;		/* value not yet written */
	struct event *timer;	/* the delayed write */
	struct store_act *next;
};

/* The last state written for one replica, rewritten when Redis returns. */
struct store_rep {
	char *upstream;
	int id;
	char *value;		/* "STATE URL" */
	struct store_rep *next;
};

/* A counter delta that could not be sent while Redis was away. */
struct store_stat {
	char *upstream;
	char *field;
	double delta;
	struct store_stat *next;
};

static int64_t store_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void store_tv(struct timeval *tv, int64_t ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

static int store_up_now(const struct store *s)
{
	return s && redis_conn_up(s->conn);
}

void store_check_reply(struct redis_conn *c, const redisReply *r, const char *what)
{
	if (redis_conn_first_error(c, r))
		log_error("redis %s: %s failed: %s", redis_conn_name(c), what, r->str);
}

static void store_write_cb(struct redis_conn *c, redisReply *r, void *privdata)
{
	store_check_reply(c, r, privdata);
}

/* Sends a write on the live connection; what names it in an error. */
static void store_write(struct store *s, const char *what, int argc, const char **argv)
{
	redis_conn_send(s->conn, store_write_cb, (void *)what, argc, argv, NULL);
}

/* The connection is gone or never came: log it once (redis_conn retries). */
static void store_on_down(void *arg, const char *why, int was_up)
{
	struct store *s = arg;
	const char *name = redis_conn_name(s->conn);
	if (was_up)
		log_warn("redis %s: connection lost: %s, serving from memory", name, why);
	else if (!s->down_logged)
		log_warn("redis %s: cannot connect: %s, serving from memory", name, why);
	else
		log_debug("redis %s: reconnect failed: %s", name, why);
	s->down_logged = 1;
}

static void store_act_write(struct store *s, struct store_act *a, int64_t mono)
{
	char v[32];
	snprintf(v, sizeof(v), "%lld", (long long)a->value);
	char key[512];
	snprintf(key, sizeof(key), "%sactivity", s->prefix);
	const char *argv[] = { "ZADD", key, "GT", v, a->upstream };
	store_write(s, "ZADD", 5, argv);
	a->last_write = mono;
	a->dirty = 0;
}

static void store_rep_write(struct store *s, const struct store_rep *r)
{
	char key[512], id[16];
	snprintf(key, sizeof(key), "%sreplica:%s", s->prefix, r->upstream);
	snprintf(id, sizeof(id), "%d", r->id);
	const char *argv[] = { "HSET", key, id, r->value };
	store_write(s, "HSET", 4, argv);
}

static void store_stat_write(struct store *s, const char *upstream, const char *field, double v)
{
	char key[512], num[64];
	snprintf(key, sizeof(key), "%sstats:%s", s->prefix, upstream);
	snprintf(num, sizeof(num), "%.17g", v);
	const char *argv[] = { "HINCRBYFLOAT", key, field, num };
	store_write(s, "HINCRBYFLOAT", 4, argv);
}
/* PING answered: Redis is back. Catch up on what was kept in memory. */
static void store_on_up(void *arg, int again)
{
	struct store *s = arg;
	if (s->down_logged)
		log_notice("redis %s: connection back", redis_conn_name(s->conn));
	else if (!again)
		log_notice("redis %s: connected", redis_conn_name(s->conn));
	s->down_logged = 0;
	int64_t mono = store_mono_ms();
	for (int i = 0; i < STORE_ACT_BUCKETS; i++)
		for (struct store_act *a = s->acts[i]; a; a = a->next)
			if (a->value > 0)
				store_act_write(s, a, mono);
	for (struct store_rep *r = s->reps; r; r = r->next)
		store_rep_write(s, r);
	while (s->stats) {
		struct store_stat *st = s->stats;
		s->stats = st->next;
		store_stat_write(s, st->upstream, st->field, st->delta);
		free(st->upstream);
		free(st->field);
		free(st);
	}
}

static const struct redis_conn_ops store_conn_ops = { store_on_up, store_on_down };

struct store *store_new(struct event_base *base, const struct redis_conn_cfg *rc, const char *prefix)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base = base;
	s->prefix = strdup(prefix ? prefix : "wakegate:");
	if (!s->prefix)
		goto fail;
	if (!rc || !rc->host)
		return s;
	s->conn = redis_conn_new(base, rc, &store_conn_ops, s);
	if (!s->conn)
		goto fail;
	return s;
fail:
	free(s->prefix);
	free(s);
	return NULL;
}

void store_set_auth(struct store *s, const char *user, const char *password)
{
	if (s && s->conn)
		redis_conn_set_auth(s->conn, user, password);
}

/*
 * Pending newest-activity callers are answered -1 from inside this call (by
 * hiredis tearing the context down); s stays valid until they have run.
 */
void store_free(struct store *s)
{
	if (!s)
		return;
	redis_conn_free(s->conn);
	s->conn = NULL;
	for (struct store_pend *p = s->pends; p; p = p->next)
		p->s = NULL;	/* hiredis deferred the teardown: it frees them later */
	for (int i = 0; i < STORE_ACT_BUCKETS; i++) {
		while (s->acts[i]) {
			struct store_act *a = s->acts[i];
			s->acts[i] = a->next;
			event_free(a->timer);
			free(a->upstream);
			free(a);
		}
	}
	while (s->reps) {
		struct store_rep *r = s->reps;
		s->reps = r->next;
		free(r->upstream);
		free(r->value);
		free(r);
	}
	while (s->stats) {
		struct store_stat *st = s->stats;
		s->stats = st->next;
		free(st->upstream);
		free(st->field);
		free(st);
	}
	free(s->prefix);
	free(s);
}

int store_connected(const struct store *s)
{
	return store_up_now(s);
}

static void store_act_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store_act *a = arg;
	if (a->dirty && store_up_now(a->s))
		store_act_write(a->s, a, store_mono_ms());
}

static unsigned store_hash(const char *str)
{
	unsigned h = 2166136261u;
	for (; *str; str++)
		h = (h ^ (unsigned char)*str) * 16777619u;
	return h;
}

/* The activity record of upstream, made on first use; owned by s. */
static struct store_act *store_act_get(struct store *s, const char *upstream)
{
	unsigned b = store_hash(upstream) % STORE_ACT_BUCKETS;
	for (struct store_act *a = s->acts[b]; a; a = a->next)
		if (strcmp(a->upstream, upstream) == 0)
			return a;
	struct store_act *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->s = s;
	a->upstream = strdup(upstream);
	a->timer = evtimer_new(s->base, store_act_timer_cb, a);
	if (!a->upstream || !a->timer) {
		if (a->timer)
			event_free(a->timer);
		free(a->upstream);
		free(a);
		return NULL;
	}
	a->next = s->acts[b];
	s->acts[b] = a;
	return a;
}

/* Called per request and per streamed chunk: no allocation after the first. */
void store_activity(struct store *s, const char *upstream, int64_t now_ms)
{
	if (!s || !s->conn)
		return;
	struct store_act *a = store_act_get(s, upstream);
	if (!a || now_ms <= a->value)
		return;
	a->value = now_ms;
	a->dirty = 1;
	if (!store_up_now(s))
		return;		/* written when Redis is back */
	int64_t mono = store_mono_ms();
	int64_t since = mono - a->last_write;
	if (a->last_write == 0 || since >= STORE_THROTTLE_MS) {
		store_act_write(s, a, mono);
	} else if (!evtimer_pending(a->timer, NULL)) {
		struct timeval tv;
		store_tv(&tv, STORE_THROTTLE_MS - since);
		evtimer_add(a->timer, &tv);
	}
}

/* Answers a pending call; the caller's cb runs last, after all cleanup. */
static void store_pend_answer(struct store_pend *p, int64_t ms)
{
	if (p->answered)
		return;
	p->answered = 1;
	if (p->lcb)
		p->lcb(-1, NULL, -2, p->arg);
	else
		p->cb(ms, p->arg);
}

static void store_pend_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	store_pend_answer(arg, -1);	/* p stays for its reply callback */
}

void store_pend_free(struct store_pend *p)
{
	if (p->s) {
		if (p->prev)
			p->prev->next = p->next;
		else
			p->s->pends = p->next;
		if (p->next)
			p->next->prev = p->prev;
	}
	event_free(p->timer);
	free(p);
}

int store_pend_send(struct store *s, struct store_pend *p, store_pend_fn fn, int argc, const char **argv)
{
	p->timer = evtimer_new(s->base, store_pend_timeout_cb, p);
	if (!p->timer || redis_conn_send(s->conn, fn, p, argc, argv, NULL) < 0) {
		if (p->timer)
			event_free(p->timer);
		free(p);
		return -1;
	}
	p->s = s;
	p->next = s->pends;
	if (s->pends)
		s->pends->prev = p;
	s->pends = p;
	struct timeval tv;
	store_tv(&tv, STORE_TIMEOUT_MS);
	evtimer_add(p->timer, &tv);
	return 0;
}

static void store_zscore_cb(struct redis_conn *conn, redisReply *r, void *privdata)
{
	struct store_pend *p = privdata;
	int64_t ms = -1;
	store_check_reply(conn, r, "ZSCORE");
	if (r && r->type == REDIS_REPLY_STRING)
		ms = (int64_t)strtod(r->str, NULL);
	int answered = p->answered;
	store_activity_cb cb = p->cb;
	void *arg = p->arg;
	store_pend_free(p);
	if (!answered)
		cb(ms, arg);
}

void store_newest_activity(struct store *s, const char *upstream, store_activity_cb cb, void *arg)
{
	if (!store_up_now(s)) {
		cb(-1, arg);
		return;
	}
	struct store_pend *p = calloc(1, sizeof(*p));
	if (!p) {
		cb(-1, arg);
		return;
	}
	p->cb = cb;
	p->arg = arg;
	char key[512];
	snprintf(key, sizeof(key), "%sactivity", s->prefix);
	const char *argv[] = { "ZSCORE", key, upstream };
	if (store_pend_send(s, p, store_zscore_cb, 3, argv) < 0)
		cb(-1, arg);
}

void store_cancel(struct store *s, void *arg)
{
	if (!s)
		return;
	for (struct store_pend *p = s->pends; p; p = p->next) {
		if (p->arg == arg && !p->answered) {
			p->answered = 1;
			evtimer_del(p->timer);
		}
	}
}

void store_replica_state(struct store *s, const char *upstream, int replica, const char *state,
			 const char *url)
{
	if (!s || !s->conn)
		return;
	struct store_rep *r;
	for (r = s->reps; r; r = r->next)
		if (r->id == replica && strcmp(r->upstream, upstream) == 0)
			break;
	if (!r) {
		if (!(r = calloc(1, sizeof(*r))) || !(r->upstream = strdup(upstream))) {
			free(r);
			return;
		}
		r->id = replica;
		r->next = s->reps;
		s->reps = r;
	}
	char *v;
	int n = url && *url ? asprintf(&v, "%s %s", state, url) : asprintf(&v, "%s", state);
	if (n < 0)
		return;
	free(r->value);
	r->value = v;
	store_rep_write(s, r);
}

void store_add(struct store *s, const char *upstream, const char *field, double v)
{
	if (!s || !s->conn)
		return;
	if (store_up_now(s)) {
		store_stat_write(s, upstream, field, v);
		return;
	}
	struct store_stat *st;
	for (st = s->stats; st; st = st->next)
		if (strcmp(st->upstream, upstream) == 0 && strcmp(st->field, field) == 0)
			break;
	if (!st) {
		if (!(st = calloc(1, sizeof(*st))))
			return;
		st->upstream = strdup(upstream);
		st->field = strdup(field);
		if (!st->upstream || !st->field) {
			free(st->upstream);
			free(st->field);
			free(st);
			return;
		}
		st->next = s->stats;
		s->stats = st;
	}
	st->delta += v;
}

/* The caller's callback of a store_get/store_hgetall in flight: owned by hiredis' reply callback. */
struct store_call {
	store_get_cb get;
	store_hash_cb hash;
	void *arg;
};

static void store_call_cb(struct redis_conn *conn, redisReply *r, void *privdata)
{
	struct store_call *c = privdata;
	store_check_reply(conn, r, c->get ? "GET" : "HGETALL");
	if (c->get) {
		c->get(r && r->type == REDIS_REPLY_STRING ? r->str : NULL, c->arg);
	} else if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
		int n = (int)(r->elements / 2);
		const char **f = calloc((size_t)n, sizeof(*f)), **v = calloc((size_t)n, sizeof(*v));
		int k = 0;
		for (int i = 0; f && v && i < n; i++) {
			const redisReply *a = r->element[2 * i], *b = r->element[2 * i + 1];
			if (a->type == REDIS_REPLY_STRING && b->type == REDIS_REPLY_STRING) {
				f[k] = a->str;
				v[k++] = b->str;
			}
		}
		c->hash(f && v ? f : NULL, f && v ? v : NULL, f && v ? k : 0, c->arg);
		free(f);
		free(v);
	} else {
		c->hash(NULL, NULL, 0, c->arg);
	}
	free(c);
}

/* Sends one read whose answer goes to c; answers c at once (nothing) when it cannot. */
static void store_read(struct store *s, struct store_call *c, int argc, const char **argv)
{
	if (store_up_now(s) && redis_conn_send(s->conn, store_call_cb, c, argc, argv, NULL) == 0)
		return;
	if (c->get)
		c->get(NULL, c->arg);
	else
		c->hash(NULL, NULL, 0, c->arg);
	free(c);
}

void store_get(struct store *s, const char *key, store_get_cb cb, void *arg)
{
	struct store_call *c = calloc(1, sizeof(*c));
	if (!c) {
		cb(NULL, arg);
		return;
	}
	c->get = cb;
	c->arg = arg;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s ? s->prefix : "", key);
	const char *argv[] = { "GET", k };
	store_read(s, c, 2, argv);
}

void store_hgetall(struct store *s, const char *key, store_hash_cb cb, void *arg)
{
	struct store_call *c = calloc(1, sizeof(*c));
	if (!c) {
		cb(NULL, NULL, 0, arg);
		return;
	}
	c->hash = cb;
	c->arg = arg;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s ? s->prefix : "", key);
	const char *argv[] = { "HGETALL", k };
	store_read(s, c, 2, argv);
}

void store_set(struct store *s, const char *key, const char *value)
{
	if (!store_up_now(s))
		return;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	const char *argv[] = { "SET", k, value };
	store_write(s, "SET", 3, argv);
}

void store_hincrby(struct store *s, const char *key, const char *field, long long n)
{
	if (!store_up_now(s))
		return;
	char k[512], num[32];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	snprintf(num, sizeof(num), "%lld", n);
	const char *argv[] = { "HINCRBY", k, field, num };
	store_write(s, "HINCRBY", 4, argv);
}

int store_enabled(const struct store *s)
{
	return s && s->conn;
}

void store_hsetnx(struct store *s, const char *key, const char *field, const char *value)
{
	if (!store_up_now(s))
		return;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	const char *argv[] = { "HSETNX", k, field, value };
	store_write(s, "HSETNX", 4, argv);
}

void store_hset(struct store *s, const char *key, const char *field, const char *value)
{
	if (!store_up_now(s))
		return;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	const char *argv[] = { "HSET", k, field, value };
	store_write(s, "HSET", 4, argv);
}

void store_hdel(struct store *s, const char *key, const char *field)
{
	if (!store_up_now(s))
		return;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	const char *argv[] = { "HDEL", k, field };
	store_write(s, "HDEL", 3, argv);
}
