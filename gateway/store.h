/*
 * store: the state several gateways share, in Redis (hiredis async on the
 * gateway's libevent loop). Without Redis (store_new with host NULL) or while
 * Redis is away, every call is a cheap no-op or answers from memory; the
 * gateway never waits on Redis to serve a request. Reconnects with backoff
 * and logs the loss and the return once each. Keys start with the prefix
 * ("wakegate:" by default):
 *   PREFIX activity             ZSET upstream -> newest activity, ms since epoch (ZADD GT)
 *   PREFIX replica:UPSTREAM     HASH id -> "STATE URL" per replica
 *   PREFIX stats:UPSTREAM       HASH counters (HINCRBYFLOAT): gpu_seconds, idle_seconds,
 *                               cold_starts, boot_seconds, requests ...
 */
#ifndef WG_STORE_H
#define WG_STORE_H

#include <stdint.h>

struct event_base;
struct store;

struct store *store_new(struct event_base *base, const char *host, int port, const char *prefix);
void store_free(struct store *s);
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

#endif
