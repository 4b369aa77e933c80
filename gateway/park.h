/*
 * park: the one owner of "the client left while its request was parked",
 * for every place a request waits with nothing being read or written on its
 * connection (the hold queue, a limit_req delay, the wait for Redis).
 *
 * libevent 2.1 stops reading a connection once its request is handed over,
 * so it would not notice a client that leaves meanwhile: the park watches
 * the socket for EV_CLOSED and, when the client is gone, frees the
 * connection (and with it the request), sets r->req to NULL, ends the park
 * and calls gone(r, arg). Pipelined bytes are not a close. The connection's
 * close callback (taken through client_conn.c) covers a connection libevent
 * itself tears down.
 */
#ifndef WG_PARK_H
#define WG_PARK_H

#include "gateway/request.h"

struct event_base;

/* Parks r; 0, or -1 when its close callback cannot be set (no memory): not parked. */
int client_park(struct event_base *base, struct wg_request *r, park_gone_fn gone, void *arg);
/* Ends r's park (its watch and close callback); a no-op when not parked. */
void client_unpark(struct wg_request *r);

#endif
