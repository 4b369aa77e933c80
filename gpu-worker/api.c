/* api: routing and the HTTP endpoints of wakegate-worker (see api.h). */
#include "config.h"
#include "common/clock.h"
#include "common/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "gpu-worker/api.h"
#include "gpu-worker/batch.h"
#include "gpu-worker/model.h"
#include "gpu-worker/repo.h"
#include "gpu-worker/request.h"
#include "gpu-worker/sleep.h"
#include "gpu-worker/stats.h"
#include "gpu-worker/tensor.h"
#include "gpu-worker/worker.h"

/* The endpoint label in wakegate_worker_requests_total, in enum api_route's order. */
static const char *const route_names[] = {
	"predict", "infer", "server_metadata", "model_metadata", "model_ready",
	"live", "ready", "metrics",
	"sleep", "wake_up", "is_sleeping", "collective_rpc", "reset_prefix_cache",
	"repository_index", "repository_load", "repository_unload",
	"other"
};

/* One inference request while its job is queued or running. */
struct call {
	struct worker *w;
	struct evhttp_request *req;	/* NULL once the client has gone */
	struct batch_job *job;
	enum api_route route;
	int flat;			/* /predict got one flat sample: answer one flat row */
	int rows;
	int out_binary;			/* v2: the output as binary data after the JSON */
	json_t *id;			/* v2 "id" to echo, or NULL */
};

static void
free_dumped(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

/* A reply has been written out: it no longer holds the shutdown back. */
static void
reply_complete(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (evcon)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	w->unflushed--;
	worker_check_done(w);
}

/* The connection died while its reply was being written. */
static void
reply_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct worker *w = arg;

	w->unflushed--;
	worker_check_done(w);
}

/*
 * Sends buf (this frees it) with code and counts it in the metrics. Every
 * reply goes through here so that a shutdown can wait until all of them
 * are written.
 */
static void
reply_buf(struct worker *w, struct evhttp_request *req, enum api_route r, int code,
	  const char *ctype, struct evbuffer *buf)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (ctype)
		evhttp_add_header(h, "Content-Type", ctype);
	if (w->draining)
		evhttp_add_header(h, "Connection", "close");
	stats_request(w->stats, route_names[r], code);
	if (evcon) {
		w->unflushed++;
		evhttp_request_set_on_complete_cb(req, reply_complete, w);
		evhttp_connection_set_closecb(evcon, reply_conn_closed, w);
	}
	evhttp_send_reply(req, code, NULL, buf);
	evbuffer_free(buf);
}

/* Sends text (malloc'd; this takes it), as reply_buf. */
static void
reply_raw(struct worker *w, struct evhttp_request *req, enum api_route r, int code,
	  const char *ctype, char *text)
{
	struct evbuffer *buf = evbuffer_new();

	evbuffer_add_reference(buf, text, strlen(text), free_dumped, NULL);
	reply_buf(w, req, r, code, ctype, buf);
}

static void reply_error(struct worker *w, struct evhttp_request *req, enum api_route r, int code,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * The binary tensor data extension's answer: the JSON (this takes body),
 * its length in Inference-Header-Content-Length, then n floats as
 * little-endian FP32 bytes. Content-Type application/octet-stream, as
 * Triton sends it.
 */
static void
reply_binary(struct worker *w, struct evhttp_request *req, enum api_route r, json_t *body,
	     const float *v, size_t n)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
	struct evbuffer *buf = evbuffer_new();
	struct evbuffer_iovec iov;
	size_t tlen = text ? strlen(text) : 0;
	char hlen[32];

	json_decref(body);
	/* the JSON is copied in: buf is then the one thing to free */
	if (!text || !buf || evbuffer_add(buf, text, tlen) < 0 || evbuffer_reserve_space(buf, n * 4, &iov, 1) < 1) {
		free(text);
		if (buf)
			evbuffer_free(buf);
		reply_error(w, req, r, 500, "out of memory");
		return;
	}
	free(text);
	tensor_to_bytes(v, n, iov.iov_base);
	iov.iov_len = n * 4;
	evbuffer_commit_space(buf, &iov, 1);
	snprintf(hlen, sizeof(hlen), "%zu", tlen);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Inference-Header-Content-Length", hlen);
	reply_buf(w, req, r, 200, "application/octet-stream", buf);
}

/* Sends body (this takes the reference) as compact JSON, floats to 9 digits. */
static void
reply_json(struct worker *w, struct evhttp_request *req, enum api_route r, int code, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));

	json_decref(body);
	reply_raw(w, req, r, code, "application/json", text ? text : strdup("{}"));
}

/* {"error": "..."} with code. */
static void
reply_verror(struct worker *w, struct evhttp_request *req, enum api_route r, int code,
	     const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	char *text = http_json_error(msg);

	reply_raw(w, req, r, code, "application/json", text ? text : strdup("{}"));
}

static void
reply_error(struct worker *w, struct evhttp_request *req, enum api_route r, int code,
	    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(w, req, r, code, fmt, ap);
	va_end(ap);
}

void
api_reply_json(struct worker *w, struct evhttp_request *req, enum api_route r, int code, json_t *body)
{
	reply_json(w, req, r, code, body);
}

void
api_reply_error(struct worker *w, struct evhttp_request *req, enum api_route r, int code,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(w, req, r, code, fmt, ap);
	va_end(ap);
}

void
api_reply_empty(struct worker *w, struct evhttp_request *req, enum api_route r, int code)
{
	reply_raw(w, req, r, code, NULL, strdup(""));
}


/* ---- inference ---- */

/*
 * --leak-per-request: test-only, for the gateway's recycling tests (issue
 * 16). Each answered inference request really leaks the bytes, touched so
 * that they count in the RSS; the blocks are chained so that no compiler
 * can prove them dead, and never freed.
 */
static void
leak_request(struct worker *w)
{
	char *p;

	if (w->leak_per_request < sizeof(void *) || !(p = malloc(w->leak_per_request)))
		return;
	memset(p, 0xa5, w->leak_per_request);
	*(void **)p = w->leaked;
	w->leaked = p;
	w->leaked_bytes += w->leak_per_request;
}

/* The job's batch came back: answer the client, if it is still there. */
static void
call_done(struct batch_job *job, void *arg)
{
	struct call *c = arg;
	struct worker *w = c->w;
	const float *out = batch_job_output(job);
	json_t *body;

	struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);

	stats_wait(w->stats, batch_job_wait_seconds(job));
	if (evcon)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	if (batch_job_status(job) == -2) {
		reply_error(w, c->req, c->route, 503, "model \"%s\" is asleep: %s", w->name, batch_job_error(job));
	} else if (batch_job_status(job) < 0) {
		reply_error(w, c->req, c->route, 500, "inference failed: %s", batch_job_error(job));
		if (model_dead(w->model))
			worker_fatal(w, batch_job_error(job));
	} else if (c->route == R_PREDICT) {
		body = json_pack("{s:o}", "result", tensor_to_json(out, c->flat ? 0 : c->rows, w->out_dim));
		reply_json(w, c->req, c->route, 200, body);
		leak_request(w);
	} else if (c->out_binary) {
		size_t n = (size_t)c->rows * (size_t)w->out_dim;

		body = json_pack("{s:s, s:s, s:[{s:s, s:s, s:[i,i], s:{s:I}}]}",
				 "model_name", w->name, "model_version", "1", "outputs",
				 "name", "output", "datatype", "FP32", "shape", c->rows, w->out_dim,
				 "parameters", "binary_data_size", (json_int_t)(n * 4));
		if (c->id)
			json_object_set(body, "id", c->id);
		reply_binary(w, c->req, c->route, body, out, n);
		leak_request(w);
	} else {
		body = json_pack("{s:s, s:s, s:[{s:s, s:s, s:[i,i], s:o}]}",
				 "model_name", w->name, "model_version", w->version, "outputs",
				 "name", "output", "datatype", "FP32", "shape", c->rows, w->out_dim,
				 "data", tensor_to_json(out, 0, c->rows * w->out_dim));
		if (c->id)
			json_object_set(body, "id", c->id);
		reply_json(w, c->req, c->route, 200, body);
		leak_request(w);
	}
	json_decref(c->id);
	free(c);
}

/*
 * The client closed the connection while its job waited: drop the job. A
 * request evhttp detached from the dead connection is ours to free; one
 * still attached is freed by evhttp with the connection.
 */
static void
call_gone(struct evhttp_connection *evcon, void *arg)
{
	struct call *c = arg;

	if (!evhttp_request_get_connection(c->req))
		evhttp_request_free(c->req);
	batch_cancel(c->w->batch, c->job);
	json_decref(c->id);
	free(c);
}

/* Queues n samples already checked into in; answers 503 when the queue is full. */
static void
submit(struct worker *w, struct evhttp_request *req, enum api_route r, int n, int flat,
       int out_binary, const float *in, json_t *id)
{
	struct call *c = calloc(1, sizeof(*c));
	struct batch_job *job = c ? batch_job_new(w->batch, n, call_done, c) : NULL;
	int rc;

	if (!job) {
		free(c);
		reply_error(w, req, r, 500, "out of memory");
		return;
	}
	memcpy(batch_job_input(job), in, sizeof(float) * (size_t)n * (size_t)w->in_dim);
	c->w = w;
	c->req = req;
	c->job = job;
	c->route = r;
	c->flat = flat;
	c->out_binary = out_binary;
	c->rows = n;
	c->id = json_incref(id);
	rc = batch_submit(w->batch, job);
	if (rc < 0) {
		batch_job_free(job);
		json_decref(c->id);
		free(c);
		if (rc == -2) {
			reply_error(w, req, r, 503, "shutting down");
			return;
		}
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		reply_error(w, req, r, 503, "queue full (%d requests)", w->queue_max);
		return;
	}
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), call_gone, c);
}

/*
 * POST /predict or /v2/models/NAME/infer: request_parse() checks the body
 * (see request.h for both shapes) and the samples become a batch job. A body
 * over the limit is refused without being pulled up into one piece.
 */
static void
do_inference(struct worker *w, struct evhttp_request *req, enum api_route r)
{
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(b);
	const char *body = len > 0 && len <= w->max_body ? (const char *)evbuffer_pullup(b, -1) : NULL;
	const char *ihcl = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Inference-Header-Content-Length");
	long long json_len = -1;
	struct request_input in;
	char err[512], *end;
	int code;

	if (ihcl) {
		/* request_parse() says what is wrong with a bad one: -2 is "not a number" */
		json_len = strtoll(ihcl, &end, 10);
		if (end == ihcl || *end || json_len < 0 || ihcl[0] == '-' || ihcl[0] == '+')
			json_len = -2;
	}
	code = request_parse(body, len, json_len, r == R_INFER, w->in_shape, w->in_ndim, w->max_batch,
			     w->max_body, &in, err, sizeof(err));
	if (code) {
		reply_error(w, req, r, code, "%s", err);
		return;
	}
	submit(w, req, r, in.n, in.flat, in.out_binary, in.in, in.id);
	request_input_clear(&in);
}

/* ---- everything else ---- */

static void
do_model_meta(struct worker *w, struct evhttp_request *req)
{
	json_t *ishape = json_array(), *body;
	struct batch_mem mem;

	json_array_append_new(ishape, json_integer(-1));
	for (int i = 0; i < w->in_ndim; i++)
		json_array_append_new(ishape, json_integer(w->in_shape[i]));
	body = json_pack("{s:s, s:[s], s:s, s:[{s:s, s:s, s:o}], s:[{s:s, s:s, s:[i,i]}], s:i, s:s}",
			 "name", w->name, "versions", w->version, "platform", "wakegate",
			 "inputs", "name", "input", "datatype", "FP32", "shape", ishape,
			 "outputs", "name", "output", "datatype", "FP32", "shape", -1, w->out_dim,
			 "max_batch_size", w->max_batch, "device", w->device_kind);
	/* What the model takes awake, and what it holds now (issue: memory budgets). */
	batch_mem(w->batch, &mem);
	json_object_set_new(body, "memory", json_pack("{s:I, s:I, s:I, s:I, s:I}",
		"model_bytes", (json_int_t)mem.model_bytes,
		"weight_bytes", (json_int_t)mem.weight_bytes, "host_bytes", (json_int_t)mem.host_bytes,
		"device_bytes", (json_int_t)mem.device_bytes, "rss_bytes", (json_int_t)sleep_rss_bytes()));
	json_object_set_new(body, "sleep_level", json_integer(mem.level));
	reply_json(w, req, R_MODEL_META, 200, body);
}

static void
do_ready(struct worker *w, struct evhttp_request *req, enum api_route r)
{
	char why[256];
	int asleep = sleep_refuses(w, 1, why, sizeof(why));
	/* A model whose CUDA context is lost is not ready, even before the loop has heard of it. */
	int ready = batch_ready(w->batch) && !w->draining && !asleep && !model_dead(w->model);

	if (asleep) {
		/* No Retry-After: it stays asleep until someone wakes it. */
		reply_json(w, req, r, 503, json_pack("{s:b, s:s}", "ready", 0, "reason", why));
		return;
	}
	if (!ready)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	reply_json(w, req, r, ready ? 200 : 503, json_pack("{s:b}", "ready", ready));
}

static void
do_metrics(struct worker *w, struct evhttp_request *req)
{
	struct evbuffer *out = evbuffer_new();
	struct batch_mem mem;
	struct stats_now now = {
		.model = w->name, .device = w->device_kind, .ready = batch_ready(w->batch),
		.queue_depth = batch_queue_depth(w->batch), .queue_max = w->queue_max,
		.max_batch = w->max_batch, .load_seconds = w->load_s, .warmup_seconds = w->warmup_s,
	};
	size_t len;
	char *text;

	batch_mem(w->batch, &mem);
	now.now = gw_now();
	now.leaked_bytes = w->leaked_bytes;
	now.sleep_level = mem.level;
	now.weight_bytes = mem.weight_bytes;
	now.model_bytes = mem.model_bytes;
	now.host_bytes = mem.host_bytes;
	now.device_bytes = mem.device_bytes;
	now.rss_bytes = sleep_rss_bytes();

	stats_render(w->stats, &now, out);
	len = evbuffer_get_length(out);
	text = malloc(len + 1);
	evbuffer_remove(out, text, len);
	text[len] = '\0';
	evbuffer_free(out);
	reply_raw(w, req, R_METRICS, 200, "text/plain; version=0.0.4; charset=utf-8", text);
}

/* Maps a path to a route; sets *model_ok to 0 for /v2/models/OTHER. */
static enum api_route
route_of(struct worker *w, const char *path, int *model_ok, const char **model)
{
	static const char pfx[] = "/v2/models/", rpfx[] = "/v2/repository/models/";
	size_t nlen;

	*model_ok = 1;
	if (strcmp(path, "/predict") == 0)
		return R_PREDICT;
	if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0)
		return R_SERVER_META;
	if (strcmp(path, "/v2/health/live") == 0)
		return R_LIVE;
	if (strcmp(path, "/v2/health/ready") == 0)
		return R_READY;
	if (strcmp(path, "/metrics") == 0)
		return R_METRICS;
	/* vLLM's sleep API (see sleep.h) */
	if (strcmp(path, "/sleep") == 0)
		return R_SLEEP;
	if (strcmp(path, "/wake_up") == 0)
		return R_WAKE_UP;
	if (strcmp(path, "/is_sleeping") == 0)
		return R_IS_SLEEPING;
	if (strcmp(path, "/collective_rpc") == 0)
		return R_COLLECTIVE_RPC;
	if (strcmp(path, "/reset_prefix_cache") == 0)
		return R_RESET_PREFIX_CACHE;
	/* Triton's model repository extension (see repo.h); repo.c checks the name */
	if (strcmp(path, "/v2/repository/index") == 0)
		return R_REPO_INDEX;
	if (strncmp(path, rpfx, sizeof(rpfx) - 1) == 0) {
		path += sizeof(rpfx) - 1;
		*model = path;
		nlen = strcspn(path, "/");
		if (nlen > 0 && strcmp(path + nlen, "/load") == 0)
			return R_REPO_LOAD;
		if (nlen > 0 && strcmp(path + nlen, "/unload") == 0)
			return R_REPO_UNLOAD;
		return R_NONE;
	}
	if (strncmp(path, pfx, sizeof(pfx) - 1) != 0)
		return R_NONE;
	path += sizeof(pfx) - 1;
	*model = path;
	nlen = strcspn(path, "/");
	*model_ok = nlen == strlen(w->name) && strncmp(path, w->name, nlen) == 0;
	if (nlen == 0)
		return R_NONE;
	if (path[nlen] == '\0')
		return R_MODEL_META;
	if (strcmp(path + nlen, "/ready") == 0)
		return R_MODEL_READY;
	if (strcmp(path + nlen, "/infer") == 0)
		return R_INFER;
	return R_NONE;
}

void
api_request(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *model = "";
	int model_ok, post;
	enum api_route r;

	if (!path || !*path)
		path = "/";
	r = route_of(w, path, &model_ok, &model);
	if (r == R_NONE) {
		reply_error(w, req, r, 404, "no such endpoint: %s", path);
		return;
	}
	if (!model_ok) {
		reply_error(w, req, r, 404, "unknown model \"%.*s\": this worker serves \"%s\"",
			    (int)strcspn(model, "/"), model, w->name);
		return;
	}
	post = r == R_PREDICT || r == R_INFER || r == R_SLEEP || r == R_WAKE_UP ||
	       r == R_COLLECTIVE_RPC || r == R_RESET_PREFIX_CACHE ||
	       r == R_REPO_INDEX || r == R_REPO_LOAD || r == R_REPO_UNLOAD;
	if (post ? cmd != EVHTTP_REQ_POST : (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", post ? "POST" : "GET, HEAD");
		reply_error(w, req, r, 405, "method %s is not allowed on %s: use %s",
			    http_method_name(cmd), path, post ? "POST" : "GET");
		return;
	}
	switch (r) {
	case R_PREDICT:
	case R_INFER: {
		char why[256];

		if (w->draining) {
			reply_error(w, req, r, 503, "shutting down");
			return;
		}
		if (sleep_refuses(w, 0, why, sizeof(why))) {
			reply_error(w, req, r, 503, "model \"%s\" is %s", w->name, why);
			return;
		}
		do_inference(w, req, r);
		return;
	}
	case R_SLEEP:
	case R_WAKE_UP:
	case R_IS_SLEEPING:
	case R_COLLECTIVE_RPC:
	case R_RESET_PREFIX_CACHE:
		sleep_request(w, req, r);
		return;
	case R_REPO_INDEX:
	case R_REPO_LOAD:
	case R_REPO_UNLOAD:
		repo_request(w, req, r, model);
		return;
	case R_SERVER_META:
		/* Triton's names for the extensions, so that its clients find them */
		reply_json(w, req, r, 200, json_pack("{s:s, s:s, s:[s,s]}", "name", "wakegate-worker",
						     "version", PACKAGE_VERSION, "extensions",
						     "binary_tensor_data", "model_repository"));
		return;
	case R_MODEL_META:
		do_model_meta(w, req);
		return;
	case R_LIVE:
		reply_json(w, req, r, 200, json_pack("{s:b}", "live", 1));
		return;
	case R_READY:
	case R_MODEL_READY:
		do_ready(w, req, r);
		return;
	case R_METRICS:
		do_metrics(w, req);
		return;
	case R_NONE:
		break;
	}
}

void
api_on_batch(int samples, double seconds, void *arg)
{
	struct worker *w = arg;

	stats_batch(w->stats, samples, seconds);
	stats_busy(w->stats, gw_now(), seconds);
}
