/*
 * curl_loop: libcurl multi on a libevent loop (see curl_loop.h).
 */
#include "config.h"

#include <stdlib.h>

#include <event2/event.h>

#include "warmer/curl_loop.h"

/* One transfer in flight: its done callback. */
struct cloop_xfer {
	CURL *easy;
	cloop_done_fn fn;
	void *arg;
	struct cloop_xfer *next;
};

/* One socket curl watches; assigned to the socket with curl_multi_assign. */
struct cloop_sock {
	struct cloop *loop;
	curl_socket_t fd;
	struct event *ev;
	struct cloop_sock *next;
};

struct cloop {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct cloop_xfer *xfers;
	struct cloop_sock *socks;
	int busy;	/* inside cloop_dispatch: free later */
	int dead;	/* cloop_free was called while busy */
};

static void cloop_destroy(struct cloop *l);

/* Unlinks and frees the record of easy, handing back its callback; 0 when unknown. */
static int cloop_forget(struct cloop *l, CURL *easy, cloop_done_fn *fn, void **arg)
{
	for (struct cloop_xfer **pp = &l->xfers; *pp; pp = &(*pp)->next) {
		struct cloop_xfer *x = *pp;
		if (x->easy != easy)
			continue;
		*pp = x->next;
		if (fn)
			*fn = x->fn;
		if (arg)
			*arg = x->arg;
		free(x);
		return 1;
	}
	return 0;
}

/*
 * Hands finished transfers to their owners. An owner may free the loop from
 * its callback; then the multi handle goes away here, once nobody is inside.
 */
static void cloop_dispatch(struct cloop *l)
{
	CURLMsg *m;
	int left;

	l->busy++;
	while (!l->dead && (m = curl_multi_info_read(l->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *easy = m->easy_handle;
		CURLcode rc = m->data.result;
		cloop_done_fn fn = NULL;
		void *arg = NULL;
		curl_multi_remove_handle(l->multi, easy);
		if (cloop_forget(l, easy, &fn, &arg) && fn)
			fn(easy, rc, arg);
	}
	l->busy--;
	if (l->dead && !l->busy)
		cloop_destroy(l);
}

/* A watched socket is ready: tell curl which way, then collect what ended. */
static void cloop_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct cloop_sock *s = arg;
	struct cloop *l = s->loop;	/* s may be freed inside socket_action */
	int action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(l->multi, fd, action, &running);
	cloop_dispatch(l);
}

/* curl's timer ran out: let it do its timeouts and connects. */
static void cloop_timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct cloop *l = arg;
	int running;

	curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	cloop_dispatch(l);
}

/* Frees one socket record; the caller has unlinked it. */
static void cloop_sock_free(struct cloop_sock *s)
{
	event_free(s->ev);
	free(s);
}

/*
 * CURLMOPT_SOCKETFUNCTION: curl says what to watch on s. The record made
 * here is owned by the loop (listed in l->socks) and freed on REMOVE.
 */
static int cloop_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct cloop *l = userp;
	struct cloop_sock *s = socketp;

	if (what == CURL_POLL_REMOVE) {
		if (!s)
			return 0;
		for (struct cloop_sock **pp = &l->socks; *pp; pp = &(*pp)->next) {
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		}
		curl_multi_assign(l->multi, fd, NULL);
		cloop_sock_free(s);
		return 0;
	}

	short flags = EV_PERSIST;
	if (what & CURL_POLL_IN)
		flags |= EV_READ;
	if (what & CURL_POLL_OUT)
		flags |= EV_WRITE;

	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->loop = l;
		s->fd = fd;
		s->ev = event_new(l->base, fd, flags, cloop_sock_event, s);
		if (!s->ev) {
			free(s);
			return -1;
		}
		s->next = l->socks;
		l->socks = s;
		curl_multi_assign(l->multi, fd, s);
	} else {
		event_del(s->ev);
		event_assign(s->ev, l->base, fd, flags, cloop_sock_event, s);
	}
	if (event_add(s->ev, NULL) < 0)
		return -1;
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one libevent timer stands for curl's timeout. */
static int cloop_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct cloop *l = userp;

	if (timeout_ms < 0) {
		evtimer_del(l->timer);
		return 0;
	}
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	return evtimer_add(l->timer, &tv) < 0 ? -1 : 0;
}

/* The multi handle and its timer; freed by cloop_free. */
struct cloop *cloop_new(struct event_base *base)
{
	struct cloop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->base = base;
	l->multi = curl_multi_init();
	l->timer = evtimer_new(base, cloop_timer_event, l);
	if (!l->multi || !l->timer) {
		if (l->multi)
			curl_multi_cleanup(l->multi);
		if (l->timer)
			event_free(l->timer);
		free(l);
		return NULL;
	}
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, cloop_sock_cb);
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, cloop_timer_cb);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
	return l;
}

/* Adding only arms curl's timer; the transfer starts on the next loop turn. */
int cloop_add(struct cloop *l, CURL *easy, cloop_done_fn fn, void *arg)
{
	struct cloop_xfer *x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	x->easy = easy;
	x->fn = fn;
	x->arg = arg;
	if (curl_multi_add_handle(l->multi, easy) != CURLM_OK) {
		free(x);
		return -1;
	}
	x->next = l->xfers;
	l->xfers = x;
	return 0;
}

void cloop_remove(struct cloop *l, CURL *easy)
{
	if (cloop_forget(l, easy, NULL, NULL))
		curl_multi_remove_handle(l->multi, easy);
}

/*
 * Removing a handle or cleaning up the multi may call our socket and timer
 * callbacks, so the records they touch are freed only after curl is done.
 */
static void cloop_destroy(struct cloop *l)
{
	curl_multi_cleanup(l->multi);
	while (l->socks) {
		struct cloop_sock *s = l->socks;
		l->socks = s->next;
		cloop_sock_free(s);
	}
	event_free(l->timer);
	free(l);
}

void cloop_free(struct cloop *l)
{
	if (!l)
		return;
	/* The owners may free their easy handles as soon as this returns. */
	while (l->xfers) {
		struct cloop_xfer *x = l->xfers;
		l->xfers = x->next;
		curl_multi_remove_handle(l->multi, x->easy);
		free(x);
	}
	if (l->busy)
		l->dead = 1;
	else
		cloop_destroy(l);
}
