/*
 * k8s_rule: the count a kubernetes upstream's Deployment should have, as a
 * pure core: the clock and the load are arguments, so that k8s-rule-test.c
 * replays a series in a moment (t/124-k8s-rule.t). k8s_scale.c feeds it
 * from the upstream and sends what it answers.
 *
 *   load over target      ceil((held + in flight) / target_concurrency)
 *   floor                 min_warm (in its window), replicas min=, a pre-warm
 *   more                  scale_p99 or scale_on: one more than READY
 *   not idle              at least 1 while the upstream had activity within idle_timeout
 *   max                   replicas max=
 *   up at once; down only once no decision wanted the current count for the
 *   cooldown (a stabilisation window, as the HPA's), never while keep (p99
 *   above its threshold, or scale_on would go up again), and to 0 as soon as
 *   the upstream is idle (idle_timeout is that window).
 */
#ifndef WG_K8S_RULE_H
#define WG_K8S_RULE_H

struct k8s_rule_in {
	double now;		/* seconds, any origin */
	int load;		/* held + in flight, over every gateway */
	int target;		/* target_concurrency after headroom, at least 1 */
	int floor;
	int max;
	int idle;		/* nothing held or in flight, no activity for idle_timeout */
	double cooldown_s;	/* scale_down_cooldown */
	int more;		/* one more than READY wanted (READY + 1); 0: no */
	int keep;		/* the count must not go down now */
};

/* What it remembers between decisions. */
struct k8s_rule_state {
	int want;		/* the count decided; -1: none yet */
	double high_at;		/* the last decision that wanted at least want (the cooldown) */
};

/* The count wanted now; keeps st->want and st->high_at. */
int k8s_rule_decide(struct k8s_rule_state *st, const struct k8s_rule_in *in);

#endif
