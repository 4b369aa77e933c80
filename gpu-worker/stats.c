/* stats: counters and histograms for GET /metrics (see stats.h). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/prom.h"
#include "gpu-worker/stats.h"

#define STATS_MAX_SERIES 64
#define STATS_MAX_BUCKETS 24

struct stats_hist {
	int n;
	double le[STATS_MAX_BUCKETS];
	uint64_t count[STATS_MAX_BUCKETS + 1];	/* per bucket, not cumulative; [n]: above all */
	uint64_t total;
	double sum;
};

struct stats_series {
	const char *endpoint;
	int code;
	unsigned long long count;
};

/* One kind of sleep-ladder step: how many, and how long the last one took. */
struct stats_step {
	unsigned long long count;
	double last_s;
};

struct stats {
	struct stats_series req[STATS_MAX_SERIES];
	int nreq;
	unsigned long long batches, samples;
	struct stats_hist batch_size, infer_s, wait_s;
	struct stats_step sleep[3], wake[3], reload;	/* sleep and wake indexed by level */
	/* busy seconds per whole second of the clock, a ring over the window (and the current second) */
	long busy_sec[STATS_BUSY_WINDOW + 1];
	double busy[STATS_BUSY_WINDOW + 1];
	double busy_total, t0;
};

static const double stats_seconds_le[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

static void
hist_init(struct stats_hist *h, const double *le, int n)
{
	h->n = n;
	memcpy(h->le, le, sizeof(double) * (size_t)n);
}

static void
hist_observe(struct stats_hist *h, double v)
{
	int i = 0;

	while (i < h->n && v > h->le[i])
		i++;
	h->count[i]++;
	h->total++;
	h->sum += v;
}

static void
hist_render(const struct stats_hist *h, const char *name, const char *help, struct evbuffer *out)
{
	prom_head(out, name, PROM_HISTOGRAM, help);
	prom_histogram(out, name, "", h->le, h->n, h->count, h->total, h->sum);
}

/* Batch size buckets: powers of two up to max_batch, and max_batch itself. */
struct stats *
stats_new(int max_batch, double now)
{
	struct stats *s = calloc(1, sizeof(*s));
	double le[STATS_MAX_BUCKETS];
	int n = 0;

	if (!s)
		return NULL;
	s->t0 = now;
	for (int i = 0; i <= STATS_BUSY_WINDOW; i++)
		s->busy_sec[i] = -1;
	for (long v = 1; v < max_batch && n < STATS_MAX_BUCKETS - 1; v *= 2)
		le[n++] = (double)v;
	le[n++] = (double)max_batch;
	hist_init(&s->batch_size, le, n);
	hist_init(&s->infer_s, stats_seconds_le, (int)(sizeof(stats_seconds_le) / sizeof(double)));
	hist_init(&s->wait_s, stats_seconds_le, (int)(sizeof(stats_seconds_le) / sizeof(double)));
	return s;
}

void
stats_free(struct stats *s)
{
	free(s);
}

void
stats_request(struct stats *s, const char *endpoint, int code)
{
	for (int i = 0; i < s->nreq; i++) {
		if (s->req[i].code == code && strcmp(s->req[i].endpoint, endpoint) == 0) {
			s->req[i].count++;
			return;
		}
	}
	if (s->nreq == STATS_MAX_SERIES)
		return;		/* endpoints and codes are a small fixed set; cannot happen */
	s->req[s->nreq].endpoint = endpoint;
	s->req[s->nreq].code = code;
	s->req[s->nreq].count = 1;
	s->nreq++;
}

void
stats_batch(struct stats *s, int samples, double seconds)
{
	s->batches++;
	s->samples += (unsigned long long)samples;
	hist_observe(&s->batch_size, samples);
	hist_observe(&s->infer_s, seconds);
}

void
stats_wait(struct stats *s, double seconds)
{
	hist_observe(&s->wait_s, seconds);
}

static void
stats_step(struct stats_step *st, double seconds)
{
	st->count++;
	st->last_s = seconds;
}

void
stats_sleep(struct stats *s, int level, double seconds)
{
	if (level >= 1 && level <= 2)
		stats_step(&s->sleep[level], seconds);
}

void
stats_wake(struct stats *s, int from_level, double seconds)
{
	if (from_level >= 1 && from_level <= 2)
		stats_step(&s->wake[from_level], seconds);
}

void
stats_reload(struct stats *s, double seconds)
{
	stats_step(&s->reload, seconds);
}

/*
 * A batch's time is counted in the second it ended: a batch longer than a
 * second shows up late and at once, and the ratio is capped at 1.
 */
void
stats_busy(struct stats *s, double now, double seconds)
{
	long sec = (long)now;
	int i = (int)(sec % (STATS_BUSY_WINDOW + 1));

	if (s->busy_sec[i] != sec) {
		s->busy_sec[i] = sec;
		s->busy[i] = 0;
	}
	s->busy[i] += seconds;
	s->busy_total += seconds;
}

double
stats_busy_ratio(const struct stats *s, double now)
{
	long cur = (long)now, first = cur - STATS_BUSY_WINDOW + 1;
	double sum = 0, span, from = (double)first;

	for (int i = 0; i <= STATS_BUSY_WINDOW; i++)
		if (s->busy_sec[i] >= first && s->busy_sec[i] <= cur)
			sum += s->busy[i];
	if (from < s->t0)
		from = s->t0;	/* a worker younger than the window */
	span = now - from;
	if (span <= 0)
		return 0;
	return sum / span > 1 ? 1 : sum / span;
}

/* The sleep ladder's numbers: the state, the memory, each step's count and last duration. */
static void
stats_render_sleep(const struct stats *s, const struct stats_now *now, struct evbuffer *out)
{
	evbuffer_add_printf(out,
			    "# HELP wakegate_worker_sleep_level The model's sleep level: 0 awake, 1 or 2 (vLLM's levels).\n"
			    "# TYPE wakegate_worker_sleep_level gauge\n"
			    "wakegate_worker_sleep_level %d\n"
			    "# HELP wakegate_worker_rss_bytes The worker process's resident memory (/proc/self/statm).\n"
			    "# TYPE wakegate_worker_rss_bytes gauge\n"
			    "wakegate_worker_rss_bytes %zu\n"
			    "# HELP wakegate_worker_model_weight_bytes Bytes of the model's weights and biases: what it takes awake.\n"
			    "# TYPE wakegate_worker_model_weight_bytes gauge\n"
			    "wakegate_worker_model_weight_bytes %zu\n"
			    "# HELP wakegate_worker_model_bytes Memory the model takes on its device awake: device memory (GPU path) or its weights (CPU path).\n"
			    "# TYPE wakegate_worker_model_bytes gauge\n"
			    "wakegate_worker_model_bytes %zu\n"
			    "# HELP wakegate_worker_model_host_bytes Host memory the model's working weights hold now.\n"
			    "# TYPE wakegate_worker_model_host_bytes gauge\n"
			    "wakegate_worker_model_host_bytes %zu\n"
			    "# HELP wakegate_worker_model_device_bytes Device (GPU) memory the model holds now.\n"
			    "# TYPE wakegate_worker_model_device_bytes gauge\n"
			    "wakegate_worker_model_device_bytes %zu\n",
			    now->sleep_level, now->rss_bytes, now->weight_bytes, now->model_bytes, now->host_bytes,
			    now->device_bytes);
	evbuffer_add_printf(out, "# HELP wakegate_worker_sleeps_total Sleeps, by the level gone to.\n"
			    "# TYPE wakegate_worker_sleeps_total counter\n");
	for (int l = 1; l <= 2; l++)
		evbuffer_add_printf(out, "wakegate_worker_sleeps_total{level=\"%d\"} %llu\n", l, s->sleep[l].count);
	evbuffer_add_printf(out, "# HELP wakegate_worker_sleep_seconds How long the last sleep to the level took.\n"
			    "# TYPE wakegate_worker_sleep_seconds gauge\n");
	for (int l = 1; l <= 2; l++)
		evbuffer_add_printf(out, "wakegate_worker_sleep_seconds{level=\"%d\"} %.6f\n", l, s->sleep[l].last_s);
	evbuffer_add_printf(out, "# HELP wakegate_worker_wakes_total Wakes, by the level woken from.\n"
			    "# TYPE wakegate_worker_wakes_total counter\n");
	for (int l = 1; l <= 2; l++)
		evbuffer_add_printf(out, "wakegate_worker_wakes_total{from=\"%d\"} %llu\n", l, s->wake[l].count);
	evbuffer_add_printf(out, "# HELP wakegate_worker_wake_seconds How long the last wake from the level took.\n"
			    "# TYPE wakegate_worker_wake_seconds gauge\n");
	for (int l = 1; l <= 2; l++)
		evbuffer_add_printf(out, "wakegate_worker_wake_seconds{from=\"%d\"} %.6f\n", l, s->wake[l].last_s);
	evbuffer_add_printf(out,
			    "# HELP wakegate_worker_reloads_total reload_weights calls that succeeded.\n"
			    "# TYPE wakegate_worker_reloads_total counter\n"
			    "wakegate_worker_reloads_total %llu\n"
			    "# HELP wakegate_worker_reload_seconds How long the last reload_weights took.\n"
			    "# TYPE wakegate_worker_reload_seconds gauge\n"
			    "wakegate_worker_reload_seconds %.6f\n",
			    s->reload.count, s->reload.last_s);
	evbuffer_add_printf(out,
			    "# HELP wakegate_worker_busy_seconds_total Time the inference thread spent running batches.\n"
			    "# TYPE wakegate_worker_busy_seconds_total counter\n"
			    "wakegate_worker_busy_seconds_total %.6f\n"
			    "# HELP wakegate_worker_busy_ratio Busy fraction of the inference thread over the last %d seconds.\n"
			    "# TYPE wakegate_worker_busy_ratio gauge\n"
			    "wakegate_worker_busy_ratio %.4f\n",
			    s->busy_total, STATS_BUSY_WINDOW, stats_busy_ratio(s, now->now));
	if (now->leaked_bytes)
		evbuffer_add_printf(out,
				    "# HELP wakegate_worker_leaked_bytes Bytes leaked on purpose (--leak-per-request, tests only).\n"
				    "# TYPE wakegate_worker_leaked_bytes counter\n"
				    "wakegate_worker_leaked_bytes %zu\n", now->leaked_bytes);
}

/* Label values come from the model file and the device: escape \ " and newlines. */
static void
gauge(struct evbuffer *out, const char *name, const char *help, const char *labels, double v)
{
	prom_head(out, name, PROM_GAUGE, help);
	prom_sample(out, name, labels, v);
}

void
stats_render(struct stats *s, const struct stats_now *now, struct evbuffer *out)
{
	char labels[1024];

	prom_head(out, "wakegate_worker_requests_total", PROM_COUNTER,
		  "HTTP requests answered, by endpoint and status code.");
	for (int i = 0; i < s->nreq; i++) {
		char code[16];

		snprintf(code, sizeof(code), "%d", s->req[i].code);
		prom_labels(labels, sizeof(labels), "endpoint", s->req[i].endpoint, "code", code, NULL);
		prom_sample(out, "wakegate_worker_requests_total", labels, (double)s->req[i].count);
	}
	prom_head(out, "wakegate_worker_batches_total", PROM_COUNTER, "Batches run by the model.");
	prom_sample(out, "wakegate_worker_batches_total", "", (double)s->batches);
	prom_head(out, "wakegate_worker_samples_total", PROM_COUNTER, "Samples run by the model.");
	prom_sample(out, "wakegate_worker_samples_total", "", (double)s->samples);
	hist_render(&s->batch_size, "wakegate_worker_batch_size", "Samples per batch run by the model.", out);
	hist_render(&s->infer_s, "wakegate_worker_inference_seconds", "Time the model took for one batch.", out);
	hist_render(&s->wait_s, "wakegate_worker_queue_wait_seconds", "Time a request waited in the queue before its batch ran.", out);
	gauge(out, "wakegate_worker_queue_depth", "Requests waiting for a batch.", "", now->queue_depth);
	gauge(out, "wakegate_worker_queue_limit", "Requests the queue holds before it answers 503 (--queue).",
	      "", now->queue_max);
	gauge(out, "wakegate_worker_max_batch", "Samples per batch at most (--max-batch).", "", now->max_batch);
	gauge(out, "wakegate_worker_ready", "1 once the model is loaded and warmed up.", "", now->ready);
	gauge(out, "wakegate_worker_device", "The device the model runs on.",
	      prom_labels(labels, sizeof(labels), "device", now->device, NULL), 1);
	gauge(out, "wakegate_worker_model_info", "The model served.",
	      prom_labels(labels, sizeof(labels), "model", now->model, NULL), 1);
	gauge(out, "wakegate_worker_load_seconds", "Time loading the model took.", "", now->load_seconds);
	gauge(out, "wakegate_worker_warmup_seconds", "Time the warmup took.", "", now->warmup_seconds);
	stats_render_sleep(s, now, out);
}
