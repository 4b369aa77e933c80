/* repo: Triton's model repository extension over the sleep machinery (see repo.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "gpu-worker/batch.h"
#include "gpu-worker/model.h"
#include "gpu-worker/repo.h"
#include "gpu-worker/sleep.h"
#include "gpu-worker/worker.h"

#define REPO_MAX_BODY 65536

/* The model's state in Triton's words; *reason is "" or why it is not READY. */
static const char *
repo_state(const struct worker *w, const char **reason)
{
	*reason = "";
	if (w->draining) {
		*reason = "shutting down";
		return "UNAVAILABLE";
	}
	if (model_dead(w->model)) {
		*reason = "the model's device failed";
		return "UNAVAILABLE";
	}
	switch (w->sleep_state) {
	case SLEEP_FALLING:
		return "UNLOADING";
	case SLEEP_ASLEEP:
		*reason = w->unloaded ? "unloaded" : w->sleep_level == 1 ? "asleep (level 1)" : "asleep (level 2)";
		return "UNAVAILABLE";
	case SLEEP_WAKING:
		return "LOADING";
	default:
		/* a reload swaps the weights in under a serving model, as Triton's reload does */
		return batch_ready(w->batch) ? "READY" : "LOADING";
	}
}

/*
 * The request body as a JSON object: NULL when it is empty (every field
 * is optional), else the object, or -1 after answering 400.
 */
static int
repo_body(struct worker *w, struct evhttp_request *req, enum api_route r, json_t **out)
{
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(b);
	json_error_t jerr;

	*out = NULL;
	if (len == 0)
		return 0;
	if (len > REPO_MAX_BODY) {
		api_reply_error(w, req, r, 413, "body of %zu bytes is over %d", len, REPO_MAX_BODY);
		return -1;
	}
	*out = json_loadb((const char *)evbuffer_pullup(b, -1), len, 0, &jerr);
	if (!*out || !json_is_object(*out)) {
		api_reply_error(w, req, r, 400, "the body must be a JSON object%s%s", *out ? "" : ": ",
				*out ? "" : jerr.text);
		json_decref(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static void
repo_index(struct worker *w, struct evhttp_request *req, enum api_route r)
{
	json_t *body, *ready, *list = json_array(), *m;
	const char *reason, *state = repo_state(w, &reason);

	if (repo_body(w, req, r, &body) < 0) {
		json_decref(list);
		return;
	}
	ready = json_object_get(body, "ready");
	if (ready && !json_is_boolean(ready)) {
		api_reply_error(w, req, r, 400, "\"ready\" must be true or false");
		json_decref(body);
		json_decref(list);
		return;
	}
	if (!json_is_true(ready) || strcmp(state, "READY") == 0) {
		m = json_pack("{s:s, s:s, s:s}", "name", w->name, "version", "1", "state", state);
		if (*reason)
			json_object_set_new(m, "reason", json_string(reason));
		json_array_append_new(list, m);
	}
	json_decref(body);
	api_reply_json(w, req, r, 200, list);
}

static void
repo_load_unload(struct worker *w, struct evhttp_request *req, enum api_route r, const char *model)
{
	int load = r == R_REPO_LOAD, nlen = (int)strcspn(model, "/");
	json_t *body, *params;
	const char *key;
	json_t *v;

	if ((size_t)nlen != strlen(w->name) || strncmp(model, w->name, (size_t)nlen) != 0) {
		api_reply_error(w, req, r, 400, "failed to %s '%.*s', no version is available: "
				"this worker serves \"%s\"", load ? "load" : "unload", nlen, model, w->name);
		return;
	}
	if (repo_body(w, req, r, &body) < 0)
		return;
	params = json_object_get(body, "parameters");
	/* "config" and "file:..." would load another model than --model names: refused, not ignored */
	json_object_foreach(params, key, v) {
		if (load && (strcmp(key, "config") == 0 || strncmp(key, "file:", 5) == 0)) {
			api_reply_error(w, req, r, 400, "failed to load '%s': parameter \"%.64s\" is not "
					"supported (this worker serves its --model file)", w->name, key);
			json_decref(body);
			return;
		}
	}
	json_decref(body);
	if (load) {
		/* awake: Triton reloads a loaded model; here the file is read again if it changed */
		sleep_control(w, req, r, w->sleep_state == SLEEP_AWAKE ? BATCH_CTL_RELOAD : BATCH_CTL_WAKE);
		return;
	}
	if (w->sleep_state == SLEEP_ASLEEP && w->sleep_level == 2 && !w->ctl_op) {
		w->unloaded = 1;
		api_reply_empty(w, req, r, 200);	/* already unloaded: Triton answers 200 too */
		return;
	}
	/* sleep_control() refuses (409, 503) exactly when one of these holds */
	if (!w->draining && !w->ctl_op)
		w->unloaded = 1;
	sleep_control(w, req, r, BATCH_CTL_SLEEP2);
}

void
repo_request(struct worker *w, struct evhttp_request *req, enum api_route r, const char *model)
{
	if (r == R_REPO_INDEX)
		repo_index(w, req, r);
	else
		repo_load_unload(w, req, r, model);
}
