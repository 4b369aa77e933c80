/*
 * proxy_pool: the keep-alive connections to one replica (an idle stack
 * sized by recent concurrency) and the socket-level shortcut the forwards
 * use to write without waiting a loop turn. See proxy.c for who owns what.
 */
#include "config.h"
#include "common/evtricks.h"

#include "gateway/proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "gateway/log.h"

static struct evdns_base *pool_dns;	/* owned by whoever set it (main.c) */

void proxy_set_dns(struct evdns_base *dns)
{
	pool_dns = dns;
}

struct evdns_base *proxy_dns(void)
{
	return pool_dns;
}

/* The caller owns the pool; host is copied. NULL on allocation failure. */
struct proxy_pool *proxy_pool_new(struct event_base *base, const char *host, int port)
{
	struct proxy_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->base = base;
	p->port = port;
	p->host = strdup(host);
	if (!p->host) {
		free(p);
		return NULL;
	}
	if (strchr(host, ':'))
		snprintf(p->hostport, sizeof(p->hostport), "[%s]:%d", host, port);
	else
		snprintf(p->hostport, sizeof(p->hostport), "%s:%d", host, port);
	LIST_INIT(&p->active);
	LIST_INIT(&p->deferred);
	clock_gettime(CLOCK_MONOTONIC, &p->peak_t0);
	return p;
}

/*
 * Has the backend sent bytes on c that no answer accounts for: left in its
 * input buffer after an answer (a body longer than its Content-Length, a
 * body on a HEAD, 204 or 304 answer), or (peek) waiting in the socket of an
 * idle connection? Reused, c would hand them to the next request as its
 * answer (another client's). Logged with nginx's words; the caller frees c.
 * The socket is peeked only when c is taken for reuse, not when it is put
 * back as well: whatever was in the socket at the put is still there at the
 * take (or evhttp read it while c was idle and closed c), so a second
 * recv() per request found nothing the first would not.
 */
static int pool_unread(struct proxy_pool *p, struct evhttp_connection *c, const char *reqid, int peek)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
	size_t left = evbuffer_get_length(bufferevent_get_input(bev));
	evutil_socket_t fd = peek ? evtricks_bev_fd(bev) : -1;
	char b;

	if (left == 0 && fd >= 0 && !p->tr.bev_new &&
	    (recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1))
		left = 1;
	if (left == 0)
		return 0;
	log_warn("proxy: %s upstream %s sent more data than specified in Content-Length "
		 "(%zu bytes left unread); not reusing the connection", reqid ? reqid : "-", p->hostport, left);
	return 1;
}

/* See proxy_int.h. */
struct evhttp_connection *proxy_pool_take(struct proxy_pool *p, int fresh_only, int64_t *timeout_ms)
{
	struct evhttp_connection *c;
	*timeout_ms = 0;
	while (p->nidle > 0 && !fresh_only) {
		p->nidle--;
		c = p->idle[p->nidle].c;
		*timeout_ms = p->idle[p->nidle].timeout_ms;
		/* a TLS session cannot start over on a connection the backend closed */
		if (p->tr.bev_new && evtricks_conn_fd(c) < 0) {
			evhttp_connection_free(c);
			*timeout_ms = 0;
			continue;
		}
		if (pool_unread(p, c, NULL, 1)) {
			evhttp_connection_free(c);
			*timeout_ms = 0;
			continue;
		}
		return c;
	}
	if (p->tr.bev_new) {
		struct bufferevent *bev = p->tr.bev_new(p->base, p->tr.arg);
		c = bev ? evhttp_connection_base_bufferevent_new(p->base, pool_dns, bev, p->host,
								 (ev_uint16_t)p->port) : NULL;
		if (!c && bev)
			bufferevent_free(bev);
	} else {
		c = evhttp_connection_base_new(p->base, pool_dns, p->host, (ev_uint16_t)p->port);
	}
	if (!c)
		return NULL;
	evhttp_connection_set_max_headers_size(c, PROXY_MAX_HEADERS);
	evhttp_connection_set_retries(c, 0);
	return c;
}

/* Counts one more forward in flight (started at now) and keeps the recent peak. */
void proxy_pool_count_up(struct proxy_pool *p, const struct timespec *now)
{
	p->nactive++;
	if ((double)(now->tv_sec - p->peak_t0.tv_sec) * 1e3 +
	    (double)(now->tv_nsec - p->peak_t0.tv_nsec) / 1e6 >= PROXY_PEAK_WINDOW_MS) {
		p->peak_prev = p->peak;
		p->peak = p->nactive;
		p->peak_t0 = *now;
	}
	if (p->nactive > p->peak)
		p->peak = p->nactive;
}

/*
 * Takes c back after a clean answer. Keeps as many idle connections as were
 * in flight at once lately (at least PROXY_IDLE_MIN), so that a burst of
 * answers coming back together does not close connections the next burst
 * of requests needs again; frees the rest.
 */
void proxy_pool_put(struct proxy_pool *p, struct evhttp_connection *c, int64_t timeout_ms, const char *reqid)
{
	int want = p->peak > p->peak_prev ? p->peak : p->peak_prev;

	if (want < PROXY_IDLE_MIN)
		want = PROXY_IDLE_MIN;
	if (p->freeing || p->nidle >= want || (reqid && pool_unread(p, c, reqid, 0))) {
		evhttp_connection_free(c);
		return;
	}
	if (p->nidle == p->cap) {
		int ncap = p->cap ? 2 * p->cap : PROXY_IDLE_MIN;
		struct pooled *n = realloc(p->idle, (size_t)ncap * sizeof(*n));
		if (!n) {
			evhttp_connection_free(c);
			return;
		}
		p->idle = n;
		p->cap = ncap;
	}
	p->idle[p->nidle].c = c;
	p->idle[p->nidle].timeout_ms = timeout_ms;
	p->nidle++;
}

void proxy_pool_set_transport(struct proxy_pool *p, const struct proxy_transport *t)
{
	p->tr = *t;
}
