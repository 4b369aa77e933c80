/*
 * server: the listening sockets (one evhttp each), and the route phase: a
 * request to server + location + upstream, and the body limit. The admin
 * listener's endpoints are admin.c's. Listeners are reconciled with the conf on
 * reload: kept when the address stays, opened when new, closed when gone.
 */
#ifndef WG_SERVER_H
#define WG_SERVER_H

#include <stddef.h>

struct conf;

/* Registers the request phases of routing, the limits and the degrade rules (at start, once). */
void server_init(void);
/* 0, or -1 with a message in err (e.g. bind failed). On reload a failure leaves the old listeners. */
int server_configure(const struct conf *c, char *err, size_t errlen);
/* Stops accepting on every listener; open connections are kept (shutdown). */
void server_stop_accepting(void);
/* Frees every listener and its connections (at exit). */
void server_free_all(void);

#endif
