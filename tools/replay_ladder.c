/*
 * replay_ladder: the clairvoyant oracle and the sleep ladder in simulated
 * time (see replay_ladder.h for the model, wakegate-replay(1) for the
 * parameters).
 */
#include "tools/replay_ladder.h"
#include "gateway/policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The defaults: a short keep-alive awake, level 2 after the fixed 5
 * minutes the gateway stops at by default, a stop after 30 minutes. The
 * wake times are bench/wake's through-the-gateway holds for its 1 GB model
 * on the CPU path, rounded to the second (level 1: 0.41-1.03 s, level 2:
 * 0.73-0.98 s over three runs; bench/README.md): on that machine a level-2
 * wake's disk read costs about what a level-1 wake's fresh pages do. A GPU's
 * are of the same order for that size (vLLM publishes 0.26-3 s for level 1).
 * A sleeping process is billed in full by default: on a GPU rented by the
 * second it is still rented; price1=0 shows what a freed GPU buys. */
void ladder_conf_default(struct ladder_conf *c)
{
	*c = (struct ladder_conf){
		.after_ms = { 0, 60000, 300000 },
		.stop_ms = 1800000,
		.wake_ms = { 0, 1000, 1000 },
		.price = { 1, 1, 1 },
	};
}

static int parse_time_or_off(const char *v, int64_t *ms)
{
	if (!strcmp(v, "off")) {
		*ms = -1;
		return 0;
	}
	return policy_parse_ms(v, ms);
}

int ladder_conf_parse(struct ladder_conf *c, const char *opts, const char **err)
{
	char buf[256], *save = NULL;

	if (strlen(opts) >= sizeof(buf)) {
		*err = "ladder options too long";
		return -1;
	}
	strcpy(buf, opts);
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '='), *end;
		int lv;

		if (!v) {
			*err = "a ladder option is NAME=VALUE";
			return -1;
		}
		*v++ = '\0';
		lv = kv[strlen(kv) - 1] == '1' ? 1 : kv[strlen(kv) - 1] == '2' ? 2 : 0;
		if (lv && !strncmp(kv, "level", 5) && strlen(kv) == 6) {
			if (parse_time_or_off(v, &c->after_ms[lv]) < 0) {
				*err = "ladder: level1= and level2= take a time or off";
				return -1;
			}
		} else if (!strcmp(kv, "stop")) {
			if (parse_time_or_off(v, &c->stop_ms) < 0) {
				*err = "ladder: stop= takes a time or off";
				return -1;
			}
		} else if (lv && !strncmp(kv, "wake", 4) && strlen(kv) == 5) {
			if (policy_parse_ms(v, &c->wake_ms[lv]) < 0) {
				*err = "ladder: wake1= and wake2= take a time";
				return -1;
			}
		} else if (lv && !strncmp(kv, "price", 5) && strlen(kv) == 6) {
			c->price[lv] = strtod(v, &end);
			if (end == v || *end || !(c->price[lv] >= 0 && c->price[lv] <= 1)) {
				*err = "ladder: price1= and price2= take a fraction from 0 to 1";
				return -1;
			}
		} else {
			*err = "ladder options are level1, level2, stop, wake1, wake2, price1, price2";
			return -1;
		}
	}
	if (c->after_ms[1] >= 0 && c->after_ms[2] >= 0 && c->after_ms[2] < c->after_ms[1]) {
		*err = "ladder: level2= comes after level1=";
		return -1;
	}
	return 0;
}

static double round_up(double ms, int64_t gran_ms)
{
	return ceil(ms / (double)gran_ms) * (double)gran_ms;
}

void replay_oracle(const struct trace_req *q, size_t n, int64_t boot_ms, int64_t gran_ms,
	struct ladder_out *out, int64_t *wait)
{
	int64_t run = 0, busy = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t t = q[i].t_ms;

		if (i == 0 || t - busy > boot_ms) {
			/* a gap longer than a boot: stopping and booting again costs less */
			if (i > 0) {
				out->alive_ms += (double)(busy - run);
				out->billed_ms += round_up((double)(busy - run), gran_ms);
			}
			run = t - boot_ms;
			out->runs++;
		}
		wait[i] = 0;
		if (t + q[i].dur_ms > busy)
			busy = t + q[i].dur_ms;
	}
	if (n) {
		out->alive_ms += (double)(busy - run);
		out->billed_ms += round_up((double)(busy - run), gran_ms);
	}
}

/* The level the ladder is at after idle ms. */
static int level_at(const struct ladder_conf *c, int64_t idle)
{
	if (c->after_ms[2] >= 0 && idle >= c->after_ms[2])
		return 2;
	if (c->after_ms[1] >= 0 && idle >= c->after_ms[1])
		return 1;
	return 0;
}

/* Time spent at each level in the idle stretch [0, idle), into s[1], s[2]. */
static void idle_split(const struct ladder_conf *c, int64_t idle, double *s)
{
	int64_t a1 = c->after_ms[1], a2 = c->after_ms[2];

	if (a2 >= 0 && idle > a2)
		s[2] += (double)(idle - a2);
	if (a1 >= 0 && idle > a1)
		s[1] += (double)((a2 >= 0 && a2 < idle ? a2 : idle) - a1);
}

/* Bills the run [run, end): awake in full, each level at its price. */
static void ladder_bill(const struct ladder_conf *c, int64_t gran_ms, struct ladder_out *out, int64_t run,
	int64_t end, const double *s)
{
	double total = (double)(end - run), awake = total - s[1] - s[2];

	out->alive_ms += total;
	out->asleep_ms[1] += s[1];
	out->asleep_ms[2] += s[2];
	out->billed_ms += round_up(awake + c->price[1] * s[1] + c->price[2] * s[2], gran_ms);
}

void replay_ladder(const struct ladder_conf *c, const struct trace_req *q, size_t n, int64_t boot_ms,
	int64_t gran_ms, int64_t span_end, struct ladder_out *out, int64_t *wait)
{
	int64_t run = -1, busy = 0, ready = 0, clip, end;
	double s[3] = { 0 };	/* this run's time asleep at each level */

	for (size_t i = 0; i < n; i++) {
		int64_t t = q[i].t_ms;

		if (run >= 0 && t > busy) {
			int64_t idle = t - busy;

			if (c->stop_ms >= 0 && idle >= c->stop_ms) {
				idle_split(c, c->stop_ms, s);
				ladder_bill(c, gran_ms, out, run, busy + c->stop_ms, s);
				run = -1;
			} else {
				int lv = level_at(c, idle);

				idle_split(c, idle, s);
				if (lv) {
					ready = t + c->wake_ms[lv];
					out->wakes[lv]++;
				}
			}
		}
		if (run < 0) {
			run = t;
			ready = t + boot_ms;
			s[1] = s[2] = 0;
			out->runs++;
			out->cold++;
		}
		wait[i] = ready > t ? ready - t : 0;
		end = (t > ready ? t : ready) + q[i].dur_ms;
		if (end > busy)
			busy = end;
	}
	if (run < 0)
		return;
	clip = busy > span_end ? busy : span_end;
	end = c->stop_ms >= 0 && busy + c->stop_ms < clip ? busy + c->stop_ms : clip;
	idle_split(c, end - busy, s);
	ladder_bill(c, gran_ms, out, run, end, s);
}
