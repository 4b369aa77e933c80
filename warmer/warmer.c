/*
 * warmer: sends warmup inference to a booted worker and measures it.
 * Requests go one after another (each one's latency is the point), through
 * curl_loop on the caller's event loop. See warmer.h. Beyond it: every
 * string in warmer_opts is copied at start; timeout_ms <= 0 means no limit;
 * reason is "" (never NULL) on success. The program calls curl_global_init.
 */
#include "config.h"
#include "common/curl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "warmer/curl_loop.h"
#include "warmer/warmer.h"
#include "warmer/warmer_progress.h"

#define WARMER_BODY_MAX (4u << 20)	/* bytes of a response kept */
#define WARMER_ELEMS_MAX (4 << 20)	/* elements in a zero request */
#define WARMER_SNIPPET 200		/* bytes of an error body in a reason */

struct warmer {
	struct event_base *base;
	struct cloop *loop;
	CURL *easy;			/* the request in flight, or NULL */
	struct curl_slist *hdrs;
	struct event *deadline;
	warmer_done_cb cb;
	void *arg;
	warmer_progress_cb pcb;
	void *parg;

	char *base_url;			/* no trailing '/' */
	char *tls_ca;			/* CURLOPT_CAINFO, or NULL */
	int tls_insecure;		/* no peer/host verification */
	char *meta_path;		/* "/v2/models/MODEL", or NULL */
	char *post_path;		/* where the warmup POSTs go */
	char *body;			/* the warmup body (ours) */
	size_t body_len;

	int count, max, until_stable;
	long timeout_ms;
	double lat[3];			/* the last latencies, newest at lat[2] */
	int nlat;
	double t_start, t_req;

	char *resp;			/* the response of the request in flight */
	size_t resp_len, resp_cap;
	char what[512];			/* "POST /v2/models/digits/infer" */
	char errbuf[CURL_ERROR_SIZE];
	char reason[1024];

	struct warmer_result res;
	int in_progress;		/* inside pcb: cancel later */
	int cancelled;
};

static void warmer_next_post(struct warmer *w);
static void warmer_finish(struct warmer *w, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Returns a malloc'd string for the caller to free, or NULL. */
static char *warmer_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Percent-encodes a model name for a URL path; the caller frees it. */
static char *warmer_escape(const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(in);
	char *out = malloc(3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* CURLOPT_WRITEFUNCTION: keeps the first WARMER_BODY_MAX bytes, drops the rest. */
static size_t warmer_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct warmer *w = arg;
	size_t n = size * nmemb, room = WARMER_BODY_MAX - w->resp_len;
	size_t keep = n < room ? n : room;

	if (keep && w->resp_len + keep + 1 > w->resp_cap) {
		size_t cap = w->resp_cap ? w->resp_cap : 4096;
		while (cap < w->resp_len + keep + 1)
			cap *= 2;
		char *p = realloc(w->resp, cap);
		if (!p)
			return 0;	/* curl ends the transfer with a write error */
		w->resp = p;
		w->resp_cap = cap;
	}
	if (keep) {
		memcpy(w->resp + w->resp_len, data, keep);
		w->resp_len += keep;
		w->resp[w->resp_len] = '\0';
	}
	return n;
}

/*
 * Ends everything that talks to curl or the loop; the caller still owns w's
 * memory. Safe to call from a curl_loop done callback.
 */
static void warmer_teardown(struct warmer *w)
{
	cloop_free(w->loop);	/* takes w->easy out of the multi first */
	w->loop = NULL;
	if (w->easy)
		curl_easy_cleanup(w->easy);
	w->easy = NULL;
	if (w->deadline)
		event_free(w->deadline);
	w->deadline = NULL;
	curl_slist_free_all(w->hdrs);
	w->hdrs = NULL;
}

static void warmer_free_mem(struct warmer *w)
{
	free(w->base_url);
	free(w->tls_ca);
	free(w->meta_path);
	free(w->post_path);
	free(w->body);
	free(w->resp);
	free(w);
}

/* The one way out of a running warmup: stop, report, free. */
static void warmer_finish(struct warmer *w, int ok, const char *fmt, ...)
{
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->reason, sizeof(w->reason), fmt, ap);
		va_end(ap);
	}
	w->res.ok = ok;
	w->res.total_ms = 1e3 * gw_now() - w->t_start;
	warmer_teardown(w);
	w->cb(ok, ok ? "" : w->reason, &w->res, w->arg);
	warmer_free_mem(w);
}

/*
 * Turns an error body into one printable line of at most WARMER_SNIPPET
 * bytes (not cutting a UTF-8 character), written into out.
 */
static void warmer_snippet(const char *body, size_t len, char *out, size_t outlen)
{
	size_t n = len < WARMER_SNIPPET ? len : WARMER_SNIPPET;
	if (n >= outlen)
		n = outlen - 1;
	if (n < len) {
		/* back off to the start of a UTF-8 character */
		while (n > 0 && ((unsigned char)body[n] & 0xC0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)body[i];
		out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* Starts one request on a fresh easy handle; 0, or -1 with w->reason set. */
static int warmer_send(struct warmer *w, int post, const char *path,
		       void (*done)(CURL *, CURLcode, void *))
{
	char *url = warmer_strdupf("%s%s", w->base_url, path);
	CURL *e = curl_easy_init();

	snprintf(w->what, sizeof(w->what), "%s %s", post ? "POST" : "GET", path);
	if (!url || !e) {
		snprintf(w->reason, sizeof(w->reason), "%s: out of memory", w->what);
		free(url);
		if (e)
			curl_easy_cleanup(e);
		return -1;
	}
	w->resp_len = 0;
	w->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	wg_curl_defaults(e, "wakegate-warmer/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, warmer_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, w->errbuf);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->hdrs);
	if (w->tls_ca)
		curl_easy_setopt(e, CURLOPT_CAINFO, w->tls_ca);
	if (w->tls_insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (post) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)w->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, w->body);
	}
	free(url);	/* curl copied it */
	w->easy = e;
	w->t_req = 1e3 * gw_now();
	if (cloop_add(w->loop, e, done, w) < 0) {
		snprintf(w->reason, sizeof(w->reason), "%s: cannot start the request", w->what);
		curl_easy_cleanup(e);
		w->easy = NULL;
		return -1;
	}
	return 0;
}

/*
 * Says why a finished request failed, into w->reason; 0 when it got a 2xx.
 * Transport errors name the system's words ("Connection refused") where
 * there are some, since curl's own text for a refused connect is vaguer.
 */
static int warmer_check(struct warmer *w, CURL *e, CURLcode rc, long *status)
{
	*status = 0;
	if (rc != CURLE_OK) {
		long oserr = 0;
		curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &oserr);
		if (oserr && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_SEND_ERROR ||
			      rc == CURLE_RECV_ERROR))
			snprintf(w->reason, sizeof(w->reason), "%s: %s", w->what, strerror((int)oserr));
		else
			snprintf(w->reason, sizeof(w->reason), "%s: %s", w->what,
				 w->errbuf[0] ? w->errbuf : curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	if (*status >= 200 && *status < 300)
		return 0;
	char snip[WARMER_SNIPPET + 1];
	warmer_snippet(w->resp ? w->resp : "", w->resp_len, snip, sizeof(snip));
	snprintf(w->reason, sizeof(w->reason), "%s: HTTP %ld%s%s", w->what, *status,
		 snip[0] ? ": " : "", snip);
	return -1;
}

/* Zeros for one KServe input; NULL with w->reason set when it cannot. */
static json_t *warmer_zero_input(struct warmer *w, json_t *in)
{
	const char *name = json_string_value(json_object_get(in, "name"));
	const char *dtype = json_string_value(json_object_get(in, "datatype"));
	json_t *shape = json_object_get(in, "shape");
	size_t i;
	json_t *d;
	long long elems = 1;

	if (!name || !dtype || !json_is_array(shape)) {
		snprintf(w->reason, sizeof(w->reason),
			 "%s: an input without name, datatype or shape in the model metadata", w->what);
		return NULL;
	}
	if (!strcmp(dtype, "BYTES")) {
		snprintf(w->reason, sizeof(w->reason),
			 "%s: input \"%s\" is BYTES: give a warmup body", w->what, name);
		return NULL;
	}
	json_t *nshape = json_array();
	json_array_foreach(shape, i, d) {
		json_int_t v = json_is_integer(d) ? json_integer_value(d) : -2;
		if (v == -1)
			v = 1;
		if (v < 0) {
			snprintf(w->reason, sizeof(w->reason),
				 "%s: input \"%s\" has a bad shape", w->what, name);
			json_decref(nshape);
			return NULL;
		}
		elems *= v;
		if (elems > WARMER_ELEMS_MAX) {
			snprintf(w->reason, sizeof(w->reason),
				 "%s: input \"%s\" is too large for a zero request: give a warmup body",
				 w->what, name);
			json_decref(nshape);
			return NULL;
		}
		json_array_append_new(nshape, json_integer(v));
	}
	/* One shared zero value: jansson counts references, the dump repeats it. */
	json_t *zero = !strcmp(dtype, "BOOL") ? json_false() :
		       (dtype[0] == 'F' || !strcmp(dtype, "BF16")) ? json_real(0.0) : json_integer(0);
	json_t *data = json_array();
	for (long long k = 0; k < elems; k++)
		json_array_append(data, zero);
	json_decref(zero);
	return json_pack("{s:s, s:o, s:s, s:o}", "name", name, "shape", nshape,
			 "datatype", dtype, "data", data);
}

/*
 * Builds the zero request from KServe v2 model metadata into w->body
 * ({"inputs":[{"name","shape","datatype","data"}]}), one entry per input,
 * -1 dimensions taken as 1. 0, or -1 with w->reason set.
 */
static int warmer_build_body(struct warmer *w)
{
	json_error_t jerr;
	json_t *meta = json_loadb(w->resp ? w->resp : "", w->resp_len, 0, &jerr);
	json_t *ins = json_object_get(meta, "inputs");
	json_t *in, *req, *arr;
	size_t i;

	if (!meta) {
		snprintf(w->reason, sizeof(w->reason), "%s: model metadata is not JSON: %s",
			 w->what, jerr.text);
		return -1;
	}
	if (!json_is_array(ins) || json_array_size(ins) == 0) {
		snprintf(w->reason, sizeof(w->reason), "%s: no inputs in the model metadata", w->what);
		json_decref(meta);
		return -1;
	}
	arr = json_array();
	json_array_foreach(ins, i, in) {
		json_t *z = warmer_zero_input(w, in);
		if (!z) {
			json_decref(arr);
			json_decref(meta);
			return -1;
		}
		json_array_append_new(arr, z);
	}
	req = json_pack("{s:o}", "inputs", arr);
	w->body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	json_decref(meta);
	if (!w->body) {
		snprintf(w->reason, sizeof(w->reason), "%s: out of memory", w->what);
		return -1;
	}
	w->body_len = strlen(w->body);
	return 0;
}

/* The last three latencies lie within 20% of their median. */
static int warmer_stable(const struct warmer *w)
{
	if (w->nlat < 3)
		return 0;
	double a = w->lat[0], b = w->lat[1], c = w->lat[2], med;
	if ((a <= b && b <= c) || (c <= b && b <= a))
		med = b;
	else if ((b <= a && a <= c) || (c <= a && a <= b))
		med = a;
	else
		med = c;
	for (int i = 0; i < 3; i++) {
		double d = w->lat[i] - med;
		if (d < 0)
			d = -d;
		if (d > 0.2 * med)
			return 0;
	}
	return 1;
}

/* A warmup POST ended: record it, then send the next or finish. */
static void warmer_post_done(CURL *e, CURLcode rc, void *arg)
{
	struct warmer *w = arg;
	double ms = 1e3 * gw_now() - w->t_req;
	long status;
	int bad = warmer_check(w, e, rc, &status);

	curl_easy_cleanup(e);
	w->easy = NULL;
	if (!bad) {
		if (w->res.sent == 1)
			w->res.first_ms = ms;
		w->res.last_ms = ms;
		w->lat[0] = w->lat[1];
		w->lat[1] = w->lat[2];
		w->lat[2] = ms;
		w->nlat++;
	}
	if (w->pcb) {
		w->in_progress = 1;
		w->pcb(w->res.sent, w->what, status, ms, w->parg);
		w->in_progress = 0;
		if (w->cancelled) {
			warmer_teardown(w);
			warmer_free_mem(w);
			return;
		}
	}
	if (bad) {
		warmer_finish(w, 0, NULL);
		return;
	}
	int n = w->res.sent;
	if (n >= w->max || (n >= w->count && (!w->until_stable || warmer_stable(w)))) {
		warmer_finish(w, 1, NULL);
		return;
	}
	warmer_next_post(w);
}

static void warmer_next_post(struct warmer *w)
{
	w->res.sent++;
	if (warmer_send(w, 1, w->post_path, warmer_post_done) < 0) {
		w->res.sent--;
		warmer_finish(w, 0, NULL);
	}
}

/* The model metadata came: shape the zero request and start the POSTs. */
static void warmer_meta_done(CURL *e, CURLcode rc, void *arg)
{
	struct warmer *w = arg;
	long status;
	int bad = warmer_check(w, e, rc, &status);

	curl_easy_cleanup(e);
	w->easy = NULL;
	if (bad || warmer_build_body(w) < 0) {
		warmer_finish(w, 0, NULL);
		return;
	}
	warmer_next_post(w);
}

/* The whole warmup ran out of time, whatever was in flight. */
static void warmer_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct warmer *w = arg;

	warmer_finish(w, 0, "%s: warmup timed out after %ld ms", w->what, w->timeout_ms);
}

struct warmer *warmer_start(struct event_base *base, const struct warmer_opts *o,
			    warmer_done_cb cb, void *arg)
{
	if (!base || !o || !cb || !o->base_url || !o->base_url[0] || o->count < 1)
		return NULL;
	if (!o->model && !(o->path && o->body))
		return NULL;	/* nothing says what to send */

	struct warmer *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->base = base;
	w->cb = cb;
	w->arg = arg;
	w->count = o->count;
	w->until_stable = o->until_stable;
	w->max = o->until_stable ? 10 * o->count : o->count;
	if (w->until_stable && w->max < 3)
		w->max = 3;
	w->timeout_ms = o->timeout_ms;
	w->t_start = 1e3 * gw_now();

	w->base_url = strdup(o->base_url);
	if (!w->base_url)
		goto fail;
	w->tls_insecure = o->tls_insecure;
	if (o->tls_ca && !(w->tls_ca = strdup(o->tls_ca)))
		goto fail;
	for (size_t n = strlen(w->base_url); n > 0 && w->base_url[n - 1] == '/'; n--)
		w->base_url[n - 1] = '\0';
	if (o->model) {
		char *m = warmer_escape(o->model);
		w->meta_path = m ? warmer_strdupf("/v2/models/%s", m) : NULL;
		free(m);
		if (!w->meta_path)
			goto fail;
	}
	if (o->path)
		w->post_path = warmer_strdupf("%s%s", o->path[0] == '/' ? "" : "/", o->path);
	else
		w->post_path = warmer_strdupf("%s/infer", w->meta_path);
	if (!w->post_path)
		goto fail;
	if (o->body) {
		w->body = malloc(o->body_len + 1);
		if (!w->body)
			goto fail;
		memcpy(w->body, o->body, o->body_len);
		w->body[o->body_len] = '\0';
		w->body_len = o->body_len;
	}

	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	if (h)
		w->hdrs = curl_slist_append(h, "Expect:");	/* no 100-continue wait */
	if (!w->hdrs) {
		curl_slist_free_all(h);
		goto fail;
	}
	w->loop = cloop_new(base);
	if (!w->loop)
		goto fail;
	if (w->timeout_ms > 0) {
		struct timeval tv = { w->timeout_ms / 1000, (w->timeout_ms % 1000) * 1000 };
		w->deadline = evtimer_new(base, warmer_deadline, w);
		if (!w->deadline || evtimer_add(w->deadline, &tv) < 0)
			goto fail;
	}
	if (w->body) {
			w->res.sent = 1;
		if (warmer_send(w, 1, w->post_path, warmer_post_done) < 0)
			goto fail;
	} else {
		if (warmer_send(w, 0, w->meta_path, warmer_meta_done) < 0)
			goto fail;
	}
	return w;
fail:
	warmer_teardown(w);
	warmer_free_mem(w);
	return NULL;
}

void warmer_set_progress(struct warmer *w, warmer_progress_cb cb, void *arg)
{
	w->pcb = cb;
	w->parg = arg;
}

void warmer_cancel(struct warmer *w)
{
	if (!w)
		return;
	if (w->in_progress) {
		w->cancelled = 1;	/* warmer_post_done frees it when the hook returns */
		return;
	}
	warmer_teardown(w);
	warmer_free_mem(w);
}
