/*
 * evict-test: feeds hand-made eviction candidates to evict.c and prints
 * what it computes and chooses, for t/69-evict.t. Not installed.
 *
 *   evict-test [--need SIZE] [--prio N] [--samples N] CAND...
 *
 * CAND is KEY=VALUE pairs joined by ':' (a bare "pin" pins it):
 *   idle=SECONDS  reload=SECONDS  bytes=SIZE  prio=N  pin
 *   gaps=TIME*N,TIME*N,...   its idle-gap histogram (none: no history)
 * SIZE is bytes, or a number with k, m or g (powers of 1024).
 * Prints "p I VALUE" and "penalty I VALUE" per candidate (-1: no history),
 * then "chosen N", "lru 0|1" and "victims I I ..." (cheapest first).
 */
#include "gateway/evict.h"
#include "gateway/policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CANDS 32

static void die(const char *what, const char *arg)
{
	fprintf(stderr, "evict-test: %s: %s\n", what, arg);
	exit(2);
}

static int64_t size_arg(const char *s)
{
	char *e;
	double v = strtod(s, &e);

	if (e == s || v < 0)
		die("bad size", s);
	if (*e == 'k')
		v *= 1024, e++;
	else if (*e == 'm')
		v *= 1024.0 * 1024, e++;
	else if (*e == 'g')
		v *= 1024.0 * 1024 * 1024, e++;
	if (*e)
		die("bad size", s);
	return (int64_t)v;
}

static double num_arg(const char *s)
{
	char *e;
	double v = strtod(s, &e);

	if (e == s || *e)
		die("bad number", s);
	return v;
}

/* "TIME*N,TIME*N" into h */
static void gaps_arg(struct policy_hist *h, char *s)
{
	char *save;

	for (char *g = strtok_r(s, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
		char *star = strchr(g, '*');
		long n = 1;
		int64_t ms;

		if (star) {
			*star = '\0';
			n = strtol(star + 1, NULL, 10);
			if (n < 1 || n > 10000000)
				die("bad repeat count", star + 1);
		}
		if (policy_parse_ms(g, &ms) < 0)
			die("bad gap", g);
		while (n-- > 0)
			policy_observe_gap(h, ms);
	}
}

int main(int argc, char **argv)
{
	struct evict_cand c[MAX_CANDS];
	struct policy_hist h[MAX_CANDS];
	int out[MAX_CANDS], n = 0, prio = 0, lru = -1;
	int64_t need = 0;
	uint32_t samples = 10;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--need") && i + 1 < argc) {
			need = size_arg(argv[++i]);
		} else if (!strcmp(argv[i], "--prio") && i + 1 < argc) {
			prio = (int)num_arg(argv[++i]);
		} else if (!strcmp(argv[i], "--samples") && i + 1 < argc) {
			samples = (uint32_t)num_arg(argv[++i]);
		} else if (argv[i][0] == '-') {
			die("unknown option", argv[i]);
		} else {
			if (n == MAX_CANDS)
				die("too many candidates", argv[i]);
			struct evict_cand *x = &c[n];
			*x = (struct evict_cand){ .reload_s = 30, .bytes = 1 };
			policy_hist_init(&h[n]);
			char *save;
			for (char *kv = strtok_r(argv[i], ":", &save); kv; kv = strtok_r(NULL, ":", &save)) {
				char *eq = strchr(kv, '=');
				if (!strcmp(kv, "pin")) {
					x->pinned = 1;
					continue;
				}
				if (!eq)
					die("expected KEY=VALUE", kv);
				*eq = '\0';
				if (!strcmp(kv, "idle"))
					x->idle_s = num_arg(eq + 1);
				else if (!strcmp(kv, "reload"))
					x->reload_s = num_arg(eq + 1);
				else if (!strcmp(kv, "bytes"))
					x->bytes = size_arg(eq + 1);
				else if (!strcmp(kv, "prio"))
					x->priority = (int)num_arg(eq + 1);
				else if (!strcmp(kv, "gaps")) {
					gaps_arg(&h[n], eq + 1);
					x->hist = &h[n];
				} else
					die("unknown key", kv);
			}
			n++;
		}
	}
	for (int i = 0; i < n; i++) {
		printf("p %d %.6f\n", i, evict_p_within(c[i].hist, c[i].idle_s, c[i].reload_s, samples));
		printf("penalty %d %.6f\n", i, evict_penalty(&c[i], samples));
	}
	int k = evict_choose(c, n, need, prio, samples, out, &lru);
	printf("chosen %d\nlru %d\nvictims", k, lru);
	for (int i = 0; i < k; i++)
		printf(" %d", out[i]);
	printf("\n");
	return 0;
}
