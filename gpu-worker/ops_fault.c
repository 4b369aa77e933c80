/*
 * ops_fault: fault injection for the tests, so that what the worker does
 * after a failed or a lost CUDA context can be driven through a real worker
 * process on a machine without a GPU. WAKEGATE_WORKER_FAULT lists faults as
 * KIND:N, comma separated: the Nth model run (counting from 1, warmup runs
 * included) fails as a CUDA call would, with KIND "transient" (reported,
 * cleared, the next run works) or "sticky" (the context is lost: OPS_DEAD,
 * and so is every run after it, as on a GPU); "slow" makes it take 2 more
 * seconds first, as a long kernel would (tests look at the worker meanwhile).
 *
 * Threads: called from the one thread that runs the model.
 */
#include "gpu-worker/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OPS_FAULT_MAX 16

static struct {
	int parsed;
	int n;
	long at[OPS_FAULT_MAX];
	char kind[OPS_FAULT_MAX];	/* 't'ransient, 's'ticky, s'l'ow */
	long runs;
	int dead;
} of;

/* Reads the variable; an entry it cannot read is reported once and ignored. */
static void ops_fault_parse(void)
{
	const char *s = getenv("WAKEGATE_WORKER_FAULT");

	of.parsed = 1;
	while (s && *s && of.n < OPS_FAULT_MAX) {
		char kind[16];
		long at;
		int len = 0;

		if (sscanf(s, "%15[a-z]:%ld%n", kind, &at, &len) == 2 && at > 0 &&
		    (!strcmp(kind, "transient") || !strcmp(kind, "sticky") || !strcmp(kind, "slow"))) {
			of.at[of.n] = at;
			of.kind[of.n++] = !strcmp(kind, "slow") ? 'l' : kind[0];
		} else {
			fprintf(stderr, "WAKEGATE_WORKER_FAULT: \"%s\" is not transient:N, sticky:N or slow:N; ignored\n", s);
			return;
		}
		s += len;
		if (*s == ',')
			s++;
	}
}

int ops_fault_inject(char *err, size_t errlen)
{
	if (!of.parsed)
		ops_fault_parse();
	if (!of.n)
		return 0;
	of.runs++;
	for (int i = 0; i < of.n; i++) {
		struct timespec two = { 2, 0 };

		if (of.at[i] == of.runs && of.kind[i] == 'l')
			nanosleep(&two, NULL);
	}
	if (of.dead) {
		snprintf(err, errlen, "cuda: running the batch: cudaErrorIllegalAddress (injected) (the CUDA context is lost)");
		return OPS_DEAD;
	}
	for (int i = 0; i < of.n; i++) {
		if (of.at[i] != of.runs || of.kind[i] == 'l')
			continue;
		if (of.kind[i] == 's') {
			of.dead = 1;
			snprintf(err, errlen, "cuda: running the batch: cudaErrorIllegalAddress (injected)");
			return OPS_DEAD;
		}
		snprintf(err, errlen, "cuda: dense kernel: cudaErrorLaunchOutOfResources (injected)");
		return -1;
	}
	return 0;
}
