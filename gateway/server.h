/*
 * server: the listening sockets (one evhttp each), routing of a request to
 * server + location + upstream, the body limit, and the admin listener
 * (GET /metrics, GET /status). Listeners are reconciled with the conf on
 * reload: kept when the address stays, opened when new, closed when gone.
 */
#ifndef WG_SERVER_H
#define WG_SERVER_H

#include <stddef.h>

struct conf;

/* 0, or -1 with a message in err (e.g. bind failed). On reload a failure leaves the old listeners. */
int server_configure(const struct conf *c, char *err, size_t errlen);
/* Stops accepting on every listener; open connections are kept (shutdown). */
void server_stop_accepting(void);
/* Frees every listener and its connections (at exit). */
void server_free_all(void);

struct evhttp_request;
/* ratelimit.c: a request delayed across a reload is routed again in the new conf
 * (listener: the one it came on), then goes on past limit_req. */
void server_resume(struct evhttp_request *req, void *listener);

#endif
