/*
 * store_lock: the replica locks of the fleet (see store.h and fleet.h), as
 * Lua scripts run atomically by Redis. Values are "TOKEN STATE URL TTL"; a
 * script compares the TOKEN prefix so that only the holder renews or
 * releases. Each call is a struct store_pend of store.c's, answered once.
 */
#include "config.h"
#include "gateway/store_int.h"
#include "gateway/redis_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

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
	if (replica == STORE_LOCK_SCALE)
		snprintf(key, len, "%slock:%s:scale", s->prefix, upstream);
	else if (replica == 0)
		snprintf(key, len, "%slock:%s", s->prefix, upstream);
	else
		snprintf(key, len, "%slock:%s:%d", s->prefix, upstream, replica);
}

/* Reply of a lock script: {held by the caller, value or "", PTTL}. */
static void store_lock_reply_cb(struct redis_conn *c, redisReply *r, void *privdata)
{
	struct store_pend *p = privdata;
	int status = -1;
	char *value = NULL;
	int64_t pttl = -2;
	store_check_reply(c, r, "lock");
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
	if (!s || !redis_conn_up(s->conn)) {
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
