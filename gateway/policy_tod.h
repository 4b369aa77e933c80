/*
 * policy_tod: the time-of-day keep-alive of "keepalive adaptive". Pure: no
 * I/O, no clock, no allocation; the gateway (gateway/schedule.c) and
 * wakegate-replay run the same code.
 *
 * A fixed keep-alive spends the same GPU time on every idle gap, at 03:00
 * on a Sunday as at 10:00 on a Tuesday. The plan spends that time where it
 * saves most cold starts instead: from the idle gaps of the last 7 days,
 * counted per hour of the day on weekdays and on weekends (48 slots), it
 * picks one keep-alive per slot so that, had the plan run on those 7 days,
 *
 *   - it would have used no more GPU time than the fixed timer did
 *     (times budget_pct / 100), and
 *   - it would have had as few cold starts as any such choice.
 *
 * That is a knapsack with one constraint; it is solved by its Lagrangian:
 * a price P (GPU time one avoided cold start may cost) makes each slot
 * take the keep-alive with the least "GPU time + P x cold starts", and P
 * is the largest price whose total stays within the budget (bisection).
 * Slots with fewer than POLICY_TOD_MIN_GAPS gaps share one keep-alive.
 *
 * When no choice is within the budget, the cheapest one is used if it
 * is cheaper than the fixed timer (a budget below what stopping at once
 * costs on busy traffic).
 *
 * A plan fitted to the days it is scored on looks better there than it
 * will do next: with the default budget (100%) the plan is used only when,
 * on those days, it has at least POLICY_TOD_MARGIN_PCT percent fewer cold
 * starts than the fixed timer. On memoryless traffic no plan can beat the
 * fixed timer on both counts, and this test keeps the fixed timer there.
 */
#ifndef WG_POLICY_TOD_H
#define WG_POLICY_TOD_H

#include "gateway/policy.h"

#include <stdint.h>

#define POLICY_TOD_SLOTS	48	/* 0-23: hours of Mon-Fri; 24-47: hours of Sat, Sun */
#define POLICY_TOD_DAYS		7	/* days of history a plan is fitted on */
#define POLICY_TOD_MIN_GAPS	20	/* a slot with fewer shares the pooled keep-alive */
#define POLICY_TOD_MARGIN_PCT	20	/* fewer cold starts needed to leave the fixed timer */

struct policy_tod {
	int on;			/* 1: use keepalive_ms[] instead of the fixed timer */
	const char *reason;	/* static string: why it is on or off */
	int64_t keepalive_ms[POLICY_TOD_SLOTS];
	uint32_t gaps[POLICY_TOD_SLOTS];	/* gaps seen per slot */
	uint64_t total;		/* all gaps */
	double up_ms, cold;	/* the plan on the history: worker time, cold starts */
	double fixed_up_ms, fixed_cold;	/* the fixed timer on the same history */
	double price_ms;	/* the price P the plan was solved at */
};

/* The slot of a local time: wday as struct tm's (0 = Sunday), minute of the day. */
int policy_tod_slot(int wday, int minute_of_day);

/*
 * Per-slot gap histograms from per-minute request counts. counts[d * 1440 + m]
 * is the number of requests in minute m of day d, for ndays consecutive
 * local days (day 0 the oldest, its weekday wday0, 0 = Sunday). Only
 * whether a minute had requests counts: a minute a with requests followed
 * by the next such minute b is a gap in bin b - a - 1 (taken at that bin's
 * middle, as every gap) of a's slot. A keep-alive of a minute or more never
 * stops between requests of one minute, so they change nothing it is scored on.
 */
void policy_tod_hists(const uint32_t *counts, int ndays, int wday0,
	struct policy_hist h[POLICY_TOD_SLOTS]);

/* The plan for the gaps in h (see above), with pc's fixed timer, keep-alive
 * bounds, boot time and budget. Always fills out; out->on says whether to use it. */
void policy_tod_plan(const struct policy_conf *pc, const struct policy_hist h[POLICY_TOD_SLOTS],
	struct policy_tod *out);

/* What an adaptive upstream does in an idle period that starts in slot: d
 * (policy_decide()'s) unless d is the fixed fallback and the plan is on;
 * then the plan's keep-alive for slot. */
struct policy_decision policy_tod_apply(const struct policy_tod *t, int slot,
	struct policy_decision d);

#endif
