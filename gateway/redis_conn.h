/*
 * redis_conn: one Redis connection on the gateway's loop (hiredis async),
 * for each module that talks to Redis (store.c, ratelimit_redis.c): connect,
 * AUTH (the password alone, or a Redis 6 ACL user and its password), a PING
 * whose answer alone makes the connection "up" (a Redis that accepts TCP but
 * never answers, or refuses us, is away), a watchdog that drops a connection
 * leaving a command unanswered for REDIS_CONN_STALL_MS, and reconnection with
 * a backoff that doubles from backoff_min_ms to backoff_max_ms. The owner
 * learns of every (re)connection and every failure through its ops, and logs
 * them in its own words.
 *
 * Who owns what: the owner owns the struct redis_conn and frees it with
 * redis_conn_free, never from inside one of its ops or reply callbacks. The
 * struct owns its hiredis context, its two timers and copies of the host and
 * credentials (wiped when freed or replaced). A command sent with
 * redis_conn_send belongs to hiredis until its reply callback has run, which
 * happens exactly once: with the reply, or with r NULL when the connection is
 * lost or freed; c is NULL when the connection is being let go of (dropped,
 * or redis_conn_free), so a callback that needs its owner must not reach it
 * through c then.
 *
 * TLS: hiredis 0.14.1, the version Debian 12 ships (libhiredis-dev 0.14.1-3),
 * has no TLS (hiredis_ssl came with hiredis 1.0.0). With cfg->tls the struct
 * owns a redis_tls relay (redis_tls.h) and hiredis connects to its Unix
 * socket; the relay speaks TLS to Redis. Without it, plain TCP.
 */
#ifndef WG_REDIS_CONN_H
#define WG_REDIS_CONN_H

#include <stddef.h>

struct event_base;
struct redisReply;
struct redis_conn;

#define REDIS_CONN_STALL_MS 2000

struct redis_conn_cfg {
	const char *host;
	int port;
	const char *user;	/* NULL: AUTH with the password alone (requirepass) */
	const char *password;	/* NULL: no AUTH */
	int tls;		/* through the TLS relay (redis_tls.h) */
	const char *tls_ca;	/* NULL: the system store */
	const char *tls_name;	/* NULL: host */
	const char *tls_cert, *tls_key;	/* a client certificate and its key; NULL: none */
	int backoff_min_ms;	/* 0: 100ms */
	int backoff_max_ms;	/* 0: 5s */
};

struct redis_conn_ops {
	/* PING answered: commands can be sent. again: a connection was up before. */
	void (*up)(void *arg, int again);
	/* A connect, AUTH or PING failed, or a live connection was lost (was_up);
	 * a retry is scheduled. why names the cause ("AUTH failed: WRONGPASS ..."). */
	void (*down)(void *arg, const char *why, int was_up);
};

/* r is NULL when the connection was lost or freed; c is NULL while it is being let go of. */
typedef void (*redis_conn_reply_fn)(struct redis_conn *c, struct redisReply *r, void *priv);

/* Starts connecting on the loop's next turn (no op runs inside this call). NULL when out of memory. */
struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_conn_cfg *cfg,
				  const struct redis_conn_ops *ops, void *arg);
/* Pending reply callbacks run (r NULL, c NULL) from inside this call, or later when
 * hiredis defers its teardown; ops are never called again. */
void redis_conn_free(struct redis_conn *c);
/* 1 while up (connected, authenticated, PING answered). */
int redis_conn_up(const struct redis_conn *c);
/* "HOST:PORT", for log lines. */
const char *redis_conn_name(const struct redis_conn *c);

/* New credentials (read again at reload); used from the next connect. A connection
 * that is not up is retried at once, so that a fixed password takes effect now. */
void redis_conn_set_auth(struct redis_conn *c, const char *user, const char *password);

/*
 * Sends argv (argvlen NULL: C strings) while up. 0: sent, fn (may be NULL)
 * is called exactly once later; -1: not sent (not up, out of memory), fn is
 * never called.
 */
int redis_conn_send(struct redis_conn *c, redis_conn_reply_fn fn, void *priv, int argc, const char **argv,
		    const size_t *argvlen);

/* 1 when r is an error reply and the first one on this connection: the caller logs it once. */
int redis_conn_first_error(struct redis_conn *c, const struct redisReply *r);

#endif
