/*
 * server: listeners and the route phase. A listener is one evhttp bound to
 * one addr:port; a request on it runs through the phases (phase.h), the
 * first of which, routing, looks up the conf in force at the time of the
 * request (gw.conf), so a reload needs no rewiring. The admin listener's
 * endpoints are admin.c's.
 */
#include "config.h"
#include "gateway/accesslog.h"
#include "gateway/loc_regex.h"
#include "gateway/server.h"
#include "gateway/split_phase.h"
#include "gateway/conf.h"
#include "gateway/admin.h"
#include "gateway/auth.h"
#include "gateway/gw.h"
#include "gateway/clients.h"
#include "gateway/http_strict.h"
#include "gateway/path_norm.h"
#include "gateway/log.h"
#include "gateway/model_route.h"
#include "gateway/phase.h"
#include "gateway/proxy.h"
#include "gateway/request.h"
#include "gateway/ratelimit.h"
#include "gateway/rules.h"
#include "gateway/tls.h"
#include "gateway/upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct listener {
	char *addr;
	int port;
	int admin;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;	/* NULL once it stopped accepting */
	SSL_CTX *ssl;			/* "listen ... ssl": owned, freed with the listener */
	SSL_CTX *ssl_next;		/* a reload's new context, swapped in once every listener is ready */
	int ssl_next_set;		/* 1: ssl_next (maybe NULL: plain now) replaces ssl */
	int mark;
	struct listener *next;
};

static struct listener *listeners;

static int same_addr(const char *a, const char *b)
{
	return strcmp(a ? a : "0.0.0.0", b ? b : "0.0.0.0") == 0;
}

/* The server for a request on listener l: server_name matches Host, else the first one on l. */
static const struct conf_server *route_server(const struct listener *l, struct evhttp_request *req)
{
	const char *host = evhttp_request_get_host(req);
	const struct conf_server *first = NULL;
	for (const struct conf_server *s = gw.conf->servers; s; s = s->next) {
		int on = 0;
		for (const struct conf_listen *li = s->listens; li; li = li->next)
			if (li->port == l->port && same_addr(li->addr, l->addr))
				on = 1;
		if (!on)
			continue;
		if (!first)
			first = s;
		if (host && s->server_name && *s->server_name && strcasecmp(host, s->server_name) == 0)
			return s;
	}
	return first;
}

/*
 * nginx's order: an exact match wins; else the longest prefix is noted, and
 * it wins at once when written "^~"; else the regexes (~, ~*) are tried in
 * conf order and the first that matches wins; else the longest prefix.
 * path is the normalised path (path_norm.h), regexes included.
 */
static const struct conf_location *route_location(const struct conf_server *s, const char *path)
{
	const struct conf_location *best = NULL;
	size_t best_len = 0, len = strlen(path);
	int any_regex = 0;
	for (const struct conf_location *loc = s->locations; loc; loc = loc->next) {
		if (loc->regex) {
			any_regex = 1;
			continue;
		}
		if (loc->exact) {
			if (strcmp(loc->path, path) == 0)
				return loc;
			continue;
		}
		size_t n = strlen(loc->path);
		if (strncmp(loc->path, path, n) == 0 && (!best || n > best_len)) {
			best = loc;
			best_len = n;
		}
	}
	if (!any_regex || (best && best->stop_regex))
		return best;
	for (const struct conf_location *loc = s->locations; loc; loc = loc->next)
		if (loc->regex && loc_regex_match(loc->re, path, len))
			return loc;
	return best;
}

/* The route phase: server, location, body limit and upstream; answered here when none fits (404, 413, 502). */
static enum phase_rc route_phase(struct wg_request *r)
{
	struct evhttp_request *req = r->req;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *raw = evhttp_request_get_uri(req);
	if (raw && raw[0] == '/')
		path = raw;	/* evhttp takes "//x" for an authority: the raw target, up to its "?" */
	if (!path || !*path)
		path = "/";
	/* locations match the normalised path, as nginx's do (path_norm.h); the
	 * backend still gets the original target (dispatch.c, proxy_hdr_uri) */
	char norm[8192];
	int nrc = path_norm(path, norm, sizeof(norm));
	if (nrc != 0) {
		const char *msg = nrc == -2 ? "request path too long" : "invalid request path";
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		accesslog_refused(req, nrc == -2 ? 414 : 400, NULL, proxy_error_size(msg));
		proxy_send_error(req, nrc == -2 ? 414 : 400, msg, 0);
		return PHASE_DONE;
	}
	path = norm;
	const struct conf_server *s = route_server(r->listener, req);
	const struct conf_location *loc = s ? route_location(s, path) : NULL;
	r->srv = s;
	r->loc = loc;
	r->conf_gen = phase_conf_gen();
	if (!loc || (!loc->proxy_pass && !loc->route_models && !loc->split)) {
		accesslog_refused(req, 404, NULL, proxy_error_size("no location for this path"));
		proxy_send_error(req, 404, "no location for this path", 0);
		return PHASE_DONE;
	}
	size_t body = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if (loc->client_max_body_size > 0 && (int64_t)body > loc->client_max_body_size) {
		char msg[128];
		snprintf(msg, sizeof(msg), "request body of %zu bytes is larger than client_max_body_size %lld",
			 body, (long long)loc->client_max_body_size);
		accesslog_refused(req, 413, loc->proxy_pass, proxy_error_size(msg));
		proxy_send_error(req, 413, msg, 0);
		return PHASE_DONE;
	}
	r->up = loc->proxy_pass ? upstream_find(loc->proxy_pass) : NULL;
	if (!r->up && !loc->route_models && !loc->split) {	/* the model or split phase picks it */
		proxy_send_error(req, 502, "no such upstream", 0);
		return PHASE_DONE;
	}
	return PHASE_NEXT;
}

/* Every client request: the phases, from routing to the upstream (phase.h). */
static void main_cb(struct evhttp_request *req, void *arg)
{
	if (http_strict_refused(req))	/* framing nginx refuses: answered and closed there */
		return;
	if (clients_refused(req))	/* its connection came past max_clients: 503, closed */
		return;
	phase_start(req, arg);
}

/* evhttp asks for each accepted connection's bufferevent: a TLS one on ssl
 * listeners (the context of now: a reload swaps l->ssl), the scanner on
 * both; a server listener's connection is counted for max_clients. */
static struct bufferevent *listener_bevcb(struct event_base *base, void *arg)
{
	struct listener *l = arg;
	struct bufferevent *bev;

	if (l->ssl) {
		SSL *ssl = SSL_new(l->ssl);
		if (!ssl)
			return NULL;
		bev = http_strict_watch(bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
								       BEV_OPT_CLOSE_ON_FREE));
	} else {
		bev = http_strict_bevcb(base, NULL);
	}
	if (!l->admin)
		clients_accepted(base, bev);
	return bev;
}

/*
 * A listening socket with nginx's backlog (511): libevent's own bind helper
 * listens with 128, and a burst of cold-start clients overflows that.
 * Returns the fd, or -1 with errno set.
 */
static evutil_socket_t listen_socket(const char *addr, int port)
{
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_flags = EVUTIL_AI_PASSIVE }, *ai = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	if (evutil_getaddrinfo(addr, ps, &hints, &ai) != 0 || !ai)
		return -1;
	evutil_socket_t fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0) {
		int one = 1;
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (evutil_make_listen_socket_reuseable(fd) < 0 || evutil_make_socket_nonblocking(fd) < 0 ||
		    evutil_make_socket_closeonexec(fd) < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, 511) < 0) {
			int e = errno;	/* for the caller's message: close may change it */
			evutil_closesocket(fd);
			errno = e;
			fd = -1;
		}
	}
	evutil_freeaddrinfo(ai);
	return fd;
}

#define SERVER_MAX_HEADERS (64 * 1024)	/* request line + headers, like nginx's large_client_header_buffers */
static int64_t client_timeout_ms = 60000;	/* min(client_header_timeout, client_body_timeout) of the conf */

/*
 * evhttp has one timeout for a stalled read or write on a client connection,
 * so it gets the smaller of client_header_timeout and client_body_timeout.
 * Like nginx's client_body_timeout it bounds the time between two reads, so a
 * client that trickles a byte a time within it is not cut; its cost is one fd
 * and at most SERVER_MAX_HEADERS bytes. New connections only.
 */
static void listener_timeouts(struct listener *l)
{
	struct timeval tv = { client_timeout_ms / 1000, (client_timeout_ms % 1000) * 1000 };
	evhttp_set_timeout_tv(l->http, &tv);
}

static struct listener *listener_open(const struct conf *c, const char *addr, int port, int admin,
				      int64_t max_body, const struct conf_server *tls, char *err, size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->addr = strdup(addr ? addr : "0.0.0.0");
	l->port = port;
	l->admin = admin;
	l->http = evhttp_new(gw.base);
	if (!l->http)
		goto fail;
	if (tls) {
		l->ssl = tls_server_ctx_new(c, tls, err, errlen);
		if (!l->ssl)
			goto fail;
	}
	evhttp_set_bevcb(l->http, listener_bevcb, l);
	evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	/* idle keep-alive and stalled client I/O; a held request has no I/O pending, so it is not cut */
	listener_timeouts(l);
	/* libevent's default is no bound: a client could grow its header without end (answered 413) */
	evhttp_set_max_headers_size(l->http, SERVER_MAX_HEADERS);
	/* a backend answer without Content-Type must not be labelled text/html */
	evhttp_set_default_content_type(l->http, NULL);
	if (max_body > 0)
		evhttp_set_max_body_size(l->http, (ev_ssize_t)max_body);
	evhttp_set_gencb(l->http, admin ? admin_cb : main_cb, l);
	errno = 0;
	evutil_socket_t fd = listen_socket(l->addr, port);
	int bind_errno = errno;
	l->sock = fd >= 0 ? evhttp_accept_socket_with_handle(l->http, fd) : NULL;
	if (!l->sock && fd >= 0)
		evutil_closesocket(fd);
	if (!l->sock) {
		snprintf(err, errlen, "bind() to %s:%d failed (%d: %s)", l->addr, port, bind_errno,
			 bind_errno ? strerror(bind_errno) : "cannot resolve the address");
		goto fail;
	}
	log_notice("listening on %s:%d%s", l->addr, port, admin ? " (admin)" : tls ? " (ssl)" : "");
	if (admin && !c->admin_token && strcmp(l->addr, "127.0.0.1") != 0 && strcmp(l->addr, "::1") != 0 &&
	    strcmp(l->addr, "localhost") != 0)
		log_warn("the admin listener %s:%d is beyond loopback and has no admin_token: anyone who reaches it "
			 "can wake and stop the workers", l->addr, port);
	return l;
fail:
	if (l->http)
		evhttp_free(l->http);
	if (l->ssl)
		SSL_CTX_free(l->ssl);
	free(l->addr);
	free(l);
	return NULL;
}

static void listener_free(struct listener *l)
{
	evhttp_free(l->http);
	if (l->ssl)
		SSL_CTX_free(l->ssl);
	free(l->addr);
	free(l);
}

/* The largest client_max_body_size anywhere: evhttp's own cap. */
static int64_t conf_max_body(const struct conf *c)
{
	int64_t m = c->client_max_body_size;
	for (const struct conf_server *s = c->servers; s; s = s->next) {
		if (s->client_max_body_size > m)
			m = s->client_max_body_size;
		for (const struct conf_location *loc = s->locations; loc; loc = loc->next)
			if (loc->client_max_body_size > m)
				m = loc->client_max_body_size;
	}
	return m;
}

/* An open listener for addr:port, to keep it across a reload. */
static struct listener *listener_find(const char *addr, int port, int admin)
{
	for (struct listener *l = listeners; l; l = l->next)
		if (l->sock && l->port == port && l->admin == admin && same_addr(l->addr, addr))
			return l;
	return NULL;
}

/*
 * A kept listener's context under the new conf (tls: its first server with
 * "listen ... ssl", or NULL for plain), held in ssl_next until the whole
 * reload succeeds. 0, or -1 with err.
 */
static int server_tls_next(const struct conf *c, struct listener *l, const struct conf_server *tls,
			   char *err, size_t errlen)
{
	if (l->admin)
		return 0;
	l->ssl_next = tls ? tls_server_ctx_new(c, tls, err, errlen) : NULL;
	l->ssl_next_set = 1;
	return tls && !l->ssl_next ? -1 : 0;
}

/*
 * One more ssl server on a listener this conf already gave a context (the
 * new one of a reload, or that of a listener opened by this conf): chosen
 * by SNI. A plain first server leaves no context to add it to: an error,
 * as the port cannot speak both.
 */
static int server_tls_sni(const struct conf *c, struct listener *l, const struct conf_server *s,
			  char *err, size_t errlen)
{
	SSL_CTX *def = l->ssl_next_set ? l->ssl_next : l->ssl;
	if (!def) {
		snprintf(err, errlen, "server \"%s\" listens with ssl on %s:%d, where an earlier server listens "
			 "without it", s->server_name ? s->server_name : "", l->addr, l->port);
		return -1;
	}
	return tls_server_sni_add(def, c, s, err, errlen);
}

/*
 * New handshakes use the new context; connections already open keep their
 * SSL, which holds its own ref on the old context, so freeing ours is safe.
 */
static void server_tls_swap(void)
{
	for (struct listener *l = listeners; l; l = l->next) {
		if (!l->ssl_next_set)
			continue;
		if (l->ssl)
			SSL_CTX_free(l->ssl);
		if (l->ssl_next && !l->ssl)
			log_notice("listener %s:%d speaks TLS now", l->addr, l->port);
		else if (!l->ssl_next && l->ssl)
			log_notice("listener %s:%d speaks plain HTTP now", l->addr, l->port);
		l->ssl = l->ssl_next;
		l->ssl_next = NULL;
		l->ssl_next_set = 0;
	}
}

/* A failed reload: the new contexts go, the listeners keep theirs. */
static void server_tls_drop(void)
{
	for (struct listener *l = listeners; l; l = l->next) {
		if (l->ssl_next)
			SSL_CTX_free(l->ssl_next);
		l->ssl_next = NULL;
		l->ssl_next_set = 0;
	}
}

int server_configure(const struct conf *c, char *err, size_t errlen)
{
	for (struct listener *l = listeners; l; l = l->next)
		l->mark = 0;
	struct listener *fresh = NULL;
	int64_t max_body = conf_max_body(c);
	http_strict_set_header_timeout(c->client_header_timeout_ms);
	clients_set_max(c->max_clients);
	client_timeout_ms = c->client_header_timeout_ms < c->client_body_timeout_ms ?
			    c->client_header_timeout_ms : c->client_body_timeout_ms;
	/* the body limit is checked per location; evhttp's is the largest, a memory guard */
	max_body = max_body > 0 ? max_body : 0;
	for (const struct conf_server *s = c->servers; s; s = s->next)
		for (const struct conf_listen *li = s->listens; li; li = li->next) {
			struct listener *l = listener_find(li->addr, li->port, 0);
			if (!l)
				for (struct listener *x = fresh; x; x = x->next)
					if (x->port == li->port && same_addr(x->addr, li->addr))
						l = x;
			if (l) {
				if (!l->mark && server_tls_next(c, l, li->ssl ? s : NULL, err, errlen) < 0)
					goto fail;
				else if (l->mark && li->ssl && server_tls_sni(c, l, s, err, errlen) < 0)
					goto fail;
				l->mark = 1;
				continue;
			}
			l = listener_open(c, li->addr, li->port, 0, max_body, li->ssl ? s : NULL, err, errlen);
			if (!l)
				goto fail;
			l->mark = 1;
			l->next = fresh;
			fresh = l;
		}
	if (c->admin_port > 0) {
		struct listener *l = listener_find(c->admin_addr, c->admin_port, 1);
		if (l)
			l->mark = 1;
		else {
			l = listener_open(c, c->admin_addr, c->admin_port, 1, 0, NULL, err, errlen);
			if (!l)
				goto fail;
			l->mark = 1;
			l->next = fresh;
			fresh = l;
		}
	}
	/* kept ones get the new body limit and certificate; gone ones stop accepting now and are freed at exit */
	server_tls_swap();
	tls_client_flush();
	for (struct listener *l = listeners; l; l = l->next) {
		if (l->mark && !l->admin && max_body > 0)
			evhttp_set_max_body_size(l->http, (ev_ssize_t)max_body);
		if (l->mark && !l->admin)
			listener_timeouts(l);
		if (!l->mark && l->sock) {
			log_notice("closing listener %s:%d", l->addr, l->port);
			evhttp_del_accept_socket(l->http, l->sock);
			l->sock = NULL;
		}
	}
	while (fresh) {
		struct listener *l = fresh;
		fresh = l->next;
		l->next = listeners;
		listeners = l;
	}
	ratelimit_configure(c);
	rules_configure(c);
	phase_conf_changed();
	return 0;
fail:
	while (fresh) {
		struct listener *l = fresh;
		fresh = l->next;
		listener_free(l);
	}
	server_tls_drop();
	return -1;
}

void server_init(void)
{
	phase_register(PHASE_ROUTE, route_phase);
	auth_init();
	model_route_init();
	split_phase_init();
	ratelimit_init();
	rules_init();
}

void server_stop_accepting(void)
{
	ratelimit_shutdown();
	for (struct listener *l = listeners; l; l = l->next)
		if (l->sock && !l->admin) {
			evhttp_del_accept_socket(l->http, l->sock);
			l->sock = NULL;
		}
}

void server_free_all(void)
{
	ratelimit_free_all();
	rules_free_all();
	http_strict_free_all();
	tls_client_flush();
	while (listeners) {
		struct listener *l = listeners;
		listeners = l->next;
		listener_free(l);
	}
	clients_free_all();
}
