/*
 * curl_loop: libcurl's multi interface driven by a libevent loop. One event
 * per socket curl asks to watch, one timer curl sets; curl_multi_socket_action
 * runs only when one of them fires, so the loop never blocks on a transfer.
 *
 * The program calls curl_global_init() once before the first cloop_new();
 * nothing here calls curl_global_init or curl_global_cleanup.
 */
#ifndef WG_CURL_LOOP_H
#define WG_CURL_LOOP_H

#include <curl/curl.h>

struct event_base;
struct cloop;

/*
 * Called on the loop when a transfer ends (rc is its CURLcode). The easy
 * handle is already out of the multi and belongs to the caller again. The
 * callback may add transfers, remove others, or cloop_free() the loop.
 */
typedef void (*cloop_done_fn)(CURL *easy, CURLcode rc, void *arg);

/* A new multi handle on base, for cloop_free(); NULL when out of memory. */
struct cloop *cloop_new(struct event_base *base);
/*
 * Starts a transfer; the caller keeps owning easy and must not free it
 * before fn ran or cloop_remove()/cloop_free(). 0 on success, -1 on error.
 */
int cloop_add(struct cloop *l, CURL *easy, cloop_done_fn fn, void *arg);
/* Stops a transfer without calling its fn. */
void cloop_remove(struct cloop *l, CURL *easy);
/*
 * Stops every transfer (no fn is called) and frees the multi handle, its
 * events and sockets. Safe from inside a cloop_done_fn.
 */
void cloop_free(struct cloop *l);

#endif
