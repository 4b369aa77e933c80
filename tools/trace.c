/*
 * trace: reading request traces for wakegate-replay (see trace.h).
 */
#include "tools/trace.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define AZURE_MINUTES 1440

void trace_init(struct trace *tr)
{
	memset(tr, 0, sizeof(*tr));
}

void trace_free(struct trace *tr)
{
	for (size_t i = 0; i < tr->nup; i++)
		free(tr->names[i]);
	free(tr->names);
	free(tr->req);
	free(tr->slots);
	trace_init(tr);
}

/* Aborts on allocation failure: a replay has nothing to fall back to. */
static void oom(void)
{
	fputs("wakegate-replay: out of memory\n", stderr);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

static uint64_t hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

/* Rebuilds the name hash at twice the size. */
static void grow_slots(struct trace *tr)
{
	size_t ns = tr->nslots ? tr->nslots * 2 : 64;

	free(tr->slots);
	tr->slots = calloc(ns, sizeof(*tr->slots));
	if (!tr->slots)
		oom();
	tr->nslots = ns;
	for (size_t i = 0; i < tr->nup; i++) {
		size_t j = hash(tr->names[i], strlen(tr->names[i])) & (ns - 1);

		while (tr->slots[j])
			j = (j + 1) & (ns - 1);
		tr->slots[j] = (uint32_t)i + 1;
	}
}

/* The index of upstream name[0..len), added when new. */
static uint32_t upstream_index(struct trace *tr, const char *name, size_t len)
{
	size_t j;

	if (2 * (tr->nup + 1) > tr->nslots)
		grow_slots(tr);
	j = hash(name, len) & (tr->nslots - 1);
	while (tr->slots[j]) {
		const char *s = tr->names[tr->slots[j] - 1];

		if (strlen(s) == len && !memcmp(s, name, len))
			return tr->slots[j] - 1;
		j = (j + 1) & (tr->nslots - 1);
	}
	if (tr->nup == tr->upcap) {
		tr->upcap = tr->upcap ? tr->upcap * 2 : 16;
		tr->names = xrealloc(tr->names, tr->upcap * sizeof(*tr->names));
	}
	tr->names[tr->nup] = xrealloc(NULL, len + 1);
	memcpy(tr->names[tr->nup], name, len);
	tr->names[tr->nup][len] = '\0';
	tr->slots[j] = (uint32_t)tr->nup + 1;
	return (uint32_t)tr->nup++;
}

static void add_req(struct trace *tr, int64_t t_ms, int64_t dur_ms, uint32_t up)
{
	if (tr->n == tr->cap) {
		tr->cap = tr->cap ? tr->cap * 2 : 4096;
		tr->req = xrealloc(tr->req, tr->cap * sizeof(*tr->req));
	}
	tr->req[tr->n++] = (struct trace_req){ t_ms, dur_ms, up };
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Seconds as a number (float ok) into milliseconds; -1 when not one. */
static int seconds_ms(const char *s, const char *end, int64_t *ms)
{
	char *e;
	double v;

	errno = 0;
	v = strtod(s, &e);
	while (e < end && (*e == ' ' || *e == '\t' || *e == '\r'))
		e++;
	if (e == s || e != end || errno || !(v >= 0) || v > 1e12)
		return -1;
	*ms = (int64_t)llround(v * 1000.0);
	return 0;
}

int trace_read_csv(struct trace *tr, FILE *f, const char *path, int64_t dur_ms,
	char *err, size_t errlen)
{
	char *line = NULL, *c1, *c2, *end, *name;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int64_t t, d;
	int rc = 0;

	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		end = line + len;
		if (len == 0 || line[0] == '#')
			continue;
		c1 = strchr(line, ',');
		if (!c1) {
			rc = fail(err, errlen, "%s:%zu: expected timestamp,upstream[,duration]", path, lineno);
			break;
		}
		if (seconds_ms(line, c1, &t) < 0) {
			if (tr->n == 0 && lineno == 1)
				continue;	/* a header */
			rc = fail(err, errlen, "%s:%zu: bad timestamp", path, lineno);
			break;
		}
		name = c1 + 1;
		c2 = strchr(name, ',');
		d = dur_ms;
		if (c2 && seconds_ms(c2 + 1, end, &d) < 0) {
			rc = fail(err, errlen, "%s:%zu: bad duration", path, lineno);
			break;
		}
		if ((c2 ? c2 : end) == name) {
			rc = fail(err, errlen, "%s:%zu: empty upstream", path, lineno);
			break;
		}
		add_req(tr, t, d, upstream_index(tr, name, (size_t)((c2 ? c2 : end) - name)));
	}
	free(line);
	if (rc == 0 && ferror(f))
		rc = fail(err, errlen, "%s: %s", path, strerror(errno));
	return rc;
}

/* One function's row of the Azure trace, kept while choosing the top. */
struct azure_row {
	char *name;
	uint64_t total;
	uint32_t *count;	/* AZURE_MINUTES */
};

/* Splits an Azure row: name gets HashFunction, count the 1440 numbers.
 * Returns -1 when the row is not one (the header, or malformed). */
static int azure_split(char *line, const char **name, size_t *nlen, uint32_t *count, uint64_t *total)
{
	char *p = line, *e;
	unsigned long v;

	for (int field = 0; field < 4; field++) {
		e = strchr(p, ',');
		if (!e)
			return -1;
		if (field == 2) {
			*name = p;
			*nlen = (size_t)(e - p);
		}
		p = e + 1;
	}
	*total = 0;
	for (int m = 0; m < AZURE_MINUTES; m++) {
		errno = 0;
		v = strtoul(p, &e, 10);
		if (e == p || errno || v > 100000000UL || (*e != ',' && m < AZURE_MINUTES - 1))
			return -1;
		count[m] = (uint32_t)v;
		*total += v;
		p = e + 1;
	}
	return 0;
}

/* Spreads a function's per-minute counts evenly over each minute. */
static void azure_expand(struct trace *tr, const char *name, size_t nlen, const uint32_t *count,
	int64_t dur_ms)
{
	uint32_t up = upstream_index(tr, name, nlen);

	for (int m = 0; m < AZURE_MINUTES; m++)
		for (uint32_t j = 0; j < count[m]; j++)
			add_req(tr, (int64_t)m * 60000 + (int64_t)((j + 0.5) * 60000.0 / count[m]), dur_ms, up);
}

int trace_read_azure(struct trace *tr, FILE *f, const char *path, size_t top, int64_t dur_ms,
	char *err, size_t errlen)
{
	struct azure_row *rows = NULL;
	uint32_t count[AZURE_MINUTES];
	char *line = NULL;
	const char *name = NULL;
	size_t cap = 0, lineno = 0, nrows = 0, nlen = 0;
	uint64_t total;
	ssize_t len;
	int rc = 0;

	if (top)
		rows = xrealloc(NULL, top * sizeof(*rows));
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (lineno == 1 && !strncmp(line, "HashOwner,", 10))
			continue;	/* the header */
		if (azure_split(line, &name, &nlen, count, &total) < 0) {
			rc = fail(err, errlen, "%s:%zu: not an Azure Functions invocation row "
				"(HashOwner,HashApp,HashFunction,Trigger,1..1440)", path, lineno);
			break;
		}
		if (!top) {
			azure_expand(tr, name, nlen, count, dur_ms);
			continue;
		}
		/* keep the top rows: fill, then replace the smallest */
		size_t slot = nrows;
		if (nrows == top) {
			slot = 0;
			for (size_t i = 1; i < nrows; i++)
				if (rows[i].total < rows[slot].total)
					slot = i;
			if (rows[slot].total >= total)
				continue;
			free(rows[slot].name);
		} else {
			rows[slot].count = xrealloc(NULL, sizeof(count));
			nrows++;
		}
		rows[slot].name = xrealloc(NULL, nlen + 1);
		memcpy(rows[slot].name, name, nlen);
		rows[slot].name[nlen] = '\0';
		rows[slot].total = total;
		memcpy(rows[slot].count, count, sizeof(count));
	}
	for (size_t i = 0; i < nrows; i++) {
		if (rc == 0)
			azure_expand(tr, rows[i].name, strlen(rows[i].name), rows[i].count, dur_ms);
		free(rows[i].name);
		free(rows[i].count);
	}
	free(rows);
	free(line);
	return rc;
}

static int req_cmp(const void *a, const void *b)
{
	const struct trace_req *x = a, *y = b;

	if (x->up != y->up)
		return x->up < y->up ? -1 : 1;
	return (x->t_ms > y->t_ms) - (x->t_ms < y->t_ms);
}

void trace_sort(struct trace *tr)
{
	qsort(tr->req, tr->n, sizeof(*tr->req), req_cmp);
}
