/*
 * gpu: GPU memory as a resource (see gpu.h). The devices come from the
 * conf's "gpu" lines; what a replica holds is its upstream's gpu_memory,
 * on the device it was placed on, while its process has the weights on the
 * GPU: BOOTING, WARMING, READY, WAKING, DRAINING, FAILED until its process
 * is gone, and asleep while its sleep call is still in flight. A sleeping
 * replica holds host memory, not GPU memory.
 *
 * Placement is a replica gate (replica_add_gate): a replica starts or wakes
 * only where it fits. When it fits nowhere, the upstream waits ("waiting for
 * GPU memory": its held requests stay held, the log and /status say so) and
 * the gateway evicts idle replicas of other upstreams, cheapest expected
 * penalty first (evict.c), by putting them to sleep where they have a sleep
 * ladder, else by stopping them. Never one with requests in flight or held,
 * never a pinned one, never one of a higher priority. A higher-priority
 * upstream that waits goes first: a lower one is not placed on a device the
 * higher one waits for. The wake is asked again on every tick, so the
 * waiting upstream starts within 100ms of the memory coming free.
 */
#include "config.h"
#include "gateway/gpu.h"
#include "gateway/conf.h"
#include "gateway/evict.h"
#include "gateway/gw.h"
#include "gateway/keepalive.h"
#include "common/url.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/tls.h"
#include "gateway/upstream.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPU_WAIT_STALE_S 0.5	/* a wait nobody asked for again this long is over */
#define GPU_MIN_SAMPLES 10	/* idle gaps before the expected penalty is trusted (else LRU) */
#define GPU_MAX_CANDS (UPSTREAM_MAX_REPLICAS * 64)

struct gpu_dev {
	char name[64];
	int64_t bytes;
};

static struct gpu_dev devs[CONF_MAX_GPUS];
static int ndev;

/* 1 when rep holds its upstream's GPU memory now. */
static int gpu_holds(const struct replica *rep)
{
	if (rep->remote || rep->gpu < 0 || !rep->up->p.gpu_memory)
		return 0;
	if (replica_in(rep, RS(REPLICA_BOOTING) | RS(REPLICA_WARMING) | RS(REPLICA_READY) | RS(REPLICA_WAKING) |
		       RS(REPLICA_DRAINING)))
		return 1;
	if (rep->state == REPLICA_FAILED && rep->launch)
		return 1;	/* its process is still on its way out */
	return replica_in(rep, RS_ASLEEP) && rep->sleep_call;	/* freed once the sleep call answers */
}

/* 1 when rep holds memory it is already giving back (a stop or a sleep under way). */
static int gpu_freeing(const struct replica *rep)
{
	return gpu_holds(rep) && (rep->state == REPLICA_DRAINING || rep->state == REPLICA_FAILED ||
				  replica_in(rep, RS_ASLEEP));
}

static int64_t gpu_used(int d, int64_t *freeing)
{
	int64_t used = 0;
	if (freeing)
		*freeing = 0;
	for (struct upstream *u = upstream_list(); u; u = u->next)
		for (int i = 0; i < u->nrep; i++) {
			const struct replica *rep = &u->rep[i];
			if (rep->gpu != d || !gpu_holds(rep))
				continue;
			used += u->p.gpu_memory;
			if (freeing && gpu_freeing(rep))
				*freeing += u->p.gpu_memory;
		}
	return used;
}

/* 1 while u waits for GPU memory (asked recently). */
static int gpu_waiting(const struct upstream *u, double now)
{
	return u->gpu_wait_since > 0 && now - u->gpu_wait_seen < GPU_WAIT_STALE_S;
}

/* The time to bring rep's upstream back after an eviction: its wake from sleep, else a boot. */
static double gpu_reload_s(const struct upstream *u, int *sleeps)
{
	*sleeps = u->cf && (u->cf->sleep_after_ms[1] || u->cf->sleep_after_ms[2]) ? (u->cf->sleep_after_ms[1] ? 1 : 2) : 0;
	if (*sleeps && u->wake_s[*sleeps] > 0)
		return u->wake_s[*sleeps];
	double s = u->boot_s > 0 ? u->boot_s + u->warm_s : UPSTREAM_DEFAULT_ETA_S;
	return s > 0.001 ? s : 0.001;
}

/*
 * Frees memory on one of u's devices for need bytes: chooses the device
 * whose cheapest victims cost least, and evicts them. Nothing when an
 * eviction already under way frees enough.
 */
static void gpu_evict(struct upstream *u, int64_t need, double now)
{
	static struct evict_cand cands[GPU_MAX_CANDS], best_cands[GPU_MAX_CANDS];
	static struct replica *reps[GPU_MAX_CANDS], *best_reps[GPU_MAX_CANDS];
	int best_d = -1, best_k = 0, best_lru = 0;
	double best_cost = 0;
	for (int d = 0; d < ndev; d++) {
		if (!(u->p.gpu_mask & (1u << d)) || devs[d].bytes < need)
			continue;
		int64_t freeing, deficit = need - (devs[d].bytes - gpu_used(d, &freeing));
		if (deficit <= freeing)
			return;		/* what is already on its way out is enough */
		int n = 0;
		for (struct upstream *v = upstream_list(); v && n < GPU_MAX_CANDS; v = v->next) {
			if (v == u || !v->cf || v->hold.n)
				continue;
			for (int i = 0; i < v->nrep && n < GPU_MAX_CANDS; i++) {
				struct replica *rep = &v->rep[i];
				if (rep->gpu != d || rep->state != REPLICA_READY || rep->in_flight || rep->remote ||
				    !gpu_holds(rep) || gpu_freeing(rep))
					continue;
				int sleeps;
				cands[n] = (struct evict_cand){ .idle_s = now - v->last_activity,
					.reload_s = gpu_reload_s(v, &sleeps), .hist = keepalive_hist(v),
					.pinned = v->p.pin, .priority = v->p.priority, .bytes = v->p.gpu_memory };
				reps[n++] = rep;
			}
		}
		int out[GPU_MAX_CANDS], lru;
		int k = evict_choose(cands, n, deficit - freeing, u->p.priority, GPU_MIN_SAMPLES, out, &lru);
		if (!k)
			continue;
		double cost = 0;
		for (int j = 0; j < k; j++)
			cost += lru ? -cands[out[j]].idle_s : evict_penalty(&cands[out[j]], GPU_MIN_SAMPLES);
		if (best_d < 0 || cost < best_cost) {
			best_d = d, best_k = k, best_cost = cost, best_lru = lru;
			for (int j = 0; j < k; j++) {
				best_cands[j] = cands[out[j]];
				best_reps[j] = reps[out[j]];
			}
		}
	}
	if (best_d < 0) {
		log_info("upstream \"%s\": no idle replica to evict for %lld bytes of GPU memory: waiting",
			 u->name, (long long)need);
		return;
	}
	for (int j = 0; j < best_k; j++) {
		struct replica *rep = best_reps[j];
		const struct evict_cand *c = &best_cands[j];
		struct upstream *v = rep->up;
		char why[300];
		if (best_lru)
			snprintf(why, sizeof(why), "evicted for \"%s\" on gpu %s: least recently used, idle %.1fs",
				 u->name, devs[best_d].name, c->idle_s);
		else
			snprintf(why, sizeof(why), "evicted for \"%s\" on gpu %s: expected penalty %.3fs "
				 "(reload %.1fs, idle %.1fs)", u->name, devs[best_d].name,
				 evict_penalty(c, GPU_MIN_SAMPLES), c->reload_s, c->idle_s);
		int sleeps;
		gpu_reload_s(v, &sleeps);
		if (!sleeps || replica_sleep(rep, sleeps, CAUSE_EVICT, why) < 0)
			replica_drain(rep, CAUSE_EVICT, why);
		char labels[400];
		snprintf(labels, sizeof(labels), "%s,cause=\"gpu_memory\"", upstream_label(v, 0));
		metrics_add(gw.metrics, "wakegate_evictions_total", labels, 1);
	}
}

/* The placement gate: 1 when rep may start (placed on rep->gpu), 0 when it waits for memory. */
static int gpu_place(struct replica *rep)
{
	struct upstream *u = rep->up;
	int64_t need = u->p.gpu_memory;
	if (!need || !ndev || rep->remote)
		return 1;
	if (gpu_holds(rep))
		return 1;	/* waking from a sleep call still in flight: its memory is counted */
	double now = gw_now();
	/* a higher priority waiting on a device this one may use goes first */
	for (struct upstream *w = upstream_list(); w; w = w->next)
		if (w != u && gpu_waiting(w, now) && w->p.priority > u->p.priority && (w->p.gpu_mask & u->p.gpu_mask)) {
			if (!gpu_waiting(u, now))
				u->gpu_wait_since = now;
			u->gpu_wait_seen = now;
			return 0;
		}
	int best = -1;
	int64_t best_free = 0;
	for (int d = 0; d < ndev; d++) {
		if (!(u->p.gpu_mask & (1u << d)))
			continue;
		int64_t free = devs[d].bytes - gpu_used(d, NULL);
		if (free >= need && (best < 0 || free < best_free))
			best = d, best_free = free;	/* the tightest fit keeps room for bigger ones */
	}
	if (best >= 0) {
		if (u->gpu_wait_since > 0)
			log_notice("upstream \"%s\": GPU memory on gpu %s after %.2fs of waiting", u->name,
				   devs[best].name, now - u->gpu_wait_since);
		u->gpu_wait_since = 0;
		rep->gpu = best;
		return 1;
	}
	if (!gpu_waiting(u, now)) {
		u->gpu_wait_since = now;
		char labels[300];
		snprintf(labels, sizeof(labels), "%s", upstream_label(u, 0));
		metrics_add(gw.metrics, "wakegate_gpu_memory_waits_total", labels, 1);
		log_notice("upstream \"%s\" replica %d: waiting for GPU memory (%lld bytes; none of its gpus has that free)",
			   u->name, rep->id, (long long)need);
	}
	u->gpu_wait_seen = now;
	gpu_evict(u, need, now);
	return 0;
}

/* One GET of a READY replica's model metadata: what its model takes (wakegate-worker says so). */
struct gpu_measure {
	struct event_base *base;
	struct evhttp_connection *conn;
	char upstream[128];	/* by name: the upstream may be gone when the answer comes */
};

static void gpu_measure_conn_free(evutil_socket_t fd, short what, void *arg)
{
	evhttp_connection_free(arg);
}

static void gpu_measure_cb(struct evhttp_request *req, void *arg)
{
	struct gpu_measure *m = arg;
	struct upstream *u = upstream_find(m->upstream);
	if (u && req && evhttp_request_get_response_code(req) == 200) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(in);
		const char *data = n ? (const char *)evbuffer_pullup(in, (ev_ssize_t)n) : NULL;
		json_t *j = data ? json_loadb(data, n, 0, NULL) : NULL;
		json_t *b = j ? json_object_get(json_object_get(j, "memory"), "model_bytes") : NULL;
		if (json_is_integer(b)) {
			u->gpu_measured = (int64_t)json_integer_value(b);
			if (u->p.gpu_memory && u->gpu_measured > u->p.gpu_memory && !u->gpu_warned) {
				u->gpu_warned = 1;
				log_warn("upstream \"%s\": its model takes %lld bytes, more than the gpu_memory %lld "
					 "it declares: the GPU may hold less than the gateway counts", u->name,
					 (long long)u->gpu_measured, (long long)u->p.gpu_memory);
			}
		}
		json_decref(j);
	}
	/* inside the connection's own callback: free it on the next loop turn */
	struct timeval zero = { 0, 0 };
	if (event_base_once(m->base, -1, EV_TIMEOUT, gpu_measure_conn_free, m->conn, &zero) < 0)
		evhttp_connection_free(m->conn);
	free(m);
}

/* Asks a READY replica of a budgeted upstream what its model takes; an answer in another shape is ignored. */
static void gpu_measure(struct replica *rep)
{
	struct upstream *u = rep->up;
	char host[256], path[300];
	int port;
	if (!u->cf || !u->p.gpu_memory || rep->remote || url_split(rep->url, host, sizeof(host), &port, NULL) < 0)
		return;
	struct gpu_measure *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->base = gw.base;
	snprintf(m->upstream, sizeof(m->upstream), "%s", u->name);
	m->conn = tls_http_connection_new(gw.base, u->cf, rep->url, host, port);
	struct evhttp_request *req = m->conn ? evhttp_request_new(gpu_measure_cb, m) : NULL;
	if (!req) {
		if (m->conn)
			evhttp_connection_free(m->conn);
		free(m);
		return;
	}
	evhttp_connection_set_timeout(m->conn, 5);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
	snprintf(path, sizeof(path), "/v2/models/%s", u->cf->warmup.model ? u->cf->warmup.model : u->name);
	if (evhttp_make_request(m->conn, req, EVHTTP_REQ_GET, path) < 0) {
		evhttp_connection_free(m->conn);
		free(m);
	}
}

/* A replica that stopped has no device any more; one that became READY is measured. */
static void gpu_on_move(struct replica *rep, const struct replica_change *ch, void *arg)
{
	(void)arg;
	if (ch->event == REPLICA_EV_MOVE && ch->to == REPLICA_STOPPED)
		rep->gpu = -1;
	if (ch->event == REPLICA_EV_MOVE && ch->to == REPLICA_READY)
		gpu_measure(rep);
}

void gpu_init(void)
{
	replica_add_gate(gpu_place);
	replica_subscribe(gpu_on_move, NULL);
}

void gpu_configure(const struct conf *c)
{
	ndev = 0;
	for (const struct conf_gpu *g = c->gpus; g && ndev < CONF_MAX_GPUS; g = g->next) {
		snprintf(devs[ndev].name, sizeof(devs[ndev].name), "%s", g->name);
		devs[ndev].bytes = g->bytes;
		ndev++;
	}
}

int gpu_waiting_for_memory(const struct upstream *u)
{
	return gpu_waiting(u, gw_now());
}

const char *gpu_name(int d)
{
	return d >= 0 && d < ndev ? devs[d].name : NULL;
}

void gpu_tick(void)
{
	if (!gw.metrics)
		return;
	for (int d = 0; d < ndev; d++) {
		char l[700];
		int64_t used = gpu_used(d, NULL);
		prom_labels(l, sizeof(l), "gpu", devs[d].name, "kind", "declared", NULL);
		metrics_set(gw.metrics, "wakegate_gpu_memory_bytes", l, (double)devs[d].bytes);
		prom_labels(l, sizeof(l), "gpu", devs[d].name, "kind", "used", NULL);
		metrics_set(gw.metrics, "wakegate_gpu_memory_bytes", l, (double)used);
		prom_labels(l, sizeof(l), "gpu", devs[d].name, "kind", "free", NULL);
		metrics_set(gw.metrics, "wakegate_gpu_memory_bytes", l, (double)(devs[d].bytes - used));
	}
}

json_t *gpu_status_json(void)
{
	json_t *a = json_array();
	for (int d = 0; d < ndev; d++) {
		int64_t used = gpu_used(d, NULL);
		json_t *occ = json_array();
		for (struct upstream *u = upstream_list(); u; u = u->next)
			for (int i = 0; i < u->nrep; i++) {
				const struct replica *rep = &u->rep[i];
				if (rep->gpu == d && gpu_holds(rep))
					json_array_append_new(occ, json_pack("{s:s, s:i, s:s, s:I}", "upstream", u->name,
						"replica", rep->id, "state", replica_state_name(rep->state),
						"bytes", (json_int_t)u->p.gpu_memory));
			}
		json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:I, s:o}", "name", devs[d].name,
			"memory", (json_int_t)devs[d].bytes, "used", (json_int_t)used,
			"free", (json_int_t)(devs[d].bytes - used), "occupants", occ));
	}
	return a;
}
