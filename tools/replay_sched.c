/*
 * replay_sched: runs the gateway's time-of-day pre-warm rule (the pure part
 * is in gateway/policy.c) minute by minute over a trace. All memory is
 * local to one call except the returned wake array, which the caller owns.
 */
#include "tools/replay_sched.h"
#include "gateway/policy.h"

#include <stdlib.h>
#include <string.h>

#define MIN_MS 60000
#define DAY_MIN POLICY_SCHED_DAY_MIN
#define MAX_DAYS 36600		/* a century of days: more is not a trace */

static int64_t floordiv(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Appends w to the growing array *v; -1 when out of memory. */
static int push(int64_t **v, long *n, long *cap, int64_t w)
{
	if (*n == *cap) {
		long c = *cap ? *cap * 2 : 64;
		int64_t *p = realloc(*v, (size_t)c * sizeof(*p));
		if (!p)
			return -1;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = w;
	return 0;
}

/* The table the gateway reads at the start of day d: bit k of minute m is
 * set when m had a request on day d-k-1 (had[] is indexed from day 0). */
static void table_for(uint8_t days[DAY_MIN], const uint8_t *had, int64_t d)
{
	memset(days, 0, DAY_MIN);
	for (int k = 0; k < POLICY_SCHED_DAYS; k++) {
		int64_t past = d - k - 1;
		if (past < 0)
			break;
		for (int m = 0; m < DAY_MIN; m++)
			if (had[past * DAY_MIN + m])
				days[m] |= (uint8_t)(1u << k);
	}
}

long replay_sched_wakes(const struct trace_req *q, size_t n, int64_t start_ms, int64_t end_ms,
	int64_t boot_ms, int64_t **out)
{
	int64_t d0 = floordiv(start_ms, (int64_t)DAY_MIN * MIN_MS);
	int64_t nd = floordiv(end_ms, (int64_t)DAY_MIN * MIN_MS) - d0 + 1;
	int64_t first = floordiv(start_ms, MIN_MS), last = floordiv(end_ms, MIN_MS);
	int64_t woken_for = INT64_MIN, table_day = -1;
	int lead = policy_sched_lead_min(boot_ms), busy_n = 0;
	uint8_t days[DAY_MIN], *had;
	long nw = 0, cap = 0;

	*out = NULL;
	/* a minute is busy on 4 of 7 past days: nothing is before day 5 */
	if (nd <= POLICY_SCHED_MIN_DAYS || nd > MAX_DAYS)
		return 0;
	had = calloc((size_t)nd * DAY_MIN, 1);
	if (!had)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int64_t m = floordiv(q[i].t_ms, MIN_MS) - d0 * DAY_MIN;
		if (m >= 0 && m < nd * DAY_MIN)
			had[m] = 1;
	}
	/* the gateway's once-a-second tick, at the first second of each minute */
	for (int64_t now = first; now <= last; now++) {
		int64_t d = floordiv(now, DAY_MIN) - d0, w = now * MIN_MS;
		if (d != table_day) {
			table_for(days, had, d);
			table_day = d;
			busy_n = 0;
			for (int m = 0; m < DAY_MIN; m++)
				busy_n += policy_sched_busy(days, m);
		}
		if (!busy_n)
			continue;
		if (w < start_ms)
			w = start_ms;
		/* the first stretch start from a minute ago to lead minutes ahead */
		for (int64_t t = now - 1; t <= now + lead; t++) {
			if (t > woken_for && policy_sched_start(days, t)) {
				woken_for = t;
				if (push(out, &nw, &cap, w) < 0) {
					free(had);
					free(*out);
					*out = NULL;
					return -1;
				}
				break;
			}
		}
	}
	free(had);
	return nw;
}

int replay_tod_init(struct replay_tod *t, const struct policy_conf *pc, const struct trace_req *q,
	size_t n, int wday0)
{
	int64_t last;

	memset(t, 0, sizeof(*t));
	t->pc = pc;
	t->wday0 = wday0;
	t->day = INT64_MIN;
	if (!n)
		return 0;
	t->d0 = floordiv(q[0].t_ms, (int64_t)DAY_MIN * MIN_MS);
	last = floordiv(q[n - 1].t_ms, (int64_t)DAY_MIN * MIN_MS);
	t->nd = last - t->d0 + 1;
	if (t->nd > MAX_DAYS)
		return -1;
	t->counts = calloc((size_t)t->nd * DAY_MIN, sizeof(*t->counts));
	if (!t->counts)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int64_t m = floordiv(q[i].t_ms, MIN_MS) - t->d0 * DAY_MIN;

		if (m >= 0 && m < t->nd * DAY_MIN && t->counts[m] < UINT32_MAX)
			t->counts[m]++;
	}
	return 0;
}

void replay_tod_free(struct replay_tod *t)
{
	free(t->counts);
	t->counts = NULL;
}

struct policy_decision replay_tod_decide(struct replay_tod *t, struct policy_decision d, int64_t idle_ms)
{
	struct policy_hist h[POLICY_TOD_SLOTS];
	int64_t day = floordiv(idle_ms, (int64_t)DAY_MIN * MIN_MS), from, minute;
	int wday;

	if (!t->counts || !d.fallback || t->pc->kind != POLICY_ADAPTIVE || !t->pc->tod)
		return d;
	if (day != t->day) {
		/* the whole days before this one, at most 7, that the trace has */
		from = day - POLICY_TOD_DAYS;
		if (from < t->d0)
			from = t->d0;
		if (day <= from || from - t->d0 >= t->nd) {
			memset(&t->plan, 0, sizeof(t->plan));
		} else {
			int64_t to = day < t->d0 + t->nd ? day : t->d0 + t->nd;

			policy_tod_hists(t->counts + (from - t->d0) * DAY_MIN, (int)(to - from),
				(int)(((t->wday0 + from) % 7 + 7) % 7), h);
			policy_tod_plan(t->pc, h, &t->plan);
		}
		t->day = day;
	}
	wday = (int)(((t->wday0 + day) % 7 + 7) % 7);
	minute = floordiv(idle_ms, MIN_MS) - day * DAY_MIN;
	return policy_tod_apply(&t->plan, policy_tod_slot(wday, (int)minute), d);
}
