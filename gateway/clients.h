/*
 * clients: max_clients, a cap on the client connections of all server
 * listeners together (man wakegate.conf.5). The admin listener is not
 * counted nor capped: an operator reaches /metrics and /status whatever the
 * clients do.
 *
 * A connection is counted from accept (the listener's bufferevent callback)
 * to evhttp's close callback. One accepted while the count is at the cap is
 * kept just long enough to read its first request, which gets 503 with
 * "Connection: close" (nginx's worker_connections would stop accepting and
 * leave the client in the listen queue; an answer says why), and the error
 * log says "max_clients N reached", at most once a second.
 *
 * Ownership: the count is this file's; the per-connection part is a record
 * of gateway/client_conn.c (client_track), freed in the close callback. A
 * bufferevent is held (bufferevent_incref) from accept to the end of the
 * same loop turn, when its connection gets its record: evhttp may free a
 * connection it could not set up before that, and our hold keeps the
 * pointer good until we look.
 */
#ifndef WG_CLIENTS_H
#define WG_CLIENTS_H

#include <stdint.h>

struct bufferevent;
struct event_base;
struct evhttp_request;
struct metrics;

/* max_clients of the conf; 0: no cap. A reload changes it for connections
 * accepted after it; the count goes on. */
void clients_set_max(int64_t n);

/* A server listener accepted a connection with bufferevent bev (NULL: none
 * was made, nothing counted). */
void clients_accepted(struct event_base *base, struct bufferevent *bev);

/* 1 when req's connection came past the cap: req was answered 503 and the
 * connection closes after it; the caller must not touch req again. */
int clients_refused(struct evhttp_request *req);

void clients_metrics_declare(struct metrics *m);

/* At exit, after the listeners are gone. */
void clients_free_all(void);

#endif
