/*
 * admin: the endpoints of the admin listener (loopback by default):
 * read-only views for GET, and the upstream actions for POST. server.c
 * owns the listener and hands each request to admin_cb().
 */
#ifndef WG_ADMIN_H
#define WG_ADMIN_H

struct evhttp_request;

/* evhttp's callback for every request on the admin listener. */
void admin_cb(struct evhttp_request *req, void *arg);

#endif
