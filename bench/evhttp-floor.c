/*
 * evhttp-floor: the least a reverse proxy built on libevent's evhttp does,
 * for bench/proxy to measure next to wakegate and nginx. One process, one
 * loop, an evhttp server in front and evhttp client connections (kept alive,
 * reused from a stack) behind. Per request it copies the method, URI, end-to-
 * end headers and body to the backend and the status, headers and body back.
 * No routing, holding, limits, metrics, logs or error pages: what is left is
 * evhttp's own cost, the floor under any proxy made of it (wakegate included).
 *
 *   evhttp-floor LISTEN_PORT BACKEND_HOST BACKEND_PORT
 *
 * Not installed; the benchmark builds and runs it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#define POOL_MAX 256

struct floor_proxy {
	struct event_base *base;
	const char *host;
	int port;
	struct evhttp_connection *idle[POOL_MAX];
	int nidle;
};

/* One forward: the client's request and the backend connection it uses. */
struct fwd {
	struct floor_proxy *px;
	struct evhttp_request *creq;
	struct evhttp_connection *uconn;
};

static int hop_by_hop(const char *key)
{
	return !strcasecmp(key, "Connection") || !strcasecmp(key, "Keep-Alive") ||
	       !strcasecmp(key, "Transfer-Encoding") || !strcasecmp(key, "Content-Length") ||
	       !strcasecmp(key, "Upgrade") || !strcasecmp(key, "TE") || !strcasecmp(key, "Trailer") ||
	       !strcasecmp(key, "Proxy-Connection");
}

static void copy_headers(struct evkeyvalq *dst, const struct evkeyvalq *src)
{
	const struct evkeyval *h;
	TAILQ_FOREACH(h, src, next)
		if (!hop_by_hop(h->key))
			evhttp_add_header(dst, h->key, h->value);
}

/* The backend answered (u non-NULL) or failed (u NULL, or code 0). The
 * connection goes back on the stack after a clean answer, else is freed. */
static void upstream_done(struct evhttp_request *u, void *arg)
{
	struct fwd *f = arg;
	struct floor_proxy *px = f->px;
	int code = u ? evhttp_request_get_response_code(u) : 0;

	if (code > 0) {
		copy_headers(evhttp_request_get_output_headers(f->creq), evhttp_request_get_input_headers(u));
		evhttp_send_reply(f->creq, code, evhttp_request_get_response_code_line(u),
				  evhttp_request_get_input_buffer(u));
		if (px->nidle < POOL_MAX)
			px->idle[px->nidle++] = f->uconn;
		else
			evhttp_connection_free_on_completion(f->uconn);
	} else {
		evhttp_send_error(f->creq, 502, "Bad Gateway");
		evhttp_connection_free_on_completion(f->uconn);
	}
	free(f);
}

static void request_cb(struct evhttp_request *creq, void *arg)
{
	struct floor_proxy *px = arg;
	struct fwd *f = calloc(1, sizeof(*f));
	struct evhttp_request *u;
	struct evkeyvalq *uh;

	if (!f) {
		evhttp_send_error(creq, 500, "out of memory");
		return;
	}
	f->px = px;
	f->creq = creq;
	f->uconn = px->nidle > 0 ? px->idle[--px->nidle]
				 : evhttp_connection_base_new(px->base, NULL, px->host, (ev_uint16_t)px->port);
	u = f->uconn ? evhttp_request_new(upstream_done, f) : NULL;
	if (!u) {
		if (f->uconn)
			evhttp_connection_free(f->uconn);
		free(f);
		evhttp_send_error(creq, 502, "Bad Gateway");
		return;
	}
	uh = evhttp_request_get_output_headers(u);
	copy_headers(uh, evhttp_request_get_input_headers(creq));
	evbuffer_add_buffer(evhttp_request_get_output_buffer(u), evhttp_request_get_input_buffer(creq));
	if (evhttp_make_request(f->uconn, u, evhttp_request_get_command(creq), evhttp_request_get_uri(creq)) != 0) {
		evhttp_connection_free(f->uconn);
		free(f);
		evhttp_send_error(creq, 502, "Bad Gateway");
	}
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	struct floor_proxy px = { 0 };
	struct evhttp *http;
	struct event *term;

	if (argc != 4) {
		fprintf(stderr, "usage: evhttp-floor LISTEN_PORT BACKEND_HOST BACKEND_PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	px.base = event_base_new();
	px.host = argv[2];
	px.port = atoi(argv[3]);
	http = px.base ? evhttp_new(px.base) : NULL;
	if (!http || evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1])) != 0) {
		fprintf(stderr, "evhttp-floor: cannot listen on 127.0.0.1:%s\n", argv[1]);
		return 1;
	}
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, request_cb, &px);
	term = evsignal_new(px.base, SIGTERM, stop_cb, px.base);
	event_add(term, NULL);
	event_base_dispatch(px.base);
	while (px.nidle > 0)
		evhttp_connection_free(px.idle[--px.nidle]);
	event_free(term);
	evhttp_free(http);
	event_base_free(px.base);
	return 0;
}
