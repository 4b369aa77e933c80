/* k8s_api: see k8s_api.h. Written against libcurl 7.88 (Debian 12) and jansson 2.14. */
#include "config.h"
#include "gateway/k8s_api.h"
#include "gateway/launch_curl.h"
#include "warmer/curl_loop.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define K8S_CONNECT_MS	5000L
#define K8S_BODY_MAX	(4 * 1024 * 1024)

struct k8s_call {
	struct cloop *loop;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body_out;			/* the request body, owned */
	char *resp;
	size_t resp_len;
	int too_big;
	double retry_after;
	char errbuf[CURL_ERROR_SIZE];
	k8s_data_fn data;
	k8s_done_fn done;
	void *arg;
};

void k8s_api_base(const char *conf_api, char *out, size_t outlen)
{
	const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
	if ((!conf_api || strcmp(conf_api, K8S_DEFAULT_API) == 0) && h && *h)
		snprintf(out, outlen, strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s", h, p && *p ? p : "443");
	else
		snprintf(out, outlen, "%s", conf_api ? conf_api : K8S_DEFAULT_API);
	size_t n = strlen(out);
	while (n && out[n - 1] == '/')
		out[--n] = 0;
}

static void call_free(struct k8s_call *c)
{
	if (c->easy) {
		cloop_remove(c->loop, c->easy);
		curl_easy_cleanup(c->easy);
	}
	curl_slist_free_all(c->hdrs);
	free(c->body_out);
	free(c->resp);
	free(c);
}

void k8s_call_cancel(struct k8s_call *c)
{
	if (c)
		call_free(c);
}

static size_t call_write(char *p, size_t sz, size_t n, void *arg)
{
	struct k8s_call *c = arg;
	size_t len = sz * n;
	long code = 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
	if (c->data && code >= 200 && code < 300)	/* an error's Status object is kept for done */
		return c->data(p, len, c->arg) < 0 ? 0 : len;
	if (c->resp_len + len > K8S_BODY_MAX) {
		c->too_big = 1;
		return 0;
	}
	char *nb = realloc(c->resp, c->resp_len + len + 1);
	if (!nb)
		return 0;
	c->resp = nb;
	memcpy(c->resp + c->resp_len, p, len);
	c->resp_len += len;
	c->resp[c->resp_len] = 0;
	return len;
}

/* Retry-After: SECONDS (the API server's form; an HTTP date is taken as 1s). */
static size_t call_header(char *p, size_t sz, size_t n, void *arg)
{
	struct k8s_call *c = arg;
	size_t len = sz * n;
	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		char v[32];
		size_t vl = len - 12 < sizeof(v) - 1 ? len - 12 : sizeof(v) - 1;
		memcpy(v, p + 12, vl);
		v[vl] = 0;
		char *end;
		double s = strtod(v, &end);
		c->retry_after = end != v && s > 0 ? s : 1;
	}
	return len;
}

static void call_done(CURL *easy, CURLcode rc, void *arg)
{
	struct k8s_call *c = arg;
	long code = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(easy);
	c->easy = NULL;
	const char *err = NULL;
	if (c->too_big)
		err = "answer larger than 4 MiB";
	else if (rc != CURLE_OK)
		err = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
	c->done((int)code, err, c->resp ? c->resp : "", c->resp_len, c->retry_after, c->arg);
	call_free(c);
}

struct k8s_call *k8s_call_start(struct cloop *loop, const struct k8s_call_spec *s, k8s_data_fn data,
				k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	char *token = NULL;
	if (s->token_file && !(token = launch_curl_token(s->token_file, err, errlen)))
		return NULL;
	struct k8s_call *c = calloc(1, sizeof(*c));
	CURL *e = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	char line[16500];
	if (h && s->body) {
		snprintf(line, sizeof(line), "Content-Type: %s", s->content_type ? s->content_type : "application/json");
		h = curl_slist_append(h, line);
	}
	if (h)
		h = curl_slist_append(h, "Expect:");
	if (h && token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, line);
		memset(line, 0, sizeof(line));
	}
	free(token);
	if (!c || !e || !h || (s->body && !(c->body_out = strdup(s->body)))) {
		snprintf(err, errlen, "out of memory");
		if (e)
			curl_easy_cleanup(e);
		curl_slist_free_all(h);
		if (c)
			free(c->body_out);
		free(c);
		return NULL;
	}
	c->loop = loop;
	c->data = data;
	c->done = done;
	c->arg = arg;
	c->hdrs = h;
	curl_easy_setopt(e, CURLOPT_URL, s->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "wakegate/" PACKAGE_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
	if (c->body_out) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(c->body_out));
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body_out);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, K8S_CONNECT_MS);
	if (s->timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, call_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, call_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	if (s->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
	c->easy = e;
	if (cloop_add(loop, e, call_done, c) < 0) {
		snprintf(err, errlen, "cannot start the request");
		call_free(c);
		return NULL;
	}
	return c;
}
