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

/*
 * In the done callback: 0, -1 (then batch_job_error() says why), or -2:
 * the model was asleep (a wake failed while the job was queued behind it).
 */
int batch_job_status(const struct batch_job *j);
const char *batch_job_error(const struct batch_job *j);
const float *batch_job_output(const struct batch_job *j);	/* samples * output_dim */
double batch_job_wait_seconds(const struct batch_job *j);	/* submit to run start */

/* Jobs waiting (not running). */
int batch_queue_depth(struct batch *b);
int batch_ready(const struct batch *b);
/* Stop waiting for company: run what is queued, refuse new jobs, then call on_drained. */
void batch_drain(struct batch *b);

/*
 * Model controls, run on the inference thread between batches so that they
 * never race model_run(): a batch in flight finishes first. A sleep first
 * runs every job already queued (without waiting for company); the caller
 * submits no more jobs until it is done. A wake or a reload runs before the
 * jobs queued after it. When done, cb runs on the loop with ok (0: failed,
 * err says why), the seconds the model call took, and for a reload whether
 * the weights changed.
 */
enum batch_ctl { BATCH_CTL_SLEEP1 = 1, BATCH_CTL_SLEEP2, BATCH_CTL_WAKE, BATCH_CTL_RELOAD };
typedef void (*batch_ctl_cb)(int ok, const char *err, double seconds, int changed, void *arg);
/* 0: started; -1: another control is still running (one at a time). */
int batch_control(struct batch *b, enum batch_ctl op, batch_ctl_cb cb, void *arg);

/*
 * The model's memory as the inference thread last saw it (after load, and
 * after each control): what /metrics and the model metadata show, read
 * without touching the model from the loop.
 */
struct batch_mem {
	int level;		/* sleep level */
	size_t weight_bytes;	/* the weights, awake */
	size_t host_bytes;	/* working weights in host memory now */
	size_t device_bytes;	/* device memory now */
	/*
	 * What the model takes on its device when awake, as last measured awake:
	 * the device memory on the GPU path, the weights on the CPU path. What a
	 * GPU-memory budget compares with its declared size.
	 */
	size_t model_bytes;
};
void batch_mem(struct batch *b, struct batch_mem *out);

#endif
