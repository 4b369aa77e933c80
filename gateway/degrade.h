/*
 * degrade: a location's degradation rules ("degrade to UPSTREAM when
 * CONDITION [for TIME];", "degrade return CODE ... when ...") and the
 * signals they look at. Pure: no I/O, no clock, no allocation; the caller
 * passes the time in milliseconds, so the same calls give the same answers.
 *
 * Signals (struct degrade_sig, one per upstream, fed by the gateway): a
 * sliding window of DEGRADE_WINDOW_S one-second buckets. Each bucket counts
 * requests started, requests ended, ended in error, and a log-scale
 * latency histogram of the ended ones (exact below 16 ms, then 8 buckets
 * per power of two: a value is reported as the top of its bucket, at most
 * 12.5% above the true one). Over the window, at time now:
 *
 *     rps        = requests started in the last DEGRADE_WINDOW_S seconds
 *                  (this second included) / DEGRADE_WINDOW_S
 *     p99        = the top of the histogram bucket holding the
 *                  ceil(0.99 * n)-th smallest latency of the n ended requests
 *     error_rate = 100 * errors / ended (0 when none ended)
 *
 * Rules are checked in order; the first rule that applies wins. A rule
 * with "for T" applies once its condition has held for T, and keeps
 * applying until the condition has been false for T (no flapping). The
 * condition is sampled at each degrade_eval() (the gateway calls it for
 * each request and from a timer); between two samples it counts as it was
 * at the first. Without "for", a rule applies exactly while its condition
 * holds.
 */
#ifndef WG_DEGRADE_H
#define WG_DEGRADE_H

#include <stddef.h>
#include <stdint.h>

#define DEGRADE_WINDOW_S	10
#define DEGRADE_HIST_BUCKETS	184	/* 0..15 ms exact, then 8 a power of two up to 2^24 ms */
#define DEGRADE_REASON_MAX	128

enum degrade_cond {
	DEGRADE_COND_QUEUE,		/* queue > N: held + waiting for a slot */
	DEGRADE_COND_P99,		/* p99 > TIME over the window */
	DEGRADE_COND_RPS,		/* rps > N over the window */
	DEGRADE_COND_COLD,		/* no READY replica */
	DEGRADE_COND_ERROR_RATE,	/* error_rate > X% over the window */
};

enum degrade_action { DEGRADE_NONE, DEGRADE_TO, DEGRADE_RETURN };

/* One rule as the conf wrote it. The conf owns the strings. */
struct degrade_rule {
	enum degrade_action action;	/* DEGRADE_TO or DEGRADE_RETURN */
	enum degrade_cond cond;
	double threshold;	/* queue, rps: requests (/s); p99: ms; error_rate: percent */
	int64_t for_ms;		/* 0: applies exactly while the condition holds */
	char *to_name;		/* TO: the upstream that answers instead */
	void *to;		/* TO: the caller's handle for it (the conf: its struct conf_upstream *) */
	int code;		/* RETURN: the status */
	int64_t retry_after_ms;	/* RETURN: -1 for no Retry-After header */
	const char *file;	/* where it was written */
	int line;
};

/* A rule's hysteresis state; the caller keeps one a rule, zeroed at start. */
struct degrade_state {
	int seen;		/* sampled at least once */
	int was_true;		/* the condition at the last sample */
	int active;		/* the rule applies */
	int64_t true_since;	/* first sample of the current true run */
	int64_t false_since;	/* first sample of the current false run */
};

struct degrade_bucket {
	int64_t sec;		/* which second it counts; -1: empty */
	uint32_t starts, ends, errors;
	uint32_t hist[DEGRADE_HIST_BUCKETS];
};

/* One upstream's signals. Zero it with degrade_sig_init(). */
struct degrade_sig {
	struct degrade_bucket b[DEGRADE_WINDOW_S];
};

struct degrade_stats {
	double rps;
	int64_t p99_ms;		/* 0 when nothing ended in the window */
	double error_rate_pct;
	uint64_t starts, ends, errors;	/* in the window */
};

/* What a rule is checked against: the location's upstream now. */
struct degrade_input {
	int64_t queue;		/* held + waiting for a slot */
	int cold;		/* no READY replica */
	const struct degrade_sig *sig;	/* may be NULL: rps, p99, error_rate are 0 */
};

struct degrade_decision {
	enum degrade_action action;	/* DEGRADE_NONE: serve as usual */
	int rule;		/* index of the rule that applies, -1 */
	const char *to_name;	/* TO */
	void *to;
	int code;		/* RETURN */
	int64_t retry_after_ms;	/* RETURN; -1: none */
	char reason[DEGRADE_REASON_MAX];	/* "cold", "queue 120 > 100", for X-Wakegate-Degraded */
};

void degrade_sig_init(struct degrade_sig *s);
void degrade_sig_request_start(struct degrade_sig *s, int64_t now_ms);
/* A request ended at now_ms after latency_ms; error: it failed (5xx, no answer). */
void degrade_sig_request_end(struct degrade_sig *s, int64_t now_ms, int64_t latency_ms, int error);
void degrade_sig_stats(const struct degrade_sig *s, int64_t now_ms, struct degrade_stats *st);

/* The latency histogram's bucket for ms, and the top of a bucket (what p99 reports). */
int degrade_hist_index(int64_t ms);
int64_t degrade_hist_top(int idx);

/*
 * Samples every rule's condition at now_ms (updating st[0..n-1]), then
 * fills *d from the first rule that applies. Returns d->action.
 */
enum degrade_action degrade_eval(const struct degrade_rule *rules, struct degrade_state *st, size_t n,
	const struct degrade_input *in, int64_t now_ms, struct degrade_decision *d);

/* "queue", "p99", "rps", "cold", "error_rate". */
const char *degrade_cond_name(enum degrade_cond c);

#endif
