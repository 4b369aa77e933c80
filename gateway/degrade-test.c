/*
 * degrade-test: a script driver for gateway/degrade.c, for t/51-degrade.t.
 * Reads commands from stdin, one a line, and prints one line for each
 * "eval" and "stats". Times are milliseconds of a simulated clock.
 *
 *   rule to NAME COND THRESHOLD FOR_MS        a "degrade to" rule
 *   rule return CODE RETRY_MS COND THRESHOLD FOR_MS   (RETRY_MS -1: none)
 *   queue N | cold 0|1                        the upstream's state from now on
 *   start T [COUNT]                           COUNT requests start at T
 *   end T LATENCY_MS ERROR [COUNT]            COUNT requests end at T
 *   eval T    ->  "eval T none" | "eval T to NAME rule I reason=..."
 *                 | "eval T return CODE retry_after=MS rule I reason=..."
 *   stats T   ->  "stats T rps=R p99=MS error_rate=PCT starts=N ends=N errors=N"
 *
 * COND is queue, p99, rps, cold or error_rate. Exit status 2 on a bad line.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/degrade.h"

#define MAX_RULES 16

static int parse_cond(const char *s, enum degrade_cond *c)
{
	static const char *const names[] = { "queue", "p99", "rps", "cold", "error_rate" };
	static const enum degrade_cond conds[] = { DEGRADE_COND_QUEUE, DEGRADE_COND_P99, DEGRADE_COND_RPS,
						   DEGRADE_COND_COLD, DEGRADE_COND_ERROR_RATE };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*c = conds[i];
			return 0;
		}
	}
	return -1;
}

int main(void)
{
	struct degrade_rule rules[MAX_RULES];
	struct degrade_state st[MAX_RULES];
	char names[MAX_RULES][64];
	struct degrade_sig sig;
	struct degrade_input in = { .queue = 0, .cold = 0, .sig = &sig };
	char line[512];
	size_t n = 0;
	int lineno = 0;

	memset(rules, 0, sizeof(rules));
	memset(st, 0, sizeof(st));
	degrade_sig_init(&sig);
	while (fgets(line, sizeof(line), stdin)) {
		char w[8][64];
		int k;
		long long a, b, c2, d;

		lineno++;
		k = sscanf(line, "%63s %63s %63s %63s %63s %63s %63s %63s", w[0], w[1], w[2], w[3], w[4], w[5],
			   w[6], w[7]);
		if (k <= 0 || w[0][0] == '#')
			continue;
		if (strcmp(w[0], "rule") == 0 && n < MAX_RULES) {
			struct degrade_rule *r = &rules[n];
			int o;
			r->retry_after_ms = -1;
			if (k == 6 && strcmp(w[1], "to") == 0) {
				r->action = DEGRADE_TO;
				snprintf(names[n], sizeof(names[n]), "%s", w[2]);
				r->to_name = names[n];
				o = 3;
			} else if (k == 7 && strcmp(w[1], "return") == 0) {
				r->action = DEGRADE_RETURN;
				r->code = atoi(w[2]);
				r->retry_after_ms = atoll(w[3]);
				o = 4;
			} else {
				goto bad;
			}
			if (parse_cond(w[o], &r->cond) < 0)
				goto bad;
			r->threshold = atof(w[o + 1]);
			r->for_ms = atoll(w[o + 2]);
			n++;
		} else if (strcmp(w[0], "queue") == 0 && k == 2) {
			in.queue = atoll(w[1]);
		} else if (strcmp(w[0], "cold") == 0 && k == 2) {
			in.cold = atoi(w[1]);
		} else if (strcmp(w[0], "start") == 0 && (k == 2 || k == 3)) {
			a = atoll(w[1]);
			b = k == 3 ? atoll(w[2]) : 1;
			for (long long i = 0; i < b; i++)
				degrade_sig_request_start(&sig, a);
		} else if (strcmp(w[0], "end") == 0 && (k == 4 || k == 5)) {
			a = atoll(w[1]);
			c2 = atoll(w[2]);
			d = atoll(w[3]);
			b = k == 5 ? atoll(w[4]) : 1;
			for (long long i = 0; i < b; i++)
				degrade_sig_request_end(&sig, a, c2, (int)d);
		} else if (strcmp(w[0], "eval") == 0 && k == 2) {
			struct degrade_decision dd;
			a = atoll(w[1]);
			degrade_eval(rules, st, n, &in, a, &dd);
			if (dd.action == DEGRADE_NONE)
				printf("eval %lld none\n", a);
			else if (dd.action == DEGRADE_TO)
				printf("eval %lld to %s rule %d reason=%s\n", a, dd.to_name, dd.rule, dd.reason);
			else
				printf("eval %lld return %d retry_after=%" PRId64 " rule %d reason=%s\n", a, dd.code,
				       dd.retry_after_ms, dd.rule, dd.reason);
		} else if (strcmp(w[0], "stats") == 0 && k == 2) {
			struct degrade_stats s;
			a = atoll(w[1]);
			degrade_sig_stats(&sig, a, &s);
			printf("stats %lld rps=%.3f p99=%" PRId64 " error_rate=%.3f starts=%" PRIu64 " ends=%" PRIu64
			       " errors=%" PRIu64 "\n", a, s.rps, s.p99_ms, s.error_rate_pct, s.starts, s.ends, s.errors);
		} else {
			goto bad;
		}
		fflush(stdout);
		continue;
bad:
		fprintf(stderr, "degrade-test: bad line %d: %s", lineno, line);
		return 2;
	}
	return 0;
}
