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
 */
#include "gateway/policy.h"

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

int main(int argc, char **argv)
{
	struct policy_conf pc;
	struct policy_hist h, back;
	struct policy_decision d;
	char str[POLICY_HIST_STRMAX];
	const char *err;
	size_t len;
	int i;

	policy_conf_default(&pc);
	policy_hist_init(&h);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--policy") && i + 1 < argc) {
			if (policy_conf_parse(&pc, argv[++i], &err) < 0)
				die(err, argv[i]);
		} else if (!strcmp(argv[i], "--boot") && i + 1 < argc) {
			if (policy_parse_ms(argv[++i], &pc.boot_ms) < 0)
				die("bad boot time", argv[i]);
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
