/*
 * prom: the Prometheus text exposition format (version 0.0.4), written
 * once for every program: the gateway's registry (gateway/metrics.c) and
 * the worker's fixed set (gpu-worker/stats.c) both render through it.
 * Functions append to an evbuffer the caller owns; nothing is kept here.
 *
 * A label string is already in Prometheus syntax, without braces, e.g.
 * upstream="digits",code="200", or "" for none. Build one with
 * prom_labels(), which escapes the values.
 */
#ifndef WG_COMMON_PROM_H
#define WG_COMMON_PROM_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM };

/* "# HELP name help" (help's \ and newlines escaped) and "# TYPE name type". */
void prom_head(struct evbuffer *out, const char *name, enum prom_type type, const char *help);

/* One sample line, "name{labels} value" (no braces for labels ""). */
void prom_sample(struct evbuffer *out, const char *name, const char *labels, double v);

/*
 * A histogram's series: a cumulative _bucket line per upper bound in le
 * (n of them, ascending, without +Inf) and +Inf, then _sum and _count.
 * counts holds n + 1 per-bucket (not cumulative) counts, the last one for
 * the values above every bound; count is their total.
 */
void prom_histogram(struct evbuffer *out, const char *name, const char *labels,
		    const double *le, int n, const uint64_t *counts, uint64_t count, double sum);

/*
 * A value as Prometheus parses it: integers without a fraction, other
 * numbers in the shortest form that reads back to the same double, NaN, +Inf.
 */
void prom_fmt(double v, char *buf, size_t len);

/* Writes s with \ " and newline escaped into buf (NUL-terminated; truncated to len, never mid-escape). */
void prom_escape(const char *s, char *buf, size_t len);

/*
 * Builds key="value",key2="value2" from pairs ending with NULL, the values
 * escaped, into buf (NUL-terminated). A pair that does not fit is left out
 * whole, so the result is always valid syntax. Returns buf.
 */
const char *prom_labels(char *buf, size_t len, const char *key, const char *value, ...)
	__attribute__((sentinel));

#endif
