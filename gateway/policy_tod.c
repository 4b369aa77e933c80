/*
 * policy_tod: the per-slot gap histograms and the budgeted keep-alive plan.
 * See policy_tod.h for what is computed and why.
 */
#include "gateway/policy_tod.h"

#include <string.h>

#define DAY_MIN		1440
#define BISECT_STEPS	64
#define NO_PRICE	1e15	/* a price above any GPU time a plan can cost, ms */

/* The keep-alives a slot may take: these, within the policy's min..max,
 * and the fixed timer itself. Minutes. Never less than a minute: requests
 * in one minute are one in the counts, so a shorter keep-alive could not
 * be scored. */
static const int ladder_min[] = { 1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240 };
#define MAX_CANDS	((int)(sizeof(ladder_min) / sizeof(ladder_min[0])) + 1)
#define MAX_GROUPS	(POLICY_TOD_SLOTS + 1)

int policy_tod_slot(int wday, int minute_of_day)
{
	int hour = ((minute_of_day % DAY_MIN) + DAY_MIN) % DAY_MIN / 60;

	return (wday == 0 || wday == 6 ? 24 : 0) + hour;
}

void policy_tod_hists(const uint32_t *counts, int ndays, int wday0, struct policy_hist h[POLICY_TOD_SLOTS])
{
	int64_t prev = -1;
	int prev_slot = 0;

	for (int s = 0; s < POLICY_TOD_SLOTS; s++)
		policy_hist_init(&h[s]);
	for (int64_t i = 0; i < (int64_t)ndays * DAY_MIN; i++) {
		uint32_t c = counts[i];
		int slot;

		if (!c)
			continue;
		slot = policy_tod_slot((int)((wday0 + i / DAY_MIN) % 7), (int)(i % DAY_MIN));
		if (prev >= 0)
			policy_observe_gap(&h[prev_slot], (i - prev - 1) * POLICY_BIN_MS + POLICY_BIN_MS / 2);
		prev = i;
		prev_slot = slot;
	}
}

/* to += from, bin by bin (the pooled slots); counts saturate rather than wrap. */
static void hist_add(struct policy_hist *to, const struct policy_hist *from)
{
	for (int i = 0; i <= POLICY_BINS; i++) {
		uint32_t *t = i < POLICY_BINS ? &to->bin[i] : &to->overflow;
		uint32_t f = i < POLICY_BINS ? from->bin[i] : from->overflow;

		*t = *t > UINT32_MAX - f ? UINT32_MAX : *t + f;
	}
	to->total += from->total;
}

/* One group of slots (one slot, or the pooled ones): each candidate's
 * total worker time and cold starts on its gaps. */
struct group {
	double up[MAX_CANDS], cold[MAX_CANDS];
	int pick;
};

/* Each group's best candidate at price p; the totals. */
static void solve(struct group *g, int ng, int nc, double p, double *up, double *cold)
{
	*up = *cold = 0;
	for (int j = 0; j < ng; j++) {
		int best = 0;

		for (int c = 1; c < nc; c++) {
			double v = g[j].up[c] + p * g[j].cold[c], bv = g[j].up[best] + p * g[j].cold[best];

			/* ties: fewer cold starts */
			if (v < bv || (v == bv && g[j].cold[c] < g[j].cold[best]))
				best = c;
		}
		g[j].pick = best;
		*up += g[j].up[best];
		*cold += g[j].cold[best];
	}
}

void policy_tod_plan(const struct policy_conf *pc, const struct policy_hist h[POLICY_TOD_SLOTS],
	struct policy_tod *out)
{
	struct group g[MAX_GROUPS];
	const struct policy_hist *gh[MAX_GROUPS];
	int64_t cand[MAX_CANDS];
	int group_of[POLICY_TOD_SLOTS], ng = 0, nc = 0, fixed_c = -1;
	struct policy_hist pool;
	double budget, up, cold, lo = 0, hi = NO_PRICE;

	memset(out, 0, sizeof(*out));
	for (int s = 0; s < POLICY_TOD_SLOTS; s++) {
		out->keepalive_ms[s] = pc->fixed_ms;
		out->gaps[s] = (uint32_t)(h[s].total > UINT32_MAX ? UINT32_MAX : h[s].total);
		out->total += h[s].total;
	}
	out->reason = "fixed";
	if (pc->kind != POLICY_ADAPTIVE || !pc->tod)
		return;

	/* the candidates: the ladder within min..max, the fixed timer */
	for (size_t i = 0; i < sizeof(ladder_min) / sizeof(ladder_min[0]); i++) {
		int64_t ms = (int64_t)ladder_min[i] * 60000;

		if (ms >= pc->min_ms && ms <= pc->max_ms && ms != pc->fixed_ms)
			cand[nc++] = ms;
	}
	fixed_c = nc;
	cand[nc++] = pc->fixed_ms;

	/* the groups: each slot with enough gaps, then the rest pooled */
	policy_hist_init(&pool);
	for (int s = 0; s < POLICY_TOD_SLOTS; s++) {
		if (h[s].total >= POLICY_TOD_MIN_GAPS) {
			group_of[s] = ng;
			gh[ng++] = &h[s];
		} else {
			group_of[s] = -1;
			hist_add(&pool, &h[s]);
		}
	}
	for (int s = 0; s < POLICY_TOD_SLOTS; s++)
		if (group_of[s] < 0)
			group_of[s] = ng;
	if (pool.total)
		gh[ng++] = &pool;
	out->reason = "time of day: too few gaps in the last 7 days";
	if (out->total < POLICY_TOD_MIN_GAPS)
		return;
	for (int j = 0; j < ng; j++) {
		for (int c = 0; c < nc; c++) {
			struct policy_decision d = { cand[c], 0, 0, NULL, 0, 0, 0 };

			policy_expect(pc, gh[j], &d);
			g[j].up[c] = d.exp_up_ms * (double)gh[j]->total;
			g[j].cold[c] = d.exp_cold * (double)gh[j]->total;
		}
	}

	/* the fixed timer on the same gaps, and the budget */
	out->fixed_up_ms = out->fixed_cold = 0;
	for (int j = 0; j < ng; j++) {
		out->fixed_up_ms += g[j].up[fixed_c];
		out->fixed_cold += g[j].cold[fixed_c];
	}
	budget = out->fixed_up_ms * pc->budget_pct / 100.0;

	/* the largest price whose plan stays within the budget */
	solve(g, ng, nc, hi, &up, &cold);
	if (up > budget) {
		for (int i = 0; i < BISECT_STEPS; i++) {
			double mid = (lo + hi) / 2;

			solve(g, ng, nc, mid, &up, &cold);
			if (up <= budget)
				lo = mid;
			else
				hi = mid;
		}
		hi = lo;
	}
	solve(g, ng, nc, hi, &up, &cold);
	out->price_ms = hi;
	out->up_ms = up;
	out->cold = cold;
	/* a slot with no gaps of its own takes the pooled keep-alive, or the fixed timer when no pool */
	for (int s = 0; s < POLICY_TOD_SLOTS; s++)
		out->keepalive_ms[s] = group_of[s] < ng ? cand[g[group_of[s]].pick] : pc->fixed_ms;

	if (up > budget) {
		/* no choice is within the budget: the cheapest there is, when it is cheaper than fixed */
		out->reason = "time of day: over the budget";
		if (up >= out->fixed_up_ms)
			return;
		out->on = 1;
		out->reason = "time of day (cheapest; the budget is out of reach)";
		return;
	}
	if (pc->budget_pct >= 100) {
		out->reason = "time of day: not enough fewer cold starts than fixed";
		if (cold > out->fixed_cold * (100 - POLICY_TOD_MARGIN_PCT) / 100.0 || out->fixed_cold <= 0)
			return;
	}
	out->on = 1;
	out->reason = "time of day";
}

struct policy_decision policy_tod_apply(const struct policy_tod *t, int slot, struct policy_decision d)
{
	if (!t || !t->on || !d.fallback || slot < 0 || slot >= POLICY_TOD_SLOTS)
		return d;
	d.keepalive_ms = t->keepalive_ms[slot];
	d.prewarm_ms = d.until_ms = 0;
	d.reason = t->reason;
	d.fallback = 0;
	return d;
}
