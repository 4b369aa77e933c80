/*
 * store: shared state in Redis through hiredis async on the gateway's loop.
 *
 * The connection is "up" only once a PING has been answered, so a Redis that
 * accepts TCP but never answers (stopped, overloaded) is treated as away. A
 * watchdog drops a connection that leaves a command unanswered for
 * STORE_STALL_MS; reconnects back off from 100ms, doubling to 5s.
 *
 * What the gateway writes is kept in memory too, so that Redis catches up
 * when it returns: the newest activity per upstream (written at most once a
 * second each), the last state of each replica, and counter deltas that could
 * not be sent.
 *
 * Safety with hiredis: hiredis calls every pending reply callback with a NULL
 * reply when a context is freed or lost, and then the disconnect callback.
 * ac->data points at the store only while the store owns that context; every
 * callback that needs the store checks it, and a context the store lets go of
 * (dropped, or store_free) gets ac->data = NULL first. A newest-activity call
 * keeps its state in its own privdata (struct store_pend), freed by its reply
 * callback, which hiredis always calls exactly once.
 */
#include "config.h"
#include "gateway/store.h"
#include "gateway/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#define STORE_TIMEOUT_MS 1000	/* a newest-activity answer waits no longer */
#define STORE_STALL_MS 2000	/* no answer this long: drop the connection */
#define STORE_WATCH_MS 250
#define STORE_BACKOFF_MIN_MS 100
#define STORE_BACKOFF_MAX_MS 5000
#define STORE_THROTTLE_MS 1000	/* one activity write a second per upstream */
#define STORE_ACT_BUCKETS 64

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

/*
 * One call in flight (store_newest_activity or a lock command); freed by
 * its reply callback (store_pend_free). It is on its store's list (for
 * store_cancel) until then, or until store_free detaches it (s = NULL) when
 * hiredis defers the teardown.
 */
struct store_pend {
	struct store *s;
	struct store_pend *prev, *next;
	store_activity_cb cb;
	store_lock_cb lcb;	/* set instead of cb for the lock calls */
	void *arg;
	int answered;		/* or cancelled */
	struct event *timer;
};

struct store {
	struct event_base *base;
	char *host;		/* NULL: no Redis */
	int port;
	char *prefix;
	redisAsyncContext *ac;	/* NULL while away */
	int up;			/* PING answered on ac */
	int down_logged;	/* the loss is logged; the return is not yet */
	int ever_up;
	int err_logged;		/* a command error is logged for this connection */
	int inflight;		/* commands sent on ac, not yet answered */
	int64_t busy_since;	/* monotonic ms: connect start or last progress */
	int backoff_ms;
	struct event *retry;	/* reconnect timer */
	struct event *watch;	/* stall watchdog, runs while ac exists */
	struct store_act *acts[STORE_ACT_BUCKETS];
	struct store_rep *reps;
	struct store_stat *stats;
	struct store_pend *pends;
};

static void store_connect(struct store *s);

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

/* The store that owns ac, or NULL when ac is being let go of. */
static struct store *store_of(const redisAsyncContext *ac)
{
	struct store *s = ac->data;
	return s && s->ac == ac ? s : NULL;
}

/* A reply (or a NULL on teardown) arrived for a command sent on ac. */
static void store_progress(const redisAsyncContext *ac)
{
	struct store *s = store_of(ac);
	if (!s)
		return;
	if (s->inflight > 0)
		s->inflight--;
	s->busy_since = store_mono_ms();
}

/* Logs the first command error on a connection (e.g. ZADD GT on Redis < 6.2). */
static void store_check_reply(const redisAsyncContext *ac, const redisReply *r, const char *what)
{
	struct store *s = store_of(ac);
	if (!s || !r || r->type != REDIS_REPLY_ERROR || s->err_logged)
		return;
	s->err_logged = 1;
	log_error("redis %s:%d: %s failed: %s", s->host, s->port, what, r->str);
}

static void store_write_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	store_progress(ac);
	store_check_reply(ac, reply, privdata);
}

/* Sends a write on the live connection; what names it in an error. */
static void store_write(struct store *s, const char *what, int argc, const char **argv)
{
	if (!s->up)
		return;
	if (redisAsyncCommandArgv(s->ac, store_write_cb, (void *)what, argc, argv, NULL) != REDIS_OK)
		return;
	if (s->inflight++ == 0)
		s->busy_since = store_mono_ms();
}

/* The connection is gone or never came: log it once, schedule a retry. */
static void store_down(struct store *s, const char *why)
{
	if (s->up)
		log_warn("redis %s:%d: connection lost: %s, serving from memory", s->host, s->port, why);
	else if (!s->down_logged)
		log_warn("redis %s:%d: cannot connect: %s, serving from memory", s->host, s->port, why);
	else
		log_debug("redis %s:%d: reconnect failed: %s", s->host, s->port, why);
	s->down_logged = 1;
	s->up = 0;
	s->ac = NULL;
	s->inflight = 0;
	evtimer_del(s->watch);
	struct timeval tv;
	store_tv(&tv, s->backoff_ms);
	evtimer_add(s->retry, &tv);
	s->backoff_ms = s->backoff_ms * 2 > STORE_BACKOFF_MAX_MS ? STORE_BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* Lets go of a live context ourselves: stalled, or a bad PING answer. */
static void store_drop(struct store *s, const char *why)
{
	redisAsyncContext *ac = s->ac;
	store_down(s, why);
	ac->data = NULL;
	redisAsyncFree(ac);	/* deferred by hiredis when inside its callback */
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
static void store_up(struct store *s)
{
	if (s->down_logged)
		log_notice("redis %s:%d: connection back", s->host, s->port);
	else if (!s->ever_up)
		log_notice("redis %s:%d: connected", s->host, s->port);
	s->up = 1;
	s->ever_up = 1;
	s->down_logged = 0;
	s->err_logged = 0;
	s->backoff_ms = STORE_BACKOFF_MIN_MS;
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

static void store_ping_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct store *s = store_of(ac);
	store_progress(ac);
	if (!s)
		return;
	redisReply *r = reply;
	if (r && r->type == REDIS_REPLY_STATUS)
		store_up(s);
	else if (r && r->type == REDIS_REPLY_ERROR)
		store_drop(s, r->str);	/* LOADING, NOAUTH...: try again later */
	else
		store_drop(s, ac->errstr ? ac->errstr : "connection closed");
}

static void store_on_connect(const redisAsyncContext *ac, int status)
{
	struct store *s = store_of(ac);
	if (!s)
		return;
	if (status != REDIS_OK) {
		store_down(s, ac->errstr);	/* hiredis frees ac after this */
		return;
	}
	if (redisAsyncCommand(s->ac, store_ping_cb, NULL, "PING") != REDIS_OK) {
		store_drop(s, "cannot send PING");
		return;
	}
	s->inflight++;
	s->busy_since = store_mono_ms();
}

static void store_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct store *s = store_of(ac);
	if (s)
		store_down(s, status == REDIS_OK ? "closed by server" : ac->errstr);
}

static void store_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	store_connect(arg);
}

static void store_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;
	if (!s->ac || (s->up && s->inflight == 0))
		return;
	if (store_mono_ms() - s->busy_since > STORE_STALL_MS)
		store_drop(s, s->up ? "no answer in 2s" : "no answer to connect in 2s");
}

static void store_connect(struct store *s)
{
	redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
	if (!ac) {
		store_down(s, "out of memory");
		return;
	}
	if (ac->err) {
		store_down(s, ac->errstr);
		redisAsyncFree(ac);
		return;
	}
	ac->data = s;
	if (redisLibeventAttach(ac, s->base) != REDIS_OK) {
		store_down(s, "cannot attach to the loop");
		ac->data = NULL;
		redisAsyncFree(ac);
		return;
	}
	redisAsyncSetConnectCallback(ac, store_on_connect);
	redisAsyncSetDisconnectCallback(ac, store_on_disconnect);
	s->ac = ac;
	s->busy_since = store_mono_ms();
	struct timeval tv;
	store_tv(&tv, STORE_WATCH_MS);
	evtimer_add(s->watch, &tv);
}

struct store *store_new(struct event_base *base, const char *host, int port, const char *prefix)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base = base;
	s->port = port;
	s->backoff_ms = STORE_BACKOFF_MIN_MS;
	s->prefix = strdup(prefix ? prefix : "wakegate:");
	if (!s->prefix)
		goto fail;
	if (!host)
		return s;
	s->host = strdup(host);
	s->retry = evtimer_new(base, store_retry_cb, s);
	s->watch = event_new(base, -1, EV_PERSIST, store_watch_cb, s);
	if (!s->host || !s->retry || !s->watch)
		goto fail;
	store_connect(s);
	return s;
fail:
	if (s->retry)
		event_free(s->retry);
	if (s->watch)
		event_free(s->watch);
	free(s->host);
	free(s->prefix);
	free(s);
	return NULL;
}

/*
 * Pending newest-activity callers are answered -1 from inside this call (by
 * hiredis tearing the context down); s stays valid until they have run.
 */
void store_free(struct store *s)
{
	if (!s)
		return;
	s->up = 0;
	if (s->ac) {
		redisAsyncContext *ac = s->ac;
		s->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	for (struct store_pend *p = s->pends; p; p = p->next)
		p->s = NULL;	/* hiredis deferred the teardown: it frees them later */
	if (s->retry)
		event_free(s->retry);
	if (s->watch)
		event_free(s->watch);
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
	free(s->host);
	free(s->prefix);
	free(s);
}

int store_connected(const struct store *s)
{
	return s && s->up;
}

static void store_act_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store_act *a = arg;
	if (a->dirty && a->s->up)
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
	if (!s || !s->host)
		return;
	struct store_act *a = store_act_get(s, upstream);
	if (!a || now_ms <= a->value)
		return;
	a->value = now_ms;
	a->dirty = 1;
	if (!s->up)
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

/* Takes p off its store's list (if still attached) and frees it: for its reply callback only. */
static void store_pend_free(struct store_pend *p)
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

/*
 * Sends argv with p as its pending call. On success p is on s's list with
 * its timeout armed and fn (a reply callback) owns it; on failure p is
 * freed here and the caller answers its own cb. s must be up.
 */
static int store_pend_send(struct store *s, struct store_pend *p, redisCallbackFn *fn,
			   int argc, const char **argv)
{
	p->timer = evtimer_new(s->base, store_pend_timeout_cb, p);
	if (!p->timer ||
	    redisAsyncCommandArgv(s->ac, fn, p, argc, argv, NULL) != REDIS_OK) {
		if (p->timer)
			event_free(p->timer);
		free(p);
		return -1;
	}
	if (s->inflight++ == 0)
		s->busy_since = store_mono_ms();
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

static void store_zscore_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct store_pend *p = privdata;
	redisReply *r = reply;
	int64_t ms = -1;
	store_progress(ac);
	store_check_reply(ac, r, "ZSCORE");
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
	if (!s || !s->up) {
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
	if (!s || !s->host)
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
	if (!s || !s->host)
		return;
	if (s->up) {
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

static void store_call_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct store_call *c = privdata;
	redisReply *r = reply;
	store_progress(ac);
	store_check_reply(ac, r, c->get ? "GET" : "HGETALL");
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
	if (s && s->up && redisAsyncCommandArgv(s->ac, store_call_cb, c, argc, argv, NULL) == REDIS_OK) {
		if (s->inflight++ == 0)
			s->busy_since = store_mono_ms();
		return;
	}
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
	if (!s || !s->up)
		return;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	const char *argv[] = { "SET", k, value };
	store_write(s, "SET", 3, argv);
}

void store_hincrby(struct store *s, const char *key, const char *field, long long n)
{
	if (!s || !s->up)
		return;
	char k[512], num[32];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	snprintf(num, sizeof(num), "%lld", n);
	const char *argv[] = { "HINCRBY", k, field, num };
	store_write(s, "HINCRBY", 4, argv);
}

int store_enabled(const struct store *s)
{
	return s && s->host;
}

/*
 * The replica locks (see store.h). Values are "TOKEN STATE URL"; a script
 * compares the TOKEN prefix so that only the holder renews or releases.
 */
static const char store_lua_acquire[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v then return {0, v, redis.call('PTTL', KEYS[1])} end "
	"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
	"return {1, ARGV[1], tonumber(ARGV[2])}";
static const char store_lua_renew[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then "
	"redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return {1, ARGV[2], tonumber(ARGV[3])} end "
	"if v then return {0, v, redis.call('PTTL', KEYS[1])} end "
	"return {0, '', -2}";
static const char store_lua_release[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then "
	"redis.call('DEL', KEYS[1]) return {1, '', -2} end "
	"return {0, v or '', -2}";
static const char store_lua_get[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v then return {0, v, redis.call('PTTL', KEYS[1])} end "
	"return {0, '', -2}";

static void store_lock_key(const struct store *s, const char *upstream, int replica, char *key, size_t len)
{
	if (replica == 0)
		snprintf(key, len, "%slock:%s", s->prefix, upstream);
	else
		snprintf(key, len, "%slock:%s:%d", s->prefix, upstream, replica);
}

/* Reply of a lock script: {held by the caller, value or "", PTTL}. */
static void store_lock_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct store_pend *p = privdata;
	redisReply *r = reply;
	int status = -1;
	char *value = NULL;
	int64_t pttl = -2;
	store_progress(ac);
	store_check_reply(ac, r, "lock");
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING &&
	    r->element[2]->type == REDIS_REPLY_INTEGER) {
		status = r->element[0]->integer ? 1 : 0;
		if (*r->element[1]->str)
			value = strdup(r->element[1]->str);
		pttl = r->element[2]->integer;
	}
	int answered = p->answered;
	store_lock_cb cb = p->lcb;
	void *arg = p->arg;
	store_pend_free(p);
	if (!answered && cb)
		cb(status, value, pttl, arg);
	free(value);
}

/* Sends one lock command; cb (may be NULL) is answered exactly once unless cancelled. */
static void store_lock_send(struct store *s, int argc, const char **argv, store_lock_cb cb, void *arg)
{
	if (!s || !s->up) {
		if (cb)
			cb(-1, NULL, -2, arg);
		return;
	}
	struct store_pend *p = calloc(1, sizeof(*p));
	if (!p) {
		if (cb)
			cb(-1, NULL, -2, arg);
		return;
	}
	p->lcb = cb;
	p->arg = arg;
	p->answered = cb == NULL;
	if (store_pend_send(s, p, store_lock_reply_cb, argc, argv) < 0 && cb)
		cb(-1, NULL, -2, arg);
}

void store_lock_acquire(struct store *s, const char *upstream, int replica, const char *value,
			int64_t ttl_ms, store_lock_cb cb, void *arg)
{
	char key[512], ttl[32];
	if (s)
		store_lock_key(s, upstream, replica, key, sizeof(key));
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	const char *argv[] = { "EVAL", store_lua_acquire, "1", key, value, ttl };
	store_lock_send(s, 6, argv, cb, arg);
}

void store_lock_renew(struct store *s, const char *upstream, int replica, const char *token,
		      const char *value, int64_t ttl_ms, store_lock_cb cb, void *arg)
{
	char key[512], ttl[32];
	if (s)
		store_lock_key(s, upstream, replica, key, sizeof(key));
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	const char *argv[] = { "EVAL", store_lua_renew, "1", key, token, value, ttl };
	store_lock_send(s, 7, argv, cb, arg);
}

void store_lock_release(struct store *s, const char *upstream, int replica, const char *token)
{
	char key[512];
	if (!s)
		return;
	store_lock_key(s, upstream, replica, key, sizeof(key));
	const char *argv[] = { "EVAL", store_lua_release, "1", key, token };
	store_lock_send(s, 5, argv, NULL, NULL);
}

void store_lock_get(struct store *s, const char *upstream, int replica, store_lock_cb cb, void *arg)
{
	char key[512];
	if (s)
		store_lock_key(s, upstream, replica, key, sizeof(key));
	const char *argv[] = { "EVAL", store_lua_get, "1", key };
	store_lock_send(s, 4, argv, cb, arg);
}

void store_hsetnx(struct store *s, const char *key, const char *field, const char *value)
{
	if (!s || !s->up)
		return;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	const char *argv[] = { "HSETNX", k, field, value };
	store_write(s, "HSETNX", 4, argv);
}

void store_hdel(struct store *s, const char *key, const char *field)
{
	if (!s || !s->up)
		return;
	char k[512];
	snprintf(k, sizeof(k), "%s%s", s->prefix, key);
	const char *argv[] = { "HDEL", k, field };
	store_write(s, "HDEL", 3, argv);
}
