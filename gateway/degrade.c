/*
 * degrade: degradation rules and the per-upstream signals they read.
 * See degrade.h for what is computed; everything here is arithmetic on
 * caller-owned structs.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "gateway/degrade.h"

#define HIST_MAX_MS	((INT64_C(1) << 25) - 1)

/* An empty window: every bucket marked as counting no second. */
void degrade_sig_init(struct degrade_sig *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < DEGRADE_WINDOW_S; i++)
		s->b[i].sec = -1;
}

/* Exact below 16 ms, then 8 buckets a power of two (HDR-style); capped at 2^25 ms. */
int degrade_hist_index(int64_t ms)
{
	int e = 0;

	if (ms < 0)
		ms = 0;
	if (ms > HIST_MAX_MS)
		ms = HIST_MAX_MS;
	if (ms < 16)
		return (int)ms;
	for (int64_t v = ms; v > 1; v >>= 1)
		e++;
	return 16 + (e - 4) * 8 + (int)((ms >> (e - 3)) & 7);
}

/* The largest value a bucket holds: what a percentile reports, never below the truth. */
int64_t degrade_hist_top(int idx)
{
	int e, sub;

	if (idx < 16)
		return idx < 0 ? 0 : idx;
	if (idx >= DEGRADE_HIST_BUCKETS)
		idx = DEGRADE_HIST_BUCKETS - 1;
	e = 4 + (idx - 16) / 8;
	sub = (idx - 16) % 8;
	return ((int64_t)(8 + sub + 1) << (e - 3)) - 1;
}

/* The bucket for now's second, emptied first when it last counted an older second. */
static struct degrade_bucket *bucket_at(struct degrade_sig *s, int64_t now_ms)
{
	int64_t sec = now_ms < 0 ? 0 : now_ms / 1000;
	struct degrade_bucket *b = &s->b[sec % DEGRADE_WINDOW_S];

	if (b->sec != sec) {
		memset(b, 0, sizeof(*b));
		b->sec = sec;
	}
	return b;
}

/* Counts for rps. */
void degrade_sig_request_start(struct degrade_sig *s, int64_t now_ms)
{
	bucket_at(s, now_ms)->starts++;
}

/* Counts for p99 and error_rate, in the second the request ended. */
void degrade_sig_request_end(struct degrade_sig *s, int64_t now_ms, int64_t latency_ms, int error)
{
	struct degrade_bucket *b = bucket_at(s, now_ms);

	b->ends++;
	if (error)
		b->errors++;
	b->hist[degrade_hist_index(latency_ms)]++;
}

/* Sums the buckets of the last DEGRADE_WINDOW_S seconds; s may be NULL (all 0). */
void degrade_sig_stats(const struct degrade_sig *s, int64_t now_ms, struct degrade_stats *st)
{
	int64_t sec = now_ms < 0 ? 0 : now_ms / 1000;
	uint64_t hist[DEGRADE_HIST_BUCKETS] = { 0 };

	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	for (int i = 0; i < DEGRADE_WINDOW_S; i++) {
		const struct degrade_bucket *b = &s->b[i];
		if (b->sec < 0 || b->sec > sec || b->sec <= sec - DEGRADE_WINDOW_S)
			continue;
		st->starts += b->starts;
		st->ends += b->ends;
		st->errors += b->errors;
		for (int j = 0; j < DEGRADE_HIST_BUCKETS; j++)
			hist[j] += b->hist[j];
	}
	st->rps = (double)st->starts / DEGRADE_WINDOW_S;
	st->error_rate_pct = st->ends ? 100.0 * (double)st->errors / (double)st->ends : 0.0;
	if (st->ends) {
		uint64_t rank = (st->ends * 99 + 99) / 100, seen = 0;	/* ceil(0.99 n) */
		for (int j = 0; j < DEGRADE_HIST_BUCKETS; j++) {
			seen += hist[j];
			if (seen >= rank) {
				st->p99_ms = degrade_hist_top(j);
				break;
			}
		}
	}
}

/* The condition as the conf spells it; a static string. */
const char *degrade_cond_name(enum degrade_cond c)
{
	switch (c) {
	case DEGRADE_COND_QUEUE: return "queue";
	case DEGRADE_COND_P99: return "p99";
	case DEGRADE_COND_RPS: return "rps";
	case DEGRADE_COND_COLD: return "cold";
	case DEGRADE_COND_ERROR_RATE: return "error_rate";
	}
	return "?";
}

/* The condition's value now, whether it holds, and its text for the reason. */
static int cond_value(const struct degrade_rule *r, const struct degrade_input *in,
		      const struct degrade_stats *st, double *v)
{
	*v = 0;
	switch (r->cond) {
	case DEGRADE_COND_QUEUE: *v = (double)in->queue; break;
	case DEGRADE_COND_P99: *v = (double)st->p99_ms; break;
	case DEGRADE_COND_RPS: *v = st->rps; break;
	case DEGRADE_COND_ERROR_RATE: *v = st->error_rate_pct; break;
	case DEGRADE_COND_COLD: *v = in->cold ? 1 : 0; return in->cold != 0;
	}
	return *v > r->threshold;
}

/* "120", "850ms", "12.5%": how a value of this condition is written. */
static void fmt_val(char *buf, size_t len, enum degrade_cond c, double v)
{
	if (c == DEGRADE_COND_P99)
		snprintf(buf, len, "%.0fms", v);
	else if (c == DEGRADE_COND_ERROR_RATE)
		snprintf(buf, len, "%.3g%%", v);
	else
		snprintf(buf, len, "%.4g", v);
}

/* Sets d->reason: "cold", "queue 120 > 100", or "... (held 5s, now 80)" when kept by "for". */
static void set_reason(struct degrade_decision *d, const struct degrade_rule *r, int holds, double v)
{
	char now[24], thr[24], f[24];

	fmt_val(now, sizeof(now), r->cond, v);
	fmt_val(thr, sizeof(thr), r->cond, r->threshold);
	if (r->for_ms % 1000 == 0)
		snprintf(f, sizeof(f), "%llds", (long long)(r->for_ms / 1000));
	else
		snprintf(f, sizeof(f), "%lldms", (long long)r->for_ms);
	if (r->cond == DEGRADE_COND_COLD) {
		snprintf(d->reason, sizeof(d->reason), holds ? "cold" : "cold (held %s, now warm)", f);
	} else if (holds) {
		snprintf(d->reason, sizeof(d->reason), "%s %s > %s", degrade_cond_name(r->cond), now, thr);
	} else {
		snprintf(d->reason, sizeof(d->reason), "%s > %s (held %s, now %s)",
			 degrade_cond_name(r->cond), thr, f, now);
	}
}

/* One sample of a rule's condition into its hysteresis state. */
static void sample(const struct degrade_rule *r, struct degrade_state *s, int c, int64_t now)
{
	if (c && (!s->seen || !s->was_true))
		s->true_since = now;
	if (!c && (!s->seen || s->was_true))
		s->false_since = now;
	s->seen = 1;
	s->was_true = c;
	if (r->for_ms <= 0)
		s->active = c;
	else if (!s->active)
		s->active = c && now - s->true_since >= r->for_ms;
	else
		s->active = c || now - s->false_since < r->for_ms;
}

/*
 * Every rule is sampled (so a later rule's "for" timer runs while an
 * earlier one wins); the first active rule decides.
 */
enum degrade_action degrade_eval(const struct degrade_rule *rules, struct degrade_state *st, size_t n,
				 const struct degrade_input *in, int64_t now_ms, struct degrade_decision *d)
{
	struct degrade_stats stats;

	memset(d, 0, sizeof(*d));
	d->action = DEGRADE_NONE;
	d->rule = -1;
	d->retry_after_ms = -1;
	degrade_sig_stats(in->sig, now_ms, &stats);
	for (size_t i = 0; i < n; i++) {
		const struct degrade_rule *r = &rules[i];
		double v;
		int c = cond_value(r, in, &stats, &v);

		sample(r, &st[i], c, now_ms);
		if (d->rule >= 0 || !st[i].active)
			continue;
		d->rule = (int)i;
		d->action = r->action;
		if (r->action == DEGRADE_TO) {
			d->to_name = r->to_name;
			d->to = r->to;
		} else {
			d->code = r->code;
			d->retry_after_ms = r->retry_after_ms;
		}
		set_reason(d, r, c, v);
	}
	return d->action;
}
