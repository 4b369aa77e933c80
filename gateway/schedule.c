/*
 * schedule: per-minute request counts in Redis and the time-of-day pre-warm
 * they drive. See schedule.h for exactly what is computed. State is kept by
 * upstream name until schedule_free_all().
 */
#include "config.h"
#include "gateway/schedule.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/keepalive.h"
#include "gateway/log.h"
#include "gateway/policy.h"
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
	struct sched_up *next;
};

static struct sched_up *scheds;

_Static_assert(SCHEDULE_DAYS == POLICY_SCHED_DAYS && SCHEDULE_MIN_DAYS == POLICY_SCHED_MIN_DAYS &&
	       DAY_MIN == POLICY_SCHED_DAY_MIN, "schedule.h and policy.h state the same rule");

static struct sched_up *sched_find(const char *name)
{
	for (struct sched_up *s = scheds; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static struct sched_up *sched_get(const struct upstream *u)
{
	struct sched_up *s = sched_find(u->name);
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(u->name))) {
		free(s);
		return NULL;
	}
	s->table_day = -1;
	s->next = scheds;
	scheds = s;
	return s;
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

/* The minute hash arrived: rebuild the table of the last SCHEDULE_DAYS days, delete old fields. */
static void sched_table_cb(const char *const *fields, const char *const *values, int n, void *arg)
{
	char *name = arg;
	struct sched_up *s = sched_find(name);
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
	for (int i = 0; i < n; i++) {
		char *end;
		long long em = strtoll(fields[i], &end, 10);
		if (*end || end == fields[i])
			continue;
		if (em < now_min - SCHED_KEEP_DAYS * DAY_MIN) {
			store_hdel(gw.store, key, fields[i]);
			continue;
		}
		if (atoll(values[i]) <= 0)
			continue;
		int64_t ago = today - floordiv(em + off, DAY_MIN);
		if (ago >= 1 && ago <= SCHEDULE_DAYS)
			s->days[((em + off) % DAY_MIN + DAY_MIN) % DAY_MIN] |= (unsigned char)(1u << (ago - 1));
	}
	s->busy_n = 0;
	for (int m = 0; m < DAY_MIN; m++)
		s->busy_n += sched_busy(s, m);
	if (!s->loaded || s->table_day != today)
		log_info("upstream \"%s\": prewarm schedule: %d busy minutes of the day from %d minute counts",
			 s->name, s->busy_n, n);
	s->table_day = today;
	s->loaded = 1;
}

void schedule_tick(struct upstream *u)
{
	struct sched_up *s = sched_get(u);
	if (!s)
		return;
	double now = gw_now();
	int64_t now_min = gw_wall_ms() / 60000;
	if (s->n > 0 && (now_min != s->cur_min || now - s->last_flush >= SCHED_FLUSH_S))
		sched_flush(s, now);
	if (!u->cf || !u->cf->prewarm_schedule)
		return;
	int64_t off = local_offset_min(), today = floordiv(now_min + off, DAY_MIN);
	if (!s->refreshing && store_connected(gw.store) &&
	    (!s->loaded || s->table_day != today || now - s->last_refresh >= SCHED_REFRESH_S)) {
		char key[512], *arg = strdup(s->name);
		if (arg) {
			s->refreshing = 1;
			s->last_refresh = now;
			snprintf(key, sizeof(key), "minute:%s", s->name);
			store_hgetall(gw.store, key, sched_table_cb, arg);
		}
	}
	if (!s->loaded || !s->busy_n)
		return;
	/* the first stretch start from a minute ago (a gateway that just came up) to lead minutes ahead */
	int64_t target = 0;
	for (int64_t t = now_min - 1; t <= now_min + sched_lead(u) && !target; t++)
		if (t > s->woken_for && sched_start(s, t + off))
			target = t;
	if (!target)
		return;
	s->woken_for = target;
	int64_t lm = ((target + off) % DAY_MIN + DAY_MIN) % DAY_MIN;
	char why[160];
	snprintf(why, sizeof(why), "schedule: a busy stretch starts at %02d:%02d (requests on %d of the last %d days)",
		 (int)(lm / 60), (int)(lm % 60), __builtin_popcount(s->days[lm]), SCHEDULE_DAYS);
	/* up until idle_timeout after the stretch starts, whatever the keep-alive says */
	if (keepalive_prewarm(u, why, (double)sched_lead(u) * 60 + (double)u->p.idle_timeout_ms / 1000) == 0)
		s->wakes++;
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

void schedule_free_all(void)
{
	while (scheds) {
		struct sched_up *s = scheds;
		scheds = s->next;
		free(s->name);
		free(s);
	}
}
