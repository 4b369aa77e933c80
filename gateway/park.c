/* park: watching a parked request's client (see park.h). */
#include "config.h"
#include "common/evtricks.h"
#include "gateway/park.h"
#include "gateway/client_conn.h"

#include <event2/event.h>
#include <event2/http.h>
#include <sys/socket.h>

void client_unpark(struct wg_request *r)
{
	if (!r->parked)
		return;
	r->parked = 0;
	if (r->park_watch) {
		event_free(r->park_watch);
		r->park_watch = NULL;
	}
	if (r->req) {
		struct evhttp_connection *c = evhttp_request_get_connection(r->req);
		if (c)
			client_set_closecb(c, NULL, NULL);
	}
}

/* The client's socket saw EOF or an error while parked: it left. */
static void park_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wg_request *r = arg;
	char c;
	if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0 && !(what & EV_CLOSED)) {
		event_add(r->park_watch, NULL);	/* pipelined bytes, not a close: keep watching */
		return;
	}
	struct evhttp_request *req = r->req;
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	client_unpark(r);
	r->req = NULL;
	if (conn)
		evhttp_connection_free(conn);	/* frees req too */
	else
		evhttp_request_free(req);
	r->park_gone(r, r->park_arg);
}

/* libevent closes the parked client's connection itself. */
static void park_close_cb(struct evhttp_connection *c, void *arg)
{
	struct wg_request *r = arg;
	struct evhttp_request *req = r->req;
	r->req = NULL;		/* client_unpark must not touch the dying connection */
	client_unpark(r);
	/* detached from its connection: nobody else will free it */
	if (req && evhttp_request_get_connection(req) == NULL)
		evhttp_request_free(req);
	r->park_gone(r, r->park_arg);
}

int client_park(struct event_base *base, struct wg_request *r, park_gone_fn gone, void *arg)
{
	r->park_gone = gone;
	r->park_arg = arg;
	struct evhttp_connection *c = r->req ? evhttp_request_get_connection(r->req) : NULL;
	if (!c) {
		r->parked = 1;
		return 0;
	}
	if (client_set_closecb(c, park_close_cb, r) != 0)
		return -1;
	r->parked = 1;
	evutil_socket_t fd = evtricks_conn_fd(c);
	if (fd >= 0 && (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE)) {
		r->park_watch = event_new(base, fd, EV_CLOSED, park_watch_cb, r);
		if (r->park_watch)
			event_add(r->park_watch, NULL);
	}
	return 0;
}
