/*
 * redis_tls: the Unix-socket-to-TLS relay for Redis (see redis_tls.h).
 * Flow control as libevent's le-proxy sample: a side's bytes go to the
 * other side's output; when that output holds RT_MAX bytes the side stops
 * reading until it has drained to half, so neither direction buffers
 * without bound.
 */
#include "config.h"
#include "gateway/redis_tls.h"
#include "gateway/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define RT_MAX (256 * 1024)

struct rt_pair {
	struct redis_tls *t;
	struct bufferevent *down;	/* hiredis, on the Unix socket */
	struct bufferevent *up;		/* Redis, over TLS */
	SSL *ssl;			/* owned by up (BEV_OPT_CLOSE_ON_FREE frees it) */
	int connected;			/* the TLS handshake is done */
	struct rt_pair *prev, *next;
};

struct redis_tls {
	struct event_base *base;
	char *host, *name;
	int port;
	int name_is_ip;
	char dir[84], path[100];	/* sun_path has 108 bytes */
	int made_dir;
	SSL_CTX *ctx;
	struct evconnlistener *lev;
	struct rt_pair *pairs;
	int failing;		/* a failure was logged; quiet until Redis answers again */
	char err[512];
};

static void rt_pair_free(struct rt_pair *p)
{
	struct redis_tls *t = p->t;
	if (p->prev)
		p->prev->next = p->next;
	else
		t->pairs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	bufferevent_free(p->down);
	if (p->up)
		bufferevent_free(p->up);	/* and its SSL and fd */
	free(p);
}

static struct bufferevent *rt_other(const struct rt_pair *p, const struct bufferevent *b)
{
	return b == p->down ? p->up : p->down;
}

static void rt_read(struct bufferevent *src, void *arg);
static void rt_event(struct bufferevent *b, short what, void *arg);

/* dst's output has drained to half: src may read again. */
static void rt_drained(struct bufferevent *dst, void *arg)
{
	struct rt_pair *p = arg;
	bufferevent_setcb(dst, rt_read, NULL, rt_event, p);
	bufferevent_setwatermark(dst, EV_WRITE, 0, 0);
	bufferevent_enable(rt_other(p, dst), EV_READ);
}

static void rt_read(struct bufferevent *src, void *arg)
{
	struct rt_pair *p = arg;
	struct bufferevent *dst = rt_other(p, src);
	if (src == p->up)
		p->t->failing = 0;	/* Redis answered: a later failure is a new streak */
	struct evbuffer *out = bufferevent_get_output(dst);
	evbuffer_add_buffer(out, bufferevent_get_input(src));
	if (evbuffer_get_length(out) >= RT_MAX) {
		bufferevent_setwatermark(dst, EV_WRITE, RT_MAX / 2, RT_MAX);
		bufferevent_setcb(dst, rt_read, rt_drained, rt_event, p);
		bufferevent_disable(src, EV_READ);
	}
}

/* The last bytes towards the side that stays have been written: the pair ends. */
static void rt_flushed(struct bufferevent *b, void *arg)
{
	rt_pair_free(arg);
}

/* Why the TLS side failed, in OpenSSL's words where it has them, into t->err
 * ("TLS: ..." when TLS itself failed, the socket's error otherwise); 1 when TLS failed. */
static int rt_reason(struct rt_pair *p)
{
	struct redis_tls *t = p->t;
	long vr = p->ssl ? SSL_get_verify_result(p->ssl) : X509_V_OK;
	unsigned long e = bufferevent_get_openssl_error(p->up);
	int dns = bufferevent_socket_get_dns_error(p->up);
	int se = EVUTIL_SOCKET_ERROR(), soe = 0;
	socklen_t sl = sizeof(soe);
	evutil_socket_t fd = bufferevent_getfd(p->up);
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soe, &sl) == 0 && soe)
		se = soe;	/* the connect's own error, where the socket still has it */
	int tls = 1;
	if (!p->connected && vr != X509_V_OK) {
		snprintf(t->err, sizeof(t->err), "TLS: certificate verify failed: %s", X509_verify_cert_error_string(vr));
	} else if (e && ERR_GET_LIB(e)) {	/* lib 0: libevent's SSL_ERROR_SYSCALL, the socket's error */
		char es[256];
		ERR_error_string_n(e, es, sizeof(es));
		snprintf(t->err, sizeof(t->err), "TLS: %s", es);
	} else {
		tls = 0;
		if (dns)
			snprintf(t->err, sizeof(t->err), "cannot resolve %s: %s", t->host, evutil_gai_strerror(dns));
		else if (se)
			snprintf(t->err, sizeof(t->err), "%s", evutil_socket_error_to_string(se));
		else if (!p->connected)
			tls = 1, snprintf(t->err, sizeof(t->err), "TLS: closed during the handshake");
		else
			snprintf(t->err, sizeof(t->err), "connection closed");
	}
	while (bufferevent_get_openssl_error(p->up))
		;	/* the rest of the queue belongs to this failure too */
	return tls;
}

/* Logs a failure of the TLS side, once until Redis answers again (rt_read). */
static void rt_failed(struct rt_pair *p)
{
	struct redis_tls *t = p->t;
	int tls = rt_reason(p);
	if (!t->failing)
		log_warn("redis %s:%d over TLS: %s: %s", t->host, t->port,
			 p->connected ? "connection failed" : tls ? "handshake failed" : "cannot connect",
			 tls ? t->err + 5 : t->err);
	t->failing = 1;
}

static void rt_event(struct bufferevent *b, short what, void *arg)
{
	struct rt_pair *p = arg;
	struct redis_tls *t = p->t;
	if (b == p->up && (what & BEV_EVENT_CONNECTED)) {
		p->connected = 1;
		t->err[0] = 0;	/* a failure streak ends at the first answer (rt_read), not here: with
				 * TLS 1.3 the server refuses a client certificate after the handshake */
		return;
	}
	if (b == p->up && ((what & BEV_EVENT_ERROR) || !p->connected))
		rt_failed(p);	/* libevent reports a refused connect as EOF during the handshake */
	if (!(what & BEV_EVENT_EOF)) {
		rt_pair_free(p);	/* an error: nothing more can be delivered */
		return;
	}
	/* EOF: deliver what the other side still has to write, then end */
	struct bufferevent *o = rt_other(p, b);
	if (evbuffer_get_length(bufferevent_get_input(b)) > 0 && (o != p->up || p->connected))
		rt_read(b, p);
	bufferevent_disable(b, EV_READ | EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(o)) == 0 || (o == p->up && !p->connected)) {
		rt_pair_free(p);
		return;
	}
	bufferevent_setcb(b, NULL, NULL, NULL, NULL);
	bufferevent_setwatermark(o, EV_WRITE, 0, 0);
	bufferevent_setcb(o, NULL, rt_flushed, rt_event, p);
	bufferevent_disable(o, EV_READ);
}

static void rt_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct redis_tls *t = arg;
	struct rt_pair *p = calloc(1, sizeof(*p));
	if (!p) {
		evutil_closesocket(fd);
		return;
	}
	p->t = t;
	p->down = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!p->down) {
		evutil_closesocket(fd);
		free(p);
		return;
	}
	p->next = t->pairs;
	if (t->pairs)
		t->pairs->prev = p;
	t->pairs = p;
	p->ssl = SSL_new(t->ctx);
	if (!p->ssl) {
		snprintf(t->err, sizeof(t->err), "SSL_new failed");
		rt_pair_free(p);
		return;
	}
	X509_VERIFY_PARAM *vp = SSL_get0_param(p->ssl);
	int ok = t->name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, t->name) :
		 (X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS),
		  X509_VERIFY_PARAM_set1_host(vp, t->name, 0) && SSL_set_tlsext_host_name(p->ssl, t->name));
	if (ok)
		p->up = bufferevent_openssl_socket_new(t->base, -1, p->ssl, BUFFEREVENT_SSL_CONNECTING,
						       BEV_OPT_CLOSE_ON_FREE);
	if (!p->up) {
		SSL_free(p->ssl);	/* not handed over */
		p->ssl = NULL;
		snprintf(t->err, sizeof(t->err), "cannot set up the TLS connection");
		rt_pair_free(p);
		return;
	}
	/* Redis closes without close_notify at times; the bytes it sent count */
	bufferevent_openssl_set_allow_dirty_shutdown(p->up, 1);
	bufferevent_setcb(p->down, rt_read, NULL, rt_event, p);
	bufferevent_setcb(p->up, rt_read, NULL, rt_event, p);
	bufferevent_setwatermark(p->down, EV_READ, 0, RT_MAX);
	bufferevent_setwatermark(p->up, EV_READ, 0, RT_MAX);
	bufferevent_enable(p->down, EV_READ | EV_WRITE);
	bufferevent_enable(p->up, EV_READ | EV_WRITE);
	/* NULL dns base: a blocking lookup, as hiredis's own TCP connect does */
	if (bufferevent_socket_connect_hostname(p->up, NULL, AF_UNSPEC, t->host, t->port) < 0) {
		rt_failed(p);
		rt_pair_free(p);
	}
}

/* Says why setting up failed and frees what was made; NULL for the caller to return. */
static struct redis_tls *rt_fail(struct redis_tls *t, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static struct redis_tls *rt_fail(struct redis_tls *t, char *err, size_t errlen, const char *fmt, ...)
{
	char es[256] = "";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, es, sizeof(es));
	ERR_clear_error();
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s%s%s", what, es[0] ? ": " : "", es[0] ? es : (errno ? strerror(errno) : ""));
	redis_tls_free(t);
	return NULL;
}

struct redis_tls *redis_tls_new(struct event_base *base, const struct redis_tls_cfg *cfg, char *err, size_t errlen)
{
	struct redis_tls *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->base = base;
	t->port = cfg->port;
	t->host = strdup(cfg->host);
	t->name = strdup(cfg->name ? cfg->name : cfg->host);
	if (!t->host || !t->name)
		return rt_fail(t, err, errlen, "%s", "out of memory");
	unsigned char ab[16];
	t->name_is_ip = inet_pton(AF_INET, t->name, ab) == 1 || inet_pton(AF_INET6, t->name, ab) == 1;

	errno = 0;
	ERR_clear_error();
	if (!(t->ctx = SSL_CTX_new(TLS_client_method())))
		return rt_fail(t, err, errlen, "%s", "SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	/* Redis (and a Redis that stops) closes without close_notify: OpenSSL 3 calls
	 * that an error, which libevent 2.1's dirty-shutdown flag does not cover. A cut
	 * cannot pass for a whole answer: RESP says its own lengths, hiredis sees EOF. */
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (cfg->ca ? SSL_CTX_load_verify_locations(t->ctx, cfg->ca, NULL) != 1 :
		      SSL_CTX_set_default_verify_paths(t->ctx) != 1)
		return rt_fail(t, err, errlen, "cannot load the CA certificates %s", cfg->ca ? cfg->ca : "of the system");

	if (cfg->cert && (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert) != 1 ||
			  SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key, SSL_FILETYPE_PEM) != 1 ||
			  SSL_CTX_check_private_key(t->ctx) != 1))
		return rt_fail(t, err, errlen, "cannot load the client certificate %s with its key %s", cfg->cert, cfg->key);

	/* a private directory: only this user can connect to the plain-text side */
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !tmp[0] || strlen(tmp) > 60)
		tmp = "/tmp";	/* sun_path has 108 bytes */
	snprintf(t->dir, sizeof(t->dir), "%s/wakegate-redis-XXXXXX", tmp);
	if (!mkdtemp(t->dir))
		return rt_fail(t, err, errlen, "mkdtemp(\"%s\") failed", t->dir);	/* read before the free */
	t->made_dir = 1;
	snprintf(t->path, sizeof(t->path), "%s/redis.sock", t->dir);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t->path);
	t->lev = evconnlistener_new_bind(base, rt_accept, t, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 8,
					 (struct sockaddr *)&sun, (int)sizeof(sun));
	if (!t->lev)
		return rt_fail(t, err, errlen, "cannot listen on \"%s\"", t->path);
	return t;
}

void redis_tls_free(struct redis_tls *t)
{
	if (!t)
		return;
	while (t->pairs)
		rt_pair_free(t->pairs);
	if (t->lev) {
		evconnlistener_free(t->lev);
		unlink(t->path);
	}
	if (t->made_dir)
		rmdir(t->dir);
	SSL_CTX_free(t->ctx);
	free(t->host);
	free(t->name);
	free(t);
}

const char *redis_tls_path(const struct redis_tls *t)
{
	return t->path;
}

const char *redis_tls_error(const struct redis_tls *t)
{
	return t->err;
}
