/*
 * tls: SSL_CTX building for listeners and for connections to replicas; see
 * tls.h. OpenSSL's refcounting does the lifetime work: every SSL holds a
 * ref on its SSL_CTX, so whoever drops a context (a reload, a pool freed)
 * calls SSL_CTX_free and connections still using it keep it alive.
 */
#include "config.h"
#include "gateway/tls.h"
#include "gateway/conf.h"
#include "gateway/log.h"
#include "gateway/proxy.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenSSL's queued errors as one line ("reason: reason"); clears the queue. */
static const char *tls_ossl_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t n = 0;
	buf[0] = 0;
	while ((e = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(e);
		char tmp[256];
		if (!r) {
			ERR_error_string_n(e, tmp, sizeof(tmp));
			r = tmp;
		}
		if (n < len && !strstr(buf, r))
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ": " : "", r);
	}
	return buf[0] ? buf : "unknown OpenSSL error";
}

static int tls_proto_version(int bit)
{
	switch (bit) {
	case CONF_TLS_V1: return TLS1_VERSION;
	case CONF_TLS_V1_1: return TLS1_1_VERSION;
	case CONF_TLS_V1_2: return TLS1_2_VERSION;
	default: return TLS1_3_VERSION;
	}
}

/* ssl_protocols as min/max, with SSL_OP_NO_* for a gap ("TLSv1 TLSv1.2"). 0 or -1. */
static int tls_set_protocols(SSL_CTX *ctx, int mask)
{
	static const long no[] = { SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1, SSL_OP_NO_TLSv1_2, SSL_OP_NO_TLSv1_3 };
	int lo = -1, hi = -1;
	for (int i = 0; i < 4; i++)
		if (mask & (1 << i)) {
			if (lo < 0)
				lo = i;
			hi = i;
		}
	if (lo < 0)
		return -1;
	if (SSL_CTX_set_min_proto_version(ctx, tls_proto_version(1 << lo)) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, tls_proto_version(1 << hi)) != 1)
		return -1;
	for (int i = lo + 1; i < hi; i++)
		if (!(mask & (1 << i)))
			SSL_CTX_set_options(ctx, no[i]);
	return 0;
}

/* " in FILE:LINE" of w, else of fallback (the server block), else "". */
static void tls_where(const struct conf_where *w, const struct conf_where *fallback, char *buf, size_t len)
{
	if (!w || !w->file)
		w = fallback;
	if (w && w->file)
		snprintf(buf, len, " in %s:%d", w->file, w->line);
	else
		buf[0] = 0;
}

SSL_CTX *tls_server_ctx_new(const struct conf *c, const struct conf_server *s, char *err, size_t errlen)
{
	char oe[512], at[300];
	const struct conf_where *cert_at = &s->ssl_certificate_at;
	if (!s->ssl_certificate || !s->ssl_certificate_key) {
		tls_where(cert_at, &s->ssl_certificate_key_at, at, sizeof(at));
		snprintf(err, errlen, "no \"ssl_certificate\" and \"ssl_certificate_key\" for an ssl listener%s", at);
		return NULL;
	}
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new() failed: %s", tls_ossl_errors(oe, sizeof(oe)));
		return NULL;
	}
	/* main's where the server has none (conf_tls_inherit); the rows' defaults where neither has */
	int protos = s->ssl_protocols;
	const struct conf_where *pat = &s->ssl_protocols_at;
	const char *ciphers = s->ssl_ciphers;
	const struct conf_where *cat = &s->ssl_ciphers_at;
	if (tls_set_protocols(ctx, protos) < 0) {
		tls_where(pat, cert_at, at, sizeof(at));
		snprintf(err, errlen, "ssl_protocols not supported by this OpenSSL: %s%s",
			 tls_ossl_errors(oe, sizeof(oe)), at);
		goto fail;
	}
	/* TLS 1.3 suites are OpenSSL's defaults: ssl_ciphers covers TLS 1.2 and older, as in nginx */
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		tls_where(cat, cert_at, at, sizeof(at));
		snprintf(err, errlen, "invalid ssl_ciphers \"%s\": %s%s", ciphers, tls_ossl_errors(oe, sizeof(oe)), at);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, s->ssl_certificate) != 1) {
		tls_where(cert_at, NULL, at, sizeof(at));
		snprintf(err, errlen, "cannot load certificate \"%s\": %s%s", s->ssl_certificate,
			 tls_ossl_errors(oe, sizeof(oe)), at);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, s->ssl_certificate_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_where(&s->ssl_certificate_key_at, cert_at, at, sizeof(at));
		snprintf(err, errlen, "cannot load certificate key \"%s\" (for \"%s\"): %s%s", s->ssl_certificate_key,
			 s->ssl_certificate, tls_ossl_errors(oe, sizeof(oe)), at);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * SNI: the other servers on one listener. Their contexts hang on the
 * listener's default context (ex_data), so they live exactly as long as it
 * does, handshakes in progress included; the callback switches an SSL to
 * the context whose server_name the client asked for.
 */
struct tls_sni {
	int n;
	char **names;
	SSL_CTX **ctxs;
};

static int sni_index = -1;

static void sni_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_sni *t = ptr;
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (!t)
		return;
	for (int i = 0; i < t->n; i++) {
		free(t->names[i]);
		SSL_CTX_free(t->ctxs[i]);
	}
	free(t->names);
	free(t->ctxs);
	free(t);
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct tls_sni *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sni_index);
	(void)alert, (void)arg;
	if (!name || !t)
		return SSL_TLSEXT_ERR_OK;	/* the default server's certificate */
	for (int i = 0; i < t->n; i++)
		if (strcasecmp(t->names[i], name) == 0) {
			SSL_set_SSL_CTX(ssl, t->ctxs[i]);
			break;
		}
	return SSL_TLSEXT_ERR_OK;
}

int tls_server_sni_add(SSL_CTX *def, const struct conf *c, const struct conf_server *s, char *err, size_t errlen)
{
	if (!s->server_name || !*s->server_name)
		return 0;	/* no name to be asked for: the default's certificate serves it */
	if (sni_index < 0) {
		sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_free);
		if (sni_index < 0) {
			snprintf(err, errlen, "SSL_CTX_get_ex_new_index() failed");
			return -1;
		}
	}
	SSL_CTX *ctx = tls_server_ctx_new(c, s, err, errlen);
	if (!ctx)
		return -1;
	struct tls_sni *t = SSL_CTX_get_ex_data(def, sni_index);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t || !SSL_CTX_set_ex_data(def, sni_index, t)) {
			free(t);
			goto oom;
		}
		SSL_CTX_set_tlsext_servername_callback(def, sni_cb);
	}
	char **names = realloc(t->names, (size_t)(t->n + 1) * sizeof(*names));
	if (names)
		t->names = names;
	SSL_CTX **ctxs = realloc(t->ctxs, (size_t)(t->n + 1) * sizeof(*ctxs));
	if (ctxs)
		t->ctxs = ctxs;
	char *name = strdup(s->server_name);
	if (!names || !ctxs || !name) {
		free(name);
		goto oom;
	}
	t->names[t->n] = name;
	t->ctxs[t->n] = ctx;
	t->n++;
	return 0;
oom:
	SSL_CTX_free(ctx);
	snprintf(err, errlen, "out of memory for the certificate of server \"%s\"", s->server_name);
	return -1;
}

/* A client context: TLS 1.2+, the peer checked against ca (or the system's CAs) unless insecure. */
static SSL_CTX *tls_client_ctx_new(const char *ca, int insecure, char *err, size_t errlen)
{
	char oe[512];
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new() failed: %s", tls_ossl_errors(oe, sizeof(oe)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	int ok = ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		snprintf(err, errlen, "cannot load CA certificates \"%s\": %s", ca ? ca : "(system default)",
			 tls_ossl_errors(oe, sizeof(oe)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The cache of client contexts, one per (tls_ca, tls_verify); flushed on reload. */
struct tls_client {
	char *ca;
	int insecure;
	SSL_CTX *ctx;
	struct tls_client *next;
};
static struct tls_client *clients;

/* The cached client context for cf (not a new ref); NULL with err. */
static SSL_CTX *tls_client_ctx(const struct conf_upstream *cf, char *err, size_t errlen)
{
	const char *ca = cf ? cf->tls_ca : NULL;
	int insecure = cf ? cf->tls_insecure : 0;
	for (struct tls_client *t = clients; t; t = t->next)
		if (t->insecure == insecure && ((!ca && !t->ca) || (ca && t->ca && strcmp(ca, t->ca) == 0)))
			return t->ctx;
	struct tls_client *t = calloc(1, sizeof(*t));
	if (!t || (ca && !(t->ca = strdup(ca)))) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->insecure = insecure;
	t->ctx = tls_client_ctx_new(ca, insecure, err, errlen);
	if (!t->ctx) {
		free(t->ca);
		free(t);
		return NULL;
	}
	t->next = clients;
	clients = t;
	return t->ctx;
}

void tls_client_flush(void)
{
	while (clients) {
		struct tls_client *t = clients;
		clients = t->next;
		SSL_CTX_free(t->ctx);	/* open connections hold their own refs */
		free(t->ca);
		free(t);
	}
}

int tls_conf_check(const struct conf *c, char *err, size_t errlen)
{
	for (const struct conf_server *s = c->servers; s; s = s->next) {
		int ssl = 0;
		for (const struct conf_listen *l = s->listens; l; l = l->next)
			ssl |= l->ssl;
		if (!ssl)
			continue;
		SSL_CTX *ctx = tls_server_ctx_new(c, s, err, errlen);
		if (!ctx)
			return -1;
		SSL_CTX_free(ctx);
	}
	for (const struct conf_upstream *u = c->upstreams; u; u = u->next) {
		if (u->tls && u->launch_url && !tls_url_is_https(u->launch_url)) {
			snprintf(err, errlen, "upstream \"%s\": \"tls on\" but url=%s is not https:// in %s:%d",
				 u->name, u->launch_url, u->file, u->line);
			return -1;
		}
		if (!u->tls && !tls_url_is_https(u->launch_url))
			continue;
		char e[600];
		SSL_CTX *ctx = tls_client_ctx_new(u->tls_ca, u->tls_insecure, e, sizeof(e));
		if (!ctx) {
			snprintf(err, errlen, "upstream \"%s\": %s in %s:%d", u->name, e, u->file, u->line);
			return -1;
		}
		SSL_CTX_free(ctx);
	}
	return 0;
}

int tls_url_is_https(const char *url)
{
	return url && strncmp(url, "https://", 8) == 0;
}

/* What a TLS connection to one replica needs; owned by its pool (or the caller, for health). */
struct tls_peer {
	SSL_CTX *ctx;		/* a ref of our own */
	int verify;
	char host[256];
};

/* A new client bufferevent to peer: SNI for a DNS name, name or IP checked when verifying. */
static struct bufferevent *tls_peer_bev(struct event_base *base, void *arg)
{
	struct tls_peer *peer = arg;
	unsigned char ip[16];
	int is_ip = inet_pton(AF_INET, peer->host, ip) == 1 || inet_pton(AF_INET6, peer->host, ip) == 1;
	SSL *ssl = SSL_new(peer->ctx);
	if (!ssl)
		return NULL;
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, peer->host);
	if (peer->verify) {
		int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), peer->host) :
			SSL_set1_host(ssl, peer->host);
		if (ok != 1) {
			SSL_free(ssl);
			return NULL;
		}
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	}
	/*
	 * No BEV_OPT_DEFER_CALLBACKS (libevent's https-client sample has it): as
	 * evhttp's own plain connections, callbacks run at once. Deferred ones
	 * stalled answers relayed to a TLS client until a timeout (seen with
	 * libevent 2.1.12: headers sent, body held back).
	 */
	struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
								 BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	/* backends often close without close_notify: that is an end, not an error */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* Why the TLS bufferevent bev failed; NULL when TLS has nothing to say. */
static const char *tls_bev_why(struct bufferevent *bev, char *buf, size_t len)
{
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	if (!ssl)
		return NULL;
	long vr = SSL_get_verify_result(ssl);
	if (vr != X509_V_OK) {
		snprintf(buf, len, "TLS: certificate verify failed (%s)", X509_verify_cert_error_string(vr));
		return buf;
	}
	unsigned long e = bufferevent_get_openssl_error(bev);
	if (!e)
		return NULL;
	const char *r = ERR_reason_error_string(e);
	snprintf(buf, len, "TLS handshake failed (%s)", r ? r : "unknown error");
	while (bufferevent_get_openssl_error(bev))
		;
	return buf;
}

static void tls_peer_free(void *arg)
{
	struct tls_peer *peer = arg;
	SSL_CTX_free(peer->ctx);
	free(peer);
}

/* A peer for cf and host with its own ref on the context; NULL logged. */
static struct tls_peer *tls_peer_new(const struct conf_upstream *cf, const char *host)
{
	char err[600];
	SSL_CTX *ctx = tls_client_ctx(cf, err, sizeof(err));
	if (!ctx) {
		log_error("upstream \"%s\": %s", cf ? cf->name : "?", err);
		return NULL;
	}
	struct tls_peer *peer = calloc(1, sizeof(*peer));
	if (!peer)
		return NULL;
	SSL_CTX_up_ref(ctx);
	peer->ctx = ctx;
	peer->verify = !(cf && cf->tls_insecure);
	snprintf(peer->host, sizeof(peer->host), "%s", host);
	return peer;
}

struct proxy_pool *tls_pool_new(struct event_base *base, const struct conf_upstream *cf,
				const char *url, const char *host, int port)
{
	struct proxy_pool *p = proxy_pool_new(base, host, port);
	if (!p || !tls_url_is_https(url))
		return p;
	struct tls_peer *peer = tls_peer_new(cf, host);
	if (!peer) {
		proxy_pool_free(p);
		return NULL;
	}
	struct proxy_transport t = { .bev_new = tls_peer_bev, .why = tls_bev_why,
				     .free_arg = tls_peer_free, .arg = peer };
	proxy_pool_set_transport(p, &t);
	return p;
}

struct evhttp_connection *tls_http_connection_new(struct event_base *base, const struct conf_upstream *cf,
						  const char *url, const char *host, int port)
{
	if (!tls_url_is_https(url))
		return evhttp_connection_base_new(base, proxy_dns(), host, (unsigned short)port);
	struct tls_peer *peer = tls_peer_new(cf, host);
	if (!peer)
		return NULL;
	struct bufferevent *bev = tls_peer_bev(base, peer);
	tls_peer_free(peer);	/* the SSL holds its own ref on the context */
	struct evhttp_connection *c = bev ? evhttp_connection_base_bufferevent_new(base, proxy_dns(), bev, host,
										 (unsigned short)port) : NULL;
	if (!c && bev)
		bufferevent_free(bev);
	return c;
}

const char *tls_connection_error(struct evhttp_connection *c, char *buf, size_t len, int *permanent)
{
	const char *why = c ? tls_bev_why(evhttp_connection_get_bufferevent(c), buf, len) : NULL;
	*permanent = why && (strstr(why, "verify failed") || strstr(why, "wrong version number") ||
			     strstr(why, "http request") || strstr(why, "packet length too long"));
	return why;
}
