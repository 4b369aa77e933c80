/*
 * tls: OpenSSL for the gateway, both ways.
 *
 * Server side: the SSL_CTX of a "listen ... ssl" listener, built from its
 * server's ssl_certificate, ssl_certificate_key, ssl_protocols and
 * ssl_ciphers (server.c owns it; a reload builds a new one and swaps it in,
 * and connections already open keep the old one through their SSL's ref).
 * The other ssl servers on the same listener are chosen by SNI (server_name).
 *
 * Client side: connections to replicas whose URL is https:// (url= of the
 * command, http and kubernetes launchers, or "tls on" for exec). One client
 * SSL_CTX per (tls_ca, tls_verify), cached until the next reload. Every
 * connection sends SNI (a DNS name) and, with tls_verify on (the default),
 * checks the chain against tls_ca (or the system's CAs) and the name or IP
 * against the certificate.
 */
#ifndef WG_TLS_H
#define WG_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct bufferevent;
struct conf;
struct conf_server;
struct conf_upstream;
struct event_base;
struct evhttp_connection;
struct proxy_pool;

/*
 * The SSL_CTX of server s (settings not in s come from main c). The caller
 * owns it (SSL_CTX_free). NULL with a message ending in "in FILE:LINE".
 */
SSL_CTX *tls_server_ctx_new(const struct conf *c, const struct conf_server *s, char *err, size_t errlen);

/*
 * Another "listen ... ssl" server s on the listener whose default context
 * (its first server's) is def: a client that asks for s's server_name by
 * SNI gets s's certificate, others def's. The new context is owned by def
 * and freed with it. 0 (also when s has no server_name), or -1 with err.
 */
int tls_server_sni_add(SSL_CTX *def, const struct conf *c, const struct conf_server *s, char *err, size_t errlen);

/*
 * Builds (and frees) every context c needs: a bad certificate, a key that
 * does not match it, a cipher string OpenSSL rejects, an unreadable tls_ca.
 * 0, or -1 with a message naming FILE:LINE. For -t, start and reload.
 */
int tls_conf_check(const struct conf *c, char *err, size_t errlen);

/* 1 when url starts with https:// */
int tls_url_is_https(const char *url);

/*
 * A connection pool to the replica at url (host, port split from it): TLS
 * when url is https://, plain otherwise. Owned by the caller (proxy_pool_free).
 */
struct proxy_pool *tls_pool_new(struct event_base *base, const struct conf_upstream *cf,
				const char *url, const char *host, int port);

/* An evhttp client connection to url (for health polls): TLS when https://. NULL on error. */
struct evhttp_connection *tls_http_connection_new(struct event_base *base, const struct conf_upstream *cf,
						  const char *url, const char *host, int port);

/*
 * Why the TLS connection under c failed ("TLS: certificate verify failed
 * (unable to get local issuer certificate)"), or NULL when it is not a TLS
 * connection or TLS has nothing to say. buf holds the text. *permanent: 1
 * when retrying cannot help (an untrusted certificate, a peer that does not
 * speak TLS), 0 for what a booting peer may still fix.
 */
const char *tls_connection_error(struct evhttp_connection *c, char *buf, size_t len, int *permanent);

/* Drops the cached client contexts (a reload: tls_ca files may have changed); open connections keep theirs. */
void tls_client_flush(void);

#endif
