/*
 * launch_curl: a launcher whose start and stop are one HTTP request each,
 * sent with retries on the gateway's loop (see launch_curl.h). The http and
 * kubernetes drivers only say what to send.
 */
#include "config.h"
#include "gateway/launch.h"
#include "gateway/launch_curl.h"
#include "gateway/log.h"
#include "warmer/curl_loop.h"
#include "common/curl.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REMOTE_TRIES		3
#define REMOTE_CONNECT_MS	5000L
#define REMOTE_TIMEOUT_MS	30000L
#define REMOTE_RESP_MAX		(64 * 1024)

enum remote_state { R_IDLE, R_STARTING, R_UP, R_STOPPING };

struct remote_launch {
	struct launch base;	/* first: the generic part */
	struct event_base *evb;
	struct cloop *loop;
	char *kind, *name, *url, *method, *start_url, *stop_url, *start_body, *stop_body;
	char *content_type, *token_file, *ca_file;
	enum remote_state state;
	/* the request in flight (STARTING, STOPPING) */
	CURL *easy;
	struct curl_slist *hdrs;
	char *resp;
	size_t resp_len;
	char errbuf[CURL_ERROR_SIZE];
	int tries;
	struct event *retry_timer;
};

static void remote_send(struct remote_launch *r);

/* CURLOPT_WRITEFUNCTION: keeps the first REMOTE_RESP_MAX bytes for the error message. */
static size_t remote_write(char *p, size_t sz, size_t n, void *arg)
{
	struct remote_launch *r = arg;
	size_t len = sz * n, room = REMOTE_RESP_MAX - r->resp_len;
	if (len > room)
		len = room;
	if (len) {
		char *nb = realloc(r->resp, r->resp_len + len + 1);
		if (!nb)
			return 0;
		r->resp = nb;
		memcpy(r->resp + r->resp_len, p, len);
		r->resp_len += len;
		r->resp[r->resp_len] = 0;
	}
	return sz * n;
}

/* Drops the request in flight and its retry timer; no callback runs. */
static void remote_cancel(struct remote_launch *r)
{
	if (r->easy) {
		cloop_remove(r->loop, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	if (r->retry_timer)
		event_del(r->retry_timer);
	free(r->resp);
	r->resp = NULL;
	r->resp_len = 0;
}

/* The token file's text, trimmed; malloc'd for the caller, or NULL with err set. */
char *launch_curl_token(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(16384);
	size_t n = buf ? fread(buf, 1, 16383, f) : 0;
	fclose(f);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	buf[n] = 0;
	while (n && isspace((unsigned char)buf[n - 1]))
		buf[--n] = 0;
	size_t skip = strspn(buf, " \t\r\n");
	if (!buf[skip] || strpbrk(buf + skip, "\r\n")) {
		snprintf(err, errlen, "token file %s %s", path, buf[skip] ? "has more than one line" : "is empty");
		free(buf);
		return NULL;
	}
	memmove(buf, buf + skip, n - skip + 1);
	return buf;
}

/*
 * What the answer says about the failure: the "message" of a JSON object
 * (a Kubernetes Status, most webhooks), else the body's first line.
 */
static void remote_message(const struct remote_launch *r, char *out, size_t outlen)
{
	out[0] = 0;
	if (!r->resp_len)
		return;
	json_t *j = json_loadb(r->resp, r->resp_len, 0, NULL);
	const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
	if (m)
		snprintf(out, outlen, "%s", m);
	else if (!j) {
		size_t l = strcspn(r->resp, "\r\n");
		snprintf(out, outlen, "%.*s", (int)(l > 200 ? 200 : l), r->resp);
	}
	json_decref(j);
	for (char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
}

/*
 * The request of the current state is over. ok: started or stopped. what:
 * why it failed. Calls on_exit last, which may free r.
 */
static void remote_finish(struct remote_launch *r, int ok, const char *what)
{
	int starting = r->state == R_STARTING;
	const char *u = starting ? r->start_url : r->stop_url;
	remote_cancel(r);
	if (ok && starting) {
		r->state = R_UP;
		log_info("upstream \"%s\": %s launcher: %s %s: started", r->name, r->kind, r->method, u);
		return;
	}
	r->state = R_IDLE;
	if (ok) {
		log_info("upstream \"%s\": %s launcher: %s %s: stopped", r->name, r->kind, r->method, u);
		snprintf(r->base.why, sizeof(r->base.why), "stopped through the %s launcher", r->kind);
	} else {
		snprintf(r->base.why, sizeof(r->base.why), "%s launcher: %s %s: %s", r->kind, r->method, u, what);
		log_error("upstream \"%s\": %s", r->name, r->base.why);
	}
	if (r->base.on_exit)
		r->base.on_exit(LAUNCH_WHY, r->base.arg);
}

/* A try's outcome in words: "HTTP 503" or libcurl's error text. */
static void remote_outcome(const struct remote_launch *r, CURLcode rc, long code, char *out, size_t outlen)
{
	if (rc != CURLE_OK)
		snprintf(out, outlen, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
	else
		snprintf(out, outlen, "HTTP %ld", code);
}

/* A try ended: done, retry after a wait (transport errors, 5xx), or fail now. */
static void remote_done(CURL *easy, CURLcode rc, void *arg)
{
	struct remote_launch *r = arg;
	long code = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(easy);
	r->easy = NULL;
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	if (rc == CURLE_OK && code >= 200 && code < 300) {
		remote_finish(r, 1, NULL);
		return;
	}
	char outcome[CURL_ERROR_SIZE + 32];
	remote_outcome(r, rc, code, outcome, sizeof(outcome));
	/* a certificate or a URL that is wrong now will be wrong in a second too */
	int hopeless = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
		rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
	if (((rc != CURLE_OK && !hopeless) || code >= 500) && r->tries < REMOTE_TRIES) {
		long ms = 500L << (r->tries - 1);
		log_warn("upstream \"%s\": %s launcher: %s %s: %s, try %d of %d, next in %ldms",
			 r->name, r->kind, r->method, r->state == R_STARTING ? r->start_url : r->stop_url,
			 outcome, r->tries, REMOTE_TRIES, ms);
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
		free(r->resp);
		r->resp = NULL;
		r->resp_len = 0;
		event_add(r->retry_timer, &tv);
		return;
	}
	char msg[200], what[600], after[32] = "";
	if (r->tries > 1)
		snprintf(after, sizeof(after), " (after %d tries)", r->tries);
	remote_message(r, msg, sizeof(msg));
	snprintf(what, sizeof(what), "%s%s%s%s", outcome, after, *msg && rc == CURLE_OK ? ": " : "",
		 rc == CURLE_OK ? msg : "");
	remote_finish(r, 0, what);
}

static void remote_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	remote_send(arg);
}

/* One try of the current state's request. */
static void remote_send(struct remote_launch *r)
{
	int starting = r->state == R_STARTING;
	char err[400];
	r->tries++;
	r->errbuf[0] = 0;
	char *token = NULL;
	if (r->token_file && !(token = launch_curl_token(r->token_file, err, sizeof(err)))) {
		remote_finish(r, 0, err);
		return;
	}
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	char line[16500];
	snprintf(line, sizeof(line), "Content-Type: %s", r->content_type);
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "Expect:");
	if (token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, line);
		memset(line, 0, sizeof(line));
		free(token);
	}
	if (!e || !h) {
		if (e)
			curl_easy_cleanup(e);
		curl_slist_free_all(h);
		remote_finish(r, 0, "out of memory");
		return;
	}
	const char *body = starting ? r->start_body : r->stop_body;
	curl_easy_setopt(e, CURLOPT_URL, starting ? r->start_url : r->stop_url);
	wg_curl_defaults(e, "wakegate/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, REMOTE_CONNECT_MS);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, REMOTE_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, remote_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	if (r->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
	r->easy = e;
	r->hdrs = h;
	if (cloop_add(r->loop, e, remote_done, r) < 0) {
		r->easy = NULL;
		curl_easy_cleanup(e);
		curl_slist_free_all(h);
		r->hdrs = NULL;
		remote_finish(r, 0, "cannot start the request");
	}
}

/* Begins the request of state st from its first try, sent from the loop. */
static void remote_begin(struct remote_launch *r, enum remote_state st)
{
	remote_cancel(r);
	r->state = st;
	r->tries = 0;
	/* on the next loop turn: a failure must not reach on_exit inside start() or stop() */
	struct timeval zero = { 0, 0 };
	event_add(r->retry_timer, &zero);
}

/* The start request goes out now; its failure arrives later through on_exit. */
static int remote_start(struct launch *l, const char *name, int port, char *err, size_t errlen)
{
	struct remote_launch *r = (struct remote_launch *)l;
	if (r->state != R_IDLE) {
		snprintf(err, errlen, "%s launcher is busy", r->kind);
		return -1;
	}
	remote_begin(r, R_STARTING);
	return 0;
}

/* A start still in flight is dropped: the stop request follows at once. */
static void remote_stop(struct launch *l, int64_t grace_ms)
{
	struct remote_launch *r = (struct remote_launch *)l;
	if (r->state == R_STARTING || r->state == R_UP)
		remote_begin(r, R_STOPPING);
}

static int remote_running(const struct launch *l)
{
	return ((const struct remote_launch *)l)->state != R_IDLE;
}

static const char *remote_url(const struct launch *l)
{
	return ((const struct remote_launch *)l)->url;
}

/* Sends nothing: the gateway stops replicas (drain) before it frees launchers. */
static void remote_free(struct launch *l)
{
	struct remote_launch *r = (struct remote_launch *)l;
	if (r->state != R_IDLE)
		log_warn("upstream \"%s\": %s launcher let go while the replica may still run", r->name, r->kind);
	remote_cancel(r);
	if (r->loop)
		cloop_free(r->loop);
	if (r->retry_timer)
		event_free(r->retry_timer);
	free(r->kind);
	free(r->name);
	free(r->url);
	free(r->method);
	free(r->start_url);
	free(r->stop_url);
	free(r->start_body);
	free(r->stop_body);
	free(r->content_type);
	free(r->token_file);
	free(r->ca_file);
	free(r);
}

static const struct launch_ops remote_ops = {
	.kind = "remote",
	.start = remote_start,
	.stop = remote_stop,
	.running = remote_running,
	.free = remote_free,
	.url = remote_url,
};

static char *dup_or_null(const char *s, int *bad)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*bad = 1;
	return d;
}

struct launch *launch_remote_new(struct event_base *base, const struct launch_remote_spec *s,
				 char *err, size_t errlen)
{
	struct remote_launch *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	int bad = 0;
	r->base.ops = &remote_ops;
	r->evb = base;
	r->kind = dup_or_null(s->kind, &bad);
	r->name = dup_or_null(s->name, &bad);
	r->url = dup_or_null(s->url, &bad);
	r->method = dup_or_null(s->method, &bad);
	r->start_url = dup_or_null(s->start_url, &bad);
	r->stop_url = dup_or_null(s->stop_url, &bad);
	r->start_body = dup_or_null(s->start_body ? s->start_body : "", &bad);
	r->stop_body = dup_or_null(s->stop_body ? s->stop_body : "", &bad);
	r->content_type = dup_or_null(s->content_type ? s->content_type : "application/json", &bad);
	r->token_file = dup_or_null(s->token_file, &bad);
	r->ca_file = dup_or_null(s->ca_file, &bad);
	r->loop = cloop_new(base);
	r->retry_timer = evtimer_new(base, remote_retry_cb, r);
	if (bad || !r->loop || !r->retry_timer || !r->kind || !r->name || !r->url || !r->method ||
	    !r->start_url || !r->stop_url) {
		snprintf(err, errlen, "out of memory");
		remote_free(&r->base);
		return NULL;
	}
	return &r->base;
}
