/* tenant: per-tenant requests, hold time and GPU-seconds; see tenant.h. */
#include "config.h"
#include "gateway/tenant.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "common/prom.h"
#include "gateway/metrics.h"
#include "gateway/replica.h"
#include "gateway/request.h"
#include "gateway/upstream.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TENANT_NAME 64

/* One tenant's in-flight seconds on one run. */
struct share {
	char tenant[TENANT_NAME];
	double s;
};

/* One replica's run: from its launch to its exit. */
struct run {
	struct run *next;
	char upstream[128];
	int id;
	double start;
	struct share *sh;
	int n;
};

/* A tenant's totals, for /status (the metrics registry has the same in series). */
struct total {
	struct total *next;
	char tenant[TENANT_NAME];
	double requests, hold_s, gpu_s;
};

static struct run *runs;
static struct total *totals;

static const char *tenant_of(const char *t)
{
	return t && *t ? t : "-";
}

static struct total *total_get(const char *tenant)
{
	struct total *t;
	for (t = totals; t; t = t->next)
		if (strcmp(t->tenant, tenant) == 0)
			return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	snprintf(t->tenant, sizeof(t->tenant), "%s", tenant);
	t->next = totals;
	totals = t;
	return t;
}

static struct run *run_find(const char *upstream, int id)
{
	for (struct run *x = runs; x; x = x->next)
		if (x->id == id && strcmp(x->upstream, upstream) == 0)
			return x;
	return NULL;
}

static void run_free(struct run *x)
{
	for (struct run **pp = &runs; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	free(x->sh);
	free(x);
}

static void run_start(const struct replica *rep)
{
	struct run *x = run_find(rep->up->name, rep->id);
	if (x)
		run_free(x);	/* an exit never seen: a new run replaces it */
	x = calloc(1, sizeof(*x));
	if (!x)
		return;
	snprintf(x->upstream, sizeof(x->upstream), "%s", rep->up->name);
	x->id = rep->id;
	x->start = rep->t_start > 0 ? rep->t_start : gw_now();	/* as cost.c counts a run */
	x->next = runs;
	runs = x;
}

static void gpu_add(const char *tenant, const char *upstream, double s)
{
	char t[2 * TENANT_NAME], u[300], labels[sizeof(t) + sizeof(u) + 32];
	prom_escape(tenant, t, sizeof(t));
	prom_escape(upstream, u, sizeof(u));
	snprintf(labels, sizeof(labels), "tenant=\"%s\",upstream=\"%s\"", t, u);
	metrics_add(gw.metrics, "wakegate_tenant_gpu_seconds_total", labels, s);
	struct total *tt = total_get(tenant);
	if (tt)
		tt->gpu_s += s;
}

/* The run ended: its seconds shared by in-flight time. */
static void run_end(const struct replica *rep)
{
	struct run *x = run_find(rep->up->name, rep->id);
	if (!x)
		return;
	double lived = gw_now() - x->start, all = 0;
	for (int i = 0; i < x->n; i++)
		all += x->sh[i].s;
	if (lived > 0) {
		if (all <= 0)
			gpu_add("-", x->upstream, lived);
		for (int i = 0; all > 0 && i < x->n; i++)
			gpu_add(x->sh[i].tenant, x->upstream, lived * x->sh[i].s / all);
	}
	run_free(x);
}

static void tenant_on_replica(struct replica *rep, const struct replica_change *ch, void *arg)
{
	(void)arg;
	if (rep->remote)
		return;		/* another gateway's process: its gateway bills it */
	if (ch->event == REPLICA_EV_LAUNCHED)
		run_start(rep);
	else if (ch->event == REPLICA_EV_EXITED)
		run_end(rep);
}

void tenant_init(struct metrics *m)
{
	metrics_declare(m, "wakegate_tenant_requests_total", METRICS_COUNTER,
			"Requests by tenant (auth_keys) and status code.", NULL, 0);
	metrics_declare(m, "wakegate_tenant_hold_seconds_total", METRICS_COUNTER,
			"Seconds the tenant's requests waited in hold queues.", NULL, 0);
	metrics_declare(m, "wakegate_tenant_gpu_seconds_total", METRICS_COUNTER,
			"Replica run seconds shared among the requests served, by their time in flight; "
			"added when a run ends.", NULL, 0);
	metrics_declare(m, "wakegate_auth_refused_total", METRICS_COUNTER,
			"Requests answered 401 by the auth phase, by reason.", NULL, 0);
	replica_subscribe(tenant_on_replica, NULL);
}

void tenant_refused(const char *reason)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	metrics_add(gw.metrics, "wakegate_auth_refused_total", labels, 1);
}

void tenant_request_done(const struct wg_request *r, int status)
{
	const char *tenant = tenant_of(r->tenant);
	char t[2 * TENANT_NAME], labels[200];
	prom_escape(tenant, t, sizeof(t));
	snprintf(labels, sizeof(labels), "tenant=\"%s\",code=\"%d\"", t, status);
	metrics_add(gw.metrics, "wakegate_tenant_requests_total", labels, 1);
	snprintf(labels, sizeof(labels), "tenant=\"%s\"", t);
	if (r->held)
		metrics_add(gw.metrics, "wakegate_tenant_hold_seconds_total", labels, r->hold_ms / 1000);
	struct total *tt = total_get(tenant);
	if (tt) {
		tt->requests++;
		tt->hold_s += r->held ? r->hold_ms / 1000 : 0;
	}
	if (!r->rep || r->inflight_since <= 0 || r->rep->remote)
		return;
	struct run *x = run_find(r->up->name, r->rep->id);
	if (!x)
		return;
	double s = gw_now() - r->inflight_since;
	for (int i = 0; i < x->n; i++)
		if (strcmp(x->sh[i].tenant, tenant) == 0) {
			x->sh[i].s += s;
			return;
		}
	struct share *sh = realloc(x->sh, (size_t)(x->n + 1) * sizeof(*sh));
	if (!sh)
		return;
	x->sh = sh;
	snprintf(sh[x->n].tenant, sizeof(sh[x->n].tenant), "%s", tenant);
	sh[x->n].s = s;
	x->n++;
}

json_t *tenant_status_json(void)
{
	json_t *o = json_object();
	for (struct total *t = totals; t; t = t->next) {
		json_t *e = json_object();
		json_object_set_new(e, "requests", json_integer((json_int_t)t->requests));
		json_object_set_new(e, "hold_seconds", json_real(t->hold_s));
		json_object_set_new(e, "gpu_seconds", json_real(t->gpu_s));
		json_object_set_new(o, t->tenant, e);
	}
	return o;
}

void tenant_free_all(void)
{
	while (runs)
		run_free(runs);
	while (totals) {
		struct total *t = totals;
		totals = t->next;
		free(t);
	}
}
