/*
 * policy: the idle-gap histogram and the keep-alive / pre-warm decision.
 * See policy.h for the schedule a decision describes, and
 * wakegate-replay(1) for exactly what policy_decide() computes.
 */
#include "gateway/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HALVE_AT	(UINT32_C(1) << 31)
#define OVERFLOW_BIN	POLICY_BINS	/* index that pct_bin() returns for overflow */
#define EPS		1e-9	/* expectations this close are equal */

void policy_conf_default(struct policy_conf *pc)
{
	pc->kind = POLICY_ADAPTIVE;
	pc->fixed_ms = 5 * 60000;
	pc->min_ms = 60000;
	pc->max_ms = 3600000;
	pc->boot_ms = 30000;
	pc->percentile = 99;
	pc->prewarm_percentile = 5;
	pc->min_samples = 10;
	pc->margin_pct = 10;
	pc->margin_max_ms = 60000;
	pc->max_overflow_pct = 20;
	pc->guard = 1;
	pc->tod = 1;
	pc->budget_pct = 100;
}

int policy_parse_ms(const char *s, int64_t *ms)
{
	char *end;
	double v, unit = 1000;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v >= 0) || v > 1e12)
		return -1;
	if (!strcmp(end, "ms"))
		unit = 1;
	else if (!strcmp(end, "s") || !*end)
		unit = 1000;
	else if (!strcmp(end, "m"))
		unit = 60000;
	else if (!strcmp(end, "h"))
		unit = 3600000;
	else if (!strcmp(end, "d"))
		unit = 86400000;
	else
		return -1;
	*ms = (int64_t)llround(v * unit);
	return 0;
}

/* One "key=value" of an adaptive spec; the key and value are NUL-ended. */
static int conf_set(struct policy_conf *pc, const char *key, const char *val)
{
	char *end;
	double d;

	if (!strcmp(key, "min"))
		return policy_parse_ms(val, &pc->min_ms);
	if (!strcmp(key, "max"))
		return policy_parse_ms(val, &pc->max_ms);
	if (!strcmp(key, "fixed"))
		return policy_parse_ms(val, &pc->fixed_ms);
	if (!strcmp(key, "margin-max"))
		return policy_parse_ms(val, &pc->margin_max_ms);
	if (!strcmp(key, "guard") && (!strcmp(val, "on") || !strcmp(val, "off"))) {
		pc->guard = !strcmp(val, "on");
		return 0;
	}
	if (!strcmp(key, "tod") && (!strcmp(val, "on") || !strcmp(val, "off"))) {
		pc->tod = !strcmp(val, "on");
		return 0;
	}
	errno = 0;
	d = strtod(val, &end);
	if (errno || end == val || (*end && strcmp(end, "%")) || !(d >= 0))
		return -1;
	if (!strcmp(key, "percentile") && d > 0 && d <= 100)
		pc->percentile = d;
	else if (!strcmp(key, "prewarm") && d > 0 && d <= 100)
		pc->prewarm_percentile = d;
	else if (!strcmp(key, "samples") && d >= 1 && d <= 1e9 && d == floor(d))
		pc->min_samples = (uint32_t)d;
	else if (!strcmp(key, "margin") && d < 100)
		pc->margin_pct = d;
	else if (!strcmp(key, "overflow") && d <= 100)
		pc->max_overflow_pct = d;
	else if (!strcmp(key, "budget") && d >= 1 && d <= 1000)
		pc->budget_pct = d;
	else
		return -1;
	return 0;
}

int policy_conf_parse(struct policy_conf *pc, const char *spec, const char **err)
{
	char buf[256], *p, *item, *save;
	struct policy_conf c = *pc;

	*err = NULL;
	if (!strcmp(spec, "fixed")) {
		pc->kind = POLICY_FIXED;
		return 0;
	}
	if (!strncmp(spec, "fixed:", 6)) {
		if (policy_parse_ms(spec + 6, &c.fixed_ms) < 0 || c.fixed_ms <= 0) {
			*err = "fixed:TIME needs a time such as 5m";
			return -1;
		}
		c.kind = POLICY_FIXED;
		*pc = c;
		return 0;
	}
	if (strcmp(spec, "adaptive") && strncmp(spec, "adaptive:", 9)) {
		*err = "a policy is fixed:TIME or adaptive[:KEY=VALUE,...]";
		return -1;
	}
	c.kind = POLICY_ADAPTIVE;
	if (spec[8] == ':') {
		if (strlen(spec + 9) >= sizeof(buf)) {
			*err = "adaptive: option list too long";
			return -1;
		}
		strcpy(buf, spec + 9);
		for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
			p = strchr(item, '=');
			if (!p) {
				*err = "adaptive: options are KEY=VALUE";
				return -1;
			}
			*p++ = '\0';
			if (conf_set(&c, item, p) < 0) {
				*err = "adaptive: unknown option or bad value";
				return -1;
			}
		}
	}
	if (c.min_ms > c.max_ms || c.max_ms <= 0 || c.prewarm_percentile >= c.percentile) {
		*err = "adaptive: needs min <= max and prewarm < percentile";
		return -1;
	}
	*pc = c;
	return 0;
}

void policy_hist_init(struct policy_hist *h)
{
	memset(h, 0, sizeof(*h));
}

/* Halves every count so that the histogram stays bounded and old gaps
 * weigh less than new ones. */
static void hist_halve(struct policy_hist *h)
{
	h->total = 0;
	for (int i = 0; i < POLICY_BINS; i++) {
		h->bin[i] /= 2;
		h->total += h->bin[i];
	}
	h->overflow /= 2;
	h->total += h->overflow;
}

void policy_observe_gap(struct policy_hist *h, int64_t gap_ms)
{
	uint32_t *c;

	if (gap_ms < 0)
		gap_ms = 0;
	c = gap_ms / POLICY_BIN_MS < POLICY_BINS ? &h->bin[gap_ms / POLICY_BIN_MS] : &h->overflow;
	if (*c >= HALVE_AT)
		hist_halve(h);
	(*c)++;
	h->total++;
}

size_t policy_hist_format(const struct policy_hist *h, char *buf, size_t len)
{
	size_t n = 0;
	int w;

	/* snprintf into the rest of buf, or count only once buf is full */
#define PUT(...) do { \
		w = snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, __VA_ARGS__); \
		n += (size_t)w; \
	} while (0)
	if (len)
		buf[0] = '\0';
	PUT("v1 o%" PRIu32, h->overflow);
	for (int i = 0; i < POLICY_BINS; i++)
		if (h->bin[i])
			PUT(" %d:%" PRIu32, i, h->bin[i]);
#undef PUT
	return n;
}

int policy_hist_parse(struct policy_hist *h, const char *s)
{
	struct policy_hist t;
	unsigned long long v;
	long i;
	char *end;

	policy_hist_init(&t);
	if (strncmp(s, "v1 o", 4))
		return -1;
	s += 4;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno || v > HALVE_AT)
		return -1;
	t.overflow = (uint32_t)v;
	t.total = v;
	for (s = end; *s == ' '; s = end) {
		s++;
		i = strtol(s, &end, 10);
		if (end == s || *end != ':' || i < 0 || i >= POLICY_BINS || t.bin[i])
			return -1;
		s = end + 1;
		v = strtoull(s, &end, 10);
		if (end == s || errno || v == 0 || v > HALVE_AT)
			return -1;
		t.bin[i] = (uint32_t)v;
		t.total += v;
	}
	if (*s)
		return -1;
	*h = t;
	return 0;
}

/* The bin that holds the q-th percentile of the gaps in bins from..end and
 * the overflow (n of them); OVERFLOW_BIN when it falls in the overflow. */
static int pct_bin(const struct policy_hist *h, int from, uint64_t n, double q)
{
	uint64_t need = (uint64_t)ceil(q / 100.0 * (double)n), seen = 0;

	if (need < 1)
		need = 1;
	for (int i = from; i < POLICY_BINS; i++) {
		seen += h->bin[i];
		if (seen >= need)
			return i;
	}
	return OVERFLOW_BIN;
}

static int64_t lower_edge(int b)
{
	return (int64_t)b * POLICY_BIN_MS;
}

static int64_t upper_edge(int b)
{
	return (int64_t)(b + 1) * POLICY_BIN_MS;
}

/* How much to widen a window at time x: a share of x, capped. */
static int64_t margin(const struct policy_conf *pc, int64_t x)
{
	int64_t m = (int64_t)((double)x * pc->margin_pct / 100.0);

	return m < pc->margin_max_ms ? m : pc->margin_max_ms;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Expected worker-up time and cold starts per gap if the schedule d had
 * been applied to every gap in h, each gap taken at its bin's middle and
 * an overflow gap as endless. A boot is billed time. */
void policy_expect(const struct policy_conf *pc, const struct policy_hist *h,
	struct policy_decision *d)
{
	double up = 0, cold = 0, k = (double)d->keepalive_ms, p = (double)d->prewarm_ms;
	double u = (double)d->until_ms, b = (double)pc->boot_ms;

	for (int i = 0; i <= POLICY_BINS; i++) {
		double c = i < POLICY_BINS ? h->bin[i] : h->overflow;
		double g = i < POLICY_BINS ? (i + 0.5) * POLICY_BIN_MS : INFINITY;

		if (c == 0)
			continue;
		if (g <= k) {
			up += c * g;
		} else if (d->prewarm_ms == 0 || g < p + b) {
			up += c * (k + b);
			cold += c;
		} else if (g <= u) {
			up += c * (k + g - p);
		} else {
			up += c * (k + u - p + b);
			cold += c;
		}
	}
	d->exp_up_ms = h->total ? up / (double)h->total : 0;
	d->exp_cold = h->total ? cold / (double)h->total : 0;
}

/* A pre-warm for the gaps in bins from..end and the overflow (n of them):
 * wake so that the worker is up at their head percentile (less a margin),
 * keep it up to their tail percentile (plus a margin). Returns 0 when the
 * worker would not stay down for at least one boot after keepalive_ms. */
static int prewarm(const struct policy_conf *pc, const struct policy_hist *h, int from,
	uint64_t n, struct policy_decision *d)
{
	int head = pct_bin(h, from, n, pc->prewarm_percentile);
	int tail = pct_bin(h, from, n, pc->percentile);
	int64_t at, until;

	if (head == OVERFLOW_BIN)
		return 0;
	at = lower_edge(head) - margin(pc, lower_edge(head)) - pc->boot_ms;
	if (at - d->keepalive_ms < pc->boot_ms)
		return 0;
	until = tail == OVERFLOW_BIN ? at + pc->max_ms : upper_edge(tail) + margin(pc, upper_edge(tail));
	d->prewarm_ms = at;
	d->until_ms = clamp(until, at + pc->boot_ms + pc->min_ms, at + pc->max_ms);
	return 1;
}

/* Whether a is, on the histogram, no worse than b on both counts. */
static int no_worse(const struct policy_decision *a, const struct policy_decision *b)
{
	return a->exp_cold <= b->exp_cold + EPS && a->exp_up_ms <= b->exp_up_ms + EPS;
}

/* Whether a ranks before b: fewer cold starts, then less worker time,
 * then a shorter keep-alive (less spent if the next gap is longer than
 * any seen). */
static int better(const struct policy_decision *a, const struct policy_decision *b)
{
	if (a->exp_cold < b->exp_cold - EPS || a->exp_cold > b->exp_cold + EPS)
		return a->exp_cold < b->exp_cold;
	if (a->exp_up_ms < b->exp_up_ms - EPS || a->exp_up_ms > b->exp_up_ms + EPS)
		return a->exp_up_ms < b->exp_up_ms;
	return a->keepalive_ms < b->keepalive_ms;
}

struct policy_decision policy_decide(const struct policy_conf *pc, const struct policy_hist *h)
{
	struct policy_decision fixed = { pc->fixed_ms, 0, 0, "fixed", 0, 0, 1 };
	struct policy_decision cand[3], *best;
	uint64_t n_long;
	int tail, nc = 0;

	if (pc->kind == POLICY_FIXED) {
		policy_expect(pc, h, &fixed);
		return fixed;
	}
	fixed.reason = "few samples";
	if (h->total < pc->min_samples) {
		policy_expect(pc, h, &fixed);
		return fixed;
	}
	fixed.reason = "gaps beyond range";
	if ((double)h->overflow * 100.0 > pc->max_overflow_pct * (double)h->total) {
		policy_expect(pc, h, &fixed);
		return fixed;
	}
	fixed.reason = "fixed does best";
	policy_expect(pc, h, &fixed);

	/* keep-alive through the tail percentile of all gaps */
	tail = pct_bin(h, 0, h->total, pc->percentile);
	cand[nc] = (struct policy_decision){ pc->max_ms, 0, 0, "keep-alive to tail", 0, 0, 0 };
	if (tail != OVERFLOW_BIN)
		cand[nc].keepalive_ms = clamp(upper_edge(tail) + margin(pc, upper_edge(tail)),
			pc->min_ms, pc->max_ms);
	policy_expect(pc, h, &cand[nc]);
	nc++;

	/* regular gaps: stop at once, wake before the head of all gaps */
	cand[nc] = (struct policy_decision){ 0, 0, 0, "pre-warm", 0, 0, 0 };
	if (prewarm(pc, h, 0, h->total, &cand[nc])) {
		policy_expect(pc, h, &cand[nc]);
		nc++;
	}

	/* bursts: keep-alive through the short gaps, then pre-warm for the
	 * long gaps (those beyond the tail bin), when there are enough */
	n_long = 0;
	for (int i = tail + 1; i < POLICY_BINS; i++)
		n_long += h->bin[i];
	n_long += tail == OVERFLOW_BIN ? 0 : h->overflow;
	cand[nc] = (struct policy_decision){ cand[0].keepalive_ms, 0, 0, "keep-alive, then pre-warm", 0, 0, 0 };
	if (tail != OVERFLOW_BIN && n_long >= pc->min_samples
		&& (double)h->overflow * 100.0 <= pc->max_overflow_pct * (double)n_long
		&& prewarm(pc, h, tail + 1, n_long, &cand[nc])) {
		policy_expect(pc, h, &cand[nc]);
		nc++;
	}

	/* guard off, as the paper: the most specific candidate there is */
	if (!pc->guard)
		return cand[nc - 1];

	/* never worse than the fixed timer on the gaps seen: of those that
	 * are not, the best ranked; the fixed timer when none */
	best = NULL;
	for (int i = 0; i < nc; i++)
		if (no_worse(&cand[i], &fixed) && (!best || better(&cand[i], best)))
			best = &cand[i];
	return best ? *best : fixed;
}

/* The schedule's busy test, shared by the gateway and wakegate-replay. */
int policy_sched_busy(const uint8_t days[POLICY_SCHED_DAY_MIN], int64_t minute)
{
	int64_t m = ((minute % POLICY_SCHED_DAY_MIN) + POLICY_SCHED_DAY_MIN) % POLICY_SCHED_DAY_MIN;

	return __builtin_popcount(days[m]) >= POLICY_SCHED_MIN_DAYS;
}

/* A busy minute after one that is not: where the schedule wakes ahead of. */
int policy_sched_start(const uint8_t days[POLICY_SCHED_DAY_MIN], int64_t minute)
{
	return policy_sched_busy(days, minute) && !policy_sched_busy(days, minute - 1);
}

/* The schedule's lead; a boot not yet measured (0) counts as 30s, like the gateway. */
int policy_sched_lead_min(int64_t boot_ms)
{
	int64_t b = boot_ms > 0 ? boot_ms : 30000;
	int64_t l = (b + 59999) / 60000;

	return l < 1 ? 1 : (int)l;
}
