/*
 * trace: request traces for wakegate-replay. A trace is a list of requests
 * (arrival, duration, upstream), read from the CSV format
 * "timestamp,upstream[,duration]" or from the Azure Functions 2019 per-minute
 * invocation counts. Everything in a struct trace is owned by it.
 */
#ifndef WG_TRACE_H
#define WG_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct trace_req {
	int64_t t_ms;		/* arrival */
	int64_t dur_ms;		/* time the worker spends on it */
	uint32_t up;		/* index into names */
};

struct trace {
	struct trace_req *req;
	size_t n, cap;
	char **names;		/* upstream names */
	size_t nup, upcap;
	uint32_t *slots;	/* hash of names: index + 1, 0 = empty */
	size_t nslots;
};

void trace_init(struct trace *tr);
void trace_free(struct trace *tr);

/* Reads "timestamp,upstream[,duration]" lines (seconds; '#' comments, blank
 * lines and a header line are skipped); dur_ms is the default duration.
 * Returns 0, or -1 with a message naming path:line in err. */
int trace_read_csv(struct trace *tr, FILE *f, const char *path, int64_t dur_ms,
	char *err, size_t errlen);

/* Reads invocations_per_function_md.anon.dNN.csv (HashOwner, HashApp,
 * HashFunction, Trigger, 1..1440 counts); each function is an upstream and
 * a minute's count is spread evenly over the minute. top > 0 keeps only the
 * top functions by invocations. Returns 0, or -1 with err set. */
int trace_read_azure(struct trace *tr, FILE *f, const char *path, size_t top, int64_t dur_ms,
	char *err, size_t errlen);

/* Sorts the requests by upstream, then arrival. */
void trace_sort(struct trace *tr);

#endif
