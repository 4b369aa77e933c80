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
#define KA_DEFAULT_BOOT_MS 30000	/* boot + warmup until one is measured */

struct ka_up {
	char *name;
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
	int waking;		/* a pre-warm wake is on its way (the fleet lock may answer later) */
	const struct conf_upstream *cf_seen;	/* the conf the decision was made with */
	struct event *prewarm_ev;
	struct ka_up *next;
};

static struct ka_up *kas;
static struct event *tick_ev;

static struct ka_up *ka_find(const char *name)
{
	for (struct ka_up *k = kas; k; k = k->next)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static int ka_adaptive(const struct upstream *u)
{
	return u->cf && u->cf->keepalive_adaptive;
}

void keepalive_policy_conf(const struct upstream *u, struct policy_conf *pc)
{
	policy_conf_default(pc);
	pc->kind = ka_adaptive(u) ? POLICY_ADAPTIVE : POLICY_FIXED;
	pc->fixed_ms = u->p.idle_timeout_ms;
	if (u->cf) {
		pc->min_ms = u->cf->keepalive_min_ms;
		pc->max_ms = u->cf->keepalive_max_ms;
		pc->percentile = u->cf->keepalive_percentile;
		if (pc->prewarm_percentile >= pc->percentile)
			pc->prewarm_percentile = pc->percentile / 2;
		pc->budget_pct = u->cf->keepalive_budget_pct;
		pc->tod = u->cf->keepalive_tod;
	}
	pc->boot_ms = u->boot_s > 0 ? (int64_t)((u->boot_s + u->warm_s) * 1000) : KA_DEFAULT_BOOT_MS;
}

/* Decides again from the gaps, and where that is the fixed fallback from the
 * time-of-day plan for the slot the idle period started in (now while busy);
 * logs the decision when it changed. */
static void ka_decide(struct ka_up *k, const struct upstream *u)
{
	struct policy_conf pc;
	keepalive_policy_conf(u, &pc);
	k->d = policy_tod_apply(schedule_tod(u), k->idle_start > 0 ? k->idle_slot : schedule_tod_slot(),
				policy_decide(&pc, &k->hist));
	k->cf_seen = u->cf;
	char line[160], key[120];
	/* logged when the schedule or its reason changes, not at every new gap */
	snprintf(key, sizeof(key), "%lld %lld %lld %s", (long long)k->d.keepalive_ms / 1000,
		 (long long)k->d.prewarm_ms / 1000, (long long)k->d.until_ms / 1000, k->d.reason);
	if (k->d.prewarm_ms > 0)
		snprintf(line, sizeof(line), "keep-alive %.0fs, pre-warm at %.0fs until %.0fs (%s, %llu gaps)",
			 (double)k->d.keepalive_ms / 1000, (double)k->d.prewarm_ms / 1000,
			 (double)k->d.until_ms / 1000, k->d.reason, (unsigned long long)k->hist.total);
	else
		snprintf(line, sizeof(line), "keep-alive %.0fs (%s, %llu gaps)", (double)k->d.keepalive_ms / 1000,
			 k->d.reason, (unsigned long long)k->hist.total);
	if (ka_adaptive(u) && k->loaded && strcmp(key, k->last_logged) != 0) {
		log_notice("upstream \"%s\": keepalive adaptive: %s", u->name, line);
		snprintf(k->last_logged, sizeof(k->last_logged), "%s", key);
	}
	if (gw.metrics) {
		char l[600];
		prom_labels(l, sizeof(l), "upstream", u->name, NULL);
		metrics_set(gw.metrics, "wakegate_keepalive_seconds", l, (double)keepalive_idle_ms(u) / 1000);
		metrics_set(gw.metrics, "wakegate_idle_gaps", l, (double)k->hist.total);
	}
}

/* The state of u, made on first use (NULL: out of memory). */
static struct ka_up *ka_get(const struct upstream *u)
{
	struct ka_up *k = ka_find(u->name);
	if (k)
		return k;
	k = calloc(1, sizeof(*k));
	if (!k || !(k->name = strdup(u->name))) {
		free(k);
		return NULL;
	}
	policy_hist_init(&k->hist);
	policy_hist_init(&k->pending);
	k->next = kas;
	kas = k;
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
	struct ka_up *k = ka_find(name);
	struct upstream *u = upstream_find(name);
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
	if (u)
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

/* Whether a replica of u is up or on its way up. */
static int ka_any_up(const struct upstream *u)
{
	for (int i = 0; i < u->nrep; i++) {
		enum replica_state s = u->rep[i].state;
		if (s == REPLICA_BOOTING || s == REPLICA_WARMING || s == REPLICA_READY)
			return 1;
	}
	return 0;
}

static void ka_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	double now = gw_now();
	for (struct upstream *u = upstream_list(); u; u = u->next) {
		if (!u->cf)
			continue;
		struct ka_up *k = ka_get(u);
		int was_loaded = k && k->loaded;
		if (k)
			ka_sync(k, now);
		if (k && !was_loaded && k->loaded)
			ka_decide(k, u);	/* the first decision worth logging */
		if (k && k->waking && ka_any_up(u))
			k->waking = 0;	/* the pre-warmed replica is launched (here or by another gateway) */
		if (k && k->cf_seen != u->cf)
			ka_decide(k, u);	/* a reload may have changed the policy */
		schedule_tick(u);
	}
}

void keepalive_metrics_declare(struct metrics *m)
{
	metrics_declare(m, "wakegate_keepalive_seconds", METRICS_GAUGE,
			"How long an idle replica stays up now (the keep-alive decision).", NULL, 0);
	metrics_declare(m, "wakegate_idle_gaps", METRICS_GAUGE,
			"Idle gaps in the upstream's histogram.", NULL, 0);
	metrics_declare(m, "wakegate_prewarms_total", METRICS_COUNTER,
			"Replicas woken ahead of traffic (not counted as cold starts).", NULL, 0);
	if (!tick_ev && gw.base) {
		tick_ev = event_new(gw.base, -1, EV_PERSIST, ka_tick_cb, NULL);
		struct timeval tv = { KA_TICK_MS / 1000, (KA_TICK_MS % 1000) * 1000 };
		if (tick_ev)
			event_add(tick_ev, &tv);
	}
}

/* Shared by the policy's timer and the schedule: one wake, counted as a pre-warm. */
int keepalive_prewarm(struct upstream *u, const char *why, double hold_s)
{
	struct ka_up *k = ka_get(u);
	if (!k || !u->cf || gw.stopping || ka_any_up(u) || u->hold.n)
		return -1;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (rep->launch || !(rep->state == REPLICA_STOPPED ||
				     (rep->state == REPLICA_FAILED && gw_now() >= rep->retry_at)))
			continue;
		log_notice("upstream \"%s\": pre-warm: waking replica %d (%s)", u->name, rep->id, why);
		k->waking = 1;
		if (replica_wake(rep) < 0) {
			k->waking = 0;
			return -1;
		}
		k->prewarms++;
		if (hold_s > 0)
			k->hold_until = gw_now() + hold_s;
		char l[600];
		prom_labels(l, sizeof(l), "upstream", u->name, NULL);
		metrics_add(gw.metrics, "wakegate_prewarms_total", l, 1);
		store_add(gw.store, u->name, "prewarms", 1);
		return 0;
	}
	return -1;
}

/* The policy's pre-warm time came and no request did: wake a replica ahead of the next one. */
static void ka_prewarm_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ka_up *k = arg;
	struct upstream *u = upstream_find(k->name);
	if (!u || k->idle_start <= 0 || !ka_adaptive(u))
		return;
	k->prewarmed = 1;	/* from now on an idle replica stops at the decision's until */
	char why[200];
	snprintf(why, sizeof(why), "policy: %.0fs after the last request, up until %.0fs (%s)",
		 gw_now() - k->idle_start, (double)k->d.until_ms / 1000, k->d.reason);
	keepalive_prewarm(u, why, 0);
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
	k->waking = 0;	/* a wake from now on is for this request */
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

void keepalive_replan(const struct upstream *u)
{
	struct ka_up *k = ka_find(u->name);
	if (k)
		ka_decide(k, u);
}

int64_t keepalive_idle_ms(const struct upstream *u)
{
	if (!ka_adaptive(u)) {
		const struct ka_up *k = ka_find(u->name);
		double left = k && k->hold_until > 0 ? k->hold_until - u->last_activity : 0;
		int64_t ms = left > 0 ? (int64_t)(left * 1000) : 0;
		return ms > u->p.idle_timeout_ms ? ms : u->p.idle_timeout_ms;
	}
	const struct ka_up *k = ka_find(u->name);
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

int keepalive_waking(const struct upstream *u)
{
	const struct ka_up *k = u ? ka_find(u->name) : NULL;
	return k && k->waking;
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

void keepalive_free_all(void)
{
	if (tick_ev)
		event_free(tick_ev);
	tick_ev = NULL;
	while (kas) {
		struct ka_up *k = kas;
		kas = k->next;
		if (k->prewarm_ev)
			event_free(k->prewarm_ev);
		free(k->name);
		free(k);
	}
	schedule_free_all();
}
