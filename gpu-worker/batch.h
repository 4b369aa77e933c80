/*
 * batch: dynamic batching in front of the model. The event loop submits jobs
 * (one per HTTP request, each a few samples); one inference thread gathers
 * queued jobs into a batch of up to max_batch samples, waiting at most
 * delay_ms after the oldest job arrived, runs model_run() on it and hands the
 * jobs back to the loop (an eventfd wakes it), where their done callbacks run.
 * The thread also runs the warmup before it serves anything.
 *
 * Threads: every function here is for the loop thread. A job belongs to the
 * batcher from batch_submit() until its done callback returns; the batcher
 * frees it then.
 */
#ifndef WG_BATCH_H
#define WG_BATCH_H

#include <stddef.h>

struct event_base;
struct model;
struct batch;
struct batch_job;

typedef void (*batch_done_cb)(struct batch_job *job, void *arg);

struct batch_opts {
	int max_batch;		/* samples per model_run() */
	long delay_ms;		/* how long the oldest job may wait for company */
	int queue_max;		/* jobs waiting (not yet running) */
	int warmup;		/* runs of max_batch zeros before ready */
	/* loop: warmup finished (ok=0: it failed, err says why) */
	void (*on_ready)(int ok, const char *err, double seconds, void *arg);
	/* loop: one batch ran (for metrics) */
	void (*on_batch)(int samples, double seconds, void *arg);
	/* loop: batch_drain() finished: nothing queued or running */
	void (*on_drained)(void *arg);
	void *arg;
};

/* Starts the inference thread; NULL with err on failure. */
struct batch *batch_new(struct event_base *base, struct model *m, const struct batch_opts *o,
			char *err, size_t errlen);
/* Stops the thread (queued jobs are dropped without callbacks) and frees everything. */
void batch_free(struct batch *b);

/* A job of n samples; fill batch_job_input() before batch_submit(). */
struct batch_job *batch_job_new(struct batch *b, int n, batch_done_cb done, void *arg);
float *batch_job_input(struct batch_job *j);
/* Frees a job that was never submitted. */
void batch_job_free(struct batch_job *j);

/* 0: queued; -1: the queue is full; -2: draining. The job stays the caller's on error. */
int batch_submit(struct batch *b, struct batch_job *j);
/*
 * The caller no longer wants the result: a queued job is dropped now, a
 * running one when it comes back. Its done callback is never called.
 */
void batch_cancel(struct batch *b, struct batch_job *j);

/* In the done callback: 0 or -1 (then batch_job_error() says why). */
int batch_job_status(const struct batch_job *j);
const char *batch_job_error(const struct batch_job *j);
const float *batch_job_output(const struct batch_job *j);	/* samples * output_dim */
double batch_job_wait_seconds(const struct batch_job *j);	/* submit to run start */

/* Jobs waiting (not running). */
int batch_queue_depth(struct batch *b);
int batch_ready(const struct batch *b);
/* Stop waiting for company: run what is queued, refuse new jobs, then call on_drained. */
void batch_drain(struct batch *b);

#endif
