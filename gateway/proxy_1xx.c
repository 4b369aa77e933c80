/*
 * proxy_1xx: informational answers (103 Early Hints) a backend sends before
 * its real one, passed on to the client; evhttp 2.1 alone takes the first
 * head it reads for the answer. Split from proxy.c, which calls in here and
 * is never called back: the watch only reads and writes the forward's own
 * buffers. Like http_strict.c, it relies on evhttp 2.1.12's behaviour (its
 * parser reads the backend's input only after evbuffer callbacks ran), not
 * on an internal call, so it is listed in common/evtricks.h, not in it.
 */
#include "config.h"

#include "gateway/proxy_int.h"
#include "gateway/log.h"

#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>

/* See proxy_int.h. */
void proxy_1xx_stop(struct proxy_fwd *f)
{
	if (f->ucb && f->uconn)
		evbuffer_remove_cb_entry(bufferevent_get_input(evhttp_connection_get_bufferevent(f->uconn)), f->ucb);
	f->ucb = NULL;
}

/*
 * A 1xx answer other than 100 (103 Early Hints) comes before the real one;
 * evhttp 2.1 would take it for the answer (a 502 here). While the answer's
 * head is awaited, a complete 1xx head at the front of the backend's input
 * is taken out before evhttp reads it, and passed to an HTTP/1.1 client as
 * it came (RFC 9110 15.2: a proxy forwards 1xx). One that arrives in
 * pieces is read by evhttp still (the 502 in upstream_done_cb).
 */
static void upstream_1xx_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct proxy_fwd *f = arg;

	while (info->n_added > 0 && !f->headers_sent && evbuffer_get_length(buf) >= 13) {
		const unsigned char *p = evbuffer_pullup(buf, 13);
		struct evbuffer_ptr crlf, lf;
		size_t head;

		if (!p || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] != '1' || p[12] != ' ' ||
		    (p[10] == '0' && (p[11] == '0' || p[11] == '1'))) {
			/* not a 1xx, or 100/101: evhttp's. Off the buffer now, so that
			 * the drains of the answer's parsing call nothing (this
			 * callback's dispatch costs more than the rest of it);
			 * libevent allows a callback to remove itself. */
			proxy_1xx_stop(f);
			return;
		}
		crlf = evbuffer_search(buf, "\r\n\r\n", 4, NULL);
		lf = evbuffer_search(buf, "\n\n", 2, NULL);
		if (crlf.pos < 0 && lf.pos < 0)
			return;
		head = crlf.pos >= 0 && (lf.pos < 0 || crlf.pos + 2 <= lf.pos) ? (size_t)crlf.pos + 4 : (size_t)lf.pos + 2;
		/* not after the gateway's own head (client_started: a held stream's
		 * progress events are out already), and only to HTTP/1.1 clients */
		if (f->creq && f->cconn && !f->client_started && f->creq->major == 1 && f->creq->minor >= 1) {
			struct evbuffer *out = bufferevent_get_output(evhttp_connection_get_bufferevent(f->cconn));
			evbuffer_add(out, evbuffer_pullup(buf, (ev_ssize_t)head), head);
		}
		log_debug("proxy: %s upstream %s sent a %c%c%c answer first; passed on", f->reqid,
			  f->pool->hostport, p[9], p[10], p[11]);
		evbuffer_drain(buf, head);
	}
}

/* See proxy_int.h. */
void proxy_1xx_watch(struct proxy_fwd *f)
{
	f->ucb = evbuffer_add_cb(bufferevent_get_input(evhttp_connection_get_bufferevent(f->uconn)), upstream_1xx_cb, f);
}
