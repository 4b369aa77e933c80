/*
 * metrics: Prometheus counters, gauges and histograms kept in memory and
 * rendered in the text exposition format (version 0.0.4) for GET /metrics on
 * the admin listener. A series is a metric name plus a label string already
 * in Prometheus syntax, e.g. upstream="digits",code="200" (or "" for none):
 * build it with common/prom.h's prom_labels(), which escapes the values.
 */
#ifndef WG_METRICS_H
#define WG_METRICS_H

#include <stddef.h>

struct evbuffer;
struct metrics;

#include "common/prom.h"

/* The same numbers as enum prom_type: the registry renders through common/prom.c. */
enum metrics_type { METRICS_COUNTER = PROM_COUNTER, METRICS_GAUGE = PROM_GAUGE,
		    METRICS_HISTOGRAM = PROM_HISTOGRAM };

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/*
 * Declares a metric once, before use: its type, HELP text and, for a
 * histogram, its upper bounds (ascending; +Inf is added). Using an undeclared
 * name is a programming error (logged once, then ignored).
 */
void metrics_declare(struct metrics *m, const char *name, enum metrics_type type,
		     const char *help, const double *buckets, int nbuckets);

void metrics_add(struct metrics *m, const char *name, const char *labels, double v);
void metrics_set(struct metrics *m, const char *name, const char *labels, double v);
void metrics_observe(struct metrics *m, const char *name, const char *labels, double v);
/* The current value of a counter or gauge series (0 when absent). */
double metrics_get(struct metrics *m, const char *name, const char *labels);

/* Appends the whole exposition to out, metrics in declaration order. */
void metrics_render(struct metrics *m, struct evbuffer *out);

#endif
