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

struct stats {
	struct stats_series req[STATS_MAX_SERIES];
	int nreq;
	unsigned long long batches, samples;
	struct stats_hist batch_size, infer_s, wait_s;
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
stats_new(int max_batch)
{
	struct stats *s = calloc(1, sizeof(*s));
	double le[STATS_MAX_BUCKETS];
	int n = 0;

	if (!s)
		return NULL;
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

/* A gauge with its HELP and TYPE lines: the worker's have one series each. */
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
}
