/*
 * progress: what a held streaming client sees while its model wakes
 * (hold_progress, issue 17). A client that asked for a stream ("stream":
 * true in a JSON body, or Accept: text/event-stream) gets its response
 * headers (200, text/event-stream) at once and an SSE comment every second
 *   : wakegate: digits booting, 3.2 s of about 8 s
 * until the upstream's answer begins, which follows on the same response
 * (proxy_opts.client_started). The timer is the request's
 * (r->progress_timer), started and stopped by dispatch.c, which owns the
 * request; progress_stop() frees it, on every way out of the hold queue.
 */
#ifndef WG_PROGRESS_H
#define WG_PROGRESS_H

struct wg_request;
struct upstream;

/* 1 when r's location has hold_progress on and its client asked for a stream. */
int progress_wanted(const struct wg_request *r);
/* Sends the stream's headers (once: r->sse_started) and starts the comment a second. 0, or -1 (out of memory: held as a plain client). */
int progress_start(struct wg_request *r, struct upstream *u);
/* Stops the comments (the stream stays open). */
void progress_stop(struct wg_request *r);
/* Ends a started stream with an "event: error" naming reason (the wake failed, the hold timed out). */
void progress_fail(struct wg_request *r, int code, const char *reason);

#endif
