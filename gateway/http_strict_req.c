/*
 * http_strict_req: the checks of each request evhttp completed, run first
 * by main_cb and admin_cb (see http_strict.h); what only the raw bytes
 * show comes from the scanner (http_strict.c) through
 * http_strict_scanned_bad. Written against libevent 2.1.12's evhttp, as
 * http_strict.c: it frames the checks on what evhttp's parser let through.
 */
#include "config.h"

#include "gateway/http_strict.h"
#include "gateway/http_strict_int.h"
#include "gateway/accesslog.h"
#include "gateway/log.h"
#include "gateway/proxy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#if LIBEVENT_VERSION_NUMBER != 0x02010c00
#error "gateway/http_strict_req.c checks what libevent 2.1.12-stable's evhttp parser lets through: check it against this version (see common/evtricks.h)"
#endif

/* Answers req with code and closes the connection after it. Returns 1. */
static int refuse(struct evhttp_request *req, int code, const char *why)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	char msg[160];

	snprintf(msg, sizeof(msg), "client sent %s", why);
	log_info("%s; answered %d and closing the connection", msg, code);
	evhttp_remove_header(out, "Connection");
	evhttp_add_header(out, "Connection", "close");
	accesslog_refused(req, code, NULL, proxy_error_size(msg));
	proxy_send_error(req, code, msg, 0);
	return 1;
}

/*
 * Byte classes, one table lookup a byte (these loops run over every
 * request's target, header names and Host): BC_CTL, what nginx refuses in
 * a request target or a header name (controls, space, DEL); BC_HOST, what
 * it refuses in a Host besides (a path separator); BC_DOT, a dot.
 */
enum { BC_CTL = 1, BC_HOST = 2, BC_DOT = 4 };
static const unsigned char bclass[256] = {
	[0 ... 0x20] = BC_CTL | BC_HOST, [0x7f] = BC_CTL | BC_HOST,
	['/'] = BC_HOST, ['\\'] = BC_HOST, ['.'] = BC_DOT,
};

/* nginx's ngx_http_validate_host: no path separator, control or space, no
 * "..", trailing dots dropped (and then not empty). */
static int host_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned prev = 0, dots = 0;
	size_t n = 0;

	for (; p[n]; n++) {
		unsigned k = bclass[p[n]];
		if (k & BC_HOST)
			return 0;
		if (k & prev & BC_DOT)
			return 0;
		prev = k;
		dots = k & BC_DOT ? dots + 1 : 0;	/* the trailing run of dots */
	}
	return n > dots;
}

/* A Content-Length nginx takes: digits only, spaces around allowed. */
static int cl_ok(const char *s, int64_t *out)
{
	int64_t n = 0;
	int d = 0;
	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s >= '0' && *s <= '9'; s++, d++)
		n = n * 10 + (*s - '0');
	while (*s == ' ' || *s == '\t')
		s++;
	*out = n;
	return d > 0 && d <= 18 && *s == '\0';
}

/* Does the comma-separated list s hold the token tok? */
static int has_token(const char *s, const char *tok)
{
	size_t k = strlen(tok);
	while (s && *s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		const char *e = s;
		while (*e && *e != ',')
			e++;
		size_t n = (size_t)(e - s);
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n == k && strncasecmp(s, tok, k) == 0)
			return 1;
		s = e;
	}
	return 0;
}

/* Several Connection headers become one (proxy_hdr reads the first only). */
static void merge_connection(struct evkeyvalq *in, int n)
{
	struct evkeyval *h;
	size_t len = 1;
	char *all, *p;

	if (n < 2)
		return;
	TAILQ_FOREACH(h, in, next)
		if (strcasecmp(h->key, "Connection") == 0)
			len += strlen(h->value) + 2;
	all = malloc(len);
	if (!all)
		return;
	p = all;
	TAILQ_FOREACH(h, in, next)
		if (strcasecmp(h->key, "Connection") == 0)
			p += sprintf(p, "%s%s", p == all ? "" : ", ", h->value);
	while (evhttp_remove_header(in, "Connection") == 0)
		;
	evhttp_add_header(in, "Connection", all);
	free(all);
}

/* See http_strict.h. */
int http_strict_refused(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *uri = evhttp_request_get_uri(req);
	const char *te = NULL, *cl = NULL;
	struct evkeyval *h;
	int n_host = 0, n_cl = 0, n_te = 0, n_conn = 0, close_after = 0;
	int64_t len = 0;
	const char *why;

	if (bev && (why = http_strict_scanned_bad(bev)) != NULL)
		return refuse(req, 400, why);
	if (!uri || !*uri)
		return refuse(req, 400, "an empty request target");
	for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
		if (bclass[*p] & BC_CTL)
			return refuse(req, 400, "a space or control byte in the request target");
	if (uri[0] != '/' && strncasecmp(uri, "http://", 7) != 0 && strncasecmp(uri, "https://", 8) != 0)
		return refuse(req, 400, "a request target that is neither a path nor an absolute URI");
	TAILQ_FOREACH(h, in, next) {
		const unsigned char *k = (const unsigned char *)h->key;
		size_t nlen;
		if (!*k)
			return refuse(req, 400, "an empty header name");
		for (; *k; k++)
			if (bclass[*k] & BC_CTL)
				return refuse(req, 400, "a space or control byte in a header name");
		nlen = (size_t)(k - (const unsigned char *)h->key);
		/* by first letter and length, then the compare: most names need none */
		switch (h->key[0] | 0x20) {
		case 'h':
			if (nlen == 4 && strcasecmp(h->key, "Host") == 0 && (++n_host > 1 || !host_ok(h->value)))
				return refuse(req, 400, n_host > 1 ? "two Host headers" : "an invalid Host header");
			break;
		case 'c':
			if (nlen == 14 && strcasecmp(h->key, "Content-Length") == 0) {
				if (++n_cl > 1)
					return refuse(req, 400, "two Content-Length headers");
				if (!cl_ok(h->value, &len))
					return refuse(req, 400, "an invalid Content-Length");
				cl = h->value;
			} else if (nlen == 10 && strcasecmp(h->key, "Connection") == 0) {
				n_conn++;
				close_after |= has_token(h->value, "close");
			}
			break;
		case 't':
			if (nlen == 17 && strcasecmp(h->key, "Transfer-Encoding") == 0) {
				if (++n_te > 1)
					return refuse(req, 400, "two Transfer-Encoding headers");
				te = h->value;
			}
			break;
		}
	}
	if (req->major == 1 && req->minor >= 1 && n_host == 0)
		return refuse(req, 400, "an HTTP/1.1 request without a Host header");
	if (te) {
		if (req->major == 1 && req->minor == 0)
			return refuse(req, 400, "Transfer-Encoding in an HTTP/1.0 request");
		if (cl)
			return refuse(req, 400, "both Content-Length and Transfer-Encoding");
		while (*te == ' ' || *te == '\t')
			te++;
		size_t n = strlen(te);
		while (n > 0 && (te[n - 1] == ' ' || te[n - 1] == '\t'))
			n--;
		if (n != 7 || strncasecmp(te, "chunked", 7) != 0)
			return refuse(req, 501, "a Transfer-Encoding other than chunked");
	}
	/* a HEAD's chunked body is not cut out as one framed by Content-Length
	 * is (head_done): no byte of it may be parsed as a request */
	if (te && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		close_after = 1;
	merge_connection(in, n_conn);
	if (close_after) {
		struct evkeyvalq *out = evhttp_request_get_output_headers(req);
		evhttp_remove_header(out, "Connection");
		evhttp_add_header(out, "Connection", "close");
	}
	return 0;
}
