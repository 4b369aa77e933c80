/* k8s_rule: see k8s_rule.h. Pure: no clock, no I/O. */
#include "config.h"
#include "gateway/k8s_rule.h"

int k8s_rule_decide(struct k8s_rule_state *st, const struct k8s_rule_in *in)
{
	int target = in->target > 0 ? in->target : 1;
	int need = in->load > 0 ? (in->load + target - 1) / target : 0;
	if (need < in->floor)
		need = in->floor;
	if (need < in->more)
		need = in->more;
	if (!in->idle && need < 1 && st->want > 0)
		need = 1;
	if (need > in->max)
		need = in->max;
	if (st->want < 0 || need >= st->want || (in->keep && !in->idle)) {
		st->high_at = in->now;
		st->want = st->want < 0 || need > st->want ? need : st->want;
		return st->want;
	}
	if (need == 0 || in->now - st->high_at >= in->cooldown_s) {
		st->high_at = in->now;
		st->want = need;
	}
	return st->want;
}
