/*
 * evtricks: every place where wakegate leans on how libevent works inside
 * rather than on what its API promises. Written against libevent
 * 2.1.12-stable: configure accepts only that version, and evtricks.c
 * refuses to compile against another. Before moving to another libevent,
 * check each function's "relies on" against its source, then widen both
 * checks.
 *
 * What is here, and who uses it:
 * - evtricks_flush_now: the bufferevent struct (proxy.c, through the pool).
 * - evtricks_take_closecb: evhttp's single close callback, taken over by
 *   gateway/client_conn.c to share it among the hold queue, the limiter and
 *   the proxy.
 * - evtricks_bev_fd: a bufferevent's socket without the control call
 *   (http_strict.c, and evtricks_conn_fd).
 * - evtricks_conn_fd, evtricks_conn_reading: the socket and read state of
 *   evhttp's bufferevent under a connection (client_conn.c's watch, the
 *   proxy's backend watch, hold.c, ratelimit.c).
 * - evtricks_conn_stalled: the 2.1.12 EVHTTP_CON_READ_ON_WRITE_ERROR stall
 *   (proxy.c's stall check).
 * - evtricks_bev_conn: the connection evhttp made around a client
 *   bufferevent (clients.c, max_clients).
 * Also written against 2.1.12, outside this file because they are choices
 * of flags, not calls: tls.c makes TLS bufferevents without
 * BEV_OPT_DEFER_CALLBACKS (deferred callbacks stalled relayed answers), and
 * struct event is embedded (event_struct.h) in client_conn.c and proxy_int.h.
 * Also relying on evhttp 2.1.12's parser, in whole files that mirror it:
 * gateway/http_strict.c (a scanner of client bytes before evhttp parses
 * them) with http_strict_req.c (the checks of what it let through; both
 * refuse to compile against another version) and
 * gateway/proxy_1xx.c (1xx heads taken off a backend's input first).
 */
#ifndef WG_COMMON_EVTRICKS_H
#define WG_COMMON_EVTRICKS_H

#include <event2/util.h>

struct bufferevent;
struct evhttp_connection;

/* The libevent version this file was written and checked against. */
#define EVTRICKS_LIBEVENT "2.1.12-stable"

/*
 * Runs bev's pending write now, in this loop turn, through libevent's own
 * write callback (the socket write, then evhttp's "sent"). Left to the loop,
 * a message waits a turn for epoll to say the socket is writable, which it
 * always is here, at the price of two epoll_ctl calls (write interest on,
 * then off); this way the two cancel out before they reach epoll. A partial
 * write, an error: libevent goes on as usual. Plain TCP only: a TLS
 * bufferevent (or none pending) is left alone. It may free the connection.
 * Relies on: struct bufferevent's ev_write (bufferevent_struct.h) holding
 * the socket bufferevent's write callback, which does the whole write.
 */
void evtricks_flush_now(struct bufferevent *bev);

typedef void (*evtricks_close_fn)(struct evhttp_connection *c, void *arg);

/*
 * Sets c's one close callback (NULL clears it), as
 * evhttp_connection_set_closecb. Relies on: evhttp keeping one callback per
 * connection, and calling it once, before it closes the socket, so that
 * state indexed by the socket number can go first (client_conn.c).
 */
void evtricks_take_closecb(struct evhttp_connection *c, evtricks_close_fn fn, void *arg);

/*
 * bufferevent_getfd(bev) without its lock and control call (~65
 * instructions; the request path asks several times per request). Relies
 * on: a socket or an openssl-socket bufferevent (the only kinds wakegate
 * makes, and evhttp's own) keeping its socket as its ev_read's fd, which is
 * what their GET_FD control returns in 2.1.12; not for a filter.
 */
evutil_socket_t evtricks_bev_fd(struct bufferevent *bev);

/*
 * The socket under c, -1 before it connects or after it closed. Relies
 * on: evhttp's bufferevent owning the socket for the connection's life,
 * and evtricks_bev_fd's.
 */
evutil_socket_t evtricks_conn_fd(struct evhttp_connection *c);

/*
 * The evhttp connection a client bufferevent was given to (evhttp's bevcb
 * made it), NULL once evhttp let it go. Relies on: evhttp passing the
 * connection as the bufferevent's callback argument from the moment it
 * takes the bufferevent, and bufferevent_free clearing the callbacks
 * (gateway/clients.c looks a loop turn after the accept).
 */
struct evhttp_connection *evtricks_bev_conn(struct bufferevent *bev);

/* Whether evhttp has reading on for c: it turns it off once a request is
 * complete (until the answer is sent) and while a stream is paused. */
int evtricks_conn_reading(struct evhttp_connection *c);

/*
 * libevent 2.1.12 with EVHTTP_CON_READ_ON_WRITE_ERROR: an EOF that leaves
 * bytes in the input buffer schedules one more read instead of failing;
 * when those bytes are not a whole answer, the connection then sits with
 * neither reading nor writing on and no timeout running. 1 when c is in
 * that state now (callers look twice, a turn apart, so that a pending
 * deferred read gets its turn first).
 */
int evtricks_conn_stalled(struct evhttp_connection *c);

#endif
