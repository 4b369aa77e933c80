/*
 * metrics: an in-memory Prometheus registry. Metrics are kept in declaration
 * order (a list) for rendering; series are found through one hash table keyed
 * by name + label string, so the hot path (a lookup and an add per request)
 * hashes two short strings and allocates nothing once the series exists.
 */
#include "config.h"
#include "gateway/metrics.h"
#include "gateway/log.h"
#include "common/prom.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

struct metric {
	char *name;
	char *help;
	enum metrics_type type;
	int declared;		/* 0: an undeclared name, remembered to log it once */
	int misuse_logged;
	double *buckets;	/* histogram upper bounds, ascending, without +Inf */
	int nbuckets;
	struct series *series, *series_tail;	/* creation order */
	struct metric *next;	/* declaration order */
	struct metric *hnext;	/* metric hash chain */
};

struct series {
	struct metric *metric;
	char *labels;
	uint64_t hash;
	double value;		/* counter, gauge */
	uint64_t *counts;	/* histogram: per bucket (not cumulative), nbuckets + 1 */
	uint64_t count;
	double sum;
	struct series *next;	/* within the metric */
	struct series *hnext;	/* series hash chain */
};

struct metrics {
	struct metric *head, *tail;
	struct metric **mtab;	/* by name */
	size_t mtab_size;
	struct series **stab;	/* by name + labels */
	size_t stab_size, nseries;
};

#define METRICS_MTAB_SIZE 256

/* FNV-1a over name, a separator, then labels. */
static uint64_t metrics_hash(const char *name, const char *labels)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

static int metrics_name_ok(const char *s)
{
	if (!*s || !(s[0] == '_' || s[0] == ':' || (s[0] >= 'a' && s[0] <= 'z') ||
		     (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (; *s; s++)
		if (!(*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
			return 0;
	return 1;
}

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->mtab_size = METRICS_MTAB_SIZE;
	m->mtab = calloc(m->mtab_size, sizeof(*m->mtab));
	m->stab_size = 256;
	m->stab = calloc(m->stab_size, sizeof(*m->stab));
	if (!m->mtab || !m->stab) {
		free(m->mtab);
		free(m->stab);
		free(m);
		return NULL;
	}
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	struct metric *mt = m->head;
	while (mt) {
		struct metric *mnext = mt->next;
		struct series *se = mt->series;
		while (se) {
			struct series *snext = se->next;
			free(se->labels);
			free(se->counts);
			free(se);
			se = snext;
		}
		free(mt->name);
		free(mt->help);
		free(mt->buckets);
		free(mt);
		mt = mnext;
	}
	free(m->mtab);
	free(m->stab);
	free(m);
}

static struct metric *metrics_find_metric(struct metrics *m, const char *name)
{
	uint64_t h = metrics_hash(name, "");
	for (struct metric *mt = m->mtab[h & (m->mtab_size - 1)]; mt; mt = mt->hnext)
		if (strcmp(mt->name, name) == 0)
			return mt;
	return NULL;
}

/* A new metric record, linked into the list and the name table; owned by m. */
static struct metric *metrics_add_metric(struct metrics *m, const char *name)
{
	struct metric *mt = calloc(1, sizeof(*mt));
	if (!mt || !(mt->name = strdup(name))) {
		free(mt);
		return NULL;
	}
	size_t b = metrics_hash(name, "") & (m->mtab_size - 1);
	mt->hnext = m->mtab[b];
	m->mtab[b] = mt;
	if (m->tail)
		m->tail->next = mt;
	else
		m->head = mt;
	m->tail = mt;
	return mt;
}

void metrics_declare(struct metrics *m, const char *name, enum metrics_type type,
		     const char *help, const double *buckets, int nbuckets)
{
	if (!metrics_name_ok(name)) {
		log_error("metrics: invalid metric name \"%s\"", name);
		return;
	}
	struct metric *mt = metrics_find_metric(m, name);
	if (mt && mt->declared) {
		/* Declaring again (a reload) keeps the first declaration. */
		if (mt->type != type)
			log_error("metrics: \"%s\" declared again with another type", name);
		return;
	}
	if (type == METRICS_HISTOGRAM) {
		for (int i = 0; i < nbuckets; i++) {
			if (isnan(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
				log_error("metrics: histogram \"%s\" buckets are not ascending", name);
				return;
			}
		}
		if (nbuckets > 0 && isinf(buckets[nbuckets - 1]) && buckets[nbuckets - 1] > 0)
			nbuckets--;	/* +Inf is implicit */
	}
	if (!mt && !(mt = metrics_add_metric(m, name)))
		return;
	mt->type = type;
	mt->help = strdup(help ? help : "");
	if (type == METRICS_HISTOGRAM && nbuckets > 0) {
		mt->buckets = malloc(sizeof(double) * nbuckets);
		if (mt->buckets) {
			memcpy(mt->buckets, buckets, sizeof(double) * nbuckets);
			mt->nbuckets = nbuckets;
		}
	}
	mt->declared = 1;
}

static void metrics_grow(struct metrics *m)
{
	size_t nsize = m->stab_size * 2;
	struct series **ntab = calloc(nsize, sizeof(*ntab));
	if (!ntab)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i < m->stab_size; i++) {
		struct series *se = m->stab[i];
		while (se) {
			struct series *next = se->hnext;
			size_t b = se->hash & (nsize - 1);
			se->hnext = ntab[b];
			ntab[b] = se;
			se = next;
		}
	}
	free(m->stab);
	m->stab = ntab;
	m->stab_size = nsize;
}

/*
 * The series for name+labels, created on first use (owned by m). histogram
 * says which kind the caller needs; an undeclared name or the wrong kind
 * gives NULL, logged once per metric.
 */
static struct series *metrics_series(struct metrics *m, const char *name, const char *labels,
				     int histogram)
{
	if (!labels)
		labels = "";
	uint64_t h = metrics_hash(name, labels);
	struct metric *mt = NULL;
	for (struct series *se = m->stab[h & (m->stab_size - 1)]; se; se = se->hnext) {
		if (se->hash == h && strcmp(se->labels, labels) == 0 &&
		    strcmp(se->metric->name, name) == 0) {
			if ((se->metric->type == METRICS_HISTOGRAM) == histogram)
				return se;
			mt = se->metric;
			break;
		}
	}
	if (!mt)
		mt = metrics_find_metric(m, name);
	if (!mt) {
		if (!metrics_name_ok(name) || !(mt = metrics_add_metric(m, name)))
			return NULL;
	}
	if (!mt->declared || (mt->type == METRICS_HISTOGRAM) != histogram) {
		if (!mt->misuse_logged)
			log_error(mt->declared ? "metrics: \"%s\" used as the wrong type" :
				  "metrics: \"%s\" used but never declared", name);
		mt->misuse_logged = 1;
		return NULL;
	}
	struct series *se = calloc(1, sizeof(*se));
	if (!se || !(se->labels = strdup(labels)))
		goto fail;
	if (histogram && !(se->counts = calloc(mt->nbuckets + 1, sizeof(uint64_t))))
		goto fail;
	se->metric = mt;
	se->hash = h;
	if (mt->series_tail)
		mt->series_tail->next = se;
	else
		mt->series = se;
	mt->series_tail = se;
	size_t b = h & (m->stab_size - 1);
	se->hnext = m->stab[b];
	m->stab[b] = se;
	if (++m->nseries > m->stab_size)
		metrics_grow(m);
	return se;
fail:
	if (se)
		free(se->labels);
	free(se);
	return NULL;
}

void metrics_add(struct metrics *m, const char *name, const char *labels, double v)
{
	struct series *se = metrics_series(m, name, labels, 0);
	if (se)
		se->value += v;
}

void metrics_set(struct metrics *m, const char *name, const char *labels, double v)
{
	struct series *se = metrics_series(m, name, labels, 0);
	if (se)
		se->value = v;
}

void metrics_observe(struct metrics *m, const char *name, const char *labels, double v)
{
	struct series *se = metrics_series(m, name, labels, 1);
	if (!se)
		return;
	const struct metric *mt = se->metric;
	int i = 0;
	while (i < mt->nbuckets && !(v <= mt->buckets[i]))
		i++;
	se->counts[i]++;	/* i == nbuckets: only in +Inf */
	se->count++;
	se->sum += v;
}

/* Read-only: never creates a series. A histogram answers its _count. */
double metrics_get(struct metrics *m, const char *name, const char *labels)
{
	if (!labels)
		labels = "";
	uint64_t h = metrics_hash(name, labels);
	for (struct series *se = m->stab[h & (m->stab_size - 1)]; se; se = se->hnext)
		if (se->hash == h && strcmp(se->labels, labels) == 0 &&
		    strcmp(se->metric->name, name) == 0)
			return se->metric->type == METRICS_HISTOGRAM ? (double)se->count : se->value;
	return 0;
}

/* The text format itself is common/prom.c's: the same for the worker. */
void metrics_render(struct metrics *m, struct evbuffer *out)
{
	for (const struct metric *mt = m->head; mt; mt = mt->next) {
		if (!mt->declared)
			continue;
		prom_head(out, mt->name, (enum prom_type)mt->type, mt->help);
		for (const struct series *se = mt->series; se; se = se->next) {
			if (mt->type == METRICS_HISTOGRAM)
				prom_histogram(out, mt->name, se->labels, mt->buckets, mt->nbuckets,
					       se->counts, se->count, se->sum);
			else
				prom_sample(out, mt->name, se->labels, se->value);
		}
	}
}
