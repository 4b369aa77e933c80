/*
 * replica: one replica's life (see replica.h). replica_move() is the only
 * writer of rep->state. The timers of a boot (timeout), a drain (grace) and
 * a failure (backoff) are read on the upstream's 100ms tick (replica_tick);
 * the health probe and the warmer call back when they are done.
 */
#include "config.h"
#include "common/url.h"
#include "gateway/replica.h"
#include "gateway/replica_acct.h"
#include "gateway/replica_int.h"
#include "gateway/upstream.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/launch.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/port.h"
#include "gateway/probe.h"
#include "gateway/proxy.h"
#include "gateway/sleepapi.h"
#include "gateway/store.h"
#include "gateway/tls.h"
#include "warmer/warmer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const state_names[REPLICA_NSTATES] = {
	"STOPPED", "BOOTING", "WARMING", "READY", "DRAINING", "FAILED", "ASLEEP1", "ASLEEP2", "WAKING"
};

static const char *const cause_names[CAUSE_NCAUSES] = {
	[CAUSE_REQUEST] = "request", [CAUSE_MIN_WARM] = "min_warm", [CAUSE_SCHEDULE] = "schedule",
	[CAUSE_PREWARM] = "prewarm", [CAUSE_SCALE_UP] = "scale_up", [CAUSE_SCALE_DOWN] = "scale_down",
	[CAUSE_ADMIN] = "admin", [CAUSE_RELOAD] = "reload", [CAUSE_SHUTDOWN] = "shutdown",
	[CAUSE_IDLE] = "idle", [CAUSE_BOOT] = "boot", [CAUSE_WARMUP] = "warmup", [CAUSE_CRASH] = "crash",
	[CAUSE_HEALTH] = "health", [CAUSE_EXIT] = "exit", [CAUSE_FLEET_PEER] = "fleet_peer",
	[CAUSE_SLEEP_API] = "sleep_api", [CAUSE_EVICT] = "evict", [CAUSE_BOOT_CANCEL] = "boot_cancel",
	[CAUSE_ROLLOUT] = "rollout", [CAUSE_RECYCLE] = "recycle", [CAUSE_SERVER] = "server",
	[CAUSE_ENDPOINT] = "endpoint",
};

/*
 * The allowed moves: allowed[from] is the set of states a replica in
 * `from` may go to. Anything else is a bug in the caller and is refused.
 * The remote moves (a mirror of another gateway's replica) are the
 * STOPPED/FAILED -> READY and BOOTING -> READY/STOPPED ones. READY ->
 * BOOTING is a server line's failed health check (replica_health_lost).
 */
static const unsigned allowed[REPLICA_NSTATES] = {
	[REPLICA_STOPPED] = RS(REPLICA_BOOTING) | RS(REPLICA_READY) | RS(REPLICA_FAILED),
	[REPLICA_BOOTING] = RS(REPLICA_WARMING) | RS(REPLICA_READY) | RS(REPLICA_DRAINING) |
			    RS(REPLICA_FAILED) | RS(REPLICA_STOPPED),
	[REPLICA_WARMING] = RS(REPLICA_READY) | RS(REPLICA_DRAINING) | RS(REPLICA_FAILED),
	[REPLICA_READY] = RS(REPLICA_DRAINING) | RS(REPLICA_FAILED) | RS(REPLICA_STOPPED) | RS_ASLEEP |
			  RS(REPLICA_BOOTING),
	[REPLICA_DRAINING] = RS(REPLICA_STOPPED),
	[REPLICA_FAILED] = RS(REPLICA_BOOTING) | RS(REPLICA_READY) | RS(REPLICA_FAILED),
	[REPLICA_ASLEEP1] = RS(REPLICA_ASLEEP2) | RS(REPLICA_WAKING) | RS(REPLICA_DRAINING) | RS(REPLICA_FAILED),
	[REPLICA_ASLEEP2] = RS(REPLICA_WAKING) | RS(REPLICA_DRAINING) | RS(REPLICA_FAILED),
	[REPLICA_WAKING] = RS(REPLICA_WARMING) | RS(REPLICA_READY) | RS(REPLICA_DRAINING) | RS(REPLICA_FAILED),
};

#define REPLICA_MAX_WATCHERS 8
static struct {
	replica_watch_fn fn;
	void *arg;
} watchers[REPLICA_MAX_WATCHERS];
static int nwatchers;
#define REPLICA_MAX_GATES 4
static replica_gate_fn gates[REPLICA_MAX_GATES];
static int ngates;
static struct replica *all_reps;	/* every replica (replica_init .. replica_free), for ports */

const char *replica_state_name(enum replica_state s)
{
	return (unsigned)s < REPLICA_NSTATES ? state_names[s] : "?";
}

const char *replica_cause_name(enum replica_cause c)
{
	return (unsigned)c < CAUSE_NCAUSES ? cause_names[c] : "?";
}

void replica_subscribe(replica_watch_fn fn, void *arg)
{
	if (nwatchers == REPLICA_MAX_WATCHERS) {
		log_error("replica: more than %d subscribers", REPLICA_MAX_WATCHERS);
		abort();	/* a programming error, found at start */
	}
	watchers[nwatchers].fn = fn;
	watchers[nwatchers].arg = arg;
	nwatchers++;
}

void replica_add_gate(replica_gate_fn fn)
{
	if (ngates == REPLICA_MAX_GATES) {
		log_error("replica: more than %d gates", REPLICA_MAX_GATES);
		abort();	/* a programming error, found at start */
	}
	gates[ngates++] = fn;
}

/* 1 when every gate lets rep start or wake now. */
static int replica_gates_open(struct replica *rep)
{
	for (int i = 0; i < ngates; i++)
		if (!gates[i](rep))
			return 0;
	return 1;
}

static void replica_tell(struct replica *rep, const struct replica_change *ch)
{
	for (int i = 0; i < nwatchers; i++)
		watchers[i].fn(rep, ch, watchers[i].arg);
}

static void replica_tell_process(struct replica *rep, enum replica_event ev)
{
	struct replica_change ch = { ev, rep->state, rep->state, rep->cause, "" };
	replica_tell(rep, &ch);
}

void replica_init(struct replica *rep, struct upstream *u, int id)
{
	rep->up = u;
	rep->id = id;
	rep->since = gw_now();	/* STOPPED since the upstream was made, not since the host booted */
	rep->gpu = -1;
	rep->next_all = all_reps;
	all_reps = rep;
}

int replica_move(struct replica *rep, enum replica_state to, enum replica_cause cause, const char *fmt, ...)
{
	char why[300] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
	}
	enum replica_state from = rep->state;
	if ((unsigned)to >= REPLICA_NSTATES || (unsigned)cause >= CAUSE_NCAUSES || !(allowed[from] & RS(to))) {
		log_error("upstream \"%s\" replica %d: refused move %s -> %s (%s%s%s): not in the move table",
			  rep->up->name, rep->id, replica_state_name(from), replica_state_name(to),
			  replica_cause_name(cause), *why ? ": " : "", why);
		if (getenv("WAKEGATE_STRICT_MOVES"))
			abort();
		return -1;
	}
	rep->state = to;
	rep->cause = cause;
	rep->gen++;
	rep->since = gw_now();
	enum log_level lvl = to == REPLICA_FAILED ? LOG_LVL_ERROR : LOG_LVL_NOTICE;
	if (*why)
		log_msg(lvl, "upstream \"%s\" replica %d: %s -> %s (%s) cause=%s", rep->up->name, rep->id,
			state_names[from], state_names[to], why, cause_names[cause]);
	else
		log_msg(lvl, "upstream \"%s\" replica %d: %s -> %s cause=%s", rep->up->name, rep->id,
			state_names[from], state_names[to], cause_names[cause]);
	replica_acct_move(rep, state_names, REPLICA_NSTATES, state_names[from], state_names[to], cause_names[cause]);
	if (!rep->remote)	/* the holder publishes a remote one */
		store_replica_state(gw.store, rep->up->name, rep->id, state_names[to],
				    to == REPLICA_STOPPED ? "" : rep->url);
	struct replica_change ch = { REPLICA_EV_MOVE, from, to, cause, why };
	replica_tell(rep, &ch);
	return 0;
}

/* 1 when a replica of this gateway that is not STOPPED holds port: a booting
 * worker has been given its port but may not have bound it yet. */
static int port_taken_cb(int port, void *arg)
{
	const struct replica *self = arg;
	for (const struct replica *r = all_reps; r; r = r->next_all)
		if (r != self && r->state != REPLICA_STOPPED && r->port == port)
			return 1;
	return 0;
}

static void replica_probe_free(struct replica *rep)
{
	probe_free(rep->probe);
	rep->probe = NULL;
}

static void replica_sleep_call_free(struct replica *rep)
{
	sleepapi_cancel(rep->sleep_call);
	rep->sleep_call = NULL;
	rep->wake_pending = 0;
}

/* Cancels a running warmup and frees the copies its options point to. */
static void replica_warm_free(struct replica *rep)
{
	if (rep->warmer)
		warmer_cancel(rep->warmer);
	rep->warmer = NULL;
	free(rep->warm_model);
	free(rep->warm_path);
	free(rep->warm_body);
	rep->warm_model = rep->warm_path = rep->warm_body = NULL;
}

static void up_labels(const struct upstream *u, char *buf, size_t len)
{
	prom_labels(buf, len, "upstream", u->name, NULL);
}

/* SIGTERM now, SIGKILL after stop_grace (the launcher keeps the timer). */
static void replica_stop_process(struct replica *rep)
{
	if (rep->launch && rep->launch->ops->running(rep->launch) && !rep->stop_sent) {
		rep->stop_sent = 1;
		rep->launch->ops->stop(rep->launch, rep->up->p.stop_grace_ms);
	}
}

void replica_pool_free(struct replica *rep)
{
	struct proxy_pool *p = rep->pool;
	rep->pool = NULL;
	if (p)
		proxy_pool_free(p);	/* in-flight requests get 502; their done callbacks run */
}

/*
 * Moves to FAILED: releases probe, warmer, pool, asks the process to stop,
 * arms the backoff. Held requests are the subscribers' business (dispatch.c
 * answers them 503 unless another replica or a restart can take them): they
 * hear of the move first, as the probe, warmer and pool are let go after it.
 */
/* the output tail of a launcher replica_exit_cb just freed, for replica_fail */
static char replica_exit_tail[sizeof(((struct launch *)0)->tail)];

static void replica_fail(struct replica *rep, enum replica_cause cause, int crashed_ready, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void replica_fail(struct replica *rep, enum replica_cause cause, int crashed_ready, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rep->reason, sizeof(rep->reason), fmt, ap);
	va_end(ap);
	/* the worker's own last words say why far better than a status does */
	const char *tail = rep->launch ? rep->launch->tail : replica_exit_tail;
	size_t rl = strlen(rep->reason);
	if (*tail && rl + 16 < sizeof(rep->reason))
		snprintf(rep->reason + rl, sizeof(rep->reason) - rl, "; last output: %s", tail);
	rep->fails++;
	double backoff = rep->fails >= 6 ? 30 : (double)(1 << (rep->fails - 1));
	if (backoff > 30)
		backoff = 30;
	rep->retry_at = gw_now() + backoff;
	rep->crashed_ready = crashed_ready;
	replica_move(rep, REPLICA_FAILED, cause, "%s; next try in %gs", rep->reason, backoff);
	if (rep->pod)	/* its run in the cost account ends here; a new bind starts another */
		replica_tell_process(rep, REPLICA_EV_EXITED);
	replica_sleep_call_free(rep);
	replica_probe_free(rep);
	replica_warm_free(rep);
	replica_pool_free(rep);
	replica_stop_process(rep);
}

/* The launcher saw the process end: what that means depends on the state. */
static void replica_exit_cb(int status, void *arg)
{
	struct replica *rep = arg;
	char how[sizeof(rep->launch->why)];
	if (status == LAUNCH_WHY)	/* command, http, kubernetes: the launcher says what happened */
		snprintf(how, sizeof(how), "%s", rep->launch->why);
	else if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "ended");
	replica_acct_time(rep, gw_now(), 1);
	replica_tell_process(rep, REPLICA_EV_EXITED);
	struct launch *l = rep->launch;
	rep->launch = NULL;
	rep->stop_sent = 0;
	snprintf(replica_exit_tail, sizeof(replica_exit_tail), "%s", l->tail);
	/* safe: the exec driver touches nothing after calling us */
	launch_free(l);
	switch (rep->state) {
	case REPLICA_BOOTING:
		replica_fail(rep, CAUSE_BOOT, 0, "%s%s", how, status == LAUNCH_WHY ? "" : " during boot");
		break;
	case REPLICA_WARMING:
		replica_fail(rep, CAUSE_WARMUP, 0, "%s during warmup", how);
		break;
	case REPLICA_READY:
		replica_fail(rep, CAUSE_CRASH, 1, "%s while ready", how);
		break;
	case REPLICA_ASLEEP1:
	case REPLICA_ASLEEP2:
	case REPLICA_WAKING:
		replica_fail(rep, CAUSE_CRASH, 0, "%s while %s", how,
			     rep->state == REPLICA_WAKING ? "waking" : "asleep");
		break;
	case REPLICA_DRAINING:
		replica_pool_free(rep);
		replica_move(rep, REPLICA_STOPPED, CAUSE_EXIT, "%s after %.1fs up", how, gw_now() - rep->t_start);
		break;
	default:
		log_info("upstream \"%s\" replica %d: process %s", rep->up->name, rep->id, how);
		break;
	}
	replica_exit_tail[0] = 0;
}

static void replica_probe_cb(int ok, const char *why, void *arg);
static void replica_start_warmup(struct replica *rep);
static void replica_ready(struct replica *rep);
static int replica_wake_asleep(struct replica *rep, enum replica_cause cause);

int replica_wake_rank(const struct replica *rep, double now)
{
	if (rep->remote || !rep->up->cf || gw.stopping)
		return 0;
	if (rep->state == REPLICA_ASLEEP1)
		return 1;
	if (rep->state == REPLICA_ASLEEP2)
		return 2;
	if (rep->launch)
		return 0;	/* still stopping: the tick wakes it after the exit */
	if (rep->state == REPLICA_STOPPED || (rep->state == REPLICA_FAILED && now >= rep->retry_at))
		return 3;
	return 0;
}

/* The sleep call answered: asleep for good, or stopped (never left in between). */
static void replica_slept_cb(int ok, const char *why, void *arg)
{
	struct replica *rep = arg;
	rep->sleep_call = NULL;
	if (!ok) {
		rep->wake_pending = 0;
		replica_fail(rep, CAUSE_SLEEP_API, 1, "sleep failed: %s", why);
		return;
	}
	log_info("upstream \"%s\" replica %d: asleep at level %d", rep->up->name, rep->id,
		 rep->state == REPLICA_ASLEEP2 ? 2 : 1);
	if (rep->wake_pending) {
		enum replica_cause c = rep->wake_cause;
		rep->wake_pending = 0;
		replica_wake_asleep(rep, c);
	}
}

int replica_sleep(struct replica *rep, int level, enum replica_cause cause, const char *why)
{
	struct upstream *u = rep->up;
	enum replica_state to = level == 2 ? REPLICA_ASLEEP2 : REPLICA_ASLEEP1;
	if (!u->cf || rep->remote || rep->in_flight || rep->sleep_call || !rep->launch ||
	    !(rep->state == REPLICA_READY || (rep->state == REPLICA_ASLEEP1 && level == 2)))
		return -1;
	rep->sleep_call = sleepapi_start(gw.base, u->cf, rep->url, SLEEPAPI_SLEEP, level, u->p.boot_timeout_ms,
					 replica_slept_cb, rep);
	if (!rep->sleep_call) {
		replica_fail(rep, CAUSE_SLEEP_API, 0, "sleep level %d could not start", level);
		return -1;
	}
	replica_pool_free(rep);	/* nothing in flight: the idle connections go */
	replica_move(rep, to, cause, "%s", why ? why : "");
	return 0;
}

/* The wake calls answered: warm up (or READY), or stop (never left in between). */
static void replica_woke_cb(int ok, const char *why, void *arg)
{
	struct replica *rep = arg;
	struct upstream *u = rep->up;
	rep->sleep_call = NULL;
	if (rep->state != REPLICA_WAKING)
		return;
	if (!ok) {
		/* stopped, and started again at once for the requests that wait: they are not failed */
		replica_fail(rep, CAUSE_SLEEP_API, 1, "wake from level %d failed: %s", rep->wake_level, why);
		return;
	}
	double now = gw_now();
	rep->t_health = now;
	u->wake_s[rep->wake_level] = now - rep->t_start;
	char labels[320];
	up_labels(u, labels, sizeof(labels) - 20);
	snprintf(labels + strlen(labels), 20, ",level=\"%d\"", rep->wake_level);
	metrics_observe(gw.metrics, "wakegate_wake_seconds", labels, u->wake_s[rep->wake_level]);
	if (u->cf && !u->cf->warmup.off) {
		replica_start_warmup(rep);
	} else {
		replica_ready(rep);
	}
}

/* ASLEEP1/2 -> WAKING: the sleep API's wake calls. */
static int replica_wake_asleep(struct replica *rep, enum replica_cause cause)
{
	struct upstream *u = rep->up;
	rep->wake_cause = cause;
	if (rep->sleep_call) {	/* still going to sleep: wake as soon as it is asleep */
		rep->wake_pending = 1;
		return 0;
	}
	if (!replica_gates_open(rep))
		return 0;	/* no GPU memory for its weights yet: the next tick asks again */
	int level = rep->state == REPLICA_ASLEEP2 ? 2 : 1;
	rep->sleep_call = sleepapi_start(gw.base, u->cf, rep->url, SLEEPAPI_WAKE, level, u->p.boot_timeout_ms,
					 replica_woke_cb, rep);
	if (!rep->sleep_call) {
		replica_fail(rep, CAUSE_SLEEP_API, 0, "wake from level %d could not start", level);
		return -1;
	}
	rep->wake_level = level;
	rep->t_start = gw_now();
	char labels[320];
	up_labels(u, labels, sizeof(labels) - 20);
	snprintf(labels + strlen(labels), 20, ",level=\"%d\"", level);
	metrics_add(gw.metrics, "wakegate_wakes_total", labels, 1);
	replica_move(rep, REPLICA_WAKING, cause, "from sleep level %d", level);
	return 0;
}

int replica_wake(struct replica *rep, enum replica_cause cause)
{
	struct upstream *u = rep->up;
	if (u->cf && !gw.stopping && !rep->remote && replica_in(rep, RS_ASLEEP))
		return replica_wake_asleep(rep, cause);
	if (!u->cf || gw.stopping || rep->launch || rep->remote || !replica_in(rep, RS_DOWN))
		return -1;
	if (rep->state == REPLICA_FAILED && gw_now() < rep->retry_at)
		return -1;
	if (u->cf->launch_service)
		return 0;	/* not now: pods come from the Deployment's scale (k8s_scale.c), and bind as they get ready */
	rep->wake_cause = cause;
	/* a server line is not placed on a GPU nor claimed from the other gateways: every one sends to it */
	int server = u->cf->nservers > 0;
	if (!server && !replica_gates_open(rep))
		return 0;	/* placing it, or asking the other gateways first: see replica_add_gate */
	char err[256];
	/* no local port for a server line (0): its own is in its url, which the launcher gives */
	rep->port = server ? 0 : port_pick(gw.conf ? gw.conf->replica_port_lo : 0, gw.conf ? gw.conf->replica_port_hi : 0,
					   port_taken_cb, rep);
	if (!server && rep->port <= 0) {
		replica_fail(rep, CAUSE_BOOT, 0, "no free local port");
		return -1;
	}
	snprintf(rep->url, sizeof(rep->url), "%s://127.0.0.1:%d", u->cf->tls ? "https" : "http", rep->port);
	/* the version is what starts now: model_file is resolved here, at each start */
	struct version_id v;
	if (version_resolve(u->cf, &v, err, sizeof(err)) < 0) {
		replica_fail(rep, CAUSE_BOOT, 0, "cannot launch: %s", err);
		return -1;
	}
	if (v.key != u->ver.key) {	/* a flipped symlink seen by a start: that is the version now */
		u->ver = v;
		u->vgen++;
		log_notice("upstream \"%s\": version %s (%s)", u->name, v.label, v.model_file[0] ? v.model_file : "launch");
	}
	rep->ver = v;
	rep->vgen = u->vgen;
	rep->served = 0;
	rep->recycle = 0;
	rep->mem_bytes = -1;
	rep->mem_reported = 0;
	struct conf_upstream lcf_copy;
	char *owned[2];
	const struct conf_upstream *lcf = version_launch_conf(u->cf, &v, &lcf_copy, owned);
	if (!lcf)
		snprintf(err, sizeof(err), "out of memory");
	rep->launch = lcf ? launch_new(gw.base, lcf, gw.conf->prefix, replica_exit_cb, rep, err, sizeof(err)) : NULL;
	version_launch_free(owned);
	if (!rep->launch) {
		replica_fail(rep, CAUSE_BOOT, 0, "cannot launch: %s", err);
		return -1;
	}
	snprintf(rep->launch->tag, sizeof(rep->launch->tag), "upstream \"%s\" replica %d", u->name, rep->id);
	rep->launch->replica = rep->id;
	rep->launch->gpu_index = rep->gpu_dev[0] ? rep->gpu : -1;
	snprintf(rep->launch->gpu, sizeof(rep->launch->gpu), "%s", rep->gpu_dev);
	if (rep->launch->ops->url)	/* command, http, kubernetes: the replica answers at url= */
		snprintf(rep->url, sizeof(rep->url), "%s", rep->launch->ops->url(rep->launch));
	rep->stop_sent = 0;
	rep->t_start = gw_now();
	rep->acct_at = rep->t_start;
	if (rep->launch->ops->start(rep->launch, u->name, rep->port, err, sizeof(err)) < 0) {
		launch_free(rep->launch);
		rep->launch = NULL;
		replica_fail(rep, CAUSE_BOOT, 0, "cannot launch: %s", err);
		return -1;
	}
	replica_tell_process(rep, REPLICA_EV_LAUNCHED);
	if (cause != CAUSE_PREWARM && cause != CAUSE_SCHEDULE && !server) {	/* ahead of traffic, or already running: not a cold start */
		u->cold_starts++;
		char labels[300];
		up_labels(u, labels, sizeof(labels));
		metrics_add(gw.metrics, "wakegate_cold_starts_total", labels, 1);
		store_add(gw.store, u->name, "cold_starts", 1);
	}
	const char *path = u->cf->health_path ? u->cf->health_path : "/v2/health/ready";
	rep->probe = probe_start(gw.base, u->cf, rep->url, path, replica_probe_cb, rep);
	static const char *const woken_by[CAUSE_NCAUSES] = {
		[CAUSE_REQUEST] = "woken by a request", [CAUSE_MIN_WARM] = "min_warm", [CAUSE_SCHEDULE] = "schedule",
		[CAUSE_PREWARM] = "pre-warm", [CAUSE_SCALE_UP] = "scale up", [CAUSE_ADMIN] = "woken by the admin API",
		[CAUSE_SERVER] = "server line, health polled",
	};
	replica_move(rep, REPLICA_BOOTING, cause, "%s on %s", woken_by[cause] ? woken_by[cause] : cause_names[cause],
		     rep->url);
	if (!rep->probe)
		replica_fail(rep, CAUSE_BOOT, 0, "out of memory for the health probe");
	return 0;
}

/* WARMING (or WAKING with warmup off) -> READY: make the pool, measure the warmup. */
static void replica_ready(struct replica *rep)
{
	struct upstream *u = rep->up;
	double now = gw_now();
	char host[256];
	int port;
	int woke = rep->wake_level > 0;
	if (!rep->pool)	/* a server line healthy again keeps the pool its requests in flight use */
		rep->pool = url_split(rep->url, host, sizeof(host), &port, NULL) == 0 ?
			tls_pool_new(gw.base, u->cf, rep->url, host, port) : NULL;
	if (!rep->pool) {
		replica_fail(rep, CAUSE_WARMUP, 0, "cannot make a connection pool");
		return;
	}
	rep->t_ready = now;
	rep->fails = 0;
	u->warm_s = now - rep->t_health;
	char labels[300];
	up_labels(u, labels, sizeof(labels));
	metrics_observe(gw.metrics, "wakegate_warmup_seconds", labels, u->warm_s);
	store_add(gw.store, u->name, "warmup_seconds", u->warm_s);
	/* a fresh replica counts as activity: the idle timer starts now, not at boot */
	u->last_activity = now;
	rep->wake_level = 0;
	if (woke)
		replica_move(rep, REPLICA_READY, rep->state == REPLICA_WAKING ? CAUSE_SLEEP_API : CAUSE_WARMUP,
			     "wake took %.2fs", now - rep->t_start);
	else
		replica_move(rep, REPLICA_READY, CAUSE_WARMUP, "%s %.2fs", u->cf->nservers ? "server line up after" :
			     "cold start took", now - rep->t_start);
}

/* The warmer is done: READY, or FAILED with its reason. */
static void replica_warm_done(int ok, const char *reason, const struct warmer_result *res, void *arg)
{
	struct replica *rep = arg;
	rep->warmer = NULL;	/* the warmer frees itself after this callback */
	if (rep->state != REPLICA_WARMING)
		return;
	if (!ok) {
		/* an answer of 4xx: the warmup asks for what this backend does not have */
		int asked_wrong = reason && strstr(reason, ": HTTP 4") != NULL;
		replica_fail(rep, CAUSE_WARMUP, 0, "warmup failed: %s%s", reason ? reason : "?",
			     asked_wrong ? "; set \"warmup model=NAME;\" or \"warmup path=PATH body=FILE;\" "
			     "to a request the backend serves, or \"warmup off;\"" : "");
		return;
	}
	log_info("upstream \"%s\" replica %d: warmup ok: %d requests, first %.1fms, last %.1fms, %.0fms in all",
		 rep->up->name, rep->id, res ? res->sent : 0, res ? res->first_ms : 0,
		 res ? res->last_ms : 0, res ? res->total_ms : 0);
	replica_warm_free(rep);
	replica_ready(rep);
}

/* A warmup body file, whole; malloc'd for the caller. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap);
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb)
				free(buf);
			buf = nb;
		}
	}
	fclose(f);
	if (buf)
		*len = n;
	return buf;
}

/* BOOTING or WAKING -> WARMING: strings are copied, a reload may free the conf meanwhile. */
static void replica_start_warmup(struct replica *rep)
{
	struct upstream *u = rep->up;
	const struct conf_warmup *w = &u->cf->warmup;
	if (rep->state == REPLICA_WAKING)
		replica_move(rep, REPLICA_WARMING, CAUSE_SLEEP_API, "woke from level %d after %.2fs",
			     rep->wake_level, rep->t_health - rep->t_start);
	else
		replica_move(rep, REPLICA_WARMING, CAUSE_BOOT, "health ok after %.2fs", rep->t_health - rep->t_start);
	rep->warm_model = strdup(w->model);
	rep->warm_path = w->path ? strdup(w->path) : NULL;
	if (w->body_file) {
		rep->warm_body = read_file(w->body_file, &rep->warm_body_len);
		if (!rep->warm_body) {
			replica_fail(rep, CAUSE_WARMUP, 0, "warmup body %s cannot be read", w->body_file);
			return;
		}
	}
	struct warmer_opts o = {
		.base_url = rep->url,
		.model = rep->warm_model,
		.path = rep->warm_path,
		.body = rep->warm_body,
		.body_len = rep->warm_body_len,
		.count = w->count,
		.until_stable = w->until_stable,
		.timeout_ms = (long)w->timeout_ms,
		.tls_ca = u->cf->tls_ca,
		.tls_insecure = u->cf->tls_insecure,
	};
	rep->warmer = warmer_start(gw.base, &o, replica_warm_done, rep);
	if (!rep->warmer)
		replica_fail(rep, CAUSE_WARMUP, 0, "warmup could not start");
}

/* The health probe is done: 200 ends BOOTING; a permanent failure fails the boot. */
static void replica_probe_cb(int ok, const char *why, void *arg)
{
	struct replica *rep = arg;
	if (rep->state != REPLICA_BOOTING)
		return;
	if (!ok) {
		replica_fail(rep, CAUSE_HEALTH, 0, "%s", why);
		return;
	}
	struct upstream *u = rep->up;
	rep->t_health = gw_now();
	u->boot_s = rep->t_health - rep->t_start;
	char labels[300];
	up_labels(u, labels, sizeof(labels));
	metrics_observe(gw.metrics, "wakegate_boot_seconds", labels, u->boot_s);
	store_add(gw.store, u->name, "boot_seconds", u->boot_s);
	replica_probe_free(rep);
	if (u->cf && !u->cf->warmup.off) {
		replica_start_warmup(rep);
	} else {
		replica_move(rep, REPLICA_WARMING, CAUSE_BOOT, "health ok after %.2fs, warmup off", u->boot_s);
		replica_ready(rep);
	}
}

void replica_health_lost(struct replica *rep, const char *why)
{
	struct upstream *u = rep->up;
	if (rep->state != REPLICA_READY || !u->cf || !u->cf->nservers)
		return;
	/* the pool stays: requests in flight finish on it; new ones are held (dispatch takes only READY) */
	rep->t_start = gw_now();
	rep->probe = probe_start(gw.base, u->cf, rep->url, u->cf->health_path ? u->cf->health_path : "/v2/health/ready",
				 replica_probe_cb, rep);
	replica_move(rep, REPLICA_BOOTING, CAUSE_HEALTH, "%s", why);
	if (!rep->probe)
		replica_fail(rep, CAUSE_HEALTH, 0, "out of memory for the health probe");
}

void replica_drain(struct replica *rep, enum replica_cause cause, const char *why)
{
	if (!replica_in(rep, RS_UP | RS_ASLEEP))
		return;
	replica_sleep_call_free(rep);
	replica_probe_free(rep);
	replica_warm_free(rep);
	replica_move(rep, REPLICA_DRAINING, cause, why ? "%s" : NULL, why);
}

void replica_tick(struct replica *rep, double now)
{
	struct upstream *u = rep->up;
	replica_acct_time(rep, now, 0);
	switch (rep->state) {
	case REPLICA_BOOTING:
		/* a server line has no boot to time out: polled until healthy, held requests wait their hold timeout */
		if ((!u->cf || !u->cf->nservers) && (now - rep->t_start) * 1000 >= (double)u->p.boot_timeout_ms) {
			char got[300] = "";
			int code = 0;
			if (rep->probe) {
				probe_describe(rep->probe, got, sizeof(got));
				code = probe_last_code(rep->probe);
			}
			/* the directive to set: the app answers, but not there; or it is slow */
			replica_fail(rep, CAUSE_BOOT, 0, "boot timed out after %gs%s%s%s; %s",
				     (double)u->p.boot_timeout_ms / 1000, *got ? " (health " : "", got, *got ? ")" : "",
				     code ? "set \"health PATH;\" to a path that answers 200 once the app is ready" :
				     "raise \"boot_timeout\" if the app takes longer to start");
		}
		break;
	case REPLICA_READY:
	case REPLICA_ASLEEP1:
	case REPLICA_ASLEEP2:
	case REPLICA_WAKING:
		if (gw.stopping || !u->cf)
			replica_drain(rep, gw.stopping ? CAUSE_SHUTDOWN : CAUSE_RELOAD,
				      gw.stopping ? "shutting down" : "upstream removed");
		break;
	case REPLICA_DRAINING:
		if (rep->pod && !rep->launch) {
			/* a pod's endpoint went: its requests finish (up to stop_grace); Kubernetes ends the pod */
			if (rep->in_flight && (now - rep->since) * 1000 < (double)u->p.stop_grace_ms)
				break;
			replica_pool_free(rep);
			replica_acct_time(rep, now, 1);
			replica_tell_process(rep, REPLICA_EV_EXITED);	/* the cost account's run ends: the pod left us */
			rep->pod = 0;
			replica_move(rep, REPLICA_STOPPED, CAUSE_EXIT, "pod's endpoint unbound after %.1fs", now - rep->t_start);
			break;
		}
		if (!rep->launch) {
			replica_pool_free(rep);
			replica_move(rep, REPLICA_STOPPED, CAUSE_EXIT, "nothing was running");
			break;
		}
		if (rep->in_flight == 0 || (now - rep->since) * 1000 >= (double)u->p.stop_grace_ms)
			replica_stop_process(rep);
		break;
	default:
		break;
	}
}

int replica_pod_bind(struct replica *rep, const char *url, const char *why)
{
	struct upstream *u = rep->up;
	double now = gw_now();
	if (!u->cf || gw.stopping || rep->launch || rep->remote || !replica_in(rep, RS_DOWN) ||
	    (rep->state == REPLICA_FAILED && now < rep->retry_at) || strlen(url) >= sizeof(rep->url))
		return -1;
	rep->pod = 1;
	rep->port = 0;
	snprintf(rep->url, sizeof(rep->url), "%s", url);
	rep->ver = u->ver;
	rep->vgen = u->vgen;
	rep->served = 0;
	rep->recycle = 0;
	rep->mem_bytes = -1;
	rep->mem_reported = 0;
	rep->stop_sent = 0;
	rep->wake_cause = CAUSE_ENDPOINT;
	rep->t_start = now;
	rep->acct_at = now;
	const char *path = u->cf->health_path ? u->cf->health_path : "/v2/health/ready";
	rep->probe = probe_start(gw.base, u->cf, rep->url, path, replica_probe_cb, rep);
	/* the cost account's run: from the endpoint bound to the slot drained (the pod's own start and end are
	 * Kubernetes's; this bills what the gateway routes to) */
	replica_tell_process(rep, REPLICA_EV_LAUNCHED);
	replica_move(rep, REPLICA_BOOTING, CAUSE_ENDPOINT, "%s", why);
	if (!rep->probe)
		replica_fail(rep, CAUSE_BOOT, 0, "out of memory for the health probe");
	return 0;
}

void replica_free(struct replica *rep)
{
	if (gw.store)	/* the store must not answer into a freed replica */
		store_cancel(gw.store, rep);
	rep->idle_query = 0;
	rep->lock_pending = 0;
	replica_sleep_call_free(rep);
	replica_probe_free(rep);
	replica_warm_free(rep);
	replica_pool_free(rep);
	if (rep->launch) {
		launch_free(rep->launch);
		rep->launch = NULL;
	}
	for (struct replica **pp = &all_reps; *pp; pp = &(*pp)->next_all)
		if (*pp == rep) {
			*pp = rep->next_all;
			break;
		}
}
