/* prom: the Prometheus text format writer (see prom.h). */
#include "config.h"
#include "common/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

void prom_fmt(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		snprintf(buf, len, "%.0f", v == 0 ? 0.0 : v);	/* no "-0" */
	else {
		snprintf(buf, len, "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, len, "%.17g", v);
	}
}

void prom_head(struct evbuffer *out, const char *name, enum prom_type type, const char *help)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };

	evbuffer_add_printf(out, "# HELP %s ", name);
	/* HELP text escapes only backslash and newline */
	for (const char *s = help ? help : ""; *s; s++) {
		if (*s == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
	evbuffer_add_printf(out, "\n# TYPE %s %s\n", name, types[type]);
}

void prom_sample(struct evbuffer *out, const char *name, const char *labels, double v)
{
	char num[64];

	prom_fmt(v, num, sizeof(num));
	if (labels && labels[0])
		evbuffer_add_printf(out, "%s{%s} %s\n", name, labels, num);
	else
		evbuffer_add_printf(out, "%s %s\n", name, num);
}

void prom_histogram(struct evbuffer *out, const char *name, const char *labels,
		    const double *le, int n, const uint64_t *counts, uint64_t count, double sum)
{
	const char *l = labels ? labels : "";
	const char *sep = l[0] ? "," : "";
	char num[64];
	uint64_t cum = 0;

	for (int i = 0; i <= n; i++) {
		cum += counts[i];
		if (i < n)
			prom_fmt(le[i], num, sizeof(num));
		else
			snprintf(num, sizeof(num), "+Inf");
		evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, l, sep, num,
				    (unsigned long long)cum);
	}
	prom_fmt(sum, num, sizeof(num));
	if (l[0]) {
		evbuffer_add_printf(out, "%s_sum{%s} %s\n", name, l, num);
		evbuffer_add_printf(out, "%s_count{%s} %llu\n", name, l, (unsigned long long)count);
	} else {
		evbuffer_add_printf(out, "%s_sum %s\n", name, num);
		evbuffer_add_printf(out, "%s_count %llu\n", name, (unsigned long long)count);
	}
}

void prom_escape(const char *s, char *buf, size_t len)
{
	if (len == 0)
		return;
	size_t o = 0;
	for (; *s; s++) {
		const char *e = NULL;
		if (*s == '\\')
			e = "\\\\";
		else if (*s == '"')
			e = "\\\"";
		else if (*s == '\n')
			e = "\\n";
		size_t n = e ? 2 : 1;
		if (o + n >= len)
			break;	/* never split an escape */
		if (e)
			memcpy(buf + o, e, 2);
		else
			buf[o] = *s;
		o += n;
	}
	buf[o] = '\0';
}

const char *prom_labels(char *buf, size_t len, const char *key, const char *value, ...)
{
	va_list ap;
	size_t o = 0;
	char esc[512];

	if (len == 0)
		return buf;
	buf[0] = '\0';
	va_start(ap, value);
	while (key) {
		prom_escape(value ? value : "", esc, sizeof(esc));
		int n = snprintf(buf + o, len - o, "%s%s=\"%s\"", o ? "," : "", key, esc);
		if (n < 0 || (size_t)n >= len - o) {
			buf[o] = '\0';	/* the pair that does not fit goes whole */
			break;
		}
		o += (size_t)n;
		key = va_arg(ap, const char *);
		if (key)
			value = va_arg(ap, const char *);
	}
	va_end(ap);
	return buf;
}
