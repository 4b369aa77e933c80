/* stats: counters and histograms for GET /metrics (see stats.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gpu-worker/stats.h"

#define STATS_MAX_SERIES 64
#define STATS_MAX_BUCKETS 24

struct stats_hist {
	int n;
	double le[STATS_MAX_BUCKETS];
	unsigned long long count[STATS_MAX_BUCKETS];	/* per bucket, not cumulative */
	unsigned long long total;
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
	if (i < h->n)
		h->count[i]++;
	h->total++;
	h->sum += v;
}

static void
hist_render(const struct stats_hist *h, const char *name, const char *help, struct evbuffer *out)
{
	unsigned long long cum = 0;

	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < h->n; i++) {
		cum += h->count[i];
		evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], cum);
	}
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n",
			    name, h->total, name, h->sum, name, h->total);
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

/* Label values come from the model file and the device: escape \ " and newlines. */
static void
esc(const char *in, char *buf, size_t len)
{
	size_t o = 0;

	for (; *in && o + 3 < len; in++) {
		if (*in == '\\' || *in == '"') {
			buf[o++] = '\\';
			buf[o++] = *in;
		} else if (*in == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *in;
		}
	}
	buf[o] = '\0';
}

void
stats_render(struct stats *s, const struct stats_now *now, struct evbuffer *out)
{
	char model[256], device[64];

	esc(now->model, model, sizeof(model));
	esc(now->device, device, sizeof(device));
	evbuffer_add_printf(out, "# HELP wakegate_worker_requests_total HTTP requests answered, by endpoint and status code.\n"
			    "# TYPE wakegate_worker_requests_total counter\n");
	for (int i = 0; i < s->nreq; i++)
		evbuffer_add_printf(out, "wakegate_worker_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
				    s->req[i].endpoint, s->req[i].code, s->req[i].count);
	evbuffer_add_printf(out,
			    "# HELP wakegate_worker_batches_total Batches run by the model.\n"
			    "# TYPE wakegate_worker_batches_total counter\n"
			    "wakegate_worker_batches_total %llu\n"
			    "# HELP wakegate_worker_samples_total Samples run by the model.\n"
			    "# TYPE wakegate_worker_samples_total counter\n"
			    "wakegate_worker_samples_total %llu\n",
			    s->batches, s->samples);
	hist_render(&s->batch_size, "wakegate_worker_batch_size", "Samples per batch run by the model.", out);
	hist_render(&s->infer_s, "wakegate_worker_inference_seconds", "Time the model took for one batch.", out);
	hist_render(&s->wait_s, "wakegate_worker_queue_wait_seconds", "Time a request waited in the queue before its batch ran.", out);
	evbuffer_add_printf(out,
			    "# HELP wakegate_worker_queue_depth Requests waiting for a batch.\n"
			    "# TYPE wakegate_worker_queue_depth gauge\n"
			    "wakegate_worker_queue_depth %d\n"
			    "# HELP wakegate_worker_queue_limit Requests the queue holds before it answers 503 (--queue).\n"
			    "# TYPE wakegate_worker_queue_limit gauge\n"
			    "wakegate_worker_queue_limit %d\n"
			    "# HELP wakegate_worker_max_batch Samples per batch at most (--max-batch).\n"
			    "# TYPE wakegate_worker_max_batch gauge\n"
			    "wakegate_worker_max_batch %d\n"
			    "# HELP wakegate_worker_ready 1 once the model is loaded and warmed up.\n"
			    "# TYPE wakegate_worker_ready gauge\n"
			    "wakegate_worker_ready %d\n"
			    "# HELP wakegate_worker_device The device the model runs on.\n"
			    "# TYPE wakegate_worker_device gauge\n"
			    "wakegate_worker_device{device=\"%s\"} 1\n"
			    "# HELP wakegate_worker_model_info The model served.\n"
			    "# TYPE wakegate_worker_model_info gauge\n"
			    "wakegate_worker_model_info{model=\"%s\"} 1\n"
			    "# HELP wakegate_worker_load_seconds Time loading the model took.\n"
			    "# TYPE wakegate_worker_load_seconds gauge\n"
			    "wakegate_worker_load_seconds %.6f\n"
			    "# HELP wakegate_worker_warmup_seconds Time the warmup took.\n"
			    "# TYPE wakegate_worker_warmup_seconds gauge\n"
			    "wakegate_worker_warmup_seconds %.6f\n",
			    now->queue_depth, now->queue_max, now->max_batch, now->ready,
			    device, model, now->load_seconds, now->warmup_seconds);
}
