/*
 * http_strict: request framing as strict as nginx 1.22's where libevent
 * 2.1.12's evhttp is loose, on the client side (bench/http-conformance
 * shows the cases; man wakegate.8, "HTTP strictness").
 *
 * Two halves:
 * - a scanner of the raw bytes of each client connection (an evbuffer
 *   callback on the input buffer of the bufferevent we give evhttp), for
 *   what evhttp's parser hides once it is done: a NUL in the head, a folded
 *   header line, a chunk size that is not plain hex ("0x3", "+3", " 3").
 *   It notes; the bytes it changes are only those evhttp would misread: a
 *   chunk extension and a chunked body's fault (see http_strict.c), and the
 *   body of a HEAD, which it cuts out as nginx discards it.
 * - http_strict_refused(), run first for every request evhttp completed:
 *   what the scanner noted for this request, and the checks of the parsed
 *   request (target, header names, Content-Length, Transfer-Encoding, Host,
 *   a HEAD with a chunked body, every Connection header).
 * A refused request gets nginx's status and "Connection: close", so that
 * no byte after it (a smuggled request) is ever parsed.
 *
 * Ownership: the scanner's state is a table indexed by socket number (a
 * connection's socket is fixed from accept to close), owned here and freed
 * by http_strict_free_all(); nothing is allocated per connection.
 */
#ifndef WG_HTTP_STRICT_H
#define WG_HTTP_STRICT_H

#include <event2/event.h>
#include <stdint.h>

struct bufferevent;
struct evhttp_request;

/* evhttp's bevcb for plain listeners: a socket bufferevent with the scanner on. */
struct bufferevent *http_strict_bevcb(struct event_base *base, void *arg);

/* Puts the scanner on bev, a client connection's new bufferevent (TLS
 * listeners make their own). Returns bev. */
struct bufferevent *http_strict_watch(struct bufferevent *bev);

/* 1 when req was refused (answered with 400/501 and Connection: close,
 * access-logged): the caller must not touch it again. 0: go on; a HEAD with
 * a chunked body or a Connection header naming "close" among other tokens got
 * "Connection: close" on its answer, and several Connection headers were
 * merged into one. */
int http_strict_refused(struct evhttp_request *req);

/* client_header_timeout: the longest a request line and header may take
 * from their first byte, in ms (0: no bound of ours). */
void http_strict_set_header_timeout(int64_t ms);

/* Frees the scanner's table (at exit). */
void http_strict_free_all(void);

#endif
