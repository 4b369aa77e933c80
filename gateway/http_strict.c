/*
 * http_strict: the raw-byte scanner of client connections (the checks of
 * each completed request are in http_strict_req.c). See http_strict.h for
 * the why.
 *
 * Written against libevent 2.1.12's evhttp, whose parser
 * - reads the head line by line (LF or CRLF) and keeps a header's value up
 *   to its first NUL, and appends a folded line to the previous header;
 * - takes a chunk size with strtoll(16) (so "0x3", "+3" and " 3" pass) and
 *   fails a chunk size it cannot read with 413;
 * - never reads the body of a HEAD request: the bytes after its head are
 *   parsed as the next request;
 * - frames a body by the first Content-Length, or by Transfer-Encoding only
 *   when it is exactly "chunked" (anything else: no body at all);
 * - closes after an answer only when a Connection header is exactly "close".
 * Inside a chunked body the scanner rewrites two things before evhttp sees
 * them (evhttp reads a chunk-size line only once its LF is there, so the
 * whole line is still in the buffer): an extension ("3;x=y", which nginx
 * accepts and evhttp fails with 413) is cut from its line; a fault ends the
 * body right there with a last chunk, so that evhttp completes the request
 * and http_strict_refused() answers it 400 as nginx does, not 413.
 * The scanner follows the framing evhttp uses for the requests we let
 * through, so that its count of requests matches the number of times evhttp
 * completes one; where the two would part (a request we refuse), it stops.
 *
 * Why this is not in common/evtricks.c with the other reliances on
 * libevent's insides: it calls nothing internal but evtricks_bev_fd (the
 * rest is an evbuffer callback and evbuffer edits: public API); what it relies on is
 * the parser's behaviour listed above, which the whole file mirrors and no
 * one call could wrap. evtricks.h lists it, and the check below stops the
 * build on another libevent, as evtricks.c's does.
 */
#include "config.h"

#include "gateway/http_strict.h"
#include "gateway/http_strict_int.h"
#include "common/evtricks.h"
#include "gateway/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#if LIBEVENT_VERSION_NUMBER != 0x02010c00
#error "gateway/http_strict.c mirrors libevent 2.1.12-stable's evhttp parser: check it against this version (see common/evtricks.h)"
#endif

enum scan_state {
	S_LINE0,	/* before a request line (empty lines are skipped, as nginx) */
	S_REQLINE,	/* in the request line */
	S_HSTART,	/* at the start of a header line */
	S_HCR,		/* a CR at the start of a header line: the head ends at its LF */
	S_HNAME,	/* in a header name */
	S_HVALUE,	/* in a header value */
	S_BODY,		/* in a body framed by Content-Length */
	S_HEADBODY,	/* in a HEAD's body (Content-Length): cut out before evhttp sees it */
	S_CSIZE,	/* in a chunk-size line, before its first digit */
	S_CDIGITS,	/* in a chunk size */
	S_CEXT,		/* after a chunk size: an extension or spaces, to the LF */
	S_CDATA,	/* in a chunk's data */
	S_CCRLF,	/* after a chunk's data: CRLF or LF */
	S_CLF,		/* ... its LF */
	S_TRAILER,	/* at the start of a trailer line (after the last chunk) */
	S_TRLINE,	/* in a trailer line */
	S_DEAD		/* framing this request is not evhttp's to finish: we refuse or close it */
};

enum hdr_kind { H_OTHER, H_CL, H_TE };

struct hs_conn {
	struct bufferevent *bev;	/* the connection this record is of */
	uint32_t cur;			/* requests whose first byte the scanner saw */
	uint32_t bad;			/* the first request with a fault only bytes show, 0: none */
	uint32_t served;		/* requests evhttp completed (http_strict_refused calls) */
	const char *why;		/* bad's fault */
	uint8_t state;
	uint8_t head_method;		/* the request is a HEAD */
	uint8_t mlen;			/* method bytes seen */
	uint8_t nlen;			/* header name bytes kept (lower case) */
	uint8_t kind;			/* enum hdr_kind of the header being read */
	uint8_t vlen;			/* value bytes kept */
	uint8_t n_cl, n_te;
	uint8_t cdig;			/* chunk size digits */
	uint8_t cr;			/* a CR in a chunk-size line, not yet known to end it */
	uint8_t rw;			/* scan() asks input_cb for a rewrite (rw_*) */
	uint32_t line_len;		/* bytes of the chunk-size or trailer line before this one */
	uint32_t ext_len;		/* ... of them after the size: an extension, spaces */
	size_t rw_a, rw_b, rw_next;	/* replace buffer bytes [rw_a, rw_b) by rw_s, go on at rw_next */
	const char *rw_s;
	int8_t te_chunked;		/* 1: the Transfer-Encoding is "chunked" */
	int64_t cl;			/* the Content-Length, -1: not a plain number */
	uint64_t left;			/* body or chunk bytes still to come */
	int64_t head_t0;		/* ms (the loop's clock) when the current request's first byte came */
	char name[20];
	char val[24];
};

static struct hs_conn *tab;	/* by socket number */
static int ntab;
static int64_t header_timeout_ms;	/* client_header_timeout, over the whole head; 0: none */

/* See http_strict.h. */
void http_strict_set_header_timeout(int64_t ms)
{
	header_timeout_ms = ms;
}

/* The loop's cached time in ms: no system call per read. */
static int64_t now_ms(struct bufferevent *bev)
{
	struct timeval tv;
	if (event_base_gettimeofday_cached(bufferevent_get_base(bev), &tv) != 0)
		return 0;
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/*
 * bufferevents made whose connection has not sent a byte yet: the first
 * bytes of a connection start its record afresh. (A socket number and even
 * a bufferevent's address come back for later connections.) A small open-
 * addressing set, emptied whole when it fills up: an entry lost that way
 * only matters if its connection also got both the socket number and the
 * bufferevent address of the one before it.
 */
#define FRESH_N 2048
static struct bufferevent *fresh[FRESH_N];
static unsigned fresh_used;

static unsigned fresh_slot(const struct bufferevent *bev)
{
	uintptr_t x = (uintptr_t)bev;
	return (unsigned)((x >> 4) ^ (x >> 15)) & (FRESH_N - 1);
}

static void fresh_add(struct bufferevent *bev)
{
	unsigned i = fresh_slot(bev);

	if (fresh_used >= FRESH_N / 2) {
		memset(fresh, 0, sizeof(fresh));
		fresh_used = 0;
	}
	while (fresh[i] && fresh[i] != bev)
		i = (i + 1) & (FRESH_N - 1);
	if (!fresh[i])
		fresh_used++;
	fresh[i] = bev;
}

/* Is bev fresh? Takes it out of the set (re-inserting the run after it). */
static int fresh_take(struct bufferevent *bev)
{
	unsigned i = fresh_slot(bev);

	while (fresh[i] && fresh[i] != bev)
		i = (i + 1) & (FRESH_N - 1);
	if (!fresh[i])
		return 0;
	fresh[i] = NULL;
	fresh_used--;
	for (unsigned j = (i + 1) & (FRESH_N - 1); fresh[j]; j = (j + 1) & (FRESH_N - 1)) {
		struct bufferevent *b = fresh[j];
		fresh[j] = NULL;
		fresh_used--;
		fresh_add(b);
	}
	return 1;
}

/* fd's record for bev; first: called by the scanner, with new bytes (a
 * fresh bufferevent's first bytes start its record afresh). NULL: no memory. */
static struct hs_conn *record(struct bufferevent *bev, int fd, int first)
{
	if (fd < 0)
		return NULL;
	if (fd >= ntab) {
		int n = ntab ? ntab : 256;
		while (n <= fd)
			n *= 2;
		struct hs_conn *t = realloc(tab, (size_t)n * sizeof(*t));
		if (!t)
			return NULL;
		memset(t + ntab, 0, (size_t)(n - ntab) * sizeof(*t));
		tab = t;
		ntab = n;
	}
	struct hs_conn *h = &tab[fd];
	if ((first && fresh_take(bev)) || h->bev != bev) {
		memset(h, 0, sizeof(*h));
		h->bev = bev;
	}
	return h;
}

/* Notes a fault of the current request; the scanner stops there. */
static void fault(struct hs_conn *h, const char *why)
{
	if (!h->bad) {
		h->bad = h->cur ? h->cur : 1;
		h->why = why;
	}
	h->state = S_DEAD;
}

static void value_done(struct hs_conn *h)
{
	size_t a = 0, b = h->vlen;
	while (a < b && (h->val[a] == ' ' || h->val[a] == '\t'))
		a++;
	while (b > a && (h->val[b - 1] == ' ' || h->val[b - 1] == '\t' || h->val[b - 1] == '\r'))
		b--;
	if (h->kind == H_CL) {
		int64_t n = 0;
		h->n_cl++;
		if (a == b || b - a > 18 || h->vlen >= sizeof(h->val))
			n = -1;
		for (size_t i = a; i < b && n >= 0; i++)
			n = h->val[i] >= '0' && h->val[i] <= '9' ? n * 10 + (h->val[i] - '0') : -1;
		h->cl = n;
	} else if (h->kind == H_TE) {
		h->n_te++;
		h->te_chunked = b - a == 7 && strncasecmp(h->val + a, "chunked", 7) == 0;
	}
}

/* The head is complete: frame the body as evhttp will, or stop. */
static void head_done(struct hs_conn *h)
{
	if (h->head_method) {
		/*
		 * evhttp reads no body of a HEAD: it would parse one as the next
		 * request. nginx frames it by its Content-Length, discards it and
		 * keeps the connection: input_cb cuts those bytes out of the
		 * buffer as they come, so evhttp never sees them. A chunked one
		 * (or a Content-Length refused later) ends the scan; the
		 * connection closes after the answer.
		 */
		if (h->n_te || (h->n_cl && (h->n_cl > 1 || h->cl < 0))) {
			h->state = S_DEAD;
		} else {
			h->left = h->n_cl ? (uint64_t)h->cl : 0;
			h->state = h->left ? S_HEADBODY : S_LINE0;
		}
	} else if (h->n_te) {
		h->state = h->n_te == 1 && !h->n_cl && h->te_chunked ? S_CSIZE : S_DEAD;
	} else if (h->n_cl) {
		h->state = h->n_cl == 1 && h->cl >= 0 ? (h->cl > 0 ? S_BODY : S_LINE0) : S_DEAD;
		h->left = h->cl > 0 ? (uint64_t)h->cl : 0;
	} else {
		h->state = S_LINE0;
	}
}

/* A whole header line s[0..len) (its LF not included) in hand: what the
 * byte states S_HNAME and S_HVALUE do for a line split across reads, at
 * the cost of three memchr instead of a loop over the name (this runs for
 * every header line of every request). -1: a fault. */
static int header_line(struct hs_conn *h, const unsigned char *s, size_t len)
{
	const unsigned char *nul = memchr(s, '\0', len);
	const unsigned char *colon = memchr(s, ':', nul ? (size_t)(nul - s) : len);
	size_t nl, vl;

	if (nul) {
		fault(h, colon ? "a NUL in a header value" : "a NUL in a header name");
		return -1;
	}
	if (!colon)
		return 0;	/* no colon: evhttp refuses the head */
	nl = (size_t)(colon - s);
	h->kind = nl == 14 && strncasecmp((const char *)s, "content-length", 14) == 0 ? H_CL :
		  nl == 17 && strncasecmp((const char *)s, "transfer-encoding", 17) == 0 ? H_TE :
		  H_OTHER;
	if (h->kind != H_OTHER) {
		vl = len - nl - 1;
		if (vl > sizeof(h->val))
			vl = sizeof(h->val);	/* value_done takes a full buffer for too long */
		memcpy(h->val, colon + 1, vl);
		h->vlen = (uint8_t)vl;
		value_done(h);
	}
	return 0;
}

/* A fault inside a chunked body: the body ends at buffer offset at with
 * what closes it (see above); evhttp then completes the request. */
static void chunk_fault(struct hs_conn *h, const char *why, size_t at, const char *end)
{
	fault(h, why);
	h->rw = 1;
	h->rw_a = at;
	h->rw_b = SIZE_MAX;	/* to the end of the buffer */
	h->rw_s = end;
	h->rw_next = SIZE_MAX;
}

/* Runs the scanner over n new bytes, p[0] at buffer offset base; returns
 * how many it used before a state that skips bytes by count (the caller
 * skips them) or a rewrite (h->rw). */
static size_t scan(struct hs_conn *h, const unsigned char *p, size_t n, size_t base)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];

		switch (h->state) {
		case S_LINE0:
			if (c == '\r' || c == '\n') {
				i++;
				break;
			}
			h->cur++;
			h->head_t0 = -1;	/* input_cb stamps it */
			h->mlen = 0;
			h->head_method = 1;	/* until a byte differs from "HEAD " */
			h->n_cl = h->n_te = 0;
			h->cl = -1;
			h->te_chunked = 0;
			h->state = S_REQLINE;
			/* fall through */
		case S_REQLINE: {
			/* the line at once: memchr, not a byte loop (this runs for every request) */
			const unsigned char *lf = memchr(p + i, '\n', n - i);
			size_t len = (lf ? (size_t)(lf - p) + 1 : n) - i;
			if (memchr(p + i, '\0', len)) {
				fault(h, "a NUL in the request line");
				return n;
			}
			for (size_t k = 0; k < len && h->mlen < 5; k++, h->mlen++)
				if (p[i + k] != (unsigned char)"HEAD "[h->mlen])
					h->head_method = 0;
			i += len;
			if (lf) {
				if (h->mlen < 5)
					h->head_method = 0;
				h->state = S_HSTART;
			}
			break;
		}
		case S_HSTART:
			if (c == '\n') {
				head_done(h);
			} else if (c == '\r') {
				h->state = S_HCR;
			} else if (c == ' ' || c == '\t') {
				fault(h, "a folded header line");
				return n;
			} else {
				/* the common case, the whole line in hand: a few memchr, no byte loop */
				const unsigned char *lf = memchr(p + i, '\n', n - i);
				if (lf) {
					if (header_line(h, p + i, (size_t)(lf - (p + i))) < 0)
						return n;
					i = (size_t)(lf - p) + 1;
					break;
				}
				h->nlen = 0;
				h->state = S_HNAME;
				continue;
			}
			i++;
			break;
		case S_HCR:
			if (c != '\n') {
				fault(h, "a bare CR in the head");
				return n;
			}
			head_done(h);
			i++;
			break;
		case S_HNAME:
			if (c == ':') {
				h->kind = h->nlen == 14 && memcmp(h->name, "content-length", 14) == 0 ? H_CL :
					  h->nlen == 17 && memcmp(h->name, "transfer-encoding", 17) == 0 ? H_TE :
					  H_OTHER;
				h->vlen = 0;
				h->state = S_HVALUE;
			} else if (c == '\0') {
				fault(h, "a NUL in a header name");
				return n;
			} else if (c == '\n') {
				h->state = S_HSTART;	/* no colon: evhttp refuses the head */
			} else if (h->nlen < sizeof(h->name)) {
				h->name[h->nlen++] = (char)(c | (c >= 'A' && c <= 'Z' ? 0x20 : 0));
			} else {
				h->nlen = sizeof(h->name);	/* longer than any name we look for */
			}
			i++;
			break;
		case S_HVALUE: {
			/* the common case, a whole value in hand: memchr, not a byte loop */
			const unsigned char *lf = memchr(p + i, '\n', n - i);
			size_t len = (lf ? (size_t)(lf - p) : n) - i;
			if (memchr(p + i, '\0', len)) {
				fault(h, "a NUL in a header value");
				return n;
			}
			if (h->kind != H_OTHER) {
				size_t room = sizeof(h->val) - h->vlen;
				memcpy(h->val + h->vlen, p + i, len < room ? len : room);
				h->vlen = (uint8_t)(h->vlen + (len < room ? len : room));
			}
			i += len;
			if (lf) {
				value_done(h);
				h->state = S_HSTART;
				i++;
			}
			break;
		}
		case S_BODY:
		case S_HEADBODY:
		case S_CDATA:
			return i;
		case S_CSIZE:
			h->cdig = 0;
			h->left = 0;
			h->line_len = h->ext_len = 0;
			h->cr = 0;
			h->state = S_CDIGITS;
			/* fall through */
		case S_CDIGITS: {
			int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
			if (d >= 0) {
				if (++h->cdig > 16) {
					chunk_fault(h, "a chunk size of more than 16 hex digits", base + i - h->line_len, "0\r\n\r\n");
					return i;
				}
				h->left = h->left * 16 + (uint64_t)d;
				h->line_len++;
				i++;
				break;
			}
			if (h->cdig == 0 || (c != ';' && c != ' ' && c != '\t' && c != '\r' && c != '\n')) {
				chunk_fault(h, "a chunk size that is not hex digits", base + i - h->line_len, "0\r\n\r\n");
				return i;
			}
			h->state = S_CEXT;
			continue;
		}
		case S_CEXT:
			if (c == '\0') {
				chunk_fault(h, "a NUL in a chunk extension", base + i - h->line_len, "0\r\n\r\n");
				return i;
			}
			if (c == '\n') {
				h->state = h->left ? S_CDATA : S_TRAILER;
				h->line_len = 0;
				if (h->ext_len) {
					/* cut the extension: evhttp reads "3;x=y" as no size */
					size_t lf = base + i;
					h->rw = 1;
					h->rw_a = lf - h->cr - h->ext_len;
					h->rw_b = lf - h->cr;
					h->rw_s = "";
					h->rw_next = lf - h->ext_len + 1;
					return i + 1;
				}
				i++;
				break;
			}
			if (h->cr)
				h->ext_len++;	/* a CR inside the extension */
			h->cr = c == '\r';
			if (!h->cr)
				h->ext_len++;
			h->line_len++;
			i++;
			break;
		case S_CCRLF:
			if (c == '\r') {
				h->state = S_CLF;
			} else if (c == '\n') {
				h->state = S_CSIZE;
			} else {
				chunk_fault(h, "chunk data longer than its size", base + i, "\r\n0\r\n\r\n");
				return i;
			}
			i++;
			break;
		case S_CLF:
			if (c != '\n') {
				chunk_fault(h, "chunk data longer than its size", base + i - 1, "\r\n0\r\n\r\n");
				return i;
			}
			h->state = S_CSIZE;
			i++;
			break;
		case S_TRAILER:
			h->line_len = 0;
			h->state = c == '\n' ? S_LINE0 : c == '\r' ? S_TRAILER : S_TRLINE;
			if (h->state == S_TRLINE)
				h->line_len = 1;
			i++;
			break;
		case S_TRLINE:
			if (c == '\0') {
				chunk_fault(h, "a NUL in a trailer", base + i - h->line_len, "\r\n");
				return i;
			}
			if (c == '\n')
				h->state = S_TRAILER;
			h->line_len++;
			i++;
			break;
		default:	/* S_DEAD */
			return n;
		}
	}
	return n;
}

static int in_rewrite;	/* our own changes to a buffer call input_cb too: not new bytes */

/* Replaces buf's bytes [a, b) (b past the end: to the end) by s. Only the
 * front of the buffer moves, which a bufferevent allows on its input. */
static void rewrite(struct evbuffer *buf, size_t a, size_t b, const char *s)
{
	struct evbuffer *head = evbuffer_new();
	size_t len = evbuffer_get_length(buf);

	if (!head)
		return;
	if (b > len)
		b = len;
	in_rewrite = 1;
	evbuffer_remove_buffer(buf, head, a);
	evbuffer_drain(buf, b - a);
	evbuffer_add(head, s, strlen(s));
	evbuffer_prepend_buffer(buf, head);
	in_rewrite = 0;
	evbuffer_free(head);
}

/* The scanner's evbuffer callback: new bytes are at the end of the buffer. */
static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct bufferevent *bev = arg;
	struct hs_conn *h;
	struct evbuffer_ptr at;
	struct evbuffer_iovec v[8];
	size_t off, len;

	if (info->n_added == 0 || in_rewrite)
		return;
	h = record(bev, evtricks_bev_fd(bev), 1);
	if (!h || h->state == S_DEAD)
		return;
	/*
	 * client_header_timeout over the whole head, as nginx's: evhttp's
	 * timeout runs between reads, so a client trickling a byte at a time
	 * kept its connection. Checked as bytes come (a client that stops
	 * altogether meets evhttp's timeout); nginx closes without an answer.
	 */
	if (header_timeout_ms > 0 && h->state >= S_REQLINE && h->state <= S_HVALUE && h->head_t0 >= 0 &&
	    now_ms(bev) - h->head_t0 > header_timeout_ms) {
		log_info("client timed out sending its request header (client_header_timeout %lldms); "
			 "closing the connection", (long long)header_timeout_ms);
		h->state = S_DEAD;
		shutdown(evtricks_bev_fd(bev), SHUT_RDWR);	/* evhttp reads EOF next and frees it */
		return;
	}
	len = evbuffer_get_length(buf);
	off = len - (info->n_added <= len ? info->n_added : len);
again:
	while (off < len && h->state != S_DEAD) {
		int nv;
		/* from the front (evhttp drained all it had, the common case): no evbuffer_ptr to set */
		if (off > 0 && evbuffer_ptr_set(buf, &at, off, EVBUFFER_PTR_SET) != 0)
			return;
		nv = evbuffer_peek(buf, (ev_ssize_t)(len - off), off > 0 ? &at : NULL, v, 8);
		if (nv <= 0)
			return;
		for (int k = 0; k < nv && k < 8; k++) {
			const unsigned char *p = v[k].iov_base;
			size_t m = v[k].iov_len;
			while (m > 0) {
				size_t used;
				if (h->state == S_HEADBODY) {
					/* a HEAD's body: cut all of it that is here (see head_done) */
					size_t cut = h->left < len - off ? (size_t)h->left : len - off;
					h->left -= cut;
					if (h->left == 0)
						h->state = S_LINE0;
					rewrite(buf, off, off + cut, "");
					len = evbuffer_get_length(buf);
					goto again;	/* the buffer changed under v */
				}
				if (h->state == S_BODY || h->state == S_CDATA) {
					used = h->left < m ? (size_t)h->left : m;
					h->left -= used;
					if (h->left == 0)
						h->state = h->state == S_BODY ? S_LINE0 : S_CCRLF;
				} else {
					used = scan(h, p, m, off);
					if (h->head_t0 < 0)
						h->head_t0 = now_ms(bev);
					if (h->rw) {
						h->rw = 0;
						rewrite(buf, h->rw_a, h->rw_b, h->rw_s);
						off = h->rw_next;
						len = evbuffer_get_length(buf);
						goto again;	/* the buffer changed under v */
					}
					if (h->state == S_DEAD)
						return;
				}
				p += used;
				m -= used;
				off += used;
			}
		}
	}
}

/* See http_strict_int.h. */
const char *http_strict_scanned_bad(struct bufferevent *bev)
{
	struct hs_conn *r = record(bev, evtricks_bev_fd(bev), 0);

	if (!r)
		return NULL;
	r->served++;
	if (r->bad && r->bad <= r->served)
		return r->why ? r->why : "an invalid request";
	return NULL;
}

/* See http_strict.h. */
struct bufferevent *http_strict_watch(struct bufferevent *bev)
{
	if (bev) {
		evbuffer_add_cb(bufferevent_get_input(bev), input_cb, bev);
		fresh_add(bev);
	}
	return bev;
}

/* See http_strict.h. The options evhttp itself gives a client socket. */
struct bufferevent *http_strict_bevcb(struct event_base *base, void *arg)
{
	(void)arg;
	return http_strict_watch(bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE));
}

/* See http_strict.h. */
void http_strict_free_all(void)
{
	free(tab);
	tab = NULL;
	ntab = 0;
}
