/*
 * client_conn: what the gateway keeps per client connection beside evhttp.
 * It owns evhttp's one close callback of each client connection (the hold
 * queue, the rate limiter's waits and the proxy each want it at some time:
 * they set theirs here, never on evhttp), and a read watch on the socket
 * that, once set up, stays for the connection's whole life.
 *
 * Why the watch stays: evhttp turns reading off on the socket when a
 * request is complete, and the proxy must see a client that leaves while the
 * backend works. Turned on per request, the watch costs an epoll_ctl each
 * time (libevent's changelist makes one EPOLL_CTL_MOD of evhttp's "off" and
 * the watch's "on"); kept on, the socket's read interest never drops and
 * epoll is not touched. Between watchers it steps aside only where it would
 * spin: bytes or EOF waiting while evhttp does not read.
 *
 * The state is freed in evhttp's close callback, which evhttp runs before it
 * closes the socket: nothing of ours outlives the descriptor. What this
 * relies on in libevent is in common/evtricks.c (evtricks_take_closecb,
 * evtricks_conn_fd, evtricks_conn_reading).
 */
#ifndef WG_CLIENT_CONN_H
#define WG_CLIENT_CONN_H

#include <event2/util.h>

struct evhttp_connection;

typedef void (*client_close_fn)(struct evhttp_connection *c, void *arg);
typedef void (*client_watch_fn)(evutil_socket_t fd, void *arg);

/* Sets (fn non-NULL) or clears the close callback of client connection c,
 * as evhttp_connection_set_closecb would. Returns -1 only when fn is set
 * and no memory is left. */
int client_set_closecb(struct evhttp_connection *c, client_close_fn fn, void *arg);

/* A second close callback of c, kept for the connection's whole life
 * whatever client_set_closecb does (max_clients' count, clients.c); it runs
 * before the other. -1: no socket or no memory. */
int client_track(struct evhttp_connection *c, client_close_fn fn, void *arg);

/* The arg of c's client_track callback, to read or change; NULL: none. */
void **client_track_arg(struct evhttp_connection *c);

/* fn runs whenever c's socket is readable (bytes, EOF or an error), until
 * client_unwatch. One watcher at a time. -1: no socket or no memory. */
int client_watch(struct evhttp_connection *c, client_watch_fn fn, void *arg);

/* Ends the watcher's calls; the watch itself stays (see above). */
void client_unwatch(struct evhttp_connection *c);

/* Frees the index (at exit, after the connections are gone). */
void client_conn_free_all(void);

#endif
