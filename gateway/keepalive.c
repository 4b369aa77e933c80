/*
 * keepalive: the gap histogram of each upstream, its sync with Redis, the
 * adaptive decision and the pre-warm timer. See keepalive.h for what a gap
 * is; policy.h for what a decision means.
 */
#include "config.h"
#include "gateway/keepalive.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/policy.h"
#include "gateway/policy_tod.h"
#include "gateway/scale.h"
#include "gateway/schedule.h"
#include "gateway/store.h"
#include "gateway/upstream.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KA_TICK_MS 1000
#define KA_FLUSH_S 5		/* new gaps go to Redis at most this often */

struct ka_up {
	char *name;
	struct upstream *u;	/* the upstream this is part of (u->ka) */
	struct policy_hist hist;	/* the gaps: Redis's at the last sync, plus the new ones */
	struct policy_hist pending;	/* new gaps not yet merged into Redis */
	int loaded;		/* Redis was read once (or there is no Redis) */
	int syncing;		/* a GET is in flight */
	double last_sync;
	struct policy_decision d;	/* the last decision */
	char last_logged[120];	/* the decision last logged */
	double idle_start;	/* gw_now() at the end of the last request; 0: busy, or none yet */
	int idle_slot;		/* the time-of-day slot idle_start fell in */
	int prewarmed;		/* the policy's pre-warm time came in this idle period */
	double hold_until;	/* gw_now(): a pre-warmed replica stays up at least until then; 0: none */
	uint64_t prewarms;
	double last_second;	/* the once-a-second work last ran (gw_now) */
	const struct conf_upstream *cf_seen;	/* the conf the decision was made with */
	struct event *prewarm_ev;
};

static int ka_adaptive(const struct upstream *u)
{
	return u->cf && u->cf->keepalive_adaptive;
}

/* Decides again from the gaps, and where that is the fixed fallback from the
 * time-of-day plan for the slot the idle period started in (now while busy);
 * logs the decision when it changed. */
static void ka_decide(struct ka_up *k, const struct upstream *u)
{
	struct policy_conf pc;
	schedule_policy_conf(u, &pc);
	k->d = policy_tod_apply(schedule_tod(u), k->idle_start > 0 ? k->idle_slot : schedule_tod_slot(),
				policy_decide(&pc, &k->hist));
	k->cf_seen = u->cf;
	/*
	 * Logged when the schedule or its reason changes, not at every new gap.
	 * The key and line are made only where they can be logged: this runs
	 * once per request that leaves the upstream idle, and the two printfs
	 * of doubles were ~4,400 instructions of every such request (bench/ab-cpu).
	 */
	if (ka_adaptive(u) && k->loaded) {
		char line[160], key[120];
		snprintf(key, sizeof(key), "%lld %lld %lld %s", (long long)k->d.keepalive_ms / 1000,
			 (long long)k->d.prewarm_ms / 1000, (long long)k->d.until_ms / 1000, k->d.reason);
		if (strcmp(key, k->last_logged) != 0) {
			if (k->d.prewarm_ms > 0)
				snprintf(line, sizeof(line), "keep-alive %.0fs, pre-warm at %.0fs until %.0fs (%s, %llu gaps)",
					 (double)k->d.keepalive_ms / 1000, (double)k->d.prewarm_ms / 1000,
					 (double)k->d.until_ms / 1000, k->d.reason, (unsigned long long)k->hist.total);
			else
				snprintf(line, sizeof(line), "keep-alive %.0fs (%s, %llu gaps)",
					 (double)k->d.keepalive_ms / 1000, k->d.reason, (unsigned long long)k->hist.total);
			log_notice("upstream \"%s\": keepalive adaptive: %s", u->name, line);
			snprintf(k->last_logged, sizeof(k->last_logged), "%s", key);
		}
	}
	if (gw.metrics) {
		const char *l = upstream_label((struct upstream *)u, 0);
		metrics_set(gw.metrics, "wakegate_keepalive_seconds", l, (double)keepalive_idle_ms(u) / 1000);
		metrics_set(gw.metrics, "wakegate_idle_gaps", l, (double)k->hist.total);
	}
}

/* The state of u, made on first use and kept in u (NULL: out of memory). */
static struct ka_up *ka_get(const struct upstream *cu)
{
	struct upstream *u = (struct upstream *)cu;	/* the module's own part of it */
	if (u->ka)
		return u->ka;
	struct ka_up *k = calloc(1, sizeof(*k));
	if (!k || !(k->name = strdup(u->name))) {
		free(k);
		return NULL;
	}
	k->u = u;
	policy_hist_init(&k->hist);
	policy_hist_init(&k->pending);
	u->ka = k;
	ka_decide(k, u);
	return k;
}

/* to += from, halving every count while one would pass what a histogram may hold. */
static void hist_merge(struct policy_hist *to, const struct policy_hist *from)
{
	uint64_t v[POLICY_BINS + 1], max = 0;
	for (int i = 0; i <= POLICY_BINS; i++) {
		v[i] = i < POLICY_BINS ? (uint64_t)to->bin[i] + from->bin[i] : (uint64_t)to->overflow + from->overflow;
		if (v[i] > max)
			max = v[i];
	}
	while (max > (UINT64_C(1) << 31)) {
		max /= 2;
		for (int i = 0; i <= POLICY_BINS; i++)
			v[i] /= 2;
	}
	to->total = 0;
	for (int i = 0; i <= POLICY_BINS; i++) {
		*(i < POLICY_BINS ? &to->bin[i] : &to->overflow) = (uint32_t)v[i];
		to->total += v[i];
	}
}

/* The Redis histogram arrived (NULL: missing, or Redis away): merge the new gaps in, write it back. */
static void ka_sync_cb(const char *value, void *arg)
{
	char *name = arg;
	struct upstream *u = upstream_find(name);	/* by name: a reload may have freed the one that asked */
	struct ka_up *k = u ? u->ka : NULL;
	free(name);
	if (!k)
		return;
	k->syncing = 0;
	if (!value && !store_connected(gw.store))
		return;		/* not read: try again on a later tick */
	struct policy_hist base;
	policy_hist_init(&base);
	if (value && policy_hist_parse(&base, value) < 0) {
		log_warn("upstream \"%s\": the gap histogram in Redis cannot be read, starting a new one", k->name);
		policy_hist_init(&base);
	}
	if (!k->loaded && value)
		log_info("upstream \"%s\": %llu idle gaps read from Redis", k->name, (unsigned long long)base.total);
	k->loaded = 1;
	int fresh = k->pending.total > 0;
	hist_merge(&base, &k->pending);
	k->hist = base;
	policy_hist_init(&k->pending);
	if (fresh) {
		char buf[POLICY_HIST_STRMAX], key[512];
		policy_hist_format(&k->hist, buf, sizeof(buf));
		snprintf(key, sizeof(key), "hist:%s", k->name);
		store_set(gw.store, key, buf);
	}
	ka_decide(k, u);
}

/* Reads (first time) or merges into (then) the Redis histogram. */
static void ka_sync(struct ka_up *k, double now)
{
	if (!gw.conf || !gw.conf->redis_host) {
		k->loaded = 1;	/* no Redis: the memory is the whole history */
		policy_hist_init(&k->pending);
		return;
	}
	if (k->syncing || !store_connected(gw.store))
		return;
	if (k->loaded && (k->pending.total == 0 || now - k->last_sync < KA_FLUSH_S))
		return;
	char key[512], *arg = strdup(k->name);
	if (!arg)
		return;
	k->syncing = 1;
	k->last_sync = now;
	snprintf(key, sizeof(key), "hist:%s", k->name);
	store_get(gw.store, key, ka_sync_cb, arg);
}

/* What an idle replica of ours does next, idle_s after the last activity. */
enum ka_step { KA_NONE, KA_SLEEP1, KA_SLEEP2, KA_STOP };

/*
 * The ladder: READY -> sleep level 1 -> sleep level 2 at their after=
 * times (either may be off), then stopped at the keep-alive time
 * (idle_timeout unless adaptive), all counted from the last activity.
 */
static enum ka_step ka_step(const struct upstream *u, const struct replica *rep, double idle_s)
{
	double a1 = (double)u->cf->sleep_after_ms[1] / 1000, a2 = (double)u->cf->sleep_after_ms[2] / 1000;
	if (idle_s * 1000 >= (double)keepalive_idle_ms(u))
		return KA_STOP;
	if (rep->state == REPLICA_READY || rep->state == REPLICA_ASLEEP1) {
		if (a2 > 0 && idle_s >= a2)
			return KA_SLEEP2;
		if (a1 > 0 && idle_s >= a1 && rep->state == REPLICA_READY)
			return KA_SLEEP1;
	}
	return KA_NONE;
}

static void ka_step_do(struct replica *rep, enum ka_step step, double idle_s)
{
	char why[64];
	snprintf(why, sizeof(why), "idle for %.1fs", idle_s);
	if (step == KA_STOP)
		replica_drain(rep, CAUSE_IDLE, why);
	else if (step == KA_SLEEP1 || step == KA_SLEEP2)
		replica_sleep(rep, step == KA_SLEEP2 ? 2 : 1, CAUSE_IDLE, why);
}

/* Idle check answer from the store: another gateway may have seen traffic. */
static void ka_idle_answer(int64_t ms, void *arg)
{
	struct replica *rep = arg;
	rep->idle_query = 0;
	struct upstream *u = rep->up;
	if (!u->cf || !replica_in(rep, RS(REPLICA_READY) | RS_ASLEEP) || rep->in_flight || u->hold.n)
		return;
	int64_t now_ms = gw_wall_ms();
	if (ms > 0 && now_ms - ms < u->p.idle_timeout_ms && ms > u->last_activity_ms) {
		double ago = (double)(now_ms - ms) / 1000.0;
		log_info("upstream \"%s\": another gateway saw activity %.1fs ago, staying up", u->name, ago);
		u->last_activity = gw_now() - ago;
		return;
	}
	double idle_s = gw_now() - u->last_activity;
	ka_step_do(rep, ka_step(u, rep, idle_s), idle_s);
}

/*
 * An idle replica of ours steps down its ladder (ka_step) unless min_warm
 * keeps it READY or another gateway sharing Redis saw activity meanwhile
 * (asked once per step, then answered above).
 */
static void ka_idle_check(struct upstream *u, double now)
{
	if (!u->cf || gw.stopping || u->hold.n)
		return;
	int ready = upstream_count(u, RS(REPLICA_READY));
	double idle_s = now - u->last_activity;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (!replica_in(rep, RS(REPLICA_READY) | RS_ASLEEP) || rep->remote || rep->in_flight ||
		    rep->idle_query || rep->sleep_call)
			continue;
		if (rep->state == REPLICA_READY && ready <= scale_min_warm(u, now))
			continue;
		if (ka_step(u, rep, idle_s) == KA_NONE)
			continue;
		if (rep->state == REPLICA_READY)
			ready--;
		rep->idle_query = 1;
		store_newest_activity(gw.store, u->name, ka_idle_answer, rep);
	}
}

void keepalive_tick(struct upstream *u, double now)
{
	if (!u->cf)
		return;
	if (!u->cf->launch_service)	/* pods: the Deployment goes to 0 after idle_timeout (k8s_scale.c) */
		ka_idle_check(u, now);
	struct ka_up *k = ka_get(u);
	if (!k || now - k->last_second < KA_TICK_MS / 1000.0)
		return;
	k->last_second = now;
	int was_loaded = k->loaded;
	ka_sync(k, now);
	if (!was_loaded && k->loaded)
		ka_decide(k, u);	/* the first decision worth logging */
	if (k->cf_seen != u->cf || schedule_replanned(u))
		ka_decide(k, u);	/* a reload, or a new time-of-day plan, may have changed the policy */
	char why[200];
	double hold_s = 0;
	if (schedule_tick(u, why, sizeof(why), &hold_s) && keepalive_prewarm(u, CAUSE_SCHEDULE, why, hold_s) == 0)
		schedule_woke(u);
}

void keepalive_metrics_declare(struct metrics *m)
{
	metrics_declare(m, "wakegate_keepalive_seconds", METRICS_GAUGE,
			"How long an idle replica stays up now (the keep-alive decision).", NULL, 0);
	metrics_declare(m, "wakegate_idle_gaps", METRICS_GAUGE,
			"Idle gaps in the upstream's histogram.", NULL, 0);
	metrics_declare(m, "wakegate_prewarms_total", METRICS_COUNTER,
			"Replicas woken ahead of traffic (not counted as cold starts).", NULL, 0);
}

/* Shared by the policy's timer and the schedule: one wake, counted as a pre-warm. */
int keepalive_prewarm(struct upstream *u, enum replica_cause cause, const char *why, double hold_s)
{
	struct ka_up *k = ka_get(u);
	if (!k || !u->cf || gw.stopping || upstream_count(u, RS_UP) || u->hold.n)
		return -1;
	if (u->cf->launch_service) {
		/* pods: no replica is started here; the Deployment's count wants one until then (k8s_scale.c) */
		double hold = hold_s > 0 ? hold_s : (double)u->p.idle_timeout_ms / 1000;
		log_notice("upstream \"%s\": pre-warm: one pod for %.0fs (%s)", u->name, hold, why);
		u->prewarm_until = gw_now() + hold;
		k->prewarms++;
		if (hold_s > 0)
			k->hold_until = gw_now() + hold_s;
		metrics_add(gw.metrics, "wakegate_prewarms_total", upstream_label(u, 0), 1);
		store_add(gw.store, u->name, "prewarms", 1);
		return 0;
	}
	struct replica *rep = upstream_pick_wake(u, gw_now());
	if (rep) {
		log_notice("upstream \"%s\": pre-warm: waking replica %d (%s)", u->name, rep->id, why);
		if (replica_wake(rep, cause) < 0)
			return -1;
		k->prewarms++;
		if (hold_s > 0)
			k->hold_until = gw_now() + hold_s;
		metrics_add(gw.metrics, "wakegate_prewarms_total", upstream_label(u, 0), 1);
		store_add(gw.store, u->name, "prewarms", 1);
		return 0;
	}
	return -1;
}

/* The policy's pre-warm time came and no request did: wake a replica ahead of the next one. */
static void ka_prewarm_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ka_up *k = arg;
	struct upstream *u = k->u;	/* k is freed with u, and this timer with k */
	if (!u->cf || k->idle_start <= 0 || !ka_adaptive(u))
		return;
	k->prewarmed = 1;	/* from now on an idle replica stops at the decision's until */
	char why[200];
	snprintf(why, sizeof(why), "policy: %.0fs after the last request, up until %.0fs (%s)",
		 gw_now() - k->idle_start, (double)k->d.until_ms / 1000, k->d.reason);
	keepalive_prewarm(u, CAUSE_PREWARM, why, 0);
}

void keepalive_on_request(struct upstream *u)
{
	struct ka_up *k = ka_get(u);
	if (!k)
		return;
	if (k->prewarm_ev)
		evtimer_del(k->prewarm_ev);
	if (k->idle_start > 0) {
		int64_t gap = (int64_t)((gw_now() - k->idle_start) * 1000);
		policy_observe_gap(&k->hist, gap);
		policy_observe_gap(&k->pending, gap);
		log_debug("upstream \"%s\": idle gap of %.3fs", u->name, (double)gap / 1000);
	}
	k->idle_start = 0;
	k->prewarmed = 0;
	k->hold_until = 0;
	schedule_count(u);
}

void keepalive_on_done(struct upstream *u)
{
	for (int i = 0; i < u->nrep; i++)
		if (u->rep[i].in_flight)
			return;
	if (u->hold.n)
		return;
	struct ka_up *k = ka_get(u);
	if (!k || k->idle_start > 0)
		return;
	k->idle_start = gw_now();
	k->idle_slot = schedule_tod_slot();
	k->prewarmed = 0;
	ka_decide(k, u);
	if (!ka_adaptive(u) || k->d.prewarm_ms <= 0)
		return;
	if (!k->prewarm_ev)
		k->prewarm_ev = evtimer_new(gw.base, ka_prewarm_cb, k);
	if (!k->prewarm_ev)
		return;
	struct timeval tv = { (time_t)(k->d.prewarm_ms / 1000), (suseconds_t)(k->d.prewarm_ms % 1000) * 1000 };
	evtimer_add(k->prewarm_ev, &tv);
}

int64_t keepalive_idle_ms(const struct upstream *u)
{
	if (!ka_adaptive(u)) {
		const struct ka_up *k = u->ka;
		double left = k && k->hold_until > 0 ? k->hold_until - u->last_activity : 0;
		int64_t ms = left > 0 ? (int64_t)(left * 1000) : 0;
		return ms > u->p.idle_timeout_ms ? ms : u->p.idle_timeout_ms;
	}
	const struct ka_up *k = u->ka;
	if (!k)
		return u->p.idle_timeout_ms;
	if (k->hold_until > 0) {
		/* woken by the schedule: up at least until hold_until, and the keep-alive after it */
		double left = k->hold_until - u->last_activity;
		int64_t ms = left > 0 ? (int64_t)(left * 1000) : 0;
		return ms > k->d.keepalive_ms ? ms : k->d.keepalive_ms;
	}
	if (k->prewarmed && k->idle_start > 0) {
		/* a pre-warmed replica stays up to the decision's until, counted from the idle start */
		double left = k->idle_start + (double)k->d.until_ms / 1000 - u->last_activity;
		return left > 0 ? (int64_t)(left * 1000) : 0;
	}
	return k->d.keepalive_ms;
}

json_t *keepalive_status_json(const struct upstream *u)
{
	struct ka_up *k = ka_get(u);
	json_t *o = json_object();
	json_object_set_new(o, "policy", json_string(ka_adaptive(u) ? "adaptive" : "fixed"));
	json_object_set_new(o, "keepalive_seconds", json_real((double)keepalive_idle_ms(u) / 1000));
	if (!k)
		return o;
	json_object_set_new(o, "reason", json_string(ka_adaptive(u) ? k->d.reason : "fixed"));
	json_object_set_new(o, "decision_keepalive_seconds", json_real((double)k->d.keepalive_ms / 1000));
	json_object_set_new(o, "prewarm_seconds", k->d.prewarm_ms > 0 ? json_real((double)k->d.prewarm_ms / 1000) : json_null());
	json_object_set_new(o, "prewarm_until_seconds", k->d.prewarm_ms > 0 ? json_real((double)k->d.until_ms / 1000) : json_null());
	json_object_set_new(o, "gaps", json_integer((json_int_t)k->hist.total));
	json_object_set_new(o, "gaps_loaded", json_boolean(k->loaded));
	json_object_set_new(o, "prewarms", json_integer((json_int_t)k->prewarms));
	json_object_set_new(o, "expected_up_seconds_per_gap", json_real(k->d.exp_up_ms / 1000));
	json_object_set_new(o, "expected_cold_starts_per_gap", json_real(k->d.exp_cold));
	char buf[POLICY_HIST_STRMAX];
	policy_hist_format(&k->hist, buf, sizeof(buf));
	json_object_set_new(o, "histogram", json_string(buf));
	json_t *sch = schedule_status_json(u);
	if (sch)
		json_object_set_new(o, "schedule", sch);
	json_t *tod = schedule_tod_json(u);
	if (tod)
		json_object_set_new(o, "time_of_day", tod);
	return o;
}

const struct policy_hist *keepalive_hist(const struct upstream *u)
{
	return u->ka ? &u->ka->hist : NULL;
}

void keepalive_free(struct upstream *u)
{
	struct ka_up *k = u->ka;
	if (k) {
		if (k->prewarm_ev)
			event_free(k->prewarm_ev);
		free(k->name);
		free(k);
		u->ka = NULL;
	}
	schedule_free(u);
}
