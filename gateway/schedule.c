/*
 * schedule: per-minute request counts in Redis, the time-of-day pre-warm
 * and the time-of-day keep-alive plan they drive. See schedule.h for
 * exactly what is computed. State is kept in the upstream (u->sched)
 * until schedule_free().
 */
#include "config.h"
#include "gateway/schedule.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/policy.h"
#include "gateway/policy_tod.h"
#include "gateway/store.h"
#include "gateway/upstream.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_MIN 1440
#define SCHED_FLUSH_S 5		/* counts of the current minute go to Redis this often */
#define SCHED_REFRESH_S 600	/* the busy table is read again this often */
#define SCHED_KEEP_DAYS 8	/* older minute fields are deleted */

struct sched_up {
	char *name;
	int replanned;		/* a new plan came: the keep-alive decides again (schedule_replanned) */
	int64_t cur_min;	/* epoch minute being counted */
	long long n;		/* requests in cur_min not yet written */
	double last_flush;
	double last_refresh;
	int refreshing;		/* an HGETALL is in flight */
	int loaded;		/* the table was read once */
	int64_t table_day;	/* the local day the table is for */
	unsigned char days[DAY_MIN];	/* bit k: requests in this minute of day, k+1 days ago */
	int busy_n;
	int64_t woken_for;	/* epoch minute of the last stretch start woken for */
	unsigned long wakes;
	const struct conf_upstream *cf_seen;	/* the conf of the last read: a reload reads again */
	int tod_loaded;		/* tod holds a plan */
	struct policy_tod tod;	/* the time-of-day plan of the last read */
	int tod_logged_on;	/* the plan last logged: on, off, or -1 (none yet) */
	const char *tod_logged_reason;
};

/* Scratch for the plan, used only inside sched_table_cb (one loop, one call at a time). */
static uint32_t tod_counts[POLICY_TOD_DAYS * DAY_MIN];
static struct policy_hist tod_hists[POLICY_TOD_SLOTS];

_Static_assert(SCHEDULE_DAYS == POLICY_SCHED_DAYS && SCHEDULE_MIN_DAYS == POLICY_SCHED_MIN_DAYS &&
	       DAY_MIN == POLICY_SCHED_DAY_MIN, "schedule.h and policy.h state the same rule");
_Static_assert(POLICY_TOD_DAYS <= SCHEDULE_DAYS, "the plan's days are within those read");

/* u's state, made on first use and kept in u (NULL: out of memory). */
static struct sched_up *sched_get(const struct upstream *cu)
{
	struct upstream *u = (struct upstream *)cu;	/* the module's own part of it */
	if (u->sched)
		return u->sched;
	struct sched_up *s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(u->name))) {
		free(s);
		return NULL;
	}
	s->table_day = -1;
	s->tod_logged_on = -1;
	u->sched = s;
	return s;
}

void schedule_policy_conf(const struct upstream *u, struct policy_conf *pc)
{
	policy_conf_default(pc);
	pc->kind = u->cf && u->cf->keepalive_adaptive ? POLICY_ADAPTIVE : POLICY_FIXED;
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
	pc->boot_ms = u->boot_s > 0 ? (int64_t)((u->boot_s + u->warm_s) * 1000) : SCHEDULE_DEFAULT_BOOT_MS;
}

int schedule_replanned(const struct upstream *u)
{
	struct sched_up *s = u->sched;
	if (!s || !s->replanned)
		return 0;
	s->replanned = 0;
	return 1;
}

/* Minutes to add to a UTC epoch minute for the gateway's local time, now. */
static int64_t local_offset_min(void)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	return (int64_t)tm.tm_gmtoff / 60;
}

static int64_t floordiv(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* "keepalive adaptive" with tod=on: it needs the plan. */
static int sched_tod_wanted(const struct upstream *u)
{
	return u->cf && u->cf->keepalive_adaptive && u->cf->keepalive_tod;
}

/* Whether u's minute counts are read back: for the pre-warm, or for the plan. */
static int sched_wanted(const struct upstream *u)
{
	return u->cf && (u->cf->prewarm_schedule || sched_tod_wanted(u));
}

/* The rule itself is policy_sched_busy(), shared with wakegate-replay. */
static int sched_busy(const struct sched_up *s, int64_t m)
{
	return policy_sched_busy(s->days, m);
}

/* A busy minute whose previous minute is not. */
static int sched_start(const struct sched_up *s, int64_t m)
{
	return sched_busy(s, m) && !sched_busy(s, m - 1);
}

/* Whole minutes a wake must come ahead: boot + warmup, rounded up, at least 1. */
static int sched_lead(const struct upstream *u)
{
	return policy_sched_lead_min(u->boot_s > 0 ? (int64_t)((u->boot_s + u->warm_s) * 1000) : 0);
}

static void sched_flush(struct sched_up *s, double now)
{
	if (s->n > 0) {
		char key[512], field[32];
		snprintf(key, sizeof(key), "minute:%s", s->name);
		snprintf(field, sizeof(field), "%lld", (long long)s->cur_min);
		store_hincrby(gw.store, key, field, s->n);	/* dropped while Redis is away */
	}
	s->n = 0;
	s->last_flush = now;
}

void schedule_count(const struct upstream *u)
{
	struct sched_up *s = sched_get(u);
	if (!s)
		return;
	int64_t m = gw_wall_ms() / 60000;
	if (m != s->cur_min) {
		sched_flush(s, gw_now());
		s->cur_min = m;
	}
	s->n++;
}

/* The plan from tod_counts (the 7 days before today, oldest first); logged
 * when it turns on or off or its reason changes; the keep-alive decides again. */
static void sched_plan(struct sched_up *s, const struct upstream *u, int64_t today)
{
	struct policy_conf pc;
	int64_t day0 = today - POLICY_TOD_DAYS;

	schedule_policy_conf(u, &pc);
	/* local day 0, 1970-01-01, was a Thursday (tm_wday 4) */
	policy_tod_hists(tod_counts, POLICY_TOD_DAYS, (int)(((day0 + 4) % 7 + 7) % 7), tod_hists);
	policy_tod_plan(&pc, tod_hists, &s->tod);
	s->tod_loaded = 1;
	if (s->tod.on != s->tod_logged_on || !s->tod_logged_reason || strcmp(s->tod.reason, s->tod_logged_reason) != 0) {
		if (s->tod.on)
			log_notice("upstream \"%s\": keepalive adaptive: time-of-day plan on (%.0f cold starts instead "
				   "of %.0f on the last %d days, %.1f GPU hours instead of %.1f; %s)", s->name,
				   s->tod.cold, s->tod.fixed_cold, POLICY_TOD_DAYS, s->tod.up_ms / 3600000,
				   s->tod.fixed_up_ms / 3600000, s->tod.reason);
		else
			log_notice("upstream \"%s\": keepalive adaptive: time-of-day plan off (%s)", s->name, s->tod.reason);
		s->tod_logged_on = s->tod.on;
		s->tod_logged_reason = s->tod.reason;
	}
	s->replanned = 1;
}

/* The minute hash arrived: rebuild the table of the last SCHEDULE_DAYS days
 * and the counts of the plan, delete old fields. */
static void sched_table_cb(const char *const *fields, const char *const *values, int n, void *arg)
{
	char *name = arg;
	struct upstream *u = upstream_find(name);	/* by name: a reload may have freed the one that asked */
	struct sched_up *s = u ? u->sched : NULL;
	free(name);
	if (!s)
		return;
	s->refreshing = 0;
	if (!fields && !store_connected(gw.store))
		return;		/* not read: try again later */
	int64_t off = local_offset_min(), now_min = gw_wall_ms() / 60000;
	int64_t today = floordiv(now_min + off, DAY_MIN);
	char key[512];
	snprintf(key, sizeof(key), "minute:%s", s->name);
	memset(s->days, 0, sizeof(s->days));
	memset(tod_counts, 0, sizeof(tod_counts));
	for (int i = 0; i < n; i++) {
		char *end;
		long long em = strtoll(fields[i], &end, 10);
		if (*end || end == fields[i])
			continue;
		if (em < now_min - SCHED_KEEP_DAYS * DAY_MIN) {
			store_hdel(gw.store, key, fields[i]);
			continue;
		}
		long long c = atoll(values[i]);
		if (c <= 0)
			continue;
		int64_t ago = today - floordiv(em + off, DAY_MIN), mod = ((em + off) % DAY_MIN + DAY_MIN) % DAY_MIN;
		if (ago >= 1 && ago <= SCHEDULE_DAYS)
			s->days[mod] |= (unsigned char)(1u << (ago - 1));
		if (ago >= 1 && ago <= POLICY_TOD_DAYS) {
			uint32_t *t = &tod_counts[(POLICY_TOD_DAYS - ago) * DAY_MIN + mod];
			*t = (unsigned long long)c >= UINT32_MAX - *t ? UINT32_MAX : *t + (uint32_t)c;
		}
	}
	s->busy_n = 0;
	for (int m = 0; m < DAY_MIN; m++)
		s->busy_n += sched_busy(s, m);
	if ((!s->loaded || s->table_day != today) && u && u->cf && u->cf->prewarm_schedule)
		log_info("upstream \"%s\": prewarm schedule: %d busy minutes of the day from %d minute counts",
			 s->name, s->busy_n, n);
	s->table_day = today;
	s->loaded = 1;
	if (u && sched_tod_wanted(u))
		sched_plan(s, u, today);
	else
		s->tod_loaded = 0;
}

int schedule_tick(struct upstream *u, char *why, size_t whylen, double *hold_s)
{
	struct sched_up *s = sched_get(u);
	if (!s)
		return 0;
	double now = gw_now();
	int64_t now_min = gw_wall_ms() / 60000;
	if (s->n > 0 && (now_min != s->cur_min || now - s->last_flush >= SCHED_FLUSH_S))
		sched_flush(s, now);
	if (!sched_wanted(u))
		return 0;
	int64_t off = local_offset_min(), today = floordiv(now_min + off, DAY_MIN);
	if (!s->refreshing && store_connected(gw.store) && (!s->loaded || s->table_day != today ||
	    s->cf_seen != u->cf || now - s->last_refresh >= SCHED_REFRESH_S)) {
		char key[512], *arg = strdup(s->name);
		if (arg) {
			s->refreshing = 1;
			s->last_refresh = now;
			s->cf_seen = u->cf;
			snprintf(key, sizeof(key), "minute:%s", s->name);
			store_hgetall(gw.store, key, sched_table_cb, arg);
		}
	}
	if (!u->cf->prewarm_schedule || !s->loaded || !s->busy_n)
		return 0;
	/* the first stretch start from a minute ago (a gateway that just came up) to lead minutes ahead */
	int64_t target = 0;
	for (int64_t t = now_min - 1; t <= now_min + sched_lead(u) && !target; t++)
		if (t > s->woken_for && sched_start(s, t + off))
			target = t;
	if (!target)
		return 0;
	s->woken_for = target;
	int64_t lm = ((target + off) % DAY_MIN + DAY_MIN) % DAY_MIN;
	snprintf(why, whylen, "schedule: a busy stretch starts at %02d:%02d (requests on %d of the last %d days)",
		 (int)(lm / 60), (int)(lm % 60), __builtin_popcount(s->days[lm]), SCHEDULE_DAYS);
	/* up until idle_timeout after the stretch starts, whatever the keep-alive says */
	*hold_s = (double)sched_lead(u) * 60 + (double)u->p.idle_timeout_ms / 1000;
	return 1;
}

void schedule_woke(const struct upstream *u)
{
	if (u->sched)
		u->sched->wakes++;
}

json_t *schedule_status_json(const struct upstream *u)
{
	if (!u->cf || !u->cf->prewarm_schedule)
		return NULL;
	struct sched_up *s = sched_get(u);
	json_t *o = json_object();
	if (!s)
		return o;
	json_object_set_new(o, "loaded", json_boolean(s->loaded));
	json_object_set_new(o, "busy_minutes", json_integer(s->busy_n));
	json_object_set_new(o, "lead_minutes", json_integer(sched_lead(u)));
	json_object_set_new(o, "wakes", json_integer((json_int_t)s->wakes));
	int64_t lm = (gw_wall_ms() / 60000 + local_offset_min()) % DAY_MIN;
	json_t *next = json_null();
	for (int i = 1; s->busy_n && i <= DAY_MIN; i++)
		if (sched_start(s, lm + i)) {
			int m = (int)((lm + i) % DAY_MIN);
			char hm[8];
			snprintf(hm, sizeof(hm), "%02d:%02d", m / 60, m % 60);
			next = json_string(hm);
			break;
		}
	json_object_set_new(o, "next_busy_start", next);
	return o;
}

const struct policy_tod *schedule_tod(const struct upstream *u)
{
	const struct sched_up *s = sched_tod_wanted(u) ? u->sched : NULL;
	return s && s->tod_loaded ? &s->tod : NULL;
}

int schedule_tod_slot(void)
{
	time_t t = (time_t)(gw_wall_ms() / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	return policy_tod_slot(tm.tm_wday, tm.tm_hour * 60 + tm.tm_min);
}

/* {"weekdays": [24 values], "weekends": [24 values]} of a per-slot table. */
static json_t *tod_halves(const struct policy_tod *t, int keepalive)
{
	json_t *o = json_object();
	for (int half = 0; half < 2; half++) {
		json_t *a = json_array();
		for (int h = 0; h < 24; h++) {
			int slot = half * 24 + h;
			json_array_append_new(a, keepalive ? json_real((double)t->keepalive_ms[slot] / 1000)
							   : json_integer(t->gaps[slot]));
		}
		json_object_set_new(o, half ? "weekends" : "weekdays", a);
	}
	return o;
}

json_t *schedule_tod_json(const struct upstream *u)
{
	if (!u->cf || !u->cf->keepalive_adaptive)
		return NULL;
	const struct policy_tod *t = schedule_tod(u);
	const char *why = t ? t->reason
		: !u->cf->keepalive_tod ? "time of day: off in the conf (tod=off)"
		: !gw.conf || !gw.conf->redis_host ? "time of day: no redis (the minute counts are kept there)"
		: "time of day: the minute counts are not read yet";
	json_t *o = json_object();
	json_object_set_new(o, "on", json_boolean(t && t->on));
	json_object_set_new(o, "reason", json_string(why));
	json_object_set_new(o, "budget_pct", json_real(u->cf->keepalive_budget_pct));
	json_object_set_new(o, "slot", json_integer(schedule_tod_slot()));
	if (!t)
		return o;
	json_object_set_new(o, "price_seconds", json_real(t->price_ms / 1000));
	json_object_set_new(o, "cold_starts_7d", json_real(t->cold));
	json_object_set_new(o, "fixed_cold_starts_7d", json_real(t->fixed_cold));
	json_object_set_new(o, "gpu_seconds_7d", json_real(t->up_ms / 1000));
	json_object_set_new(o, "fixed_gpu_seconds_7d", json_real(t->fixed_up_ms / 1000));
	json_object_set_new(o, "gaps", json_integer((json_int_t)t->total));
	json_object_set_new(o, "gaps_by_hour", tod_halves(t, 0));
	json_object_set_new(o, "keepalive_seconds", tod_halves(t, 1));
	return o;
}

void schedule_free(struct upstream *u)
{
	if (!u->sched)
		return;
	free(u->sched->name);
	free(u->sched);
	u->sched = NULL;
}
