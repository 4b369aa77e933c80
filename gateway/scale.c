/*
 * scale: replica counts over time (see scale.h). Decisions are made on the
 * upstream's 100ms tick from what this gateway sees: its own held and
 * in-flight requests. Replicas another gateway runs (fleet.c) count as READY
 * for routing and for the target, but only their holder stops them.
 */
#include "config.h"
#include "gateway/scale.h"
#include "gateway/conf.h"
#include "gateway/degrade.h"
#include "gateway/fleet.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/upstream.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

_Static_assert(sizeof(((struct scale_up *)0)->g) / sizeof(struct scale_gauge) == UPSTREAM_MAX_REPLICAS,
	       "one scale_on reading per replica slot");

int scale_in_window(int m, int from, int to)
{
	if (from < 0)
		return 1;
	if (from < to)
		return m >= from && m < to;
	return m >= from || m < to;	/* wraps midnight */
}

int scale_min_warm(const struct upstream *u, double now)
{
	(void)now;
	int n = u->p.min_warm;
	if (u->cf && u->cf->min_warm_from >= 0 && n > 0) {
		time_t t = time(NULL);
		struct tm tm;
		localtime_r(&t, &tm);
		if (!scale_in_window(tm.tm_hour * 60 + tm.tm_min, u->cf->min_warm_from, u->cf->min_warm_to))
			n = 0;
	}
	if (u->cf && u->cf->replicas_min > n)
		n = u->cf->replicas_min;
	return n;
}

void scale_configure(struct upstream *u)
{
	if (!u->cf)
		return;
	int want = u->cf->replicas_max;
	if (want > UPSTREAM_MAX_REPLICAS)
		want = UPSTREAM_MAX_REPLICAS;
	if (want > u->nrep)
		u->nrep = want;	/* never shrinks: replicas above max= are drained by the tick */
}

static int scale_target(const struct upstream *u)
{
	return u->cf ? u->cf->target_concurrency : u->p.max_conns;	/* retired: no conf left */
}

/* A slot that may be started now: down, nothing running, no lock call pending. */
static struct replica *scale_free_slot(struct upstream *u, int max, double now)
{
	struct replica *best = NULL;
	int best_rank = 0;
	for (int i = 0; i < max && i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		int r = rep->lock_pending ? 0 : replica_wake_rank(rep, now);
		if (r && (!best || r < best_rank))
			best = rep, best_rank = r;	/* a sleeping one first: cheaper */
	}
	return best;
}

/* "5s" or "1500ms": how the conf would write a duration. */
static void fmt_ms(char *buf, size_t len, int64_t ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

/*
 * scale_p99: one more replica once the upstream's p99 (rules.c's window)
 * stayed above the threshold for the "for" time. While a replica is on its
 * way up beside a READY one, and for one window after, no decision: the
 * window must refill with latencies of the bigger set.
 */
int scale_p99_due(struct upstream *u, int ready, int coming, int max, double now, char *why, size_t whylen)
{
	const struct conf_upstream *cf = u->cf;
	if (!cf || cf->scale_p99_ms <= 0 || ready < 1) {
		u->p99_high_since = 0;
		return 0;
	}
	if (coming) {
		u->p99_quiet_until = now + DEGRADE_WINDOW_S;
		u->p99_high_since = 0;
		return 0;
	}
	struct degrade_stats st;
	degrade_sig_stats(&u->sig, (int64_t)(now * 1000), &st);
	if (now < u->p99_quiet_until || st.p99_ms <= cf->scale_p99_ms) {
		u->p99_high_since = 0;
		return 0;
	}
	if (u->p99_high_since <= 0)
		u->p99_high_since = now;
	if ((now - u->p99_high_since) * 1000 < (double)cf->scale_p99_for_ms || ready >= max)
		return 0;
	char thr[24], f[24];
	fmt_ms(thr, sizeof(thr), cf->scale_p99_ms);
	fmt_ms(f, sizeof(f), cf->scale_p99_for_ms);
	snprintf(why, whylen, "p99 %lldms > %s for %s, %d ready", (long long)st.p99_ms, thr, f, ready);
	return 1;
}

/* scale_p99 for process replicas: starts one in a free slot. Returns 1 when it started one. */
static int scale_p99(struct upstream *u, int ready, int coming, int max, double now)
{
	char why[160];
	if (!scale_p99_due(u, ready, coming, max, now, why, sizeof(why)))
		return 0;
	struct replica *rep = scale_free_slot(u, max, now);
	if (!rep)
		return 0;	/* still due: the next tick with a free slot starts one */
	log_notice("upstream \"%s\": scale up: %s, starting replica %d", u->name, why, rep->id);
	u->p99_high_since = 0;
	replica_wake(rep, CAUSE_SCALE_UP);
	scale_rule_scaled_up(&u->scale->rule, now);
	return 1;
}

/* scale_on: one more replica once the replicas' mean reading stayed above the threshold (scale_rule.c). */
static int scale_on(struct upstream *u, const struct scale_rule_in *in, double now)
{
	if (!scale_rule_up(&u->scale->rule, in))
		return 0;
	struct replica *rep = scale_free_slot(u, in->max, now);
	if (!rep)
		return 0;
	char f[24];
	fmt_ms(f, sizeof(f), u->cf->scale_on_for_ms);
	log_notice("upstream \"%s\": scale up: %s mean %.3g > %g for %s over %d ready, starting replica %d",
		   u->name, u->cf->scale_on_gauge, in->sum / in->n, in->above, f, in->ready, rep->id);
	replica_wake(rep, CAUSE_SCALE_UP);
	scale_rule_scaled_up(&u->scale->rule, now);
	return 1;
}

/* scale_on's input now: the READY replicas' fresh readings; shows their mean in /metrics. */
static void scale_on_in(struct upstream *u, int ready, int coming, int max, double now, struct scale_rule_in *in)
{
	const struct conf_upstream *cf = u->cf;
	*in = (struct scale_rule_in){ .now = now, .ready = ready, .coming = coming, .max = max,
		.above = cf->scale_on_gauge ? cf->scale_on_above : -1, .for_s = (double)cf->scale_on_for_ms / 1000,
		.cooldown_s = (double)cf->scale_down_cooldown_ms / 1000 };
	if (cf->scale_on_gauge)
		in->n = scale_gauge_sum(u, u->scale, now, &in->sum);
	if (cf->scale_on_gauge || u->scale->shown) {	/* a reload that drops scale_on leaves 0, not the last mean */
		u->scale->shown = 1;
		metrics_set(gw.metrics, "wakegate_scale_on_mean", upstream_label(u, 0), in->n ? in->sum / in->n : 0);
		metrics_set(gw.metrics, "wakegate_scale_on_readings", upstream_label(u, 0), in->n);
	}
}

int scale_on_due(struct upstream *u, int ready, int coming, int max, double now, int *keep)
{
	*keep = 0;
	if (!u->cf || !u->scale)
		return 0;
	struct scale_rule_in in;
	scale_on_in(u, ready, coming, max, now, &in);
	/* the hysteresis: one replica fewer would bring the mean above the threshold again */
	*keep = in.above >= 0 && ready > 1 && !scale_rule_may_drop(&u->scale->rule, &in);
	if (!scale_rule_up(&u->scale->rule, &in))
		return 0;
	char f[24];
	fmt_ms(f, sizeof(f), u->cf->scale_on_for_ms);
	log_notice("upstream \"%s\": scale up: %s mean %.3g > %g for %s over %d ready", u->name,
		   u->cf->scale_on_gauge, in.sum / in.n, in.above, f, in.ready);
	scale_rule_scaled_up(&u->scale->rule, now);
	return 1;
}

json_t *scale_status_json(const struct upstream *u)
{
	json_t *o = json_object();
	const struct conf_upstream *cf = u->cf;
	if (!cf)
		return o;	/* retired: nothing scales it any more */
	double now = gw_now();
	const struct scale_up *s = u->scale;
	json_object_set_new(o, "target_concurrency", json_integer(scale_rule_target(scale_target(u), cf->headroom_pct)));
	json_object_set_new(o, "headroom_pct", json_integer(cf->headroom_pct));
	double left = s && s->rule.scaled_up ? s->rule.last_up + (double)cf->scale_down_cooldown_ms / 1000 - now : 0;
	json_object_set_new(o, "cooldown_seconds", json_real(left > 0 ? left : 0));
	if (!cf->scale_on_gauge)
		return o;
	double sum = 0;
	int n = s ? scale_gauge_sum(u, s, now, &sum) : 0;
	json_t *on = json_object();
	json_object_set_new(on, "gauge", json_string(cf->scale_on_gauge));
	json_object_set_new(on, "above", json_real(cf->scale_on_above));
	json_object_set_new(on, "for_seconds", json_real((double)cf->scale_on_for_ms / 1000));
	json_object_set_new(on, "mean", n ? json_real(sum / n) : json_null());
	json_object_set_new(on, "readings", json_integer(n));
	json_object_set_new(on, "above_seconds", json_real(s && s->rule.high ? now - s->rule.high_since : 0));
	json_object_set_new(o, "scale_on", on);
	return o;
}

void scale_metrics_declare(struct metrics *m)
{
	metrics_declare(m, "wakegate_scale_on_mean", METRICS_GAUGE,
			"scale_on: the mean of the gauge over the READY replicas' fresh readings (upstreams with scale_on).",
			NULL, 0);
	metrics_declare(m, "wakegate_scale_on_readings", METRICS_GAUGE,
			"scale_on: how many READY replicas have a fresh reading.", NULL, 0);
}

void scale_free(struct upstream *u)
{
	if (!u->scale)
		return;
	scale_gauge_free(u->scale);
	free(u->scale);
	u->scale = NULL;
}

/*
 * min_warm (and replicas min=): wake down replicas until that many are up or
 * on their way. An upstream of server lines has its floor at every line
 * (conf_static.c): each is "woken" (its health polled) at start and again
 * after a failure's backoff, with cause server.
 */
static void scale_min_warm_wake(struct upstream *u, double now)
{
	int floor = scale_min_warm(u, now);
	enum replica_cause cause = u->cf->nservers ? CAUSE_SERVER : CAUSE_MIN_WARM;
	struct replica *rep;
	while (upstream_count(u, RS_UP) < floor && (rep = upstream_pick_wake(u, now)) != NULL)
		if (replica_wake(rep, cause) < 0 || replica_wake_rank(rep, now))
			break;	/* it did not move (a pending fleet claim, a failed launch): next tick */
}

void scale_tick(struct upstream *u, double now)
{
	if (!u->cf || gw.stopping)
		return;
	if (!u->scale && !(u->scale = calloc(1, sizeof(*u->scale)))) {
		log_error("upstream \"%s\": out of memory, not scaling", u->name);
		return;
	}
	scale_gauge_tick(u, u->scale, now);
	if (u->cf->launch_service)
		return;	/* pods: the same rules, as the Deployment's count (k8s_scale.c: scale_p99_due, scale_on_due) */
	scale_min_warm_wake(u, now);
	int max = u->cf->replicas_max < u->nrep ? u->cf->replicas_max : u->nrep;
	int ready = 0, coming = 0, load = u->hold.n;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (rep->in_flight)
			rep->busy_at = now;
		load += rep->in_flight;
		if (rep->state == REPLICA_READY) {
			ready++;
			if (rep->busy_at < rep->t_ready)
				rep->busy_at = rep->t_ready;
		} else if (replica_in(rep, RS_COMING) || rep->lock_pending) {
			coming++;	/* lock_pending: fleet.c is asking whether to start it */
		}
	}
	if (scale_p99(u, ready, coming, max, now))
		return;
	const struct conf_upstream *cf = u->cf;
	struct scale_rule_in in;
	scale_on_in(u, ready, coming, max, now, &in);
	if (scale_on(u, &in, now))
		return;
	int target = scale_rule_target(scale_target(u), cf->headroom_pct);
	/* one replica on its way at a time; the first one is the hold queue's business */
	if (ready >= 1 && coming == 0 && ready < max && load > target * ready) {
		struct replica *rep = scale_free_slot(u, max, now);
		if (rep) {
			log_notice("upstream \"%s\": %d requests for %d ready replica%s (target_concurrency %d), "
				   "starting replica %d", u->name, load, ready, ready == 1 ? "" : "s", target, rep->id);
			replica_wake(rep, CAUSE_SCALE_UP);
			scale_rule_scaled_up(&u->scale->rule, now);
		}
		return;
	}
	/* scale down: an extra replica, ours, with nothing in flight for idle_timeout */
	int floor = scale_min_warm(u, now);
	if (floor < 1)
		floor = 1;	/* the last one goes by the idle rule, which asks the other gateways */
	if (ready <= floor || load > target * (ready - 1) || !scale_rule_may_drop(&u->scale->rule, &in))
		return;	/* still needed, in its cooldown, or scale_on would start it again at once */
	struct replica *victim = NULL;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (rep->state != REPLICA_READY || rep->remote || rep->in_flight)
			continue;
		if ((now - rep->busy_at) * 1000 < (double)u->p.idle_timeout_ms)
			continue;
		if (!victim || rep->busy_at < victim->busy_at || (rep->busy_at == victim->busy_at && rep->id > victim->id))
			victim = rep;
	}
	if (victim) {
		char why[160];
		snprintf(why, sizeof(why), "nothing in flight for %.1fs, %d ready", now - victim->busy_at, ready);
		log_notice("upstream \"%s\": replica %d had %s, scaling down", u->name, victim->id, why);
		replica_drain(victim, CAUSE_SCALE_DOWN, why);
	}
}
