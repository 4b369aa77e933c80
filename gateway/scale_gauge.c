/*
 * scale_gauge: reads scale_on's gauge from each READY replica's /metrics,
 * on the loop (evhttp client calls, as sleepapi.c and probe.c make them),
 * every scale_on every= per replica, one call at a time per replica.
 * A slot (struct scale_gauge, in u->scale) owns its connection; the
 * connection is freed only from the tick or scale_free(), never from its
 * own callback, and is dropped when the replica leaves READY or moves to
 * another URL, so that a reading always belongs to the replica's current
 * run.
 */
#include "config.h"
#include "gateway/scale.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "common/url.h"
#include "gateway/log.h"
#include "gateway/scale_rule.h"
#include "gateway/tls.h"
#include "gateway/upstream.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GAUGE_BODY_MAX (1 << 20)	/* a /metrics page larger than this is not read */

static void gauge_drop(struct scale_gauge *g)
{
	if (g->conn)
		evhttp_connection_free(g->conn);
	g->conn = NULL;
	g->pending = 0;
	g->have = 0;
	g->url[0] = '\0';
}

static void gauge_answer(struct evhttp_request *req, void *arg)
{
	struct scale_gauge *g = arg;
	g->pending = 0;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code != 200) {
		if (!g->warned)
			log_warn("upstream \"%s\": replica %d: GET %s/metrics for scale_on: %s", g->up_name, g->idx,
				 g->url, code ? "not 200" : "no answer");
		g->warned = 1;
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > GAUGE_BODY_MAX)
		return;
	const char *text = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	double v;
	if (!text || scale_rule_parse_gauge(text, len, g->gauge, &v) < 0) {
		if (!g->warned)
			log_warn("upstream \"%s\": replica %d: %s/metrics has no gauge \"%s\" for scale_on", g->up_name,
				 g->idx, g->url, g->gauge);
		g->warned = 1;
		return;
	}
	g->value = v;
	g->at = gw_now();
	g->have = 1;
	g->warned = 0;
}

/* Starts a GET /metrics on g's connection (made on first use). */
static void gauge_fetch(struct upstream *u, struct scale_gauge *g, const struct replica *rep)
{
	char host[256];
	int port;
	if (!g->conn) {
		if (url_split(rep->url, host, sizeof(host), &port, NULL) < 0 ||
		    !(g->conn = tls_http_connection_new(gw.base, u->cf, rep->url, host, port)))
			return;
		int t = (int)((u->cf->scale_on_every_ms + 999) / 1000);
		evhttp_connection_set_timeout(g->conn, t < 1 ? 1 : t);
		evhttp_connection_set_retries(g->conn, 0);
		snprintf(g->url, sizeof(g->url), "%s", rep->url);
		snprintf(g->host, sizeof(g->host), "%s", host);
	}
	struct evhttp_request *req = evhttp_request_new(gauge_answer, g);
	if (!req)
		return;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", g->host);
	if (evhttp_make_request(g->conn, req, EVHTTP_REQ_GET, "/metrics") == 0)
		g->pending = 1;	/* on failure evhttp freed req */
}

void scale_gauge_tick(struct upstream *u, struct scale_up *s, double now)
{
	const struct conf_upstream *cf = u->cf;
	for (int i = 0; i < UPSTREAM_MAX_REPLICAS; i++) {
		struct scale_gauge *g = &s->g[i];
		const struct replica *rep = &u->rep[i];
		int wanted = cf->scale_on_gauge && i < u->nrep && rep->state == REPLICA_READY && !rep->remote;
		if (!wanted || (g->url[0] && strcmp(g->url, rep->url) != 0)) {
			if (g->conn || g->have)
				gauge_drop(g);
			if (!wanted)
				continue;
		}
		snprintf(g->gauge, sizeof(g->gauge), "%s", cf->scale_on_gauge);
		snprintf(g->up_name, sizeof(g->up_name), "%s", u->name);
		g->idx = i;
		if (!g->pending && now >= g->next) {
			g->next = now + (double)cf->scale_on_every_ms / 1000;
			gauge_fetch(u, g, rep);
		}
	}
}

int scale_gauge_sum(const struct upstream *u, const struct scale_up *s, double now, double *sum)
{
	int n = 0;
	double max_age = 3.0 * (double)u->cf->scale_on_every_ms / 1000;
	*sum = 0;
	for (int i = 0; i < u->nrep && i < UPSTREAM_MAX_REPLICAS; i++) {
		const struct scale_gauge *g = &s->g[i];
		if (g->have && u->rep[i].state == REPLICA_READY && now - g->at <= max_age) {
			*sum += g->value;
			n++;
		}
	}
	return n;
}

void scale_gauge_free(struct scale_up *s)
{
	for (int i = 0; i < UPSTREAM_MAX_REPLICAS; i++)
		gauge_drop(&s->g[i]);
}
