/* sleepapi: a backend's sleep and wake calls (see sleepapi.h). */
#include "config.h"
#include "common/url.h"
#include "gateway/sleepapi.h"
#include "gateway/conf.h"
#include "gateway/launch.h"
#include "gateway/tls.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLEEPAPI_MAX_STEPS 3

struct sleepapi_call {
	struct event_base *base;
	struct evhttp_connection *conn;
	char host[256];
	int nsteps, step;
	char path[SLEEPAPI_MAX_STEPS][300];
	const char *body[SLEEPAPI_MAX_STEPS];
	sleepapi_cb cb;
	void *arg;
	struct event *done_ev;		/* the callback runs from here, outside evhttp's own */
	int ok;
	char why[400];
};

/* Never called from inside the connection's own callbacks (answers end through done_ev),
 * so the connection and a request still on it go at once, and no answer can come after. */
static void call_free(struct sleepapi_call *c)
{
	if (c->conn)
		evhttp_connection_free(c->conn);
	if (c->done_ev)
		event_free(c->done_ev);
	free(c);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sleepapi_call *c = arg;
	sleepapi_cb cb = c->cb;
	void *cbarg = c->arg;
	int ok = c->ok;
	char why[sizeof(c->why)];
	memcpy(why, c->why, sizeof(why));
	call_free(c);
	cb(ok, why, cbarg);
}

static void finish(struct sleepapi_call *c, int ok)
{
	c->ok = ok;
	struct timeval zero = { 0, 0 };
	evtimer_add(c->done_ev, &zero);
}

static int send_step(struct sleepapi_call *c);

static void answer_cb(struct evhttp_request *req, void *arg)
{
	struct sleepapi_call *c = arg;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code < 200 || code > 299) {
		char body[160] = "";
		if (req) {
			struct evbuffer *in = evhttp_request_get_input_buffer(req);
			size_t n = evbuffer_get_length(in);
			if (n >= sizeof(body))
				n = sizeof(body) - 1;
			evbuffer_copyout(in, body, n);
			body[n] = 0;
			for (char *s = body; *s; s++)
				if (*s == '\n' || *s == '\r')
					*s = ' ';
		}
		if (code)
			snprintf(c->why, sizeof(c->why), "POST %s: %d%s%s", c->path[c->step], code, *body ? " " : "", body);
		else
			snprintf(c->why, sizeof(c->why), "POST %s: no answer (connection refused or timed out)",
				 c->path[c->step]);
		finish(c, 0);
		return;
	}
	if (++c->step == c->nsteps) {
		finish(c, 1);
		return;
	}
	if (send_step(c) < 0)
		finish(c, 0);
}

static int send_step(struct sleepapi_call *c)
{
	struct evhttp_request *req = evhttp_request_new(answer_cb, c);
	if (!req) {
		snprintf(c->why, sizeof(c->why), "POST %s: out of memory", c->path[c->step]);
		return -1;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", c->host);
	const char *body = c->body[c->step];
	if (body) {
		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	}
	if (evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, c->path[c->step]) < 0) {
		snprintf(c->why, sizeof(c->why), "POST %s: cannot send", c->path[c->step]);
		return -1;
	}
	return 0;
}

static void add_step(struct sleepapi_call *c, const char *path, const char *body)
{
	snprintf(c->path[c->nsteps], sizeof(c->path[0]), "%s", path);
	c->body[c->nsteps] = body;
	c->nsteps++;
}

struct sleepapi_call *sleepapi_start(struct event_base *base, const struct conf_upstream *cf, const char *url,
				     enum sleepapi_op op, int level, int64_t timeout_ms, sleepapi_cb cb, void *arg)
{
	struct sleepapi_call *c = calloc(1, sizeof(*c));
	int port;
	if (!c)
		return NULL;
	c->base = base;
	c->cb = cb;
	c->arg = arg;
	if (url_split(url, c->host, sizeof(c->host), &port, NULL) < 0 ||
	    !(c->done_ev = evtimer_new(base, done_cb, c)) ||
	    !(c->conn = tls_http_connection_new(base, cf, url, c->host, port))) {
		call_free(c);
		return NULL;
	}
	int t = timeout_ms > 0 ? (int)((timeout_ms + 999) / 1000) : 60;
	evhttp_connection_set_timeout(c->conn, t);
	evhttp_connection_set_retries(c->conn, 0);
	char path[300];
	if (cf->sleep_api == CONF_SLEEP_API_TRITON) {
		const char *model = cf->warmup.model ? cf->warmup.model : cf->name;
		snprintf(path, sizeof(path), "/v2/repository/models/%s/%s", model, op == SLEEPAPI_SLEEP ? "unload" : "load");
		add_step(c, path, NULL);
	} else if (op == SLEEPAPI_SLEEP) {
		snprintf(path, sizeof(path), "/sleep?level=%d", level);
		add_step(c, path, NULL);
	} else {
		add_step(c, "/wake_up", NULL);
		if (level == 2) {
			add_step(c, "/collective_rpc", "{\"method\":\"reload_weights\"}");
			add_step(c, "/reset_prefix_cache", NULL);
		}
	}
	if (send_step(c) < 0) {
		call_free(c);
		return NULL;
	}
	return c;
}

void sleepapi_cancel(struct sleepapi_call *c)
{
	if (c)
		call_free(c);
}
