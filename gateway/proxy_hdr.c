/*
 * proxy_hdr: what the proxy passes on, drops and adds, both ways, and the
 * small JSON error answer. Hop-by-hop headers (RFC 9110 7.6.1) stay on their
 * hop: Connection and every header it names, Keep-Alive, Proxy-*, TE,
 * Trailer, Transfer-Encoding, Upgrade.
 */
#include "config.h"
#include "common/http.h"

#include "gateway/proxy.h"
#include "gateway/proxy_hdr.h"
#include "gateway/log_escape.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <jansson.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

/* By the first letter first: this runs for every header of every request and answer. */
static int is_hop_by_hop(const char *key)
{
	switch (key[0] | 0x20) {
	case 'c':
		return strcasecmp(key, "Connection") == 0;
	case 'k':
		return strcasecmp(key, "Keep-Alive") == 0;
	case 'p':
		return strncasecmp(key, "Proxy-", 6) == 0;
	case 't':
		return strcasecmp(key, "TE") == 0 || strcasecmp(key, "Trailer") == 0 ||
		       strcasecmp(key, "Transfer-Encoding") == 0;
	case 'u':
		return strcasecmp(key, "Upgrade") == 0;
	}
	return 0;
}

/* Request headers the proxy writes itself (X-Forwarded-For is merged apart). */
static int set_by_proxy(const char *key)
{
	switch (key[0] | 0x20) {
	case 'h':
		return strcasecmp(key, "Host") == 0;
	case 'c':
		return strcasecmp(key, "Content-Length") == 0;
	case 'e':
		return strcasecmp(key, "Expect") == 0;
	case 'x':
		return strcasecmp(key, "X-Forwarded-Proto") == 0 || strcasecmp(key, "X-Request-Id") == 0;
	}
	return 0;
}

/* Is key one of the comma-separated tokens of a Connection header? */
static int named_by_connection(const char *conn, const char *key)
{
	size_t klen = strlen(key);
	const char *p = conn;

	while (p && *p) {
		const char *end;
		size_t n;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		end = p;
		while (*end && *end != ',')
			end++;
		n = (size_t)(end - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == klen && strncasecmp(p, key, n) == 0)
			return 1;
		p = end;
	}
	return 0;
}

static int drop_header(const char *conn, const char *key)
{
	return is_hop_by_hop(key) || (conn && named_by_connection(conn, key));
}

/* Its length when s makes a request id (1 to 64 letters, digits, ".", "_",
 * ":", "-": safe in a log line and a header), else 0. */
static size_t reqid_is_sane(const char *s)
{
	return log_token_ok(s, PROXY_REQID_MAX) ? strlen(s) : 0;
}

/* See proxy_hdr.h. */
void proxy_hdr_request_id(struct evhttp_request *creq, const char *given, char out[PROXY_REQID_MAX])
{
	static const char hex[] = "0123456789abcdef";
	const char *client;
	unsigned char b[16];
	size_t n;

	if (given && (n = reqid_is_sane(given)) > 0) {
		memcpy(out, given, n + 1);
		return;
	}
	client = evhttp_find_header(evhttp_request_get_input_headers(creq), "X-Request-Id");
	if (client && (n = reqid_is_sane(client)) > 0) {
		memcpy(out, client, n + 1);
		return;
	}
	arc4random_buf(b, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * sizeof(b)] = '\0';
}

/* Appends src's bytes to dst without draining src. 0 or -1. */
static int copy_body(struct evbuffer *dst, struct evbuffer *src)
{
	struct evbuffer_iovec few[8], *v = few;
	int n = evbuffer_peek(src, -1, NULL, NULL, 0);	/* how many pieces */
	int rc = 0;

	if (n <= 0)
		return 0;
	if (n > 8) {	/* a body in many pieces: room on the heap */
		v = calloc((size_t)n, sizeof(*v));
		if (!v)
			return -1;
	}
	n = evbuffer_peek(src, -1, NULL, v, n);
	for (int i = 0; i < n && rc == 0; i++)
		rc = evbuffer_add(dst, v[i].iov_base, v[i].iov_len);
	if (v != few)
		free(v);
	return rc;
}

/* X-Forwarded-For being built: on the stack unless it grows long. */
struct xff {
	char few[256];
	char *s;
	size_t len, cap;
	int bad;
};

/* Appends ", " (unless first) and v. On no memory, marks x bad. */
static void xff_add(struct xff *x, const char *v)
{
	size_t n = strlen(v), need = x->len + (x->len ? 2 : 0) + n + 1;

	if (need > x->cap) {
		size_t cap = need * 2;
		char *s = x->s == x->few ? malloc(cap) : realloc(x->s, cap);
		if (!s) {
			x->bad = 1;
			return;
		}
		if (x->s == x->few)
			memcpy(s, x->few, x->len + 1);
		x->s = s;
		x->cap = cap;
	}
	if (x->len) {
		memcpy(x->s + x->len, ", ", 2);
		x->len += 2;
	}
	memcpy(x->s + x->len, v, n + 1);
	x->len += n;
}

/* See proxy_hdr.h. */
struct evhttp_request *proxy_hdr_request(struct evhttp_request *creq, const char *hostport,
					 const char *reqid,
					 void (*cb)(struct evhttp_request *, void *), void *arg)
{
	struct evhttp_request *u = evhttp_request_new(cb, arg);
	struct evkeyvalq *in = evhttp_request_get_input_headers(creq);
	struct evkeyvalq *out;
	struct evbuffer *body = evhttp_request_get_input_buffer(creq);
	struct evhttp_connection *cc = evhttp_request_get_connection(creq);
	const char *conn = evhttp_find_header(in, "Connection");
	struct evkeyval *h;
	struct xff xff = { .len = 0, .cap = sizeof(xff.few), .bad = 0 };
	char *peer = NULL;
	ev_uint16_t port = 0;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(creq);
	size_t len;
	char num[32];
	int bad = 0;

	if (!u)
		return NULL;
	out = evhttp_request_get_output_headers(u);
	xff.s = xff.few;
	xff.few[0] = '\0';
	TAILQ_FOREACH(h, in, next) {
		if (drop_header(conn, h->key) || set_by_proxy(h->key))
			continue;
		if ((h->key[0] | 0x20) == 'x' && strcasecmp(h->key, "X-Forwarded-For") == 0) {
			xff_add(&xff, h->value);
			continue;
		}
		bad |= evhttp_add_header(out, h->key, h->value);
	}
	if (cc)
		evhttp_connection_get_peer(cc, &peer, &port);
	if (peer && *peer)
		xff_add(&xff, peer);
	bad |= xff.bad;
	bad |= evhttp_add_header(out, "Host", hostport);
	if (xff.len > 0)
		bad |= evhttp_add_header(out, "X-Forwarded-For", xff.s);
	/* the client's own scheme: https on an ssl listener */
	bad |= evhttp_add_header(out, "X-Forwarded-Proto",
				 cc && bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(cc)) ? "https" : "http");
	bad |= evhttp_add_header(out, "X-Request-Id", reqid);
	if (xff.s != xff.few)
		free(xff.s);

	len = evbuffer_get_length(body);
	if (len > 0 || cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_PUT || cmd == EVHTTP_REQ_PATCH) {
		snprintf(num, sizeof(num), "%zu", len);
		bad |= evhttp_add_header(out, "Content-Length", num);
	}
	if (bad || copy_body(evhttp_request_get_output_buffer(u), body) != 0) {
		evhttp_request_free(u);
		return NULL;
	}
	return u;
}

/* See proxy_hdr.h. */
const char *proxy_hdr_uri(struct evhttp_request *creq, char *buf, size_t len)
{
	const char *raw = evhttp_request_get_uri(creq);
	const struct evhttp_uri *eu = evhttp_request_get_evhttp_uri(creq);
	const char *path, *query;

	if (!raw || raw[0] == '/' || strcmp(raw, "*") == 0 || !eu)
		return raw ? raw : "/";
	path = evhttp_uri_get_path(eu);
	query = evhttp_uri_get_query(eu);
	if (snprintf(buf, len, "%s%s%s", path && *path ? path : "/", query ? "?" : "",
		     query ? query : "") >= (int)len)
		return raw;
	return buf;
}

/* See proxy_hdr.h. */
void proxy_hdr_response(struct evhttp_request *creq, struct evhttp_request *ureq,
			const char *reqid, const char *extra_name, const char *extra_value)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(ureq);
	struct evkeyvalq *out = evhttp_request_get_output_headers(creq);
	const char *conn = evhttp_find_header(in, "Connection");
	int chunked = evhttp_find_header(in, "Transfer-Encoding") != NULL;
	struct evkeyval *h, *next;

	/*
	 * Passed headers move from ureq to creq, no copy: ureq is freed after
	 * its answer, and evhttp reads no header of it from here on but those
	 * that frame the body (Content-Length, which is copied, and the
	 * hop-by-hop ones, which stay).
	 */
	for (h = TAILQ_FIRST(in); h; h = next) {
		next = TAILQ_NEXT(h, next);
		if (drop_header(conn, h->key) ||
		    ((h->key[0] | 0x20) == 'x' && strcasecmp(h->key, "X-Request-Id") == 0))
			continue;
		if ((h->key[0] | 0x20) == 'c' && strcasecmp(h->key, "Content-Length") == 0) {
			if (!chunked)
				evhttp_add_header(out, h->key, h->value);
			continue;
		}
		TAILQ_REMOVE(in, h, next);
		TAILQ_INSERT_TAIL(out, h, next);
	}
	evhttp_add_header(out, "X-Request-Id", reqid);
	if (extra_name && extra_value)
		evhttp_add_header(out, extra_name, extra_value);
	/*
	 * An HTTP/1.0 client gets no chunks: without a length, the end of the
	 * body is the end of the connection. evhttp decides keep-alive (and
	 * would add "Content-Length: 0") from the client's own Connection
	 * header, so that is what we turn into "close".
	 */
	if (creq->major == 1 && creq->minor == 0 && !evhttp_find_header(out, "Content-Length")) {
		struct evkeyvalq *cin = evhttp_request_get_input_headers(creq);
		while (evhttp_remove_header(cin, "Connection") == 0)
			;
		evhttp_add_header(cin, "Connection", "close");
	}
}

/*
 * The standard reason phrase (RFC 9110, RFC 6585 for 429): libevent's own
 * table stops at 417 and says "Client Error" for a 429.
 */
static const char *status_phrase(int code)
{
	switch (code) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return NULL;	/* libevent's */
	}
}

/* See proxy.h. */
size_t proxy_error_size(const char *reason)
{
	char *s = http_json_error(reason);
	size_t n = (s ? strlen(s) : strlen("{\"error\":\"error\"}")) + 1;
	free(s);
	return n;
}

/* See proxy.h. */
void proxy_sse_error(struct evhttp_request *req, int code, const char *reason)
{
	json_t *o = json_object();
	char *s = NULL;
	if (o && json_object_set_new(o, "error", json_string(reason ? reason : "error")) != 0)
		json_object_set_new(o, "error", json_string("error"));
	if (o) {
		json_object_set_new(o, "code", json_integer(code));
		s = json_dumps(o, JSON_COMPACT);
	}
	struct evbuffer *b = evbuffer_new();
	if (b) {
		evbuffer_add_printf(b, "event: error\ndata: %s\n\n", s ? s : "{\"error\":\"error\"}");
		evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
	}
	evhttp_send_reply_end(req);
	free(s);
	json_decref(o);
}

void proxy_send_error(struct evhttp_request *req, int code, const char *reason, int retry_after_s)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	char *s = http_json_error(reason);
	char num[32];

	evhttp_remove_header(h, "Content-Type");
	evhttp_add_header(h, "Content-Type", "application/json");
	if (retry_after_s > 0) {
		snprintf(num, sizeof(num), "%d", retry_after_s);
		evhttp_remove_header(h, "Retry-After");
		evhttp_add_header(h, "Retry-After", num);
	}
	if (b) {
		evbuffer_add_printf(b, "%s\n", s ? s : "{\"error\":\"error\"}");
	}
	evhttp_send_reply(req, code, status_phrase(code), b);
	if (b)
		evbuffer_free(b);
	free(s);
}

/* See proxy_hdr.h. */
int proxy_hdr_response_framing_bad(struct evhttp_request *ureq)
{
	struct evkeyval *h;
	const char *first = NULL;

	TAILQ_FOREACH(h, evhttp_request_get_input_headers(ureq), next) {
		if ((h->key[0] | 0x20) != 'c' || strcasecmp(h->key, "Content-Length") != 0)
			continue;
		const char *v = h->value;
		while (*v == ' ' || *v == '\t')
			v++;
		if (!isdigit((unsigned char)*v))
			return 1;
		if (first && strtoull(first, NULL, 10) != strtoull(v, NULL, 10))
			return 1;
		first = v;
	}
	return 0;
}
