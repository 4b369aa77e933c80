/* batch: the request queue and the inference thread (see batch.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "gpu-worker/batch.h"
#include "gpu-worker/model.h"

enum job_state { JOB_NEW, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct batch_job {
	struct batch_job *next;
	int n;
	float *in, *out;
	enum job_state state;		/* under batch.mu once submitted */
	struct timespec t_submit;
	double wait_s;
	int status;
	char err[256];
	int first_in_batch;		/* carries the batch's numbers for on_batch */
	int batch_samples;
	double batch_s;
	int cancelled;			/* loop thread only */
	batch_done_cb done;
	void *arg;
};

struct batch {
	struct event_base *base;
	struct model *m;
	struct batch_opts o;
	int in_dim, out_dim;

	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int efd;			/* the thread writes, the loop reads */
	struct event *ev;

	/* under mu */
	struct batch_job *q_head, *q_tail;
	int q_len, q_samples;
	struct batch_job *done_head, *done_tail;
	int draining, stopping, thread_done;
	int warm_pending, warm_ok;
	double warm_s;
	char warm_err[256];
	enum batch_ctl ctl_op;		/* 0: none; set by the loop, cleared by the thread */
	int ctl_busy;			/* from batch_control() until cb has run (loop) */
	int ctl_pending, ctl_ok, ctl_changed;	/* a result for the loop */
	double ctl_s;
	char ctl_err[256];
	struct batch_mem mem;

	/* loop thread only */
	int ready, drained_called;
	batch_ctl_cb ctl_cb;
	void *ctl_arg;

	/* inference thread only */
	float *bin, *bout;
};

static double
ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Wakes the loop; a full eventfd counter still wakes it, so errors are ignored. */
static void
batch_notify(struct batch *b)
{
	uint64_t one = 1;
	ssize_t r = write(b->efd, &one, sizeof(one));
	(void)r;
}

/* Runs the warmup: o.warmup runs of max_batch zeros. Called on the thread before serving. */
static void
batch_warmup(struct batch *b)
{
	struct timespec t0, t1;
	char err[256] = "";
	int ok = 1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(b->bin, 0, sizeof(float) * (size_t)b->o.max_batch * (size_t)b->in_dim);
	for (int i = 0; i < b->o.warmup; i++) {
		int stop;
		pthread_mutex_lock(&b->mu);
		stop = b->stopping || b->draining;
		pthread_mutex_unlock(&b->mu);
		if (stop)
			break;
		if (model_run(b->m, b->bin, b->o.max_batch, b->bout, err, sizeof(err)) < 0) {
			ok = 0;
			break;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&b->mu);
	b->warm_pending = 1;
	b->warm_ok = ok;
	b->warm_s = ts_diff(&t0, &t1);
	snprintf(b->warm_err, sizeof(b->warm_err), "%s", err);
	pthread_mutex_unlock(&b->mu);
	batch_notify(b);
}

/* Runs one batch of taken jobs outside the lock; fills each job's output and status. */
static void
batch_run(struct batch *b, struct batch_job *first, int njobs, int samples)
{
	struct timespec t0, t1;
	char err[256] = "";
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (njobs == 1) {
		rc = model_run(b->m, first->in, first->n, first->out, err, sizeof(err));
	} else {
		size_t off = 0;
		struct batch_job *j = first;
		for (int i = 0; i < njobs; i++, j = j->next) {
			memcpy(b->bin + off, j->in, sizeof(float) * (size_t)j->n * (size_t)b->in_dim);
			off += (size_t)j->n * (size_t)b->in_dim;
		}
		rc = model_run(b->m, b->bin, samples, b->bout, err, sizeof(err));
		off = 0;
		j = first;
		for (int i = 0; i < njobs && rc == 0; i++, j = j->next) {
			memcpy(j->out, b->bout + off, sizeof(float) * (size_t)j->n * (size_t)b->out_dim);
			off += (size_t)j->n * (size_t)b->out_dim;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	struct batch_job *j = first;
	int asleep = rc < 0 && model_sleep_level(b->m) > 0;
	for (int i = 0; i < njobs; i++, j = j->next) {
		j->status = rc == 0 ? 0 : asleep ? -2 : -1;
		snprintf(j->err, sizeof(j->err), "%s", err);
		j->wait_s = ts_diff(&j->t_submit, &t0);
		j->first_in_batch = i == 0;
		j->batch_samples = samples;
		j->batch_s = ts_diff(&t0, &t1);
	}
}

/*
 * The inference thread: warm up, then gather and run batches until told to
 * stop, or until draining has emptied the queue.
 */
/*
 * Reads the model's byte counts into mem, on the inference thread (or
 * before it starts): the only writer of b->mem, so reading it here without
 * the lock is safe.
 */
static void
batch_mem_read(struct batch *b, struct batch_mem *mem)
{
	mem->level = model_sleep_level(b->m);
	mem->weight_bytes = model_weight_bytes(b->m);
	mem->host_bytes = model_host_bytes(b->m);
	mem->device_bytes = model_device_bytes(b->m);
	if (mem->level == 0)
		mem->model_bytes = mem->device_bytes ? mem->device_bytes : mem->weight_bytes;
	else
		mem->model_bytes = b->mem.model_bytes;	/* asleep: the last awake measure */
}

/* Runs b->ctl_op on the model, outside the lock (called and returning with mu held). */
static void
batch_run_ctl(struct batch *b)
{
	enum batch_ctl op = b->ctl_op;
	struct timespec t0, t1;
	struct batch_mem mem;
	char err[256] = "";
	int rc, changed = 0;

	pthread_mutex_unlock(&b->mu);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	switch (op) {
	case BATCH_CTL_SLEEP1:
	case BATCH_CTL_SLEEP2:
		rc = model_sleep(b->m, op == BATCH_CTL_SLEEP1 ? 1 : 2, err, sizeof(err));
		break;
	case BATCH_CTL_WAKE:
		rc = model_wake(b->m, err, sizeof(err));
		break;
	case BATCH_CTL_RELOAD:
		rc = model_reload(b->m, &changed, err, sizeof(err));
		break;
	default:
		rc = -1;
		snprintf(err, sizeof(err), "unknown control %d", (int)op);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	batch_mem_read(b, &mem);
	pthread_mutex_lock(&b->mu);
	b->mem = mem;
	b->ctl_op = 0;
	b->ctl_pending = 1;
	b->ctl_ok = rc == 0;
	b->ctl_changed = changed;
	b->ctl_s = ts_diff(&t0, &t1);
	snprintf(b->ctl_err, sizeof(b->ctl_err), "%s", err);
	pthread_mutex_unlock(&b->mu);
	batch_notify(b);
	pthread_mutex_lock(&b->mu);
}

static int
batch_ctl_is_sleep(enum batch_ctl op)
{
	return op == BATCH_CTL_SLEEP1 || op == BATCH_CTL_SLEEP2;
}

static void *
batch_thread(void *arg)
{
	struct batch *b = arg;

	batch_warmup(b);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		if (b->stopping)
			break;
		/* A sleep waits for the queue to empty; a wake or reload goes first. */
		if (b->ctl_op && !(batch_ctl_is_sleep(b->ctl_op) && b->q_head)) {
			batch_run_ctl(b);
			continue;
		}
		if (!b->q_head) {
			if (b->draining)
				break;
			pthread_cond_wait(&b->cond, &b->mu);
			continue;
		}
		if (b->q_samples < b->o.max_batch && !b->draining && !b->ctl_op) {
			struct timespec now, deadline = b->q_head->t_submit;
			deadline.tv_sec += b->o.delay_ms / 1000;
			deadline.tv_nsec += (b->o.delay_ms % 1000) * 1000000L;
			if (deadline.tv_nsec >= 1000000000L) {
				deadline.tv_sec++;
				deadline.tv_nsec -= 1000000000L;
			}
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (ts_diff(&now, &deadline) > 0) {
				pthread_cond_timedwait(&b->cond, &b->mu, &deadline);
				continue;
			}
		}
		/* Take whole jobs, oldest first, up to max_batch samples (at least one job). */
		struct batch_job *first = b->q_head, *last = NULL, *j = first;
		int njobs = 0, samples = 0;
		while (j && (njobs == 0 || samples + j->n <= b->o.max_batch)) {
			j->state = JOB_RUNNING;
			samples += j->n;
			njobs++;
			last = j;
			j = j->next;
		}
		b->q_head = j;
		if (!j)
			b->q_tail = NULL;
		b->q_len -= njobs;
		b->q_samples -= samples;
		last->next = NULL;
		pthread_mutex_unlock(&b->mu);

		/* Jobs > max_batch run alone on their own buffers, so the shared ones suffice. */
		batch_run(b, first, njobs, samples);

		pthread_mutex_lock(&b->mu);
		for (j = first; j; j = j->next)
			j->state = JOB_DONE;
		if (b->done_tail)
			b->done_tail->next = first;
		else
			b->done_head = first;
		b->done_tail = last;
		pthread_mutex_unlock(&b->mu);
		batch_notify(b);
		pthread_mutex_lock(&b->mu);
	}
	b->thread_done = 1;
	pthread_mutex_unlock(&b->mu);
	batch_notify(b);
	return NULL;
}

static void
batch_job_free_(struct batch_job *j)
{
	free(j->in);
	free(j->out);
	free(j);
}

/* Loop side of the eventfd: report warmup, deliver finished jobs, report the drain. */
static void
batch_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct batch *b = arg;
	uint64_t v;
	struct batch_job *done;
	int warm, warm_ok, thread_done, ctl, ctl_ok, ctl_changed;
	double warm_s, ctl_s;
	char warm_err[256], ctl_err[256];

	while (read(b->efd, &v, sizeof(v)) > 0)
		;
	pthread_mutex_lock(&b->mu);
	done = b->done_head;
	b->done_head = b->done_tail = NULL;
	warm = b->warm_pending;
	b->warm_pending = 0;
	warm_ok = b->warm_ok;
	warm_s = b->warm_s;
	memcpy(warm_err, b->warm_err, sizeof(warm_err));
	thread_done = b->thread_done;
	ctl = b->ctl_pending;
	b->ctl_pending = 0;
	ctl_ok = b->ctl_ok;
	ctl_changed = b->ctl_changed;
	ctl_s = b->ctl_s;
	memcpy(ctl_err, b->ctl_err, sizeof(ctl_err));
	pthread_mutex_unlock(&b->mu);

	if (warm) {
		b->ready = warm_ok;
		if (b->o.on_ready)
			b->o.on_ready(warm_ok, warm_err, warm_s, b->o.arg);
	}
	while (done) {
		struct batch_job *next = done->next;
		if (done->first_in_batch && b->o.on_batch)
			b->o.on_batch(done->batch_samples, done->batch_s, b->o.arg);
		if (!done->cancelled)
			done->done(done, done->arg);
		batch_job_free_(done);
		done = next;
	}
	/* After the jobs: those a sleep ran first are answered before it is. */
	if (ctl) {
		batch_ctl_cb cb = b->ctl_cb;

		b->ctl_busy = 0;
		b->ctl_cb = NULL;
		if (cb)
			cb(ctl_ok, ctl_err, ctl_s, ctl_changed, b->ctl_arg);
	}
	if (thread_done && b->draining && !b->drained_called) {
		b->drained_called = 1;
		if (b->o.on_drained)
			b->o.on_drained(b->o.arg);
	}
}

struct batch *
batch_new(struct event_base *base, struct model *m, const struct batch_opts *o,
	  char *err, size_t errlen)
{
	struct batch *b = calloc(1, sizeof(*b));
	pthread_condattr_t ca;
	int rc;

	if (!b) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b->base = base;
	b->m = m;
	b->o = *o;
	b->in_dim = model_input_dim(m);
	b->out_dim = model_output_dim(m);
	batch_mem_read(b, &b->mem);	/* before the thread exists */
	b->efd = -1;
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	b->bin = calloc((size_t)o->max_batch * (size_t)b->in_dim, sizeof(float));
	b->bout = calloc((size_t)o->max_batch * (size_t)b->out_dim, sizeof(float));
	if (!b->bin || !b->bout) {
		snprintf(err, errlen, "out of memory for a batch of %d", o->max_batch);
		goto fail;
	}
	b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->efd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	b->ev = event_new(base, b->efd, EV_READ | EV_PERSIST, batch_on_event, b);
	if (!b->ev || event_add(b->ev, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the eventfd");
		goto fail;
	}
	rc = pthread_create(&b->thread, NULL, batch_thread, b);
	if (rc != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		goto fail;
	}
	b->thread_started = 1;
	return b;
fail:
	batch_free(b);
	return NULL;
}

static void
batch_free_list(struct batch_job *j)
{
	while (j) {
		struct batch_job *next = j->next;
		batch_job_free_(j);
		j = next;
	}
}

void
batch_free(struct batch *b)
{
	if (!b)
		return;
	if (b->thread_started) {
		pthread_mutex_lock(&b->mu);
		b->stopping = 1;
		pthread_cond_signal(&b->cond);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->thread, NULL);
	}
	batch_free_list(b->q_head);
	batch_free_list(b->done_head);
	if (b->ev)
		event_free(b->ev);
	if (b->efd >= 0)
		close(b->efd);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->mu);
	free(b->bin);
	free(b->bout);
	free(b);
}

struct batch_job *
batch_job_new(struct batch *b, int n, batch_done_cb done, void *arg)
{
	struct batch_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->n = n;
	j->in = malloc(sizeof(float) * (size_t)n * (size_t)b->in_dim);
	j->out = malloc(sizeof(float) * (size_t)n * (size_t)b->out_dim);
	if (!j->in || !j->out) {
		batch_job_free_(j);
		return NULL;
	}
	j->done = done;
	j->arg = arg;
	return j;
}

float *batch_job_input(struct batch_job *j) { return j->in; }
void batch_job_free(struct batch_job *j) { if (j) batch_job_free_(j); }
int batch_job_status(const struct batch_job *j) { return j->status; }
const char *batch_job_error(const struct batch_job *j) { return j->err; }
const float *batch_job_output(const struct batch_job *j) { return j->out; }
double batch_job_wait_seconds(const struct batch_job *j) { return j->wait_s; }
int batch_ready(const struct batch *b) { return b->ready; }

int
batch_submit(struct batch *b, struct batch_job *j)
{
	int rc = 0;

	pthread_mutex_lock(&b->mu);
	if (b->draining || b->stopping) {
		rc = -2;
	} else if (b->q_len >= b->o.queue_max) {
		rc = -1;
	} else {
		clock_gettime(CLOCK_MONOTONIC, &j->t_submit);
		j->state = JOB_QUEUED;
		j->next = NULL;
		if (b->q_tail)
			b->q_tail->next = j;
		else
			b->q_head = j;
		b->q_tail = j;
		b->q_len++;
		b->q_samples += j->n;
		pthread_cond_signal(&b->cond);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

void
batch_cancel(struct batch *b, struct batch_job *j)
{
	pthread_mutex_lock(&b->mu);
	if (j->state == JOB_QUEUED) {
		struct batch_job **pp = &b->q_head, *prev = NULL;
		while (*pp && *pp != j) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = j->next;
			if (b->q_tail == j)
				b->q_tail = prev;
			b->q_len--;
			b->q_samples -= j->n;
		}
		pthread_mutex_unlock(&b->mu);
		batch_job_free_(j);
		return;
	}
	j->cancelled = 1;	/* running or done: dropped when it reaches the loop */
	pthread_mutex_unlock(&b->mu);
}

int
batch_queue_depth(struct batch *b)
{
	int n;

	pthread_mutex_lock(&b->mu);
	n = b->q_len;
	pthread_mutex_unlock(&b->mu);
	return n;
}

void
batch_drain(struct batch *b)
{
	pthread_mutex_lock(&b->mu);
	b->draining = 1;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->mu);
}

int
batch_control(struct batch *b, enum batch_ctl op, batch_ctl_cb cb, void *arg)
{
	if (b->ctl_busy)
		return -1;
	b->ctl_busy = 1;
	b->ctl_cb = cb;
	b->ctl_arg = arg;
	pthread_mutex_lock(&b->mu);
	b->ctl_op = op;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

void
batch_mem(struct batch *b, struct batch_mem *out)
{
	pthread_mutex_lock(&b->mu);
	*out = b->mem;
	pthread_mutex_unlock(&b->mu);
}
