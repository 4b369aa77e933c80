/*
 * http_strict_int: between the two halves of http_strict (http_strict.c,
 * the scanner; http_strict_req.c, the checks of a completed request).
 */
#ifndef WG_HTTP_STRICT_INT_H
#define WG_HTTP_STRICT_INT_H

struct bufferevent;

/* Counts one more request evhttp completed on bev's connection; the fault
 * the scanner noted for that very request (a NUL, a folded line, a chunk
 * size that is not hex...), NULL: none. Called once per request. */
const char *http_strict_scanned_bad(struct bufferevent *bev);

#endif
