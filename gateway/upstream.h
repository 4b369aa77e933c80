/*
 * upstream: the replicas behind one upstream block and their life
 * (STOPPED, BOOTING, WARMING, READY, DRAINING, FAILED), the hold queue in
 * front of them, and the routing of a request to a replica. Every state
 * move goes through replica_set_state() in upstream.c, which logs it.
 * The upstream set is rebuilt from the conf at start and on reload;
 * upstreams are matched by name so that replicas and held requests survive.
 */
#ifndef WG_UPSTREAM_H
#define WG_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/hold.h"
#include "gateway/request.h"

struct conf;
struct conf_upstream;
struct conf_location;
struct evhttp_request;
struct launch;
struct proxy_pool;
struct warmer;
struct evhttp_connection;
struct metrics;

#define UPSTREAM_MAX_REPLICAS 8

enum replica_state {
	REPLICA_STOPPED, REPLICA_BOOTING, REPLICA_WARMING, REPLICA_READY,
	REPLICA_DRAINING, REPLICA_FAILED, REPLICA_NSTATES
};

struct replica {
	struct upstream *up;
	int id;
	enum replica_state state;	/* written only by replica_set_state() */
	unsigned gen;			/* bumps on every move; stale callbacks compare it */
	double since;			/* entered the state (gw_now) */
	struct launch *launch;		/* while a process may run */
	int port;
	char url[128];			/* http://HOST:PORT, from the launcher */
	struct proxy_pool *pool;	/* READY and DRAINING */
	int in_flight;
	struct evhttp_connection *health;	/* BOOTING */
	int health_pending;
	struct event *health_ev;	/* BOOTING: the next quick poll (backs off 5ms -> 100ms) */
	int health_delay_ms;
	struct warmer *warmer;		/* WARMING */
	char *warm_model, *warm_path, *warm_body;
	size_t warm_body_len;
	double t_start, t_health, t_ready;
	char reason[256];		/* why it FAILED */
	int fails;			/* consecutive failures, for the backoff */
	double retry_at;		/* FAILED: no wake before */
	int crashed_ready;		/* FAILED after READY: held requests wait for a new one */
	int stop_sent;
	int idle_query;			/* a store_newest_activity() is pending */
	double acct_at;			/* last GPU/idle seconds accounting */
	double gpu_s, idle_s;		/* not yet written to the store */
	/* several gateways (fleet.c) and several replicas (scale.c) */
	int remote;			/* mirrors a replica another gateway runs: no launch, no stop */
	int lock;			/* fleet.c: FLEET_LOCK_* */
	int lock_pending;		/* a lock call is in flight */
	double lock_at;			/* last renew or poll (gw_now) */
	double busy_at;			/* last tick with requests in flight */
	double pause_until;		/* a forward just broke: none sent before (gw_now; upstream.c) */
};

/* The scalars of conf_upstream, copied so that a retired upstream outlives its conf. */
struct upstream_params {
	int64_t boot_timeout_ms, idle_timeout_ms, hold_timeout_ms, stop_grace_ms, lock_ttl_ms;
	int min_warm, hold_max, max_conns;
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
	uint64_t requests;
	double p99_high_since;		/* scale.c: p99 above scale_p99 since (gw_now); 0: not */
	double p99_quiet_until;		/* scale.c: no p99 decision before (the window refills) */
	struct upstream *next;
};

/* Builds (first call) or reconciles the upstream set with conf c. */
int upstream_configure(const struct conf *c);
void upstream_metrics_declare(struct metrics *m);
struct upstream *upstream_find(const char *name);
struct upstream *upstream_list(void);

/* Takes a routed request: proxy it now, or hold it and wake a replica. slots (may be NULL):
 * its limit_conn slots, released when it ends. */
void upstream_handle(struct upstream *u, struct evhttp_request *req, const struct conf_location *loc,
		     struct ratelimit_slots *slots);
/* Wakes a replica when none is on its way up (a request degraded away from a cold upstream). */
void upstream_wake(struct upstream *u);

/* Shutdown: held requests get 503, every replica drains and stops. */
void upstream_shutdown(void);
/* 1 when nothing is in flight, held, or running any more. */
int upstream_all_done(void);
/* Frees every upstream (at exit, after upstream_all_done). */
void upstream_free_all(void);

const char *replica_state_name(enum replica_state s);
/* Estimated seconds until a cold replica is READY: measured boot + warmup, rounded up. */
int upstream_eta_s(const struct upstream *u);

/* Between upstream.c and replica.c (the replica's life) only. */
void replica_tick(struct replica *rep, double now);
int replica_wake(struct replica *rep);
void replica_drain(struct replica *rep);
void replica_free(struct replica *rep);
void upstream_dispatch(struct upstream *u);
void upstream_fail_held(struct upstream *u, int code, const char *reason, int retry_after);
void upstream_mark_cold(struct upstream *u, double now);
/* A state move made by fleet.c or scale.c, through replica_set_state(); why may be NULL. */
void replica_move(struct replica *rep, enum replica_state to, const char *why);

#endif
