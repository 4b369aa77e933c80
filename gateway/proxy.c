/*
 * proxy: one client request (evhttp server side) forwarded to one replica
 * (evhttp client side), the answer streamed back piece by piece.
 *
 * Ownership, because libevent 2.1's evhttp makes it easy to get wrong:
 * - The client request (creq) belongs to libevent. We answer it exactly once
 *   (send_reply / send_reply_end) or free its connection; after that we
 *   never touch it. When the client's connection dies first, libevent calls
 *   our closecb; the request is then either detached (evcon NULL: we free
 *   it) or about to be freed by libevent (we leave it).
 * - The upstream request (ureq) is freed by libevent after its done cb or on
 *   evhttp_cancel_request; we forget it at those points.
 * - The upstream connection (uconn) is ours: back to the pool's idle stack
 *   after a clean answer, freed after any error.
 * - The forward (struct proxy_fwd) is ours; deliver() unlinks it, calls the
 *   caller's done cb once and frees it.
 */
#include "config.h"
#include "common/evtricks.h"
#include "common/http.h"

#include "gateway/proxy.h"
#include "gateway/proxy_int.h"
#include "gateway/proxy_hdr.h"
#include "gateway/log.h"
#include "gateway/client_conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>

static int start_upstream(struct proxy_fwd *f, int fresh_only);

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static struct timeval ms_tv(int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	return tv;
}

/* Ends our calls from the client socket's watch (the watch stays: see client_conn.h). */
static void cwatch_stop(struct proxy_fwd *f)
{
	if (f->cwatch_on) {
		if (f->cconn)
			client_unwatch(f->cconn);
		f->cwatch_on = 0;
	}
}

/*
 * Ends our read interest on the backend socket. Called before anything of
 * ours closes that socket (upstream_drop) and, when evhttp closed it on an
 * error, in the callback evhttp runs right after, before any new socket can
 * take its number.
 */
static void uwatch_stop(struct proxy_fwd *f)
{
	if (f->uwatch_on) {
		event_del(&f->uwatch);
		f->uwatch_on = 0;
	}
}

/*
 * evhttp turns reading off and on again on the backend socket when an answer
 * ends (two no-op epoll_ctl calls once libevent merges them). While our own
 * read event holds the socket's read interest, those toggles change nothing
 * in epoll. It does no work: evhttp reads. Only where evhttp stopped reading
 * (a paused stream, a stall) does it step aside, so that it does not spin.
 */
static void uwatch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_fwd *f = arg;
	(void)fd;
	(void)what;
	if (!f->uconn || !evtricks_conn_reading(f->uconn))
		uwatch_stop(f);
}

/*
 * evhttp is about to close the backend socket of a kept-alive connection
 * (its closecb, while a forward uses it). Before the answer starts, notes
 * whether the backend's kernel left bytes we sent unacknowledged: a dead
 * process's socket answers a request with a reset, never an ACK, so the
 * request cannot have been read.
 */
static void upstream_close_cb(struct evhttp_connection *c, void *arg)
{
	struct proxy_fwd *f = arg;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	evutil_socket_t fd = evtricks_conn_fd(c);

	if (f->headers_sent || fd < 0)
		return;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    len >= offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof(ti.tcpi_bytes_retrans) &&
	    ti.tcpi_bytes_acked < ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans)
		f->unacked = 1;
}

/* Stops the upstream timers (connect timeout, stall check). */
static void timers_free(struct proxy_fwd *f)
{
	if (f->ctimer) {
		event_free(f->ctimer);
		f->ctimer = NULL;
	}
	if (f->stimer) {
		event_free(f->stimer);
		f->stimer = NULL;
	}
}

/* Calls done and frees f, which is on no list by now. */
static void done_and_free(struct proxy_fwd *f)
{
	f->done(&f->res, f->arg);
	free(f->uri);
	for (size_t i = 0; f->set_headers && f->set_headers[i]; i++)
		free(f->set_headers[i]);
	free(f->set_headers);
	free(f->extra_name);
	free(f->extra_value);
	free(f);
}

static void defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_fwd *f = arg;
	(void)fd;
	(void)what;
	LIST_REMOVE(f, link);
	event_free(f->defer);
	done_and_free(f);
}

/*
 * The one exit of a forward: the client side is settled already (answered,
 * closed or gone). Calls done once and frees f, or, when we are still inside
 * proxy_forward, hands that to the loop so the caller never sees done before
 * proxy_forward returned.
 */
static void deliver(struct proxy_fwd *f)
{
	f->finished = 1;
	cwatch_stop(f);
	uwatch_stop(f);
	timers_free(f);
	f->res.upstream_ms = ms_since(&f->t0);
	LIST_REMOVE(f, link);
	f->pool->nactive--;
	if (f->in_setup) {
		f->defer = event_new(f->pool->base, -1, 0, defer_cb, f);
		if (f->defer) {
			LIST_INSERT_HEAD(&f->pool->deferred, f, link);
			event_active(f->defer, EV_TIMEOUT, 1);
		} else {
			f->deliver_late = 1;	/* no memory: proxy_forward calls done on its way out */
		}
		return;
	}
	done_and_free(f);
}

/* Stops using the client connection: no closecb, no EOF watch. */
static void client_release(struct proxy_fwd *f)
{
	cwatch_stop(f);
	if (f->cconn)
		client_set_closecb(f->cconn, NULL, NULL);
}

/* Drops the upstream side after an error or a cancel: the socket is closed,
 * so the backend sees the client go. */
static void upstream_drop(struct proxy_fwd *f)
{
	uwatch_stop(f);
	proxy_1xx_stop(f);
	if (f->uconn)
		evhttp_connection_set_closecb(f->uconn, NULL, NULL);
	timers_free(f);
	if (f->ureq) {
		struct evhttp_request *u = f->ureq;
		f->ureq = NULL;
		evhttp_cancel_request(u);	/* frees u; our error cb sees CANCEL */
	}
	if (f->uconn) {
		evhttp_connection_free(f->uconn);
		f->uconn = NULL;
	}
}

/* Answers the client with an error (nothing was sent yet) and finishes. */
static void finish_error(struct proxy_fwd *f, int code, const char *why)
{
	char msg[512];
	struct evkeyvalq *h;

	upstream_drop(f);
	client_release(f);
	snprintf(msg, sizeof(msg), "upstream %s: %s", f->pool->hostport, why);
	log_warn("proxy: %s %s -> %d: %s", f->reqid, evhttp_request_get_uri(f->creq), code, msg);
	if (f->client_started) {
		proxy_sse_error(f->creq, code, msg);
	} else {
		h = evhttp_request_get_output_headers(f->creq);
		evhttp_add_header(h, "X-Request-Id", f->reqid);
		proxy_send_error(f->creq, code, msg, 0);
	}
	f->creq = NULL;
	f->res.status = code;
	deliver(f);
}

/*
 * The connection never came up, so nothing of the request reached the
 * backend: with unsent_back the client is not answered; creq goes back to
 * the caller (done sees res.unsent) to send again or answer.
 */
static void finish_unsent(struct proxy_fwd *f, const char *why)
{
	upstream_drop(f);
	client_release(f);
	log_info("proxy: %s upstream %s: %s before the request was sent; handing it back",
		 f->reqid, f->pool->hostport, why);
	f->creq = NULL;
	f->res.status = 0;
	f->res.unsent = 1;
	deliver(f);
}

/* The status line is out and the backend failed: all we can do is close the
 * client's connection so it sees a truncated answer. */
static void finish_abort(struct proxy_fwd *f, int code, const char *why)
{
	upstream_drop(f);
	client_release(f);
	log_warn("proxy: %s upstream %s failed after %llu body bytes: %s; closing the client connection",
		 f->reqid, f->pool->hostport, (unsigned long long)f->res.bytes_out, why);
	evhttp_connection_free(f->cconn);	/* frees creq, still queued on it */
	f->creq = NULL;
	f->cconn = NULL;
	f->res.status = code;
	deliver(f);
}

/*
 * The client went away. from_libevent: we are in its closecb, where libevent
 * has either detached creq (then it is ours to free) or frees it next.
 * Otherwise our EOF watch saw it and we free the connection (and creq) here.
 */
static void client_gone(struct proxy_fwd *f, int from_libevent)
{
	log_info("proxy: %s client closed the connection while forwarding to %s",
		 f->reqid, f->pool->hostport);
	upstream_drop(f);
	client_release(f);
	if (from_libevent) {
		if (evhttp_request_get_connection(f->creq) == NULL)
			evhttp_request_free(f->creq);
	} else {
		evhttp_connection_free(f->cconn);
	}
	f->creq = NULL;
	f->cconn = NULL;
	f->res.client_gone = 1;
	if (!f->headers_sent)
		f->res.status = 0;
	deliver(f);
}

static void client_close_cb(struct evhttp_connection *c, void *arg)
{
	struct proxy_fwd *f = arg;
	(void)c;
	if (!f->finished)
		client_gone(f, 1);
}

/*
 * Read interest on the client socket while we forward. We keep libevent from
 * reading there (it has reading off after a request body anyway, so it would
 * not see a close before it writes; and a server read timeout would cut long
 * streams whose client just listens), and peek instead: EOF or an error means
 * the client left; bytes mean a pipelined request, left for libevent to read
 * once this answer is done.
 */
static void client_watch_cb(evutil_socket_t fd, void *arg)
{
	struct proxy_fwd *f = arg;
	char c;
	ssize_t n;

	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0) {
		cwatch_stop(f);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	client_gone(f, 0);
}

/* Connect timeout of a new upstream connection (the read timeout is evhttp's). */
static void connect_timer_cb(evutil_socket_t fd_unused, short what, void *arg)
{
	struct proxy_fwd *f = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd;
	char why[96];
	(void)fd_unused;
	(void)what;

	event_free(f->ctimer);
	f->ctimer = NULL;
	fd = f->uconn ? evtricks_conn_fd(f->uconn) : -1;
	if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		f->connected = 1;
		return;
	}
	f->connect_timed_out = 1;
	snprintf(why, sizeof(why), "connect timed out after %lldms", (long long)f->connect_ms);
	if (f->headers_sent)
		finish_abort(f, 504, why);
	else
		finish_error(f, 504, why);
}

/*
 * The libevent 2.1.12 stall with EVHTTP_CON_READ_ON_WRITE_ERROR (see
 * common/evtricks.h): seen twice in a row, the answer will not come.
 */
static void stall_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_fwd *f = arg;
	(void)fd;
	(void)what;

	if (!f->uconn || f->paused || !evtricks_conn_stalled(f->uconn)) {
		f->stalled = 0;
		return;
	}
	if (!f->stalled) {
		f->stalled = 1;
		return;
	}
	if (f->headers_sent)
		finish_abort(f, 502, "closed the connection in the middle of the body");
	else
		finish_error(f, 502, "closed the connection in the middle of the response header");
}

static void client_drained_cb(struct evhttp_connection *c, void *arg)
{
	struct proxy_fwd *f = arg;
	(void)c;
	if (f->paused && f->uconn) {
		f->paused = 0;
		bufferevent_enable(evhttp_connection_get_bufferevent(f->uconn), EV_READ);
	}
}

/* Status line and headers from the backend: start the client's answer. */
static int upstream_header_cb(struct evhttp_request *u, void *arg)
{
	struct proxy_fwd *f = arg;
	int code = evhttp_request_get_response_code(u);

	if (code >= 100 && code < 200)
		return 0;	/* 100: evhttp reads the real answer next; others: see upstream_done_cb */
	/* Content-Length headers that disagree frame the body two ways: nginx's 502 */
	if (proxy_hdr_response_framing_bad(u)) {
		f->bad_framing = 1;
		return -1;	/* evhttp fails the request: upstream_failed */
	}
	f->connected = 1;
	if (f->ctimer) {
		event_free(f->ctimer);
		f->ctimer = NULL;
	}
	if (!f->client_started) {	/* else the gateway's event stream is out already */
		proxy_hdr_response(f->creq, u, f->reqid, f->extra_name, f->extra_value);
		evhttp_send_reply_start(f->creq, code, evhttp_request_get_response_code_line(u));
	}
	f->headers_sent = 1;
	f->res.status = code;
	return 0;
}

/* Body bytes from the backend: pass them on, pause the backend when the client lags. */
static void upstream_chunk_cb(struct evhttp_request *u, void *arg)
{
	struct proxy_fwd *f = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(u);
	size_t n = evbuffer_get_length(in);
	struct bufferevent *cbev;

	if (n == 0 || !f->headers_sent)
		return;
	f->res.bytes_out += n;
	evhttp_send_reply_chunk_with_cb(f->creq, in, client_drained_cb, f);
	cbev = evhttp_connection_get_bufferevent(f->cconn);
	if (!f->paused && evbuffer_get_length(bufferevent_get_output(cbev)) > PROXY_CLIENT_HIGH) {
		f->paused = 1;
		uwatch_stop(f);
		bufferevent_disable(evhttp_connection_get_bufferevent(f->uconn), EV_READ);
	}
	if (f->progress) {
		double now = ms_since(&f->t0);
		if (f->progress_at < 0 || now - f->progress_at >= PROXY_PROGRESS_MS) {
			f->progress_at = now;
			f->progress(f->arg);
		}
	}
}

static void upstream_error_cb(enum evhttp_request_error err, void *arg)
{
	struct proxy_fwd *f = arg;
	f->uerr = (int)err;
}

static const char *uerr_text(struct proxy_fwd *f)
{
	switch (f->uerr) {
	case EVREQ_HTTP_TIMEOUT:
		return "timed out";
	case EVREQ_HTTP_EOF:
		return f->headers_sent ? "closed the connection in the middle of the body"
			: "closed the connection before sending a response";
	case EVREQ_HTTP_INVALID_HEADER:
		return "sent an invalid response";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "sent a response header that is too large or a corrupt body";
	case EVREQ_HTTP_BUFFER_ERROR:
		return "buffer error";
	default:
		return "failed";
	}
}

/* The backend side failed before a complete answer. */
static void upstream_failed(struct proxy_fwd *f)
{
	char why[160];
	int code = 502;
	int err = errno;	/* evhttp keeps the connect's errno for us; read it first */
	double waited = ms_since(&f->t0);

	uwatch_stop(f);
	proxy_1xx_stop(f);
	if (f->uconn)
		evhttp_connection_set_closecb(f->uconn, NULL, NULL);
	timers_free(f);
	/* a TLS failure (certificate not trusted...) says more than "connect failed" */
	char tbuf[160];
	const char *twhy = f->bad_framing ? "sent an answer with conflicting Content-Length headers" :
		f->uconn && f->pool->tr.why ?
		f->pool->tr.why(evhttp_connection_get_bufferevent(f->uconn), tbuf, sizeof(tbuf)) : NULL;
	if (f->bad_framing)
		f->uerr = -2;	/* not an error of evhttp's: no retry, no "unsent" */
	/* libevent resets the connection on any error; we start over with a new one */
	if (f->uconn) {
		evhttp_connection_free(f->uconn);
		f->uconn = NULL;
	}
	if (f->uerr == -1) {
		/* evhttp's connect failure path: no error code, the connection never came up */
		if (!f->connected && waited + 1 >= (double)f->connect_ms) {
			code = 504;
			snprintf(why, sizeof(why), "connect timed out after %lldms", (long long)f->connect_ms);
		} else if (!f->connected && waited + 1 >= (double)f->read_ms) {
			code = 504;
			snprintf(why, sizeof(why), "connect timed out after %lldms", (long long)f->read_ms);
		} else {
			/* after a kept-alive connection closed under a request that may have reached
			 * the backend (a worker killed with it), "connect failed" alone would say
			 * the request never left: say both */
			snprintf(why, sizeof(why), "%sconnect failed%s%s",
				 f->retried && f->maybe_sent ? "the backend closed the connection after the request "
				 "may have reached it, then " : "",
				 err == ECONNREFUSED ? ": " : "", err == ECONNREFUSED ? strerror(err) : "");
		}
	} else if (f->uerr == EVREQ_HTTP_TIMEOUT) {
		/* evhttp reports TIMEOUT only once connected; a connect timeout comes as uerr -1 */
		code = 504;
		snprintf(why, sizeof(why), "read timed out after %lldms", (long long)f->read_ms);
	} else {
		snprintf(why, sizeof(why), "%s", uerr_text(f));
	}
	if (twhy) {
		code = 502;
		snprintf(why, sizeof(why), "%s", twhy);
	}

	/* A kept-alive connection the backend closed just as we reused it: once more, new. */
	if (f->reused && !f->retried && !f->headers_sent && f->uerr == EVREQ_HTTP_EOF) {
		log_info("proxy: %s upstream %s closed a kept-alive connection; retrying on a new one",
			 f->reqid, f->pool->hostport);
		f->retried = 1;
		/*
		 * A write that failed in evtricks_flush_now, right in start_upstream, or one
		 * the backend's kernel never acknowledged (upstream_close_cb) did not
		 * reach the backend; any other close may come after the backend read
		 * the request (and then crashed on it).
		 */
		f->maybe_sent = !f->in_flush && !f->unacked;
		if (start_upstream(f, 1) == 0)
			return;
		snprintf(why, sizeof(why), "cannot start a request");
	}
	/* evhttp's connect failure (uerr -1, not a timeout): not a byte was written */
	if (f->unsent_back && f->uerr == -1 && code == 502 && !twhy && !f->connected &&
	    !f->headers_sent && !f->maybe_sent) {
		finish_unsent(f, why);
		return;
	}
	if (f->headers_sent)
		finish_abort(f, code, why);
	else
		finish_error(f, code, why);
}

/* evhttp's done cb for the upstream request; libevent frees u after it. */
static void upstream_done_cb(struct evhttp_request *u, void *arg)
{
	struct proxy_fwd *f = arg;
	struct evbuffer *rest;
	struct bufferevent *cbev;

	f->ureq = NULL;
	if (u == NULL || evhttp_request_get_response_code(u) == 0) {
		upstream_failed(f);
		return;
	}
	if (!f->headers_sent) {
		int code = evhttp_request_get_response_code(u);
		if (code >= 100 && code < 200) {
			/* 1xx other than 100 (103 Early Hints...): evhttp takes it for the answer */
			f->uerr = EVREQ_HTTP_INVALID_HEADER;
			upstream_failed(f);
			return;
		}
		upstream_header_cb(u, f);
	}
	rest = evhttp_request_get_input_buffer(u);
	if (evbuffer_get_length(rest) > 0) {
		f->res.bytes_out += evbuffer_get_length(rest);
		evhttp_send_reply_chunk(f->creq, rest);
	}
	uwatch_stop(f);
	proxy_1xx_stop(f);
	evhttp_connection_set_closecb(f->uconn, NULL, NULL);
	timers_free(f);
	/* a pause ends here too: evhttp turned reading back on to watch the idle connection */
	proxy_pool_put(f->pool, f->uconn, f->read_ms, f->reqid);
	f->uconn = NULL;
	/* the client's watch and close callback are ours no more before the
	 * reply goes: evtricks_flush_now may free the connection (a client that
	 * asked to close) */
	cwatch_stop(f);
	client_set_closecb(f->cconn, NULL, NULL);
	cbev = evhttp_connection_get_bufferevent(f->cconn);
	evhttp_send_reply_end(f->creq);
	f->creq = NULL;
	evtricks_flush_now(cbev);
	f->cconn = NULL;
	client_release(f);
	deliver(f);
}

/*
 * Sends the request on an idle or new connection. 0 when it is on its way
 * (f may even be finished by now, when evhttp failed it at once); -1 when
 * it could not start, with f untouched otherwise.
 */
static int start_upstream(struct proxy_fwd *f, int fresh_only)
{
	struct evhttp_connection *c;
	struct evhttp_request *u;
	struct timeval tv;
	char ubuf[8192];
	evutil_socket_t fd;
	int64_t has_ms;
	int fresh;

	c = proxy_pool_take(f->pool, fresh_only, &has_ms);
	if (!c)
		return -1;
	u = proxy_hdr_request(f->creq, f->pool->hostport, f->reqid, upstream_done_cb, f);
	if (!u) {
		proxy_pool_put(f->pool, c, has_ms, NULL);
		return -1;
	}
	for (size_t i = 0; f->set_headers && f->set_headers[i]; i += 2) {	/* proxy_set_header */
		struct evkeyvalq *uh = evhttp_request_get_output_headers(u);
		while (evhttp_remove_header(uh, f->set_headers[i]) == 0)
			;
		if (*f->set_headers[i + 1])
			evhttp_add_header(uh, f->set_headers[i], f->set_headers[i + 1]);
	}
	evhttp_request_set_header_cb(u, upstream_header_cb);
	evhttp_request_set_chunked_cb(u, upstream_chunk_cb);
	evhttp_request_set_error_cb(u, upstream_error_cb);

	fd = evtricks_conn_fd(c);
	fresh = fd < 0;
	f->reused = !fresh;
	f->connected = !fresh;
	f->uerr = -1;
	f->uconn = c;
	f->ureq = u;
	proxy_1xx_watch(f);
	/* evhttp uses one timeout for connect, read and write: read_ms; ours below covers connect */
	if (has_ms != f->read_ms) {
		tv = ms_tv(f->read_ms);
		evhttp_connection_set_timeout_tv(c, &tv);
	}
	if (fresh && f->connect_ms > 0 && f->connect_ms < f->read_ms) {
		f->ctimer = evtimer_new(f->pool->base, connect_timer_cb, f);
		if (f->ctimer) {
			tv = ms_tv(f->connect_ms);
			evtimer_add(f->ctimer, &tv);
		}
	}
	/*
	 * A backend may answer a large body early (413, 401) and close without
	 * reading it: with this flag evhttp reads that answer after the failed
	 * write instead of failing. Only then, because of the stall above.
	 */
	if (evbuffer_get_length(evhttp_request_get_input_buffer(f->creq)) > PROXY_EARLY_BODY) {
		evhttp_connection_set_flags(c, EVHTTP_CON_READ_ON_WRITE_ERROR);
		f->stimer = event_new(f->pool->base, -1, EV_PERSIST, stall_cb, f);
		if (f->stimer) {
			tv = ms_tv(PROXY_STALL_MS);
			event_add(f->stimer, &tv);
		}
	} else {
		evhttp_connection_set_flags(c, 0);
	}
	/* a kept-alive socket is known now; a new one only inside evhttp_make_request (skipped) */
	if (!fresh) {
		event_assign(&f->uwatch, f->pool->base, fd, EV_READ | EV_PERSIST, uwatch_cb, f);
		f->uwatch_on = event_add(&f->uwatch, NULL) == 0;
		evhttp_connection_set_closecb(c, upstream_close_cb, f);
	}
	if (evhttp_make_request(c, u, evhttp_request_get_command(f->creq),
				f->uri ? f->uri : proxy_hdr_uri(f->creq, ubuf, sizeof(ubuf))) != 0) {
		/* evhttp freed u */
		f->ureq = NULL;
		proxy_1xx_stop(f);
		f->uconn = NULL;
		uwatch_stop(f);
		evhttp_connection_set_closecb(c, NULL, NULL);
		timers_free(f);
		evhttp_connection_free(c);
		return -1;
	}
	/* a kept-alive connection is writable now: the request goes out in this turn */
	if (!fresh && !f->pool->tr.bev_new) {
		f->in_flush = 1;
		evtricks_flush_now(evhttp_connection_get_bufferevent(c));
		f->in_flush = 0;	/* f is still ours: finishing inside proxy_forward is deferred */
	}
	return 0;
}

/* See proxy.h. Takes over the client connection's closecb until done runs. */
void proxy_forward(struct proxy_pool *p, struct evhttp_request *req, const struct proxy_opts *o,
		   proxy_done_cb done, proxy_progress_cb progress, void *arg)
{
	struct proxy_fwd *f = calloc(1, sizeof(*f));

	if (!f) {
		struct proxy_result r = { .status = 503 };
		proxy_send_error(req, 503, "out of memory", 1);
		done(&r, arg);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &f->t0);
	f->pool = p;
	f->creq = req;
	f->cconn = evhttp_request_get_connection(req);
	f->done = done;
	f->progress = progress;
	f->arg = arg;
	f->uerr = -1;
	f->progress_at = -1;
	f->connect_ms = o->connect_timeout_ms;
	f->read_ms = o->read_timeout_ms;
	f->unsent_back = o && o->unsent_back;
	f->client_started = o && o->client_started;
	if (o && o->uri)
		f->uri = strdup(o->uri);
	if (o && o->set_headers) {
		size_t n = 0;
		while (o->set_headers[n])
			n++;
		f->set_headers = calloc(n + 1, sizeof(*f->set_headers));
		for (size_t i = 0; f->set_headers && i + 1 < n; i += 2) {
			f->set_headers[i] = strdup(o->set_headers[i]);
			f->set_headers[i + 1] = strdup(o->set_headers[i + 1]);
			if (!f->set_headers[i] || !f->set_headers[i + 1]) {	/* out of memory: the list ends before it */
				free(f->set_headers[i]);
				free(f->set_headers[i + 1]);
				f->set_headers[i] = f->set_headers[i + 1] = NULL;
				break;
			}
		}
	}
	if (o && o->extra_header_name && o->extra_header_value) {
		f->extra_name = strdup(o->extra_header_name);
		f->extra_value = strdup(o->extra_header_value);
	}
	proxy_hdr_request_id(req, o ? o->request_id : NULL, f->reqid);
	f->in_setup = 1;
	LIST_INSERT_HEAD(&p->active, f, link);
	proxy_pool_count_up(p, &f->t0);

	if (!f->cconn) {
		/* the client left while the request was held; libevent detached it */
		evhttp_request_free(req);
		f->creq = NULL;
		f->res.client_gone = 1;
		deliver(f);
		goto out;
	}
	if (p->freeing) {
		finish_error(f, 502, "replica is stopping");
		goto out;
	}
	if (client_set_closecb(f->cconn, client_close_cb, f) != 0) {
		finish_error(f, 503, "out of memory");
		goto out;
	}
	f->cwatch_on = client_watch(f->cconn, client_watch_cb, f) == 0;
	bufferevent_disable(evhttp_connection_get_bufferevent(f->cconn), EV_READ);
	log_debug("proxy: %s %s %s -> %s", f->reqid,
		  http_method_name(evhttp_request_get_command(req)), evhttp_request_get_uri(req),
		  p->hostport);
	if (start_upstream(f, 0) != 0 && !f->finished)
		finish_error(f, 502, "cannot start a request");
out:
	/* f is still ours here: finished ones wait on their defer event (or below) */
	f->in_setup = 0;
	if (f->deliver_late)
		done_and_free(f);
}

/* See proxy.h. In-flight forwards get a 502 (or a closed connection) and their done. */
void proxy_pool_free(struct proxy_pool *p)
{
	struct proxy_fwd *f;

	if (!p || p->freeing)
		return;
	p->freeing = 1;
	while ((f = LIST_FIRST(&p->active)) != NULL) {
		f->in_setup = 0;
		if (f->headers_sent)
			finish_abort(f, 502, "replica stopped");
		else
			finish_error(f, 502, "replica stopped");
	}
	while ((f = LIST_FIRST(&p->deferred)) != NULL) {
		event_del(f->defer);
		defer_cb(-1, 0, f);
	}
	while (p->nidle > 0)
		evhttp_connection_free(p->idle[--p->nidle].c);
	free(p->idle);
	free(p->host);
	if (p->tr.free_arg)
		p->tr.free_arg(p->tr.arg);
	free(p);
}

