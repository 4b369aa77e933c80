/* probe: a booting replica's health polls (see probe.h). */
#include "config.h"
#include "common/url.h"
#include "gateway/probe.h"
#include "gateway/launch.h"
#include "gateway/tls.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct probe {
	struct event_base *base;
	const struct conf_upstream *cf;	/* read only while starting a connection */
	char url[128];
	char host[256];
	int port;
	char path[256];
	probe_cb cb;
	void *arg;
	struct evhttp_connection *conn;
	int pending;
	struct event *timer;
	int delay_ms;
	int waited_ms;			/* the delays so far: the fast polls last 50ms */
	int last_code;			/* 0: no answer (refused, timed out) */
	int last_count;			/* polls in a row that got last_code */
	int polls;
};

static void deferred_conn_free(evutil_socket_t fd, short what, void *arg)
{
	evhttp_connection_free(arg);
}

/* The connection may be inside its own callback: free it on the next loop turn. */
static void probe_conn_drop(struct probe *p)
{
	if (!p->conn)
		return;
	struct timeval zero = { 0, 0 };
	if (event_base_once(p->base, -1, EV_TIMEOUT, deferred_conn_free, p->conn, &zero) < 0)
		evhttp_connection_free(p->conn);
	p->conn = NULL;
	p->pending = 0;
}

static void probe_poll(struct probe *p);

static void probe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	probe_poll(arg);
}

/*
 * The next poll: every 2ms for the first 50ms of the boot (a worker is
 * often healthy a few ms after fork, and a refused connect costs next to
 * nothing, while doubling from 5ms made a worker ready at 6ms wait until
 * 15ms), then doubling up to 100ms for the slow ones.
 */
static void probe_again(struct probe *p)
{
	p->waited_ms += p->delay_ms;
	if (p->waited_ms < 50)
		p->delay_ms = 2;
	else
		p->delay_ms = p->delay_ms < 5 ? 5 : p->delay_ms * 2;
	if (p->delay_ms > 100)
		p->delay_ms = 100;
	struct timeval tv = { 0, p->delay_ms * 1000 };
	evtimer_add(p->timer, &tv);
}

static void probe_note(struct probe *p, int code)
{
	if (code == p->last_code && p->polls)
		p->last_count++;
	else
		p->last_code = code, p->last_count = 1;
	p->polls++;
}

/* One answer: 200 ends the probe (the callback may free it); anything else polls again soon. */
static void probe_answer_cb(struct evhttp_request *req, void *arg)
{
	struct probe *p = arg;
	p->pending = 0;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	probe_note(p, code);
	if (code == 200) {
		p->cb(1, NULL, p->arg);
		return;
	}
	if (p->conn && tls_url_is_https(p->url)) {
		/* an untrusted certificate will not fix itself; else a new TLS session next time */
		char tbuf[200], why[400];
		int permanent;
		const char *twhy = tls_connection_error(p->conn, tbuf, sizeof(tbuf), &permanent);
		if (twhy && permanent) {
			snprintf(why, sizeof(why), "%s: %s", p->url, twhy);
			p->cb(0, why, p->arg);
			return;
		}
		probe_conn_drop(p);
	}
	probe_again(p);
}

static void probe_poll(struct probe *p)
{
	if (p->pending)
		return;
	if (!p->conn) {
		p->conn = tls_http_connection_new(p->base, p->cf, p->url, p->host, p->port);
		if (!p->conn) {
			probe_again(p);
			return;
		}
		evhttp_connection_set_timeout(p->conn, 2);
		evhttp_connection_set_retries(p->conn, 0);
	}
	struct evhttp_request *req = evhttp_request_new(probe_answer_cb, p);
	if (!req) {
		probe_again(p);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", p->host);
	if (evhttp_make_request(p->conn, req, EVHTTP_REQ_GET, p->path) == 0)
		p->pending = 1;
	else
		probe_again(p);	/* evhttp freed req */
}

struct probe *probe_start(struct event_base *base, const struct conf_upstream *cf, const char *url,
			  const char *path, probe_cb cb, void *arg)
{
	struct probe *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->base = base;
	p->cf = cf;
	p->cb = cb;
	p->arg = arg;
	snprintf(p->url, sizeof(p->url), "%s", url);
	snprintf(p->path, sizeof(p->path), "%s", path);
	if (url_split(url, p->host, sizeof(p->host), &p->port, NULL) < 0 ||
	    !(p->timer = evtimer_new(base, probe_timer_cb, p))) {
		free(p);
		return NULL;
	}
	probe_again(p);	/* the first poll 5ms after launch */
	return p;
}

void probe_describe(const struct probe *p, char *buf, size_t len)
{
	if (!p->polls) {
		snprintf(buf, len, "GET %s: not polled yet", p->path);
		return;
	}
	if (p->last_code)
		snprintf(buf, len, "GET %s: %d x%d", p->path, p->last_code, p->last_count);
	else
		snprintf(buf, len, "GET %s: no answer (connection refused or timed out) x%d", p->path, p->last_count);
}

int probe_last_code(const struct probe *p)
{
	return p->polls ? p->last_code : 0;
}

void probe_free(struct probe *p)
{
	if (!p)
		return;
	probe_conn_drop(p);
	event_free(p->timer);
	free(p);
}
