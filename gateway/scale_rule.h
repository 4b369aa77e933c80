/*
 * scale_rule: the decisions of scaling like the seed (issue 16), as a pure
 * core: the clock and the readings are arguments, so that scale-test.c can
 * replay a day of readings in a moment (t/77-scale-on.t). scale.c feeds it
 * from the upstream and acts on its answers; scale_gauge.c fetches the
 * readings.
 *
 *   scale_on GAUGE > V for T   one more replica once the mean reading of the
 *                              READY replicas stayed above V for T, none
 *                              while one is on its way (the mean must be
 *                              measured again with it)
 *   scale_down_cooldown T      no scale-down for T after the last scale-up
 *   (hysteresis)               no scale-down while the readings' sum spread
 *                              over one replica fewer would be above V: it
 *                              would be scaled up again right away
 *   headroom P%                the concurrency target less P%
 */
#ifndef WG_SCALE_RULE_H
#define WG_SCALE_RULE_H

#include <stddef.h>
#include <stdint.h>

/* What one decision looks at. */
struct scale_rule_in {
	double now;		/* seconds, any origin */
	int ready, coming, max;	/* READY replicas, replicas on their way, replicas max= */
	int n;			/* READY replicas with a fresh reading */
	double sum;		/* ... the sum of their readings */
	double above;		/* V; below 0: no scale_on rule */
	double for_s;		/* T */
	double cooldown_s;	/* scale_down_cooldown */
};

/* What it remembers between decisions (zeroed: nothing seen yet). */
struct scale_rule_state {
	int high;		/* the mean was above V at the last reading */
	double high_since;
	int scaled_up;		/* a scale-up happened (of any cause) */
	double last_up;		/* ... at */
};

/* 1 when the scale_on rule asks for one more replica now; keeps the "for" window in st. */
int scale_rule_up(struct scale_rule_state *st, const struct scale_rule_in *in);
/* Every scale-up, of any cause (concurrency, p99, scale_on): starts the cooldown, ends the window. */
void scale_rule_scaled_up(struct scale_rule_state *st, double now);
/* 1 when one READY replica may be drained now, as far as cooldown and scale_on go; else 0. */
int scale_rule_may_drop(const struct scale_rule_state *st, const struct scale_rule_in *in);
/* target_concurrency less headroom_pct percent, at least 1. */
int scale_rule_target(int target, int headroom_pct);

/*
 * The value of gauge name in a Prometheus text exposition of len bytes:
 * the largest sample of the series with that name (with or without
 * labels). Returns 0, or -1 when no sample of it is there.
 */
int scale_rule_parse_gauge(const char *text, size_t len, const char *name, double *out);

#endif
