/*
 * evtricks: the code that depends on libevent's internals (see evtricks.h
 * for what each function relies on). Written against 2.1.12-stable.
 */
#include "config.h"
#include "common/evtricks.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>

#if LIBEVENT_VERSION_NUMBER != 0x02010c00
#error "common/evtricks.c was written against libevent 2.1.12-stable: check it against this version (see evtricks.h)"
#endif

evutil_socket_t evtricks_bev_fd(struct bufferevent *bev)
{
	return event_get_fd(&bev->ev_read);
}

void evtricks_flush_now(struct bufferevent *bev)
{
	evutil_socket_t fd = evtricks_bev_fd(bev);
	struct event *w = &bev->ev_write;

	if (fd < 0 || evbuffer_get_length(bufferevent_get_output(bev)) == 0 ||
	    !event_pending(w, EV_WRITE, NULL) || bufferevent_openssl_get_ssl(bev) != NULL)
		return;
	event_get_callback(w)(fd, EV_WRITE, event_get_callback_arg(w));
}

void evtricks_take_closecb(struct evhttp_connection *c, evtricks_close_fn fn, void *arg)
{
	evhttp_connection_set_closecb(c, fn, arg);
}

evutil_socket_t evtricks_conn_fd(struct evhttp_connection *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
	return bev ? evtricks_bev_fd(bev) : -1;
}

struct evhttp_connection *evtricks_bev_conn(struct bufferevent *bev)
{
	bufferevent_data_cb rd, wr;
	bufferevent_event_cb ev;
	void *arg = NULL;

	bufferevent_getcb(bev, &rd, &wr, &ev, &arg);
	return ev ? arg : NULL;
}

int evtricks_conn_reading(struct evhttp_connection *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
	return bev && (bufferevent_get_enabled(bev) & EV_READ);
}

int evtricks_conn_stalled(struct evhttp_connection *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
	return bev && !(bufferevent_get_enabled(bev) & (EV_READ | EV_WRITE));
}
