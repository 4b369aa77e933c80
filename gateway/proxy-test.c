/*
 * proxy-test: a tiny reverse proxy around gateway/proxy.c, for t/38-proxy.t
 * and for measuring the proxy without the rest of the gateway.
 *
 *   proxy-test LISTEN_PORT BACKEND_HOST BACKEND_PORT [connect_ms read_ms]
 *
 * Listens on 127.0.0.1:LISTEN_PORT and forwards every request to one pool.
 * GET /__proxy_stats answers its own counters as JSON. Each finished forward
 * is logged to stderr ("done status=... client_gone=... bytes=..."); a done
 * cb that ran twice aborts (PROXY_TEST_QUIET=1: no line per forward). SIGTERM/SIGINT: frees everything and exits 0, so
 * that valgrind can look for leaks.
 */
#include "config.h"

#include "gateway/log.h"
#include "gateway/proxy.h"
#include "gateway/client_conn.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

static int quiet;	/* PROXY_TEST_QUIET: no line per forward (for benchmarks) */

struct counters {
	unsigned long forwards, done, client_gone, s2xx, s502, s504, other, active;
	unsigned long long bytes;
};

static struct counters stats;

/* One per forward, freed by its done cb: a second call would be a use after free. */
struct fwd_tag {
	unsigned magic;
	unsigned long progress;
};
#define TAG_MAGIC 0x70726f78u

static void on_done(const struct proxy_result *r, void *arg)
{
	struct fwd_tag *t = arg;

	if (t->magic != TAG_MAGIC) {
		fprintf(stderr, "proxy-test: done called twice\n");
		abort();
	}
	t->magic = 0;
	stats.done++;
	stats.active--;
	stats.bytes += r->bytes_out;
	if (r->client_gone)
		stats.client_gone++;
	if (r->status >= 200 && r->status < 300)
		stats.s2xx++;
	else if (r->status == 502)
		stats.s502++;
	else if (r->status == 504)
		stats.s504++;
	else
		stats.other++;
	if (!quiet)
		fprintf(stderr, "done status=%d client_gone=%d bytes=%llu ms=%.1f progress=%lu\n",
		r->status, r->client_gone, (unsigned long long)r->bytes_out, r->upstream_ms,
		t->progress);
	free(t);
}

static void on_progress(void *arg)
{
	struct fwd_tag *t = arg;
	t->progress++;
}

struct app {
	struct proxy_pool *pool;
	struct proxy_opts opts;
};

static void send_stats(struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "{\"forwards\":%lu,\"done\":%lu,\"active\":%lu,\"client_gone\":%lu,"
			    "\"s2xx\":%lu,\"s502\":%lu,\"s504\":%lu,\"other\":%lu,\"bytes\":%llu}\n",
			    stats.forwards, stats.done, stats.active, stats.client_gone, stats.s2xx,
			    stats.s502, stats.s504, stats.other, stats.bytes);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct app *a = arg;
	struct fwd_tag *t;
	const char *uri = evhttp_request_get_uri(req);

	if (uri && strcmp(uri, "/__proxy_stats") == 0) {
		send_stats(req);
		return;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		proxy_send_error(req, 503, "out of memory", 1);
		return;
	}
	t->magic = TAG_MAGIC;
	stats.forwards++;
	stats.active++;
	proxy_forward(a->pool, req, &a->opts, on_done, on_progress, t);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	struct event_base *base;
	struct evhttp *http;
	struct event *sterm, *sint;
	struct app a;

	if (argc != 4 && argc != 6) {
		fprintf(stderr, "usage: proxy-test LISTEN_PORT BACKEND_HOST BACKEND_PORT [connect_ms read_ms]\n");
		return 2;
	}
	quiet = getenv("PROXY_TEST_QUIET") != NULL;
	log_open(NULL, getenv("PROXY_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	signal(SIGPIPE, SIG_IGN);
	memset(&a, 0, sizeof(a));
	a.opts.connect_timeout_ms = argc == 6 ? atoll(argv[4]) : 5000;
	a.opts.read_timeout_ms = argc == 6 ? atoll(argv[5]) : 60000;
	a.opts.extra_header_name = "X-Proxy-Test";
	a.opts.extra_header_value = "1";

	{
		/* the changelist folds the many enable/disable calls of one loop
		 * iteration into one epoll_ctl per fd (as the gateway does) */
		struct event_config *cfg = event_config_new();
		if (!getenv("PROXY_TEST_NO_CHANGELIST"))
			event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		base = event_base_new_with_config(cfg);
		event_config_free(cfg);
	}
	http = evhttp_new(base);
	if (!base || !http)
		return 1;
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(http, NULL);
	if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1])) != 0) {
		fprintf(stderr, "proxy-test: cannot listen on 127.0.0.1:%s\n", argv[1]);
		return 1;
	}
	a.pool = proxy_pool_new(base, argv[2], atoi(argv[3]));
	evhttp_set_gencb(http, on_request, &a);
	sterm = evsignal_new(base, SIGTERM, on_signal, base);
	sint = evsignal_new(base, SIGINT, on_signal, base);
	evsignal_add(sterm, NULL);
	evsignal_add(sint, NULL);
	fprintf(stderr, "proxy-test: listening on 127.0.0.1:%s, backend %s:%s\n", argv[1], argv[2], argv[3]);

	event_base_dispatch(base);

	proxy_pool_free(a.pool);
	evhttp_free(http);
	client_conn_free_all();
	event_free(sterm);
	event_free(sint);
	event_base_free(base);
	libevent_global_shutdown();
	fprintf(stderr, "proxy-test: exit forwards=%lu done=%lu\n", stats.forwards, stats.done);
	return 0;
}
