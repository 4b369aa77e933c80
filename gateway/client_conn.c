/*
 * client_conn: per client connection, the owner of evhttp's close callback
 * and a read watch kept for the connection's life. See client_conn.h.
 *
 * The records are found by socket number: a connection's socket is fixed
 * from accept to close, and our record goes in evhttp's close callback,
 * before the number can be reused.
 */
#include "config.h"
#include "common/evtricks.h"

#include "gateway/client_conn.h"

#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>

struct cconn {
	struct evhttp_connection *c;
	evutil_socket_t fd;
	struct event watch;		/* EV_READ | EV_PERSIST on fd, while added */
	int added;
	int skip;			/* the next readable call is not the watcher's: see client_watch */
	client_close_fn close_fn;
	void *close_arg;
	client_watch_fn watch_fn;
	void *watch_arg;
	client_close_fn track_fn;	/* client_track's: for the whole connection */
	void *track_arg;
};

static struct cconn **by_fd;	/* indexed by socket number */
static int nfd;

static struct cconn *find(struct evhttp_connection *c)
{
	evutil_socket_t fd = evtricks_conn_fd(c);
	if (fd < 0 || fd >= nfd || !by_fd[fd] || by_fd[fd]->c != c)
		return NULL;
	return by_fd[fd];
}

/* Takes cc out of the index and out of the loop; the caller frees it. */
static void detach(struct cconn *cc)
{
	if (cc->added)
		event_del(&cc->watch);
	cc->added = 0;
	if (cc->fd >= 0 && cc->fd < nfd && by_fd[cc->fd] == cc)
		by_fd[cc->fd] = NULL;
}

/* evhttp's close callback, run before it closes the socket: our record goes
 * first, so that what the user's callback does finds nothing of ours. */
static void close_cb(struct evhttp_connection *c, void *arg)
{
	struct cconn *cc = arg;
	client_close_fn fn = cc->close_fn, track = cc->track_fn;
	void *fn_arg = cc->close_arg, *track_arg = cc->track_arg;

	detach(cc);
	evtricks_take_closecb(c, NULL, NULL);
	free(cc);
	if (track)
		track(c, track_arg);
	if (fn)
		fn(c, fn_arg);
}

/* The socket is readable. With a watcher, its business (it may free the
 * connection, and cc with it). Without one, evhttp reads what came, unless
 * it has reading off (a request being answered or held): then a level-
 * triggered watch would spin, so it stops until the next watcher. */
static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cconn *cc = arg;
	(void)what;
	if (cc->watch_fn) {
		if (cc->skip) {
			cc->skip = 0;
			return;
		}
		cc->watch_fn(fd, cc->watch_arg);
		return;
	}
	if (!evtricks_conn_reading(cc->c)) {
		event_del(&cc->watch);
		cc->added = 0;
	}
}

/* c's record, made on first use (with our close callback on c). NULL: c has
 * no socket, or no memory. */
static struct cconn *get(struct evhttp_connection *c)
{
	evutil_socket_t fd = evtricks_conn_fd(c);
	struct cconn *cc;

	if (fd < 0)
		return NULL;
	if (fd < nfd && by_fd[fd]) {
		if (by_fd[fd]->c == c)
			return by_fd[fd];
		/* a record for a connection gone without its close callback:
		 * evhttp does not do that, but never let it shadow this one */
		cc = by_fd[fd];
		detach(cc);
		free(cc);
	}
	if (fd >= nfd) {
		int n = nfd ? nfd : 64;
		while (n <= fd)
			n *= 2;
		struct cconn **grown = realloc(by_fd, (size_t)n * sizeof(*grown));
		if (!grown)
			return NULL;
		for (int i = nfd; i < n; i++)
			grown[i] = NULL;
		by_fd = grown;
		nfd = n;
	}
	cc = calloc(1, sizeof(*cc));
	if (!cc)
		return NULL;
	cc->c = c;
	cc->fd = fd;
	event_assign(&cc->watch, evhttp_connection_get_base(c), fd, EV_READ | EV_PERSIST, watch_cb, cc);
	by_fd[fd] = cc;
	evtricks_take_closecb(c, close_cb, cc);
	return cc;
}

/* See client_conn.h. A connection without a socket has no record: its
 * callback goes to evhttp as it is. */
int client_set_closecb(struct evhttp_connection *c, client_close_fn fn, void *arg)
{
	struct cconn *cc = fn ? get(c) : find(c);

	if (!cc) {
		if (fn && evtricks_conn_fd(c) >= 0)
			return -1;
		evtricks_take_closecb(c, fn, arg);
		return 0;
	}
	cc->close_fn = fn;
	cc->close_arg = arg;
	return 0;
}

/* See client_conn.h. */
int client_track(struct evhttp_connection *c, client_close_fn fn, void *arg)
{
	struct cconn *cc = get(c);

	if (!cc)
		return -1;
	cc->track_fn = fn;
	cc->track_arg = arg;
	return 0;
}

/* See client_conn.h. */
void **client_track_arg(struct evhttp_connection *c)
{
	struct cconn *cc = find(c);

	return cc && cc->track_fn ? &cc->track_arg : NULL;
}

/* See client_conn.h. */
int client_watch(struct evhttp_connection *c, client_watch_fn fn, void *arg)
{
	struct cconn *cc = get(c);

	if (!cc)
		return -1;
	if (!cc->added) {
		if (event_add(&cc->watch, NULL) != 0)
			return -1;
		cc->added = 1;
	}
	cc->watch_fn = fn;
	cc->watch_arg = arg;
	/* The request that made the caller watch came with the socket readable,
	 * so this very loop turn usually has our watch's call pending too, for
	 * bytes evhttp has read already: skip one call. An EOF or more bytes
	 * still there keep the socket readable, and the next turn calls fn. */
	cc->skip = 1;
	return 0;
}

/* See client_conn.h. */
void client_unwatch(struct evhttp_connection *c)
{
	struct cconn *cc = find(c);

	if (cc) {
		cc->watch_fn = NULL;
		cc->watch_arg = NULL;
	}
}

/* See client_conn.h. */
void client_conn_free_all(void)
{
	for (int i = 0; i < nfd; i++)
		if (by_fd[i]) {
			struct cconn *cc = by_fd[i];
			detach(cc);
			free(cc);
		}
	free(by_fd);
	by_fd = NULL;
	nfd = 0;
}
