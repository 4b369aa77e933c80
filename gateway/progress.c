/* progress: SSE comments for held streaming clients; see progress.h. */
#include "config.h"
#include "gateway/progress.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/proxy.h"
#include "gateway/request.h"
#include "gateway/upstream.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PROGRESS_BODY_MAX (1 << 20)	/* a larger body is not looked into for "stream" */

int progress_wanted(const struct wg_request *r)
{
	if (!r->progress_ok || !r->req)	/* the location's hold_progress, copied at the upstream phase */
		return 0;
	const char *acc = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Accept");
	if (acc && strcasestr(acc, "text/event-stream"))
		return 1;
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t n = evbuffer_get_length(in);
	if (n == 0 || n > PROGRESS_BODY_MAX)
		return 0;
	const char *body = (const char *)evbuffer_pullup(in, -1);	/* read, never changed */
	if (!body || !memmem(body, n, "\"stream\"", 8))
		return 0;
	json_t *j = json_loadb(body, n, 0, NULL);
	int want = j && json_is_true(json_object_get(j, "stream"));
	json_decref(j);
	return want;
}

/* What the upstream is doing for a held request, in a word. */
static const char *progress_doing(const struct upstream *u)
{
	if (upstream_count(u, RS(REPLICA_READY)))
		return "queued";
	if (upstream_count(u, RS(REPLICA_WARMING)))
		return "warming up";
	if (upstream_count(u, RS(REPLICA_WAKING)))
		return "waking";
	return "booting";
}

static void progress_send(struct wg_request *r, struct upstream *u)
{
	if (!r->req)
		return;
	struct evbuffer *b = evbuffer_new();
	if (!b)
		return;
	double waited = gw_now() - r->t_arrive;
	evbuffer_add_printf(b, ": wakegate: %s %s, %.1f s", u->name, progress_doing(u), waited);
	if (u->boot_s > 0)	/* measured: an honest "of about" */
		evbuffer_add_printf(b, " of about %d s", upstream_eta_s(u));
	evbuffer_add(b, "\n\n", 2);
	evhttp_send_reply_chunk(r->req, b);
	evbuffer_free(b);
}

static void progress_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wg_request *r = arg;
	(void)fd;
	(void)what;
	progress_send(r, r->up);
}

int progress_start(struct wg_request *r, struct upstream *u)
{
	if (!r->req || r->progress_timer)
		return 0;
	r->progress_timer = event_new(gw.base, -1, EV_PERSIST, progress_cb, r);
	if (!r->progress_timer)
		return -1;
	if (!r->sse_started) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
		evhttp_add_header(h, "Content-Type", "text/event-stream");
		evhttp_add_header(h, "Cache-Control", "no-cache");
		evhttp_add_header(h, "X-Request-Id", r->id);
		evhttp_add_header(h, "X-Wakegate-Held", "1");
		evhttp_send_reply_start(r->req, 200, "OK");
		r->sse_started = 1;
	}
	progress_send(r, u);
	struct timeval tv = { 1, 0 };
	event_add(r->progress_timer, &tv);
	return 0;
}

void progress_stop(struct wg_request *r)
{
	if (r->progress_timer) {
		event_free(r->progress_timer);
		r->progress_timer = NULL;
	}
}

void progress_fail(struct wg_request *r, int code, const char *reason)
{
	progress_stop(r);
	if (r->req)
		proxy_sse_error(r->req, code, reason);
}
