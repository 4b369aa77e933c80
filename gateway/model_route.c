/*
 * model_route: the model phase. In a location with "route models" the
 * upstream comes from the model the request names:
 *   the KServe v2 path   /v2/models/NAME[/versions/V]/...
 *   an X-Model header
 *   the OpenAI-style     "model" field of a /v1/... JSON body (read, never changed)
 * matched against each upstream's "model" names (its own name without any).
 * The gateway answers the model lists itself, for every model with its
 * state, also while everything is cold (nothing is woken):
 *   GET /v1/models                OpenAI's list
 *   GET /v2/models                every model, with state and upstream
 *   POST /v2/repository/index     Triton's repository index
 *   GET /v2/models/NAME           the model's metadata: the backend's when a
 *                                 replica is READY (proxied), else name,
 *                                 platform "wakegate" and state
 * An unknown model gets 404 with an error body in that protocol's shape; no
 * model at all (and no proxy_pass to fall back on) gets 400.
 */
#include "config.h"
#include "gateway/model_route.h"
#include "gateway/accesslog.h"
#include "gateway/conf.h"
#include "gateway/phase.h"
#include "gateway/proxy.h"
#include "gateway/request.h"
#include "gateway/upstream.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The upstream that answers to model name, or NULL. */
static struct upstream *model_find(const char *name, size_t len)
{
	for (struct upstream *u = upstream_list(); u; u = u->next) {
		if (!u->cf)
			continue;
		if (!u->cf->nmodels) {
			if (strlen(u->name) == len && memcmp(u->name, name, len) == 0)
				return u;
			continue;
		}
		for (int i = 0; i < u->cf->nmodels; i++)
			if (strlen(u->cf->models[i]) == len && memcmp(u->cf->models[i], name, len) == 0)
				return u;
	}
	return NULL;
}

/* What a client sees of an upstream's state: ready, booting, asleep, failed or stopped. */
static const char *model_state(const struct upstream *u)
{
	if (upstream_count(u, RS(REPLICA_READY)))
		return "ready";
	if (upstream_count(u, RS_COMING))
		return "booting";
	if (upstream_count(u, RS_ASLEEP))
		return "asleep";
	if (upstream_count(u, RS(REPLICA_FAILED)))
		return "failed";
	return "stopped";
}

static void send_json_text(struct evhttp_request *req, int code, const char *reason, char *body)
{
	struct evbuffer *out = evbuffer_new();
	if (out && body)
		evbuffer_add_printf(out, "%s\n", body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, code, reason, out);
	if (out)
		evbuffer_free(out);
	free(body);
}

static void send_json(struct evhttp_request *req, int code, const char *reason, json_t *j)
{
	send_json_text(req, code, reason, json_dumps(j, JSON_COMPACT));
	json_decref(j);
}

/* Calls fn for every model name of every upstream in the conf. */
static void each_model(void (*fn)(const char *name, struct upstream *u, void *arg), void *arg)
{
	for (struct upstream *u = upstream_list(); u; u = u->next) {
		if (!u->cf)
			continue;
		if (!u->cf->nmodels)
			fn(u->name, u, arg);
		for (int i = 0; i < u->cf->nmodels; i++)
			fn(u->cf->models[i], u, arg);
	}
}

static void add_openai(const char *name, struct upstream *u, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s, s:s, s:i, s:s, s:s}", "id", name, "object", "model",
					     "created", 0, "owned_by", "wakegate", "state", model_state(u)));
}

static void add_v2(const char *name, struct upstream *u, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s, s:s, s:s}", "name", name, "state", model_state(u),
					     "upstream", u->name));
}

static void add_triton(const char *name, struct upstream *u, void *arg)
{
	const char *st = model_state(u);
	json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:s}", "name", name, "version", "1",
					     "state", strcmp(st, "ready") == 0 ? "READY" : "UNAVAILABLE",
					     "reason", strcmp(st, "ready") == 0 ? "" : st));
}

/* The error of an unknown (or missing) model, in the shape of the protocol the request speaks. */
static void model_error(struct wg_request *r, int openai, int code, const char *name, size_t len)
{
	char msg[400];
	if (name)
		snprintf(msg, sizeof(msg), "model \"%.*s\" not found", (int)(len > 200 ? 200 : len), name);
	else
		snprintf(msg, sizeof(msg), "no model named: send it in the path /v2/models/NAME/..., an "
			 "X-Model header, or the \"model\" field of the JSON body");
	json_t *j = openai ?
		json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "message", msg, "type", "invalid_request_error",
			  "param", "model", "code", code == 404 ? "model_not_found" : "missing_model") :
		json_pack("{s:s}", "error", msg);
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	/* logged before the answer (req may be gone after it), with the body's size */
	accesslog_refused(r->req, code, NULL, body ? strlen(body) + 1 : 0);
	send_json_text(r->req, code, code == 404 ? "Not Found" : "Bad Request", body);
}

/* The "model" field of r's JSON body; NULL when there is none. *len its length; *j to free. */
static const char *body_model(struct evhttp_request *req, size_t *len, json_t **j)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	*j = NULL;
	if (!n)
		return NULL;
	const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	*j = data ? json_loadb(data, n, 0, NULL) : NULL;
	json_t *m = *j ? json_object_get(*j, "model") : NULL;
	if (!json_is_string(m))
		return NULL;
	*len = json_string_length(m);
	return json_string_value(m);
}

static enum phase_rc model_phase(struct wg_request *r)
{
	if (!r->loc->route_models)
		return PHASE_NEXT;
	struct evhttp_request *req = r->req;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!path)
		path = "";
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int openai = strncmp(path, "/v1/", 4) == 0;
	if (cmd == EVHTTP_REQ_GET && (strcmp(path, "/v1/models") == 0 || strcmp(path, "/v2/models") == 0)) {
		json_t *a = json_array();
		if (openai) {
			each_model(add_openai, a);
			send_json(req, 200, "OK", json_pack("{s:s, s:o}", "object", "list", "data", a));
		} else {
			each_model(add_v2, a);
			send_json(req, 200, "OK", json_pack("{s:o}", "models", a));
		}
		return PHASE_DONE;
	}
	if (cmd == EVHTTP_REQ_POST && strcmp(path, "/v2/repository/index") == 0) {
		json_t *a = json_array();
		each_model(add_triton, a);
		send_json(req, 200, "OK", a);
		return PHASE_DONE;
	}
	const char *name = NULL;
	size_t len = 0;
	json_t *body = NULL;
	if (strncmp(path, "/v2/models/", 11) == 0) {
		name = path + 11;
		const char *slash = strchr(name, '/');
		len = slash ? (size_t)(slash - name) : strlen(name);
	} else if ((name = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Model")) != NULL) {
		len = strlen(name);
	} else if (openai) {
		name = body_model(req, &len, &body);
	}
	if (!name || !len) {
		json_decref(body);
		if (r->up)
			return PHASE_NEXT;	/* the location's proxy_pass */
		model_error(r, openai, 400, NULL, 0);
		return PHASE_DONE;
	}
	struct upstream *u = model_find(name, len);
	if (!u) {
		model_error(r, openai, 404, name, len);
		json_decref(body);
		return PHASE_DONE;
	}
	json_decref(body);	/* name pointed into it: not used past here */
	r->up = u;
	/* a model's metadata while no replica is READY: the gateway's own, without waking it */
	if (cmd == EVHTTP_REQ_GET && strncmp(path, "/v2/models/", 11) == 0 && !path[11 + len] &&
	    !upstream_count(u, RS(REPLICA_READY))) {
		char n[256];
		snprintf(n, sizeof(n), "%.*s", (int)(len < 255 ? len : 255), path + 11);
		send_json(req, 200, "OK", json_pack("{s:s, s:[], s:s, s:s, s:s}", "name", n, "versions",
						    "platform", "wakegate", "state", model_state(u), "upstream", u->name));
		return PHASE_DONE;
	}
	return PHASE_NEXT;
}

void model_route_init(void)
{
	phase_register(PHASE_MODEL, model_phase);
}
