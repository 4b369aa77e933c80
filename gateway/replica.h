/*
 * replica: one replica's life, in one place. replica_move() is the only
 * writer of rep->state: it checks the move against the table of allowed
 * moves (replica.c, docs/ARCHITECTURE.md), refuses any other loudly (the
 * error log; an abort when WAKEGATE_STRICT_MOVES is set, as the tests do),
 * logs the move with its typed cause, counts it in
 * wakegate_replica_moves_total{upstream,from,to,cause}, publishes it in the
 * store and tells every subscriber. Nobody else writes replica state.
 *
 * The modules above (dispatch, fleet, keepalive, scale, cost, admin) ask
 * for moves with replica_wake() / replica_drain() / replica_remote_*() and
 * learn of them by subscribing; replica.c calls none of them by name.
 *
 * Ownership: a replica is embedded in its upstream and lives as long as it.
 * It owns its launch (while a process may run), its health probe (BOOTING),
 * its warmer (WARMING) and its connection pool (READY, DRAINING). The
 * fleet part (lock fields) is fleet.c's; scale_busy_at is scale.c's;
 * idle_query is keepalive.c's; gpu is gpu.c's.
 */
#ifndef WG_REPLICA_H
#define WG_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/version.h"

struct upstream;
struct launch;
struct proxy_pool;
struct probe;
struct warmer;
struct sleepapi_call;
struct evhttp_connection;

/* The states; each comment says what the replica holds while in it. */
enum replica_state {
	REPLICA_STOPPED,	/* nothing runs; no port, no pool */
	REPLICA_BOOTING,	/* launched; the probe polls its health URL */
	REPLICA_WARMING,	/* healthy; the warmer sends warmup requests */
	REPLICA_READY,		/* takes traffic through its pool */
	REPLICA_DRAINING,	/* no new requests; in-flight ones finish, then the launcher stops it */
	REPLICA_FAILED,		/* a boot, warmup or run failed; the next wake waits out a backoff */
	REPLICA_ASLEEP1,	/* the process runs, its weights in host memory (sleep level 1); no pool */
	REPLICA_ASLEEP2,	/* the process runs, its weights dropped (sleep level 2); no pool */
	REPLICA_WAKING,		/* the sleep API's wake calls are in flight */
	REPLICA_NSTATES
};

/* Sets of states as masks (HAProxy's sc_state_in). */
#define RS(s) (1u << (s))
#define RS_UP (RS(REPLICA_BOOTING) | RS(REPLICA_WARMING) | RS(REPLICA_READY) | RS(REPLICA_WAKING))	/* up or on its way */
#define RS_COMING (RS(REPLICA_BOOTING) | RS(REPLICA_WARMING) | RS(REPLICA_WAKING))
#define RS_ASLEEP (RS(REPLICA_ASLEEP1) | RS(REPLICA_ASLEEP2))
#define RS_RUNNING (RS_UP | RS_ASLEEP | RS(REPLICA_DRAINING))	/* a process is (or should be) running */
#define RS_DOWN (RS(REPLICA_STOPPED) | RS(REPLICA_FAILED))

/* Why a replica moved. Every move carries one; the log, /status and the moves counter show it. */
enum replica_cause {
	CAUSE_REQUEST,		/* a request (held, or degraded away) wanted it */
	CAUSE_MIN_WARM,		/* min_warm / replicas min= keeps it up */
	CAUSE_SCHEDULE,		/* the time-of-day schedule woke it ahead of traffic */
	CAUSE_PREWARM,		/* the keep-alive policy woke it ahead of traffic */
	CAUSE_SCALE_UP,		/* target_concurrency or scale_p99 wanted one more */
	CAUSE_SCALE_DOWN,	/* an extra replica idle for idle_timeout */
	CAUSE_ADMIN,		/* the admin API (wake, sleep) */
	CAUSE_RELOAD,		/* a reload removed its upstream */
	CAUSE_SHUTDOWN,		/* the gateway is stopping */
	CAUSE_IDLE,		/* idle for the keep-alive time */
	CAUSE_BOOT,		/* boot progress: health ok, boot timeout, exit during boot, launch failure */
	CAUSE_WARMUP,		/* warmup done or failed */
	CAUSE_CRASH,		/* the process ended while READY */
	CAUSE_HEALTH,		/* the health check cannot succeed (an untrusted certificate) */
	CAUSE_EXIT,		/* the process ended as asked (DRAINING -> STOPPED) */
	CAUSE_FLEET_PEER,	/* another gateway runs, stops or took it (Redis lock) */
	CAUSE_SLEEP_API,	/* a sleep or wake call: done, or failed */
	CAUSE_EVICT,		/* stopped or put to sleep to free GPU memory for another upstream */
	CAUSE_BOOT_CANCEL,	/* boot_cancel: every held request that wanted the boot left (dispatch.c) */
	CAUSE_ROLLOUT,		/* started as the new version, or drained as an old one (rollout.c) */
	CAUSE_RECYCLE,		/* started to replace, or drained as, a replica past its recycle line */
	CAUSE_SERVER,		/* a "server" line: always up, its health polled (scale.c keeps it so) */
	CAUSE_ENDPOINT,		/* a pod's endpoint became ready (bound), or not-ready, terminating or gone (k8s_watch.c) */
	CAUSE_NCAUSES
};

struct replica {
	struct upstream *up;
	int id;
	enum replica_state state;	/* written only by replica_move() */
	enum replica_cause cause;	/* of the last move */
	unsigned gen;			/* bumps on every move; stale callbacks compare it */
	double since;			/* entered the state (gw_now); 0: never moved */
	struct launch *launch;		/* while a process may run */
	int port;
	char url[128];			/* http(s)://HOST:PORT, from the launcher or the fleet */
	struct proxy_pool *pool;	/* READY and DRAINING; BOOTING too after a server line's failed check */
	int in_flight;			/* dispatch.c counts its forwards here */
	struct probe *probe;		/* BOOTING */
	struct warmer *warmer;		/* WARMING */
	char *warm_model, *warm_path, *warm_body;
	size_t warm_body_len;
	double t_start, t_health, t_ready;
	char reason[512];		/* why it FAILED, with the worker's last output lines */
	int fails;			/* consecutive failures, for the backoff */
	double retry_at;		/* FAILED: no wake before */
	int crashed_ready;		/* FAILED after running (crash, sleep API): held requests wait for a new one */
	int stop_sent;
	struct sleepapi_call *sleep_call;	/* a sleep or wake in flight (ASLEEP*, WAKING) */
	int wake_pending;		/* a wake came while the sleep call was in flight */
	int wake_level;			/* the level a WAKING replica wakes from */
	enum replica_cause wake_cause;	/* of the wake in progress (kept across the fleet lock's answer) */
	double acct_at;			/* last GPU/idle seconds accounting */
	double gpu_s, idle_s;		/* not yet written to the store */
	double pause_until;		/* dispatch.c: a forward just broke, none sent before (gw_now) */
	int remote;			/* mirrors a replica another gateway runs: no launch, no stop */
	int pod;			/* bound to a Kubernetes pod's endpoint (k8s_watch.c): no launch, no stop */
	/* fleet.c's part */
	int lock;			/* FLEET_LOCK_* */
	int lock_pending;		/* a lock call is in flight */
	double lock_at;			/* last renew or poll (gw_now) */
	/* gpu.c's part */
	int gpu;			/* the device it is placed on (conf index); -1: none */
	char gpu_dev[64];		/* its name, "" when none ($gpu in the launch command) */
	/* keepalive.c's part */
	int idle_query;			/* a store_newest_activity() is pending */
	/* replica_health.c's part (server lines, READY) */
	struct probe *hprobe;		/* the check in flight; NULL: none */
	double hcheck_at;		/* when the next check starts, or when the one in flight started */
	/* scale.c's part */
	double busy_at;			/* last tick with requests in flight */
	/* versions (issue 16): set by replica_wake() at each start, read by rollout.c */
	struct version_id ver;		/* what it runs */
	unsigned vgen;			/* the upstream's vgen when it started */
	uint64_t served;		/* requests forwarded to it since the start (dispatch.c) */
	/* dispatch.c's part: X-Wakegate-Upstream's value, made once per start, not per request */
	char who[200];
	double who_at;			/* the t_start it was made for */
	unsigned who_vgen;
	/* rollout.c's part */
	int recycle;			/* ROLLOUT_RECYCLE_*: past a recycle line, to be replaced; 0: not */
	int replacing;			/* 1 + the id of the replica this one was started to replace; 0: none */
	struct evhttp_connection *mem_conn;	/* its /metrics, read for recycle memory */
	int mem_pending;		/* a /metrics GET is in flight */
	double mem_at;			/* last read (gw_now) */
	int64_t mem_bytes;		/* its memory (below); -1: not known */
	int mem_reported;		/* 1: the backend reports wakegate_worker_rss_bytes; 0: its process group's RSS */
	struct replica *next_all;	/* every replica of the gateway (ports) */
};

/* What a subscriber hears: a state move, or the process starting or ending. */
enum replica_event { REPLICA_EV_MOVE, REPLICA_EV_LAUNCHED, REPLICA_EV_EXITED };

struct replica_change {
	enum replica_event event;
	enum replica_state from, to;	/* to == from for the process events */
	enum replica_cause cause;
	const char *why;		/* the log's reason, "" when none */
};

typedef void (*replica_watch_fn)(struct replica *rep, const struct replica_change *ch, void *arg);

/* Adds a subscriber, told after every move, in the order they subscribed (at start, once). */
void replica_subscribe(replica_watch_fn fn, void *arg);

/*
 * Gates, asked in the order added before a replica starts or wakes from
 * sleep: gpu.c's placement (is there GPU memory for it?), then fleet.c's
 * claim (may this gateway run it?). 1 to go on; 0 when not now: the gate
 * calls replica_wake() again when it can (the fleet lock's answer), or the
 * next tick's wake asks again (memory freed by an eviction).
 */
typedef int (*replica_gate_fn)(struct replica *rep);
void replica_add_gate(replica_gate_fn fn);

const char *replica_state_name(enum replica_state s);
const char *replica_cause_name(enum replica_cause c);
/* 1 when rep's state is in the mask. */
static inline int replica_in(const struct replica *rep, unsigned mask)
{
	return (RS(rep->state) & mask) != 0;
}

/* Links rep into its upstream u as replica id (once, when the upstream is made). */
void replica_init(struct replica *rep, struct upstream *u, int id);

/*
 * The one writer of rep->state: moves it to `to` for `cause` if the table
 * allows it, and tells the subscribers. 0, or -1 (refused, logged) when the
 * move is not in the table. fmt: a short reason for the log, or NULL.
 */
int replica_move(struct replica *rep, enum replica_state to, enum replica_cause cause, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Starts a local replica from STOPPED, FAILED after its backoff, or asleep (the sleep API's wake). 0, or -1 when it failed at once. */
int replica_wake(struct replica *rep, enum replica_cause cause);
/*
 * A READY replica of a "server" line failed its health check while READY
 * (replica_health.c): READY -> BOOTING (cause health), its health polled
 * again with no boot timeout; new requests are held meanwhile, those in
 * flight finish on the pool it keeps. Nothing for any other replica.
 */
void replica_health_lost(struct replica *rep, const char *why);
/* BOOTING, WARMING, READY, WAKING or asleep -> DRAINING (its in-flight requests finish), then stopped. */
void replica_drain(struct replica *rep, enum replica_cause cause, const char *why);
/* A READY (or level-1) replica of ours with nothing in flight sleeps at level (1 or 2). -1 when it cannot. */
int replica_sleep(struct replica *rep, int level, enum replica_cause cause, const char *why);
/*
 * How cheaply rep can be woken now: 1 asleep at level 1, 2 asleep at level 2,
 * 3 down (STOPPED, or FAILED past its backoff), 0 not at all (up, running
 * a stop, remote, or waiting out a backoff).
 */
int replica_wake_rank(const struct replica *rep, double now);
/* The boot timeout, the health poll, drain grace and exits; every tick, for a local replica. */
void replica_tick(struct replica *rep, double now);
/* At exit, or when a retired upstream goes: nothing may be left running. */
void replica_free(struct replica *rep);

/* Mirrors of a replica another gateway runs (fleet.c asks, replica.c writes). */
int replica_remote_ready(struct replica *rep, const char *url, struct proxy_pool *pool, const char *why);
int replica_remote_booting(struct replica *rep, const char *url, const char *why);
/* A mirror this gateway no longer routes to: DRAINING while requests are in flight, else STOPPED. */
void replica_remote_end(struct replica *rep, const char *why);

/*
 * Pods as replicas (k8s_watch.c asks, replica.c writes). bind: a ready
 * endpoint at url takes the slot, from STOPPED or FAILED past its backoff,
 * and goes the way a started process goes (BOOTING: health, WARMING: the
 * gateway's own warmup, READY); Kubernetes started it, so no launcher.
 * 0, or -1 when the slot is not free. Unbinding is replica_drain(rep,
 * CAUSE_ENDPOINT, why): in-flight requests finish (up to stop_grace), then
 * STOPPED; nothing is stopped, the Deployment's scale decides that.
 */
int replica_pod_bind(struct replica *rep, const char *url, const char *why);

#endif
