/*
 * policy-test: feeds hand-made idle gaps to the policy and prints what it
 * decides, for t/60-policy.t. Not installed.
 *
 *   policy-test [--policy SPEC] [--boot TIME] [--load HIST] GAP...
 *
 * GAP is a time ("30m", "5s") or TIME*N for N equal gaps. Prints one
 * "key value" line each: samples, overflow, keepalive_ms, prewarm_ms,
 * until_ms, reason, hist (the serialized histogram) and roundtrip (ok when
 * parsing hist gives back the same histogram).
 *
 *   policy-test --tod DAYS WDAY0 [--policy SPEC] [--boot TIME] BUSY...
 *
 * The time-of-day plan (policy_tod.h) for DAYS days of minute counts, day 0
 * a WDAY0 (0 = Sunday). BUSY is "DAY/HH:MM" (one request in that minute)
 * or "DAY/HH:MM+EVERY*N" (N minutes, EVERY minutes apart). Prints on,
 * reason, up_s, cold, fixed_up_s, fixed_cold, gaps, then "slot S K_s G"
 * for every slot whose keep-alive is not the fixed timer or that has gaps.
 */
#include "gateway/policy.h"
#include "gateway/policy_tod.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exits with a message on stderr: the test reads it. */
static void die(const char *what, const char *arg)
{
	fprintf(stderr, "policy-test: %s: %s\n", what, arg);
	exit(2);
}

/* One GAP argument, "TIME" or "TIME*N", into h. */
static void observe_arg(struct policy_hist *h, const char *arg)
{
	char buf[64], *star;
	long n = 1;
	int64_t ms;

	if (strlen(arg) >= sizeof(buf))
		die("bad gap", arg);
	strcpy(buf, arg);
	star = strchr(buf, '*');
	if (star) {
		*star = '\0';
		n = strtol(star + 1, NULL, 10);
		if (n < 1 || n > 10000000)
			die("bad repeat count", arg);
	}
	if (policy_parse_ms(buf, &ms) < 0)
		die("bad gap", arg);
	while (n-- > 0)
		policy_observe_gap(h, ms);
}

/* --policy SPEC and --boot TIME into pc: 1 when argv[*i] was one (and *i moved past its value). */
static int conf_opt(struct policy_conf *pc, int argc, char **argv, int *i)
{
	const char *err;

	if (!strcmp(argv[*i], "--policy") && *i + 1 < argc) {
		if (policy_conf_parse(pc, argv[++*i], &err) < 0)
			die(err, argv[*i]);
		return 1;
	}
	if (!strcmp(argv[*i], "--boot") && *i + 1 < argc) {
		if (policy_parse_ms(argv[++*i], &pc->boot_ms) < 0)
			die("bad boot time", argv[*i]);
		return 1;
	}
	return 0;
}

/* One BUSY argument into counts (days of 1440 minutes). */
static void busy_arg(uint32_t *counts, long days, const char *arg)
{
	long d, hh, mm, every = 1, n = 1;
	char tail[32] = "";

	if (sscanf(arg, "%ld/%ld:%ld%31s", &d, &hh, &mm, tail) < 3 || d < 0 || d >= days || hh < 0 || hh > 23
		|| mm < 0 || mm > 59 || (*tail && (sscanf(tail, "+%ld*%ld", &every, &n) != 2 || every < 1 || n < 1)))
		die("bad busy minute", arg);
	for (long m = d * 1440 + hh * 60 + mm, k = 0; k < n && m < days * 1440; k++, m += every)
		counts[m]++;
}

/* --tod: the plan for the minutes given, printed as the header says. */
static int tod_main(int argc, char **argv)
{
	struct policy_conf pc;
	struct policy_hist h[POLICY_TOD_SLOTS];
	struct policy_tod t;
	long days = strtol(argv[2], NULL, 10), wday0 = strtol(argv[3], NULL, 10);
	uint32_t *counts;

	if (days < 1 || days > POLICY_TOD_DAYS || wday0 < 0 || wday0 > 6)
		die("--tod needs DAYS (1-7) and WDAY0 (0-6)", argv[2]);
	counts = calloc((size_t)days * 1440, sizeof(*counts));
	if (!counts)
		die("out of memory", "counts");
	policy_conf_default(&pc);
	for (int i = 4; i < argc; i++) {
		if (!conf_opt(&pc, argc, argv, &i))
			busy_arg(counts, days, argv[i]);
	}
	policy_tod_hists(counts, (int)days, (int)wday0, h);
	policy_tod_plan(&pc, h, &t);
	printf("on %d\nreason %s\nup_s %.1f\ncold %.0f\nfixed_up_s %.1f\nfixed_cold %.0f\ngaps %" PRIu64 "\n",
		t.on, t.reason, t.up_ms / 1000, t.cold, t.fixed_up_ms / 1000, t.fixed_cold, t.total);
	for (int s = 0; s < POLICY_TOD_SLOTS; s++)
		if (t.keepalive_ms[s] != pc.fixed_ms || t.gaps[s])
			printf("slot %d %" PRId64 " %" PRIu32 "\n", s, t.keepalive_ms[s] / 1000, t.gaps[s]);
	free(counts);
	return 0;
}

int main(int argc, char **argv)
{
	struct policy_conf pc;
	struct policy_hist h, back;
	struct policy_decision d;
	char str[POLICY_HIST_STRMAX];
	size_t len;
	int i;

	if (argc >= 4 && !strcmp(argv[1], "--tod"))
		return tod_main(argc, argv);
	policy_conf_default(&pc);
	policy_hist_init(&h);
	for (i = 1; i < argc; i++) {
		if (conf_opt(&pc, argc, argv, &i)) {
			continue;
		} else if (!strcmp(argv[i], "--load") && i + 1 < argc) {
			if (policy_hist_parse(&h, argv[++i]) < 0)
				die("not a histogram", argv[i]);
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			die("unknown option", argv[i]);
		} else {
			observe_arg(&h, argv[i]);
		}
	}
	d = policy_decide(&pc, &h);
	len = policy_hist_format(&h, str, sizeof(str));
	if (len >= sizeof(str))
		die("histogram string too long", "format");
	printf("samples %" PRIu64 "\noverflow %" PRIu32 "\n", h.total, h.overflow);
	printf("keepalive_ms %" PRId64 "\nprewarm_ms %" PRId64 "\nuntil_ms %" PRId64 "\n",
		d.keepalive_ms, d.prewarm_ms, d.until_ms);
	printf("reason %s\nexpected_up_ms %.0f\nexpected_cold %.4f\n", d.reason, d.exp_up_ms, d.exp_cold);
	printf("hist %s\n", str);
	printf("roundtrip %s\n", policy_hist_parse(&back, str) == 0
		&& !memcmp(back.bin, h.bin, sizeof(h.bin)) && back.overflow == h.overflow
		&& back.total == h.total ? "ok" : "differs");
	return 0;
}
