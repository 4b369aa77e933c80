/*
 * policy: when to stop an idle worker, and whether to wake it again before
 * the next request is due. It follows "Serverless in the Wild" (Shahrad et
 * al., USENIX ATC 2020): a per-upstream histogram of idle gaps (end of the
 * last request to the arrival of the next), a keep-alive at a high
 * percentile of the gaps, and a pre-warm at a low percentile when the gaps
 * are regular. Pure: no I/O, no clock, no allocation. Times are
 * milliseconds passed in by the caller (the gateway, or wakegate-replay).
 *
 * A decision is a schedule that starts when the worker goes idle (the end
 * of its last request), at offset 0:
 *
 *   [0, keepalive_ms]          the worker stays up; then it stops.
 *   prewarm_ms > 0:            it is started again at prewarm_ms (booting
 *                              from there) and stops at until_ms if still
 *                              no request has come.
 *
 * A request that comes while the worker is stopped (or booting) waits for
 * a boot: a cold start. The schedule restarts at the end of every request.
 */
#ifndef WG_POLICY_H
#define WG_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define POLICY_BIN_MS		60000	/* one-minute bins */
#define POLICY_BINS		240	/* up to 4 hours; longer gaps count as overflow */
#define POLICY_HIST_STRMAX	4096	/* policy_hist_format() never needs more */

/* Idle gaps seen so far. Bounded: when a count would pass 2^31 every
 * count is halved, so old history fades and nothing overflows. */
struct policy_hist {
	uint32_t bin[POLICY_BINS];	/* bin[i]: gaps in [i, i+1) minutes */
	uint32_t overflow;		/* gaps of 4 hours or more */
	uint64_t total;			/* sum of bin[] and overflow */
};

enum policy_kind { POLICY_FIXED, POLICY_ADAPTIVE };

struct policy_conf {
	enum policy_kind kind;
	int64_t fixed_ms;	/* the fixed keep-alive, and the adaptive fallback (5m) */
	int64_t min_ms;		/* adaptive keep-alive bounds (1m .. 1h) */
	int64_t max_ms;
	int64_t boot_ms;	/* boot + warmup time of a worker (30s) */
	double percentile;	/* tail percentile of gaps (99) */
	double prewarm_percentile;	/* head percentile of gaps (5) */
	uint32_t min_samples;	/* fewer gaps: fall back to fixed (10) */
	double margin_pct;	/* safety margin, percent of the time it widens (10) */
	int64_t margin_max_ms;	/* ... but never more than this (1m) */
	double max_overflow_pct;	/* more gaps beyond 4h than this: fall back (20) */
	int guard;		/* 1: a candidate must beat fixed on the histogram (1) */
	int tod;		/* 1: the time-of-day plan of policy_tod.h replaces the fixed fallback (1) */
	double budget_pct;	/* the plan's GPU time, percent of the fixed timer's (100) */
};

struct policy_decision {
	int64_t keepalive_ms;
	int64_t prewarm_ms;	/* 0: no pre-warm */
	int64_t until_ms;	/* with a pre-warm: when the pre-warmed worker stops */
	const char *reason;	/* a static string, for logs */
	double exp_up_ms;	/* on the histogram: expected worker time per gap */
	double exp_cold;	/* ... and expected cold starts per gap */
	int fallback;		/* 1: the fixed timer, for want of anything better */
};

/* Defaults as documented above; kind is ADAPTIVE. */
void policy_conf_default(struct policy_conf *pc);

/* Parses "fixed:5m", "fixed" (5m), "adaptive" or "adaptive:KEY=VAL,..."
 * (keys: percentile, prewarm, samples, margin, margin-max, min, max,
 * overflow, fixed, guard=on|off, tod=on|off, budget=PERCENT) into pc, which should hold defaults first. Returns 0, or
 * -1 with *err set to a static message. */
int policy_conf_parse(struct policy_conf *pc, const char *spec, const char **err);

/* "250ms", "30s", "5m", "1h", "2d", a bare number is seconds; fractions ok.
 * Returns 0, or -1 when s is not a time. */
int policy_parse_ms(const char *s, int64_t *ms);

void policy_hist_init(struct policy_hist *h);
void policy_observe_gap(struct policy_hist *h, int64_t gap_ms);

/* Writes h as a compact string ("v1 o3 0:512 1:20 30:7": overflow, then
 * the non-empty bins) into buf like snprintf: returns the length it needs,
 * which is always below POLICY_HIST_STRMAX. */
size_t policy_hist_format(const struct policy_hist *h, char *buf, size_t len);

/* Reads what policy_hist_format() wrote. Returns 0, or -1 (h untouched)
 * when s is not such a string. */
int policy_hist_parse(struct policy_hist *h, const char *s);

/* Sets d->exp_up_ms and d->exp_cold: d's worker time and cold starts per
 * gap had it been applied to every gap in h (each taken at its bin's
 * middle, an overflow gap as endless; a boot is billed time). */
void policy_expect(const struct policy_conf *pc, const struct policy_hist *h,
	struct policy_decision *d);

/* The schedule for the next idle period, from the gaps seen so far. */
struct policy_decision policy_decide(const struct policy_conf *pc, const struct policy_hist *h);

/* The time-of-day rule of "prewarm schedule" (gateway/schedule.c), pure so
 * that wakegate-replay runs the same one. days[m] holds, for minute m of
 * the day, bit k set when that minute had a request k+1 whole days ago
 * (k < POLICY_SCHED_DAYS). A minute is busy when at least
 * POLICY_SCHED_MIN_DAYS bits are set; a busy stretch starts at a busy
 * minute whose previous minute (wrapping at midnight) is not busy. */
#define POLICY_SCHED_DAY_MIN	1440
#define POLICY_SCHED_DAYS	7
#define POLICY_SCHED_MIN_DAYS	4

int policy_sched_busy(const uint8_t days[POLICY_SCHED_DAY_MIN], int64_t minute);
int policy_sched_start(const uint8_t days[POLICY_SCHED_DAY_MIN], int64_t minute);
/* Whole minutes a wake comes ahead of a stretch: boot + warmup rounded up, at least 1. */
int policy_sched_lead_min(int64_t boot_ms);

#endif
