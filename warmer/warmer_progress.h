/*
 * warmer_progress: an optional hook that sees each warmup request as it
 * ends, for a caller that shows or logs latencies (wakegate-warmer prints
 * one line per request). It extends warmer.h without changing it.
 */
#ifndef WG_WARMER_PROGRESS_H
#define WG_WARMER_PROGRESS_H

struct warmer;

/*
 * n: 1 for the first warmup request; what: "POST /v2/models/digits/infer";
 * status: the HTTP status, 0 when no response came (transport error);
 * ms: its latency. The hook may call warmer_cancel() on its own warmer.
 */
typedef void (*warmer_progress_cb)(int n, const char *what, long status, double ms, void *arg);

/* Set right after warmer_start(), before the loop runs again. */
void warmer_set_progress(struct warmer *w, warmer_progress_cb cb, void *arg);

#endif
