/*
 * replay_gpu: the multi-model GPU replay (see replay_gpu.h). An event
 * loop in simulated time: request arrivals in trace order, and a heap of
 * load completions, request ends and idle timeouts.
 */
#include "tools/replay_gpu.h"
#include "gateway/evict.h"
#include "gateway/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the gateway's and the adaptive keep-alive's: fewer gaps than this is "no history" */
#define GPU_MIN_SAMPLES 10

enum mstate { M_UNLOADED, M_LOADING, M_LOADED };

/* Event kinds in the order they run at one instant: a request that ends
 * frees its model before a request that arrives at the same time looks. */
enum ev_kind { EV_END, EV_READY, EV_IDLE };

struct ev {
	int64_t t;
	enum ev_kind kind;
	uint32_t m;
	uint64_t gen;		/* EV_IDLE: the model's idle generation it was set for */
	uint64_t seq;
};

struct model {
	enum mstate st;
	int64_t load_start;
	int inflight;
	int64_t last_end;	/* the end of its last request; -1: none yet */
	int idle;		/* 1 from the end of its last request to the next arrival */
	uint64_t gen;		/* bumped whenever a pending idle timeout becomes stale */
	size_t *pend;		/* requests waiting for its load, FIFO */
	size_t npend, pendcap;
	int memwait;		/* in the memory-wait queue */
	size_t next;		/* the oracle: its next request's index in the trace */
	struct policy_hist h;
};

struct sim {
	const struct gpu_conf *c;
	const struct trace *tr;
	struct gpu_result *r;
	struct model *m;
	struct ev *heap;
	size_t nheap, heapcap;
	uint64_t seq;
	int64_t used;		/* bytes of models loading or loaded */
	int resident;		/* how many */
	int64_t dev_since;	/* when the device last went from empty to occupied */
	uint32_t *wq;		/* models waiting for memory, FIFO */
	size_t wq_head, wq_n;
	int64_t clip;		/* time is billed up to here: the end of the last work, once known */
	size_t left;		/* requests not yet ended */
};

static int oom;

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	size_t nc = *cap ? *cap * 2 : 16;
	void *q = realloc(p, nc * size);
	if (!q) {
		oom = 1;
		return NULL;
	}
	*cap = nc;
	return q;
}

static int ev_less(const struct ev *a, const struct ev *b)
{
	if (a->t != b->t)
		return a->t < b->t;
	if (a->kind != b->kind)
		return a->kind < b->kind;
	return a->seq < b->seq;
}

static void ev_push(struct sim *s, struct ev e)
{
	struct ev *h = grow(s->heap, &s->heapcap, s->nheap, sizeof(*h));

	if (!h)
		return;
	s->heap = h;
	e.seq = s->seq++;
	size_t i = s->nheap++;
	while (i > 0 && ev_less(&e, &h[(i - 1) / 2])) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = e;
}

static struct ev ev_pop(struct sim *s)
{
	struct ev top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0, n = s->nheap;

	for (;;) {
		size_t k = 2 * i + 1;
		if (k >= n)
			break;
		if (k + 1 < n && ev_less(&s->heap[k + 1], &s->heap[k]))
			k++;
		if (!ev_less(&s->heap[k], &last))
			break;
		s->heap[i] = s->heap[k];
		i = k;
	}
	if (n)
		s->heap[i] = last;
	return top;
}

static void event(struct sim *s, int64_t t, const char *what, uint32_t m, long req)
{
	if (!s->c->events)
		return;
	fprintf(s->c->events, "%s %" PRId64 " %s %s", s->r->name, t, what, s->tr->names[m]);
	if (req >= 0)
		fprintf(s->c->events, " %ld", req);
	fprintf(s->c->events, " %" PRId64 "\n", s->used);
}

static void dev_account(struct sim *s, int64_t t, int delta)
{
	if (s->resident == 0 && delta > 0)
		s->dev_since = t;
	s->resident += delta;
	if (s->resident == 0 && delta < 0) {
		int64_t b = t < s->clip ? t : s->clip;
		if (b > s->dev_since)
			s->r->device_ms += (double)(b - s->dev_since);
	}
	if (s->resident > s->r->peak_models)
		s->r->peak_models = s->resident;
	if (s->used > s->r->peak_bytes)
		s->r->peak_bytes = s->used;
}

static void resident_add(struct sim *s, uint32_t i, int64_t from, int64_t to)
{
	if (to > s->clip)
		to = s->clip;
	if (to > from) {
		s->r->model[i].resident_ms += (double)(to - from);
		s->r->all.resident_ms += (double)(to - from);
	}
}

static void load(struct sim *s, uint32_t i, int64_t t)
{
	struct model *m = &s->m[i];

	m->st = M_LOADING;
	m->load_start = t;
	s->used += s->c->spec[i].bytes;
	s->r->model[i].loads++;
	s->r->all.loads++;
	event(s, t, "load", i, -1);
	dev_account(s, t, 1);
	ev_push(s, (struct ev){ .t = t + s->c->spec[i].boot_ms, .kind = EV_READY, .m = i });
}

/* cause: "evict" (to make room) or "idle" (its idle_timeout passed) */
static void unload(struct sim *s, uint32_t i, int64_t t, const char *cause)
{
	struct model *m = &s->m[i];

	m->st = M_UNLOADED;
	m->gen++;
	s->used -= s->c->spec[i].bytes;
	resident_add(s, i, m->load_start, t);
	if (!strcmp(cause, "evict")) {
		s->r->model[i].evictions++;
		s->r->all.evictions++;
	}
	event(s, t, cause, i, -1);
	dev_account(s, t, -1);
}

/* A model that may be evicted: loaded, nothing in flight, nobody waiting for it. */
static int evictable(const struct sim *s, uint32_t i)
{
	const struct model *m = &s->m[i];

	return m->st == M_LOADED && m->inflight == 0 && m->npend == 0;
}

static int cmp_lru(const void *a, const void *b, void *arg)
{
	const struct model *m = arg;
	int64_t x = m[*(const uint32_t *)a].last_end, y = m[*(const uint32_t *)b].last_end;

	return (x > y) - (x < y);
}

/* The oracle's choice among cand[0..k): farthest next request first (see
 * replay_gpu.h); writes positions in cand to out, returns how many, 0 when
 * they cannot free need. */
static int oracle_choose(const struct sim *s, const uint32_t *cand, uint32_t k, int64_t need, int64_t t,
	int *out)
{
	const struct trace *tr = s->tr;
	int64_t freed = 0;
	int m = 0;
	double *away = malloc((k ? k : 1) * sizeof(*away));

	if (!away) {
		oom = 1;
		return 0;
	}
	for (uint32_t j = 0; j < k; j++) {
		const struct model *md = &s->m[cand[j]];
		size_t nx = md->next;
		away[j] = 1e300;
		if (nx < tr->n && tr->req[nx].up == cand[j]
			&& tr->req[nx].t_ms - md->last_end <= s->c->idle_timeout_ms)
			away[j] = (double)(tr->req[nx].t_ms - t);
		out[m++] = (int)j;
		freed += s->c->spec[cand[j]].bytes;
	}
	if (freed < need) {
		free(away);
		return 0;
	}
	for (int i = 1; i < m; i++) {
		int x = out[i], j = i;
		while (j > 0 && away[out[j - 1]] < away[x]) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = x;
	}
	free(away);
	int n = 0;
	freed = 0;
	while (n < m && freed < need)
		freed += s->c->spec[cand[out[n++]]].bytes;
	for (int i = n - 2; i >= 0; i--) {
		if (freed - s->c->spec[cand[out[i]]].bytes < need)
			continue;
		freed -= s->c->spec[cand[out[i]]].bytes;
		for (int j = i; j < n - 1; j++)
			out[j] = out[j + 1];
		n--;
	}
	return n;
}

/* Makes room for model i and starts its load; 0 when it cannot now. */
static int place(struct sim *s, uint32_t i, int64_t t)
{
	const struct gpu_conf *c = s->c;
	int64_t need = c->spec[i].bytes - (c->device_bytes - s->used);
	uint32_t n = (uint32_t)s->tr->nup, k = 0;

	if (s->r->policy == GPU_ONE) {
		/* llama-swap's group: the one loaded model goes when it is idle */
		for (uint32_t j = 0; j < n; j++) {
			if (j == i || s->m[j].st == M_UNLOADED)
				continue;
			if (!evictable(s, j))
				return 0;
			unload(s, j, t, "evict");
		}
		load(s, i, t);
		return 1;
	}
	if (need <= 0) {
		load(s, i, t);
		return 1;
	}
	uint32_t *cand = malloc(n * sizeof(*cand));
	int *out = malloc(n * sizeof(*out));
	struct evict_cand *ec = calloc(n, sizeof(*ec));
	int chosen = 0, lru = 0;

	if (!cand || !out || !ec) {
		oom = 1;
		goto done;
	}
	for (uint32_t j = 0; j < n; j++)
		if (j != i && evictable(s, j))
			cand[k++] = j;
	if (s->r->policy == GPU_LRU) {
		int64_t freed = 0;
		qsort_r(cand, k, sizeof(*cand), cmp_lru, s->m);
		while (chosen < (int)k && freed < need) {
			freed += c->spec[cand[chosen]].bytes;
			out[chosen] = chosen;
			chosen++;
		}
		if (freed < need)
			chosen = 0;
	} else if (s->r->policy == GPU_ORACLE) {
		chosen = oracle_choose(s, cand, k, need, t, out);
	} else {
		for (uint32_t j = 0; j < k; j++)
			ec[j] = (struct evict_cand){
				.idle_s = (double)(t - s->m[cand[j]].last_end) / 1000.0,
				.reload_s = (double)c->spec[cand[j]].boot_ms / 1000.0,
				.hist = &s->m[cand[j]].h,
				.bytes = c->spec[cand[j]].bytes,
			};
		chosen = evict_choose(ec, (int)k, need, 0, GPU_MIN_SAMPLES, out, &lru);
		if (chosen && lru)
			s->r->lru_choices++;
	}
	for (int j = 0; j < chosen; j++)
		unload(s, cand[out[j]], t, "evict");
	if (chosen)
		load(s, i, t);
done:
	free(cand);
	free(out);
	free(ec);
	return chosen > 0;
}

/* The memory-wait queue, oldest first: a model placed leaves it, and no
 * later one jumps ahead of one that cannot be placed yet (a large model is
 * not starved by small ones). */
static void retry_waiters(struct sim *s, int64_t t)
{
	while (s->wq_n && !oom) {
		uint32_t i = s->wq[s->wq_head];

		if (!place(s, i, t))
			return;
		s->m[i].memwait = 0;
		s->wq_head = (s->wq_head + 1) % s->tr->nup;
		s->wq_n--;
	}
}

static void start(struct sim *s, size_t req, int64_t arrival, int64_t t)
{
	const struct trace_req *q = &s->tr->req[req];
	struct model *m = &s->m[q->up];

	m->inflight++;
	s->r->hold[req] = t - arrival;
	s->r->model[q->up].hold_ms += (double)(t - arrival);
	s->r->all.hold_ms += (double)(t - arrival);
	event(s, t, "start", q->up, (long)req);
	ev_push(s, (struct ev){ .t = t + q->dur_ms, .kind = EV_END, .m = (uint32_t)req });
}

static void arrive(struct sim *s, size_t req)
{
	const struct trace_req *q = &s->tr->req[req];
	uint32_t i = q->up;
	struct model *m = &s->m[i];
	int64_t t = q->t_ms;

	s->r->model[i].reqs++;
	s->r->all.reqs++;
	m->next = req + 1;	/* the trace is sorted by model, then arrival */
	event(s, t, "arrive", i, (long)req);
	if (m->idle) {
		/* an idle gap ends: the gateway's keep-alive counts it the same way */
		policy_observe_gap(&m->h, t - m->last_end);
		m->idle = 0;
		m->gen++;
	}
	if (m->st == M_LOADED) {
		start(s, req, t, t);
		return;
	}
	size_t *p = grow(m->pend, &m->pendcap, m->npend, sizeof(*p));
	if (!p)
		return;
	m->pend = p;
	m->pend[m->npend++] = req;
	if (m->memwait) {
		s->r->model[i].mem_waits++;
		s->r->all.mem_waits++;
		return;
	}
	if (m->st == M_LOADING)
		return;
	if (s->wq_n == 0 && place(s, i, t))
		return;
	m->memwait = 1;
	s->wq[(s->wq_head + s->wq_n++) % s->tr->nup] = i;
	s->r->model[i].mem_waits++;
	s->r->all.mem_waits++;
	event(s, t, "memwait", i, (long)req);
}

static void on_event(struct sim *s, struct ev e)
{
	struct model *m;

	switch (e.kind) {
	case EV_END: {
		const struct trace_req *q = &s->tr->req[e.m];
		m = &s->m[q->up];
		event(s, e.t, "end", q->up, (long)e.m);
		if (--s->left == 0)
			s->clip = e.t;	/* all work done: the idle time after it is not billed */
		if (--m->inflight > 0)
			return;
		m->last_end = e.t;
		if (m->npend == 0) {
			m->idle = 1;
			ev_push(s, (struct ev){ .t = e.t + s->c->idle_timeout_ms, .kind = EV_IDLE, .m = q->up,
				.gen = ++m->gen });
		}
		retry_waiters(s, e.t);
		return;
	}
	case EV_READY:
		m = &s->m[e.m];
		m->st = M_LOADED;
		event(s, e.t, "ready", e.m, -1);
		for (size_t k = 0; k < m->npend; k++)
			start(s, m->pend[k], s->tr->req[m->pend[k]].t_ms, e.t);
		m->npend = 0;
		return;
	case EV_IDLE:
		m = &s->m[e.m];
		if (e.gen != m->gen || !evictable(s, e.m))
			return;
		unload(s, e.m, e.t, "idle");
		retry_waiters(s, e.t);
		return;
	}
}

static size_t *by_arrival(const struct trace *tr)
{
	size_t *o = malloc((tr->n ? tr->n : 1) * sizeof(*o));

	if (!o)
		return NULL;
	for (size_t k = 0; k < tr->n; k++)
		o[k] = k;
	return o;
}

/* Arrival order; ties by index (the trace's order, itself by upstream). */
static int cmp_arrival(const void *a, const void *b, void *arg)
{
	const struct trace *tr = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int64_t tx = tr->req[x].t_ms, ty = tr->req[y].t_ms;

	if (tx != ty)
		return (tx > ty) - (tx < ty);
	return (x > y) - (x < y);
}

int replay_gpu_run(const struct gpu_conf *c, const struct trace *tr, enum gpu_policy p,
	struct gpu_result *r)
{
	static const char *names[] = { "lru", "one-at-a-time", "penalty", "oracle" };
	struct sim s = { .c = c, .tr = tr, .r = r };
	size_t *order = NULL, next = 0;

	oom = 0;
	memset(r, 0, sizeof(*r));
	r->policy = p;
	r->name = names[p];
	r->model = calloc(tr->nup ? tr->nup : 1, sizeof(*r->model));
	r->hold = calloc(tr->n ? tr->n : 1, sizeof(*r->hold));
	s.m = calloc(tr->nup ? tr->nup : 1, sizeof(*s.m));
	s.wq = calloc(tr->nup ? tr->nup : 1, sizeof(*s.wq));
	order = by_arrival(tr);
	if (!r->model || !r->hold || !s.m || !s.wq || !order)
		goto fail;
	qsort_r(order, tr->n, sizeof(*order), cmp_arrival, (void *)tr);
	r->nhold = tr->n;
	s.clip = INT64_MAX;
	s.left = tr->n;
	for (size_t k = 0; k < tr->nup; k++) {
		s.m[k].last_end = -1;
		policy_hist_init(&s.m[k].h);
	}
	/* arrivals and events in time order; at one instant, ends before arrivals */
	while (!oom && (next < tr->n || s.nheap)) {
		if (next < tr->n && (!s.nheap || tr->req[order[next]].t_ms < s.heap[0].t
			|| (tr->req[order[next]].t_ms == s.heap[0].t && s.heap[0].kind != EV_END)))
			arrive(&s, order[next++]);
		else
			on_event(&s, ev_pop(&s));
	}
	for (uint32_t k = 0; k < tr->nup; k++)
		if (s.m[k].st != M_UNLOADED)
			unload(&s, k, s.clip, "end");
	if (oom)
		goto fail;
	free(order);
	for (size_t k = 0; k < tr->nup; k++)
		free(s.m[k].pend);
	free(s.m);
	free(s.wq);
	free(s.heap);
	return 0;
fail:
	free(order);
	if (s.m)
		for (size_t k = 0; k < tr->nup; k++)
			free(s.m[k].pend);
	free(s.m);
	free(s.wq);
	free(s.heap);
	replay_gpu_free(r);
	return -1;
}

void replay_gpu_free(struct gpu_result *r)
{
	free(r->model);
	free(r->hold);
	r->model = NULL;
	r->hold = NULL;
}

int replay_gpu_parse_size(const char *s, int64_t *bytes)
{
	char *e;
	double v, mul = 1;

	errno = 0;
	v = strtod(s, &e);
	if (e == s || errno || !(v > 0))
		return -1;
	switch (*e) {
	case 'k': case 'K': mul = 1024.0; e++; break;
	case 'm': case 'M': mul = 1024.0 * 1024; e++; break;
	case 'g': case 'G': mul = 1024.0 * 1024 * 1024; e++; break;
	case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; e++; break;
	}
	if (*e || v * mul > 9e18)
		return -1;
	*bytes = (int64_t)llround(v * mul);
	return 0;
}

int replay_gpu_parse_model(const char *spec, int64_t boot_ms, const char **name, size_t *nlen,
	struct gpu_model_spec *s)
{
	const char *eq = strchr(spec, '='), *comma;
	char size[64];

	if (!eq || eq == spec)
		return -1;
	*name = spec;
	*nlen = (size_t)(eq - spec);
	comma = strchr(eq + 1, ',');
	size_t sl = comma ? (size_t)(comma - eq - 1) : strlen(eq + 1);
	if (sl == 0 || sl >= sizeof(size))
		return -1;
	memcpy(size, eq + 1, sl);
	size[sl] = '\0';
	if (replay_gpu_parse_size(size, &s->bytes) < 0)
		return -1;
	s->boot_ms = boot_ms;
	if (comma && (policy_parse_ms(comma + 1, &s->boot_ms) < 0 || s->boot_ms <= 0))
		return -1;
	return 0;
}
