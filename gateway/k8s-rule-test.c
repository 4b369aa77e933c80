/*
 * k8s-rule-test: replays a series of loads through k8s_rule.c, for
 * t/124-k8s-rule.t. Options (seconds, counts):
 *   -t TARGET  target_concurrency (after headroom)
 *   -c COOL    scale_down_cooldown
 *   -i IDLE    idle_timeout
 *   -m MAX     replicas max=
 *   -f FLOOR   min_warm / replicas min=
 * stdin: lines "T LOAD [keep] [more=N]", T rising, LOAD the requests held
 * and in flight over every gateway at T; "keep": scale_p99 or scale_on say
 * the count must not go down; "more=N": one of them wants N. The upstream
 * is idle once LOAD was 0 for IDLE seconds since the last line with a load
 * (or since the first line). Prints "T N" for every change of the count
 * (each one a PATCH), then "patches P".
 */
#include "config.h"
#include "gateway/k8s_rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	double cool = 300, idle_s = 600;
	int target = 1, max = 8, floor = 0, opt;
	while ((opt = getopt(argc, argv, "t:c:i:m:f:")) != -1) {
		switch (opt) {
		case 't': target = atoi(optarg); break;
		case 'c': cool = atof(optarg); break;
		case 'i': idle_s = atof(optarg); break;
		case 'm': max = atoi(optarg); break;
		case 'f': floor = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: k8s-rule-test [-t TARGET] [-c COOL] [-i IDLE] [-m MAX] [-f FLOOR] < series\n");
			return 2;
		}
	}
	struct k8s_rule_state st = { .want = -1 };
	char line[256];
	double last = -1;
	int sent = -1, patches = 0;
	while (fgets(line, sizeof(line), stdin)) {
		double t;
		int load, n = 0;
		if (sscanf(line, "%lf %d%n", &t, &load, &n) < 2)
			continue;
		if (last < 0)
			last = t;	/* the idle timer starts with the series */
		if (load > 0)
			last = t;
		const char *more = strstr(line + n, "more=");
		struct k8s_rule_in in = { .now = t, .load = load, .target = target, .floor = floor, .max = max,
			.idle = load == 0 && t - last >= idle_s, .cooldown_s = cool,
			.more = more ? atoi(more + 5) : 0, .keep = strstr(line + n, "keep") != NULL };
		int want = k8s_rule_decide(&st, &in);
		/* as k8s_scale.c: while nothing is known, a 0 waits for idle_timeout */
		if (want != sent && !(sent < 0 && want == 0 && !in.idle)) {
			printf("%g %d\n", t, want);
			sent = want;
			patches++;
		}
	}
	printf("patches %d\n", patches);
	return 0;
}
