/*
 * redis_tls: TLS to Redis for a hiredis (0.14.1) that has none. hiredis
 * connects to a Unix socket in a private directory (mkdtemp in $TMPDIR or
 * /tmp, mode 0700, "wakegate-redis-XXXXXX/redis.sock"); this relay, on the
 * gateway's loop, bridges each connection accepted there to Redis over TLS
 * (libevent's OpenSSL bufferevent), the server's certificate checked against
 * tls_ca (or the system store) and its name against tls_name (or the host).
 * Either side closing or failing closes the other: hiredis sees a disconnect
 * and redis_conn's reconnect and backoff take over.
 *
 * Who owns what: the caller owns the struct redis_tls and frees it with
 * redis_tls_free, which closes every relayed connection, the listener, and
 * removes the socket and the directory. The relay owns its SSL_CTX, its
 * listener, and each connection pair; a pair owns its two bufferevents,
 * the TLS one its SSL and both their fds.
 */
#ifndef WG_REDIS_TLS_H
#define WG_REDIS_TLS_H

#include <stddef.h>

struct event_base;
struct redis_tls;

struct redis_tls_cfg {
	const char *host;	/* as on the redis line: a name, or an address (IPv6 without brackets) */
	int port;
	const char *ca;		/* PEM file of trusted CAs; NULL: the system store */
	const char *name;	/* checked against the certificate; NULL: host */
	const char *cert, *key;	/* PEM client certificate (chain) and key; NULL: none */
};

/* NULL with the reason in err when the directory, the listener or the CA file fails. */
struct redis_tls *redis_tls_new(struct event_base *base, const struct redis_tls_cfg *cfg, char *err, size_t errlen);
void redis_tls_free(struct redis_tls *t);
/* The Unix socket hiredis connects to. */
const char *redis_tls_path(const struct redis_tls *t);
/* Why the last relayed connection failed on the TLS side ("" when it did not):
 * set before the Unix side is closed, so a disconnect can say why. */
const char *redis_tls_error(const struct redis_tls *t);

#endif
