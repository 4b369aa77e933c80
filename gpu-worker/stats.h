/*
 * stats: the worker's Prometheus metrics (text format 0.0.4) for GET
 * /metrics. Loop thread only: the inference thread's numbers reach it
 * through batch.h's callbacks.
 */
#ifndef WG_STATS_H
#define WG_STATS_H

struct evbuffer;
struct stats;

/* now: the monotonic clock when the worker started, the busy ratio's earliest window. */
struct stats *stats_new(int max_batch, double now);
void stats_free(struct stats *s);

/* endpoint is a fixed label such as "predict" (a string constant: it is kept, not copied). */
void stats_request(struct stats *s, const char *endpoint, int code);
void stats_batch(struct stats *s, int samples, double seconds);
void stats_wait(struct stats *s, double seconds);
/* A sleep to level (1, 2), a wake from level, a reload_weights, each with the seconds it took. */
void stats_sleep(struct stats *s, int level, double seconds);
void stats_wake(struct stats *s, int from_level, double seconds);
void stats_reload(struct stats *s, double seconds);
/*
 * The inference thread ran a batch for seconds, ending at now (a monotonic
 * clock in seconds): feeds wakegate_worker_busy_seconds_total and the busy
 * ratio over the last STATS_BUSY_WINDOW seconds.
 */
#define STATS_BUSY_WINDOW 10
void stats_busy(struct stats *s, double now, double seconds);
/* The inference thread's busy fraction over the window ending at now, 0 to 1. */
double stats_busy_ratio(const struct stats *s, double now);

/* The numbers the render needs that live elsewhere. */
struct stats_now {
	const char *model;
	const char *device;	/* "cpu" or "cuda" */
	int ready;
	int queue_depth;
	int queue_max;
	int max_batch;
	double load_seconds;
	double warmup_seconds;
	int sleep_level;
	size_t rss_bytes;	/* the process, from /proc/self/statm */
	size_t weight_bytes;	/* the model's weights, awake */
	size_t model_bytes;	/* what it takes on its device awake (batch.h) */
	size_t host_bytes;	/* working weights in host memory now */
	size_t device_bytes;	/* device memory the model holds now */
	double now;		/* the monotonic clock, for the busy ratio */
	size_t leaked_bytes;	/* --leak-per-request's total so far */
};
void stats_render(struct stats *s, const struct stats_now *now, struct evbuffer *out);

#endif
