/*
 * store: the state several gateways share, in Redis (hiredis async on the
 * gateway's libevent loop). Without Redis (store_new with host NULL) or while
 * Redis is away, every call is a cheap no-op or answers from memory; the
 * gateway never waits on Redis to serve a request. The connection (AUTH,
 * reconnects with backoff) is a redis_conn (redis_conn.h); the store logs its
 * loss and its return once each. Keys start with the prefix
 * ("wakegate:" by default):
 *   PREFIX activity             ZSET upstream -> newest activity, ms since epoch (ZADD GT)
 *   PREFIX replica:UPSTREAM     HASH id -> "STATE URL" per replica
 *   PREFIX stats:UPSTREAM       HASH counters (HINCRBYFLOAT): gpu_seconds, idle_seconds,
 *                               cold_starts, boot_seconds, requests ...
 *   PREFIX hist:UPSTREAM        STRING the idle-gap histogram (policy_hist_format)
 *   PREFIX minute:UPSTREAM      HASH minute of the week (UTC) -> requests, all weeks
 *   PREFIX lock:UPSTREAM[:N]    STRING "TOKEN STATE URL TTL" with PX expiry: the gateway that
 *                               runs replica N (":N" left out for replica 0); see fleet.h
 *   PREFIX lock:UPSTREAM:scale  STRING "TOKEN scale" with PX expiry: the gateway that writes a
 *                               kubernetes upstream's Deployment count (k8s_fleet.c)
 *   PREFIX k8s:UPSTREAM         HASH gateway TOKEN -> "LOAD ACTIVITY_MS WALL_MS": each gateway's
 *                               held + in-flight requests, newest activity, when written
 *   PREFIX k8s:UPSTREAM:patched STRING the count the API server last accepted
 */
#ifndef WG_STORE_H
#define WG_STORE_H

#include <stdint.h>

struct event_base;
struct redis_conn_cfg;
struct store;

/* rc NULL or rc->host NULL: no Redis. rc's strings are copied. */
struct store *store_new(struct event_base *base, const struct redis_conn_cfg *rc, const char *prefix);
void store_free(struct store *s);
/* The credentials read again at reload (password=FILE); used from the next connect. */
void store_set_auth(struct store *s, const char *user, const char *password);
int store_connected(const struct store *s);

/* Records activity now_ms for upstream; writes to Redis at most once a second per upstream. */
void store_activity(struct store *s, const char *upstream, int64_t now_ms);

/* cb(ms, arg): the newest activity across gateways, or -1 when unknown (no Redis, error, none yet).
 * Always called exactly once, on the loop, possibly before store_newest_activity returns when
 * there is no connection. */
typedef void (*store_activity_cb)(int64_t ms, void *arg);
void store_newest_activity(struct store *s, const char *upstream, store_activity_cb cb, void *arg);
/* Forgets the pending store_newest_activity calls made with arg: their cb is never called.
 * For an owner about to free arg (reload, shutdown). Added by the store module. */
void store_cancel(struct store *s, void *arg);

void store_replica_state(struct store *s, const char *upstream, int replica, const char *state,
			 const char *url);
void store_add(struct store *s, const char *upstream, const char *field, double v);

/* 1 when a Redis is configured (connected or not). */
int store_enabled(const struct store *s);

/*
 * Replica locks, for several gateways in front of the same workers (fleet.c);
 * in store_lock.c.
 * cb(status, value, pttl_ms, arg): status 1: the caller holds the lock (value:
 * what it holds now); 0: it does not (value: the holder's "TOKEN STATE URL
 * TTL", or NULL when nobody holds it); -1: unknown (no Redis, error, no answer
 * in 1s). pttl_ms: the lock's remaining time, -2 when unknown or none.
 * value is only valid during the call. cb runs exactly once, on the loop
 * (at once when there is no connection), unless store_cancel(s, arg) came first.
 */
typedef void (*store_lock_cb)(int status, const char *value, int64_t pttl_ms, void *arg);
/* replica STORE_LOCK_SCALE: the lock of the Deployment count's writer (k8s_fleet.c), not a replica's. */
#define STORE_LOCK_SCALE (-1)
/* SET NX PX, atomically answering the holder's value when it is taken. */
void store_lock_acquire(struct store *s, const char *upstream, int replica, const char *value,
			int64_t ttl_ms, store_lock_cb cb, void *arg);
/* Rewrites value and expiry only while value starts with "TOKEN ". */
void store_lock_renew(struct store *s, const char *upstream, int replica, const char *token,
		      const char *value, int64_t ttl_ms, store_lock_cb cb, void *arg);
/* Deletes the lock only while token holds it; fire and forget. */
void store_lock_release(struct store *s, const char *upstream, int replica, const char *token);
/* Reads who holds it and for how long: cb(0, value or NULL, pttl) or cb(-1). */
void store_lock_get(struct store *s, const char *upstream, int replica, store_lock_cb cb, void *arg);

/*
 * Plain keys for the keep-alive policy and the pre-warm schedule (issue 6);
 * key is appended to the prefix. Writes are dropped while Redis is away (the
 * callers rewrite them). store_get's cb gets the string value, or NULL when
 * the key is missing, on an error, without Redis or on teardown; it is called
 * exactly once, possibly before store_get returns.
 */
typedef void (*store_get_cb)(const char *value, void *arg);
void store_get(struct store *s, const char *key, store_get_cb cb, void *arg);
void store_set(struct store *s, const char *key, const char *value);
void store_hincrby(struct store *s, const char *key, const char *field, long long n);
void store_hsetnx(struct store *s, const char *key, const char *field, const char *value);
void store_hdel(struct store *s, const char *key, const char *field);
void store_hset(struct store *s, const char *key, const char *field, const char *value);
/* HGETALL: cb(fields, values, n, arg); n 0 and NULL arrays when missing or away. Once, as store_get. */
typedef void (*store_hash_cb)(const char *const *fields, const char *const *values, int n, void *arg);
void store_hgetall(struct store *s, const char *key, store_hash_cb cb, void *arg);

#endif
