/*
 * scale-test: replays a series of loads through scale_rule.c, for
 * t/77-scale-on.t. Options (seconds, ratios):
 *   -a ABOVE  scale_on's threshold (as the gauge reads: 0.7)
 *   -f FOR    scale_on's "for"
 *   -c COOL   scale_down_cooldown
 *   -b BOOT   how long a started replica takes to be READY
 *   -m MAX    replicas max=
 * stdin: lines "T LOAD", T rising, LOAD the whole upstream's demand in
 * replicas' worth of busy time (1.4: one replica would be 140% busy). Each
 * READY replica reads LOAD / READY (at most 1), as least-busy routing
 * spreads it. Scale-down is tried at every line as if a replica had been
 * idle for idle_timeout (the worst case for flapping: only the rule holds
 * it back). Prints "T up N" and "T down N" (N: READY after the move), then
 * "ups U downs D min_up_to_down G" (G: the shortest time from a scale-up to
 * the next scale-down, -1 when none).
 */
#include "config.h"
#include "gateway/scale_rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	double above = 0.7, for_s = 120, cool = 300, boot = 30;
	int max = 4, opt;
	while ((opt = getopt(argc, argv, "a:f:c:b:m:")) != -1) {
		switch (opt) {
		case 'a': above = atof(optarg); break;
		case 'f': for_s = atof(optarg); break;
		case 'c': cool = atof(optarg); break;
		case 'b': boot = atof(optarg); break;
		case 'm': max = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: scale-test [-a ABOVE] [-f FOR] [-c COOL] [-b BOOT] [-m MAX] < series\n");
			return 2;
		}
	}
	struct scale_rule_state st = { 0 };
	int ready = 1, ups = 0, downs = 0;
	double coming_at = -1, last_up = -1, min_gap = -1, t, load;
	while (scanf("%lf %lf", &t, &load) == 2) {
		if (coming_at >= 0 && t >= coming_at) {
			ready++;
			coming_at = -1;
		}
		double each = load / ready;
		if (each > 1)
			each = 1;
		struct scale_rule_in in = { .now = t, .ready = ready, .coming = coming_at >= 0, .max = max,
			.n = ready, .sum = each * ready, .above = above, .for_s = for_s, .cooldown_s = cool };
		if (scale_rule_up(&st, &in)) {
			scale_rule_scaled_up(&st, t);
			coming_at = t + boot;
			last_up = t;
			ups++;
			printf("%g up %d\n", t, ready + 1);
		} else if (ready > 1 && coming_at < 0 && scale_rule_may_drop(&st, &in)) {
			ready--;
			downs++;
			if (last_up >= 0 && (min_gap < 0 || t - last_up < min_gap))
				min_gap = t - last_up;
			printf("%g down %d\n", t, ready);
		}
	}
	printf("ups %d downs %d min_up_to_down %g\n", ups, downs, min_gap);
	return 0;
}
