/*
 * upstream: the replicas behind one upstream block, the hold queue in front
 * of them, and the per-upstream state of the modules that work on it (cost,
 * keep-alive, schedule, degrade signals), all in one struct so that no
 * request looks anything up by name.
 *
 * The set is rebuilt from the conf at start and on reload (upstream.c);
 * upstreams are matched by name so that replicas, held requests and the
 * modules' state survive. One 100ms tick (upstream.c) drives every
 * replica and every module's per-upstream work. Replica states move only
 * through replica.c (replica.h); requests go through dispatch.c.
 *
 * Ownership: upstream.c owns each struct upstream and frees it once it is
 * retired by a reload and quiet. The module parts (cost, ka, sched) are
 * owned by their modules, made on first use and freed by the free hooks
 * upstream.c calls.
 */
#ifndef WG_UPSTREAM_H
#define WG_UPSTREAM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "gateway/degrade.h"
#include "gateway/hold.h"
#include "gateway/replica.h"
#include "gateway/request.h"

struct conf;
struct conf_upstream;
struct metrics;
struct cost_up;
struct ka_up;
struct sched_up;
struct scale_up;
struct k8s_up;

#define UPSTREAM_MAX_REPLICAS 8
#define UPSTREAM_DEFAULT_ETA_S 10

/* The scalars of conf_upstream, copied so that a retired upstream outlives its conf. */
struct upstream_params {
	int64_t boot_timeout_ms, idle_timeout_ms, hold_timeout_ms, stop_grace_ms, lock_ttl_ms;
	int min_warm, hold_max, max_conns;
	int64_t gpu_memory;		/* what one replica holds on its GPU; 0: no budget */
	unsigned gpu_mask;		/* the devices it may go on */
	int pin, priority;
};

struct upstream {
	char *name;
	const struct conf_upstream *cf;	/* NULL once retired by a reload */
	struct upstream_params p;
	struct replica rep[UPSTREAM_MAX_REPLICAS];
	int nrep;
	struct hold hold;
	double last_activity;		/* gw_now() of the newest request end or stream bytes */
	int64_t last_activity_ms;	/* wall clock of the same, 0: none */
	int cold_starts;
	double boot_s, warm_s;		/* last measured; 0: not yet */
	double wake_s[3];		/* [1], [2]: the last wake from that sleep level took; 0: not yet */
	double svc_s;			/* dispatch.c: moving average of a request's upstream time (deadlines); 0: none yet */
	uint64_t requests;
	struct degrade_sig sig;		/* latency, errors, demand: the degrade rules' and scale_p99's window */
	double p99_high_since;		/* scale.c: p99 above scale_p99 since (gw_now); 0: not */
	double p99_quiet_until;		/* scale.c: no p99 decision before (the window refills) */
	double prewarm_until;		/* keepalive.c: a pod upstream's pre-warm wants one pod until then (k8s_scale.c); 0: none */
	struct cost_up *cost;		/* cost.c's */
	struct ka_up *ka;		/* keepalive.c's */
	struct sched_up *sched;		/* schedule.c's */
	struct scale_up *scale;		/* scale.c's: scale_on readings, the cooldown */
	struct k8s_up *k8s;		/* k8s.c's: a kubernetes upstream with service=: its pods and scale */
	double gpu_wait_since;		/* gpu.c: waiting for GPU memory since (gw_now); 0: not */
	double gpu_wait_seen;		/* ... last asked (a wait nobody asks for any more is over) */
	int64_t gpu_measured;		/* gpu.c: what its model takes, as its worker says; 0: not known */
	int gpu_warned;			/* the "more than declared" warning was logged */
	/* versions (issue 16): the current one is what a start gets now (replica_wake, rollout.c) */
	struct version_id ver;		/* key 0: not resolved yet */
	unsigned vgen;			/* bumps when ver changes, or on a forced rollout */
	unsigned rollout_failed_gen;	/* rollout.c: a new replica of this vgen failed: no more tries */
	double rollout_failed_at;	/* ... when (gw_now): a replica READY after it shows the version works */
	unsigned rollout_gen;		/* rollout.c: the vgen a rollout was counted for */
	int rollout_active;		/* rollout.c: replacing replicas now (a rollout or a recycle) */
	char rollout_error[300];	/* rollout.c: the last failed switch, for /status; "" once one succeeds */
	char label[300];		/* upstream="NAME", escaped for the metrics */
	char label_code[320];		/* upstream="NAME",code="N" of label_code_n */
	int label_code_n;
	struct upstream *next;
};

/* The set (upstream_set.c): the list and a lookup by name of the upstreams in the conf. */
struct upstream *upstream_list(void);
struct upstream *upstream_find(const char *name);
void upstream_set_add(struct upstream *u);
/* Unlinks u (retired and quiet) from the list. */
void upstream_set_remove(struct upstream *u);

/* Builds (first call) or reconciles the upstream set with conf c. */
int upstream_configure(const struct conf *c);
void upstream_metrics_declare(struct metrics *m);

/* Shutdown: held requests get 503, every replica drains and stops. */
void upstream_shutdown(void);
/* 1 when nothing is in flight, held, or running any more. */
int upstream_all_done(void);
/* Frees every upstream (at exit, after upstream_all_done). */
void upstream_free_all(void);

/* How many of u's replicas are in the state mask. */
static inline int upstream_count(const struct upstream *u, unsigned mask)
{
	int n = 0;
	for (int i = 0; i < u->nrep; i++)
		n += replica_in(&u->rep[i], mask);
	return n;
}

/*
 * Estimated seconds until a replica of u is READY: the measured wake of the
 * cheapest level a replica sleeps at, else the measured boot + warmup,
 * rounded up (UPSTREAM_DEFAULT_ETA_S before anything was measured).
 */
int upstream_eta_s(const struct upstream *u);
/* The replica of u that is cheapest to wake now (asleep at level 1, then 2, then down), or NULL. */
struct replica *upstream_pick_wake(struct upstream *u, double now);

/* upstream="NAME" (status <= 0) or upstream="NAME",code="STATUS": u's metric labels, kept in u. */
const char *upstream_label(struct upstream *u, int status);

#endif
