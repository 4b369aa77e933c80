/* sleep: vLLM's sleep API and the loop's side of the sleep state (see sleep.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "gpu-worker/batch.h"
#include "gpu-worker/sleep.h"
#include "gpu-worker/stats.h"
#include "gpu-worker/wlog.h"
#include "gpu-worker/worker.h"

#define SLEEP_MAX_RPC_BODY 65536

size_t
sleep_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long size = 0, resident = 0;
	int n;

	if (!f)
		return 0;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

int
sleep_refuses(const struct worker *w, int readiness, char *why, size_t whylen)
{
	switch (w->sleep_state) {
	case SLEEP_FALLING:
		snprintf(why, whylen, "falling asleep (level %d)", w->sleep_level);
		return 1;
	case SLEEP_ASLEEP:
		if (w->unloaded)
			snprintf(why, whylen, "unloaded: POST /v2/repository/models/%s/load to load it", w->name);
		else
			snprintf(why, whylen, "asleep (level %d): POST /wake_up to wake it", w->sleep_level);
		return 1;
	case SLEEP_WAKING:
		/* Inference queues behind the wake; readiness waits for it. */
		snprintf(why, whylen, "waking up from level %d", w->sleep_level);
		return readiness;
	default:
		return 0;
	}
}

/* "16.0 MB" or "18.8 kB" into buf. */
static const char *
sleep_mb(size_t bytes, char *buf, size_t len)
{
	if (bytes < 1024 * 1024)
		snprintf(buf, len, "%.1f kB", (double)bytes / 1024.0);
	else
		snprintf(buf, len, "%.1f MB", (double)bytes / (1024.0 * 1024.0));
	return buf;
}

/* One log line with the memory numbers: what a sleep or wake did, for the operator. */
static void
sleep_log_mem(const struct worker *w, const char *what)
{
	struct batch_mem mem;
	char a[32], b[32], c[32];

	batch_mem(w->batch, &mem);
	wlog(WLOG_NOTICE, "%s: rss %s, weights in host memory %s, on the device %s", what,
	     sleep_mb(sleep_rss_bytes(), a, sizeof(a)), sleep_mb(mem.host_bytes, b, sizeof(b)),
	     sleep_mb(mem.device_bytes, c, sizeof(c)));
}

/*
 * The client of the control request closed its connection: the control
 * goes on (the model must not be left half way), its answer is dropped. A
 * request evhttp detached from the dead connection is ours to free.
 */
static void
ctl_gone(struct evhttp_connection *evcon, void *arg)
{
	struct worker *w = arg;

	if (w->ctl_req && !evhttp_request_get_connection(w->ctl_req))
		evhttp_request_free(w->ctl_req);
	w->ctl_req = NULL;
}

static void ctl_start(struct worker *w, struct evhttp_request *req, enum api_route r, enum batch_ctl op);

/* batch_control()'s callback: the model's new state, the log, the metrics, the answer. */
static void
ctl_done(int ok, const char *err, double seconds, int changed, void *arg)
{
	struct worker *w = arg;
	struct evhttp_request *req = w->ctl_req;
	enum api_route r = (enum api_route)w->ctl_route;
	int op = w->ctl_op, from = w->ctl_from;
	struct batch_mem mem;
	char what[160];

	w->ctl_op = 0;
	w->ctl_req = NULL;
	batch_mem(w->batch, &mem);
	/* The model's own level is the truth, success or not. */
	w->sleep_level = mem.level;
	w->sleep_state = mem.level ? SLEEP_ASLEEP : SLEEP_AWAKE;
	if (!mem.level)
		w->unloaded = 0;
	if (req) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);

		if (evcon)
			evhttp_connection_set_closecb(evcon, NULL, NULL);
	}
	switch (op) {
	case BATCH_CTL_SLEEP1:
	case BATCH_CTL_SLEEP2:
		if (!ok) {
			wlog(WLOG_ERROR, "sleep level %d failed after %.2fms: %s", op == BATCH_CTL_SLEEP1 ? 1 : 2,
			     seconds * 1e3, err);
			if (req)
				api_reply_error(w, req, r, 500, "sleep level %d failed: %s", op == BATCH_CTL_SLEEP1 ? 1 : 2, err);
			return;
		}
		stats_sleep(w->stats, mem.level, seconds);
		snprintf(what, sizeof(what), "asleep at level %d after %.2fms", mem.level, seconds * 1e3);
		sleep_log_mem(w, what);
		if (req)
			api_reply_empty(w, req, r, 200);
		return;
	case BATCH_CTL_WAKE:
		if (!ok) {
			wlog(WLOG_ERROR, "wake_up from level %d failed after %.2fms (still asleep at level %d): %s",
			     from, seconds * 1e3, mem.level, err);
			if (req)
				api_reply_error(w, req, r, 500, "wake_up from level %d failed: %s", from, err);
			return;
		}
		stats_wake(w->stats, from, seconds);
		snprintf(what, sizeof(what), "awake from level %d after %.2fms", from, seconds * 1e3);
		sleep_log_mem(w, what);
		if (r == R_REPO_LOAD) {
			ctl_start(w, req, r, BATCH_CTL_RELOAD);	/* Triton's load reads the model again */
			return;
		}
		if (req)
			api_reply_empty(w, req, r, 200);
		return;
	case BATCH_CTL_RELOAD:
		if (!ok) {
			wlog(WLOG_ERROR, "reload_weights failed (the old weights still serve): %s", err);
			if (req)
				api_reply_error(w, req, r, 500, "reload_weights failed: %s", err);
			return;
		}
		stats_reload(w->stats, seconds);
		if (changed)
			wlog(WLOG_NOTICE, "reload_weights: new weights from the model file in %.2fms", seconds * 1e3);
		else
			wlog(WLOG_NOTICE, "reload_weights: the model file is the one loaded; nothing to do");
		if (req && r == R_REPO_LOAD)
			api_reply_empty(w, req, r, 200);
		else if (req)
			api_reply_json(w, req, r, 200, json_pack("{s:[n]}", "results"));
		return;
	}
}

/* Starts a control for req (NULL: its client has gone); the answer comes from ctl_done(). */
static void
ctl_start(struct worker *w, struct evhttp_request *req, enum api_route r, enum batch_ctl op)
{
	char what[64];

	switch (op) {
	case BATCH_CTL_SLEEP1:
	case BATCH_CTL_SLEEP2:
		snprintf(what, sizeof(what), "sleep level %d (%d requests queued run first)",
			 op == BATCH_CTL_SLEEP1 ? 1 : 2, batch_queue_depth(w->batch));
		break;
	case BATCH_CTL_WAKE:
		snprintf(what, sizeof(what), "wake_up from level %d", w->sleep_level);
		break;
	default:
		snprintf(what, sizeof(what), "reload_weights");
		break;
	}
	/* Before the thread can start on it, so that the numbers are the ones before. */
	sleep_log_mem(w, what);
	if (batch_control(w->batch, op, ctl_done, w) < 0) {
		/* w->ctl_op said none runs: cannot happen, but never leave req unanswered */
		if (req)
			api_reply_error(w, req, r, 409, "another sleep, wake_up or reload is still running");
		return;
	}
	w->ctl_op = op;
	w->ctl_from = w->sleep_level;
	w->ctl_req = req;
	w->ctl_route = r;
	if (req)
		evhttp_connection_set_closecb(evhttp_request_get_connection(req), ctl_gone, w);
	switch (op) {
	case BATCH_CTL_SLEEP1:
	case BATCH_CTL_SLEEP2:
		w->sleep_state = SLEEP_FALLING;
		w->sleep_level = op == BATCH_CTL_SLEEP1 ? 1 : 2;
		break;
	case BATCH_CTL_WAKE:
		w->sleep_state = SLEEP_WAKING;
		break;
	default:
		w->sleep_state = SLEEP_RELOADING;
		break;
	}
}

/* The query parameter key of req, or NULL; the caller clears q. */
static const char *
query_get(struct evhttp_request *req, struct evkeyvalq *q, const char *key)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *s = uri ? evhttp_uri_get_query(uri) : NULL;

	TAILQ_INIT(q);
	if (!s || evhttp_parse_query_str(s, q) < 0)
		return NULL;
	return evhttp_find_header(q, key);
}

/* POST /sleep?level=N */
static void
do_sleep(struct worker *w, struct evhttp_request *req, enum api_route r)
{
	struct evkeyvalq q;
	const char *lv = query_get(req, &q, "level");
	int level = 1;

	if (lv && strcmp(lv, "1") != 0 && strcmp(lv, "2") != 0) {
		api_reply_error(w, req, r, 400, "level must be 1 or 2, not \"%.32s\"", lv);
		evhttp_clear_headers(&q);
		return;
	}
	if (lv)
		level = lv[0] - '0';
	evhttp_clear_headers(&q);
	if (w->sleep_state == SLEEP_ASLEEP && level <= w->sleep_level) {
		api_reply_empty(w, req, r, 200);	/* already there: vLLM answers 200 too */
		return;
	}
	ctl_start(w, req, r, level == 1 ? BATCH_CTL_SLEEP1 : BATCH_CTL_SLEEP2);
}

/* POST /collective_rpc {"method": "reload_weights"} */
static void
do_rpc(struct worker *w, struct evhttp_request *req, enum api_route r)
{
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(b);
	json_error_t jerr;
	const char *method;
	json_t *body;

	if (len > SLEEP_MAX_RPC_BODY) {
		api_reply_error(w, req, r, 413, "body of %zu bytes is over %d", len, SLEEP_MAX_RPC_BODY);
		return;
	}
	body = json_loadb(len ? (const char *)evbuffer_pullup(b, -1) : "", len, 0, &jerr);
	if (!body || !json_is_object(body)) {
		api_reply_error(w, req, r, 400, "JSON decode error: %s", body ? "not an object" : jerr.text);
		json_decref(body);
		return;
	}
	method = json_string_value(json_object_get(body, "method"));
	if (!method) {
		api_reply_error(w, req, r, 400, "Missing 'method' in request body");
	} else if (strcmp(method, "reload_weights") != 0) {
		api_reply_error(w, req, r, 400, "method \"%.64s\" is not supported: this worker implements reload_weights",
				method);
	} else if (w->sleep_state != SLEEP_AWAKE) {
		api_reply_error(w, req, r, 409, "reload_weights: the model is %s",
				w->sleep_state == SLEEP_ASLEEP ? "asleep: POST /wake_up first" : "falling asleep");
	} else {
		ctl_start(w, req, r, BATCH_CTL_RELOAD);
	}
	json_decref(body);
}

static const char *const ops[] = { "", "a sleep", "a sleep", "a wake_up", "a reload_weights" };

/* Refuses a control while the worker shuts down (503) or runs another one
 * (409, Retry-After: 1); 0 when it may start. */
static int ctl_refused(struct worker *w, struct evhttp_request *req, enum api_route r)
{
	if (w->draining) {
		api_reply_error(w, req, r, 503, "shutting down");
		return 1;
	}
	if (w->ctl_op) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		api_reply_error(w, req, r, 409, "%s is still running", ops[w->ctl_op]);
		return 1;
	}
	return 0;
}

void
sleep_control(struct worker *w, struct evhttp_request *req, enum api_route r, enum batch_ctl op)
{
	if (!ctl_refused(w, req, r))
		ctl_start(w, req, r, op);
}

void
sleep_request(struct worker *w, struct evhttp_request *req, enum api_route r)
{
	if (r == R_IS_SLEEPING) {
		/* Asleep from the moment a sleep is asked for until a wake is done, as vLLM's engine says. */
		int s = w->sleep_state == SLEEP_FALLING || w->sleep_state == SLEEP_ASLEEP ||
			w->sleep_state == SLEEP_WAKING;

		api_reply_json(w, req, r, 200, json_pack("{s:b}", "is_sleeping", s));
		return;
	}
	if (r == R_RESET_PREFIX_CACHE) {
		api_reply_empty(w, req, r, 200);	/* a feed-forward model caches nothing */
		return;
	}
	if (ctl_refused(w, req, r))
		return;
	switch (r) {
	case R_SLEEP:
		do_sleep(w, req, r);
		return;
	case R_WAKE_UP:
		if (w->sleep_state == SLEEP_AWAKE) {
			api_reply_empty(w, req, r, 200);
			return;
		}
		ctl_start(w, req, r, BATCH_CTL_WAKE);
		return;
	case R_COLLECTIVE_RPC:
		do_rpc(w, req, r);
		return;
	default:
		api_reply_error(w, req, r, 404, "no such endpoint");
		return;
	}
}
