/*
 * metrics-test: drives gateway/metrics.c from a script on stdin so that
 * t/35-metrics.t can compare the rendered exposition with its own model.
 * One command a line, fields separated by tabs; in every field \t \n \\
 * stand for tab, newline and backslash:
 *   declare NAME counter|gauge|histogram HELP [B1,B2,...]
 *   add|set|observe NAME VALUE [LABEL RAWVALUE]...   (values escaped here)
 *   get NAME [LABEL RAWVALUE]...                     prints the value
 *   escape STRING [LEN]                              prints prom_escape()
 *   labels LEN KEY RAWVALUE [KEY RAWVALUE]...        prints prom_labels() (3 pairs at most)
 *   render                                           prints the exposition
 *   bench N                                          times N adds and observes (stderr)
 */
#include "config.h"
#include "gateway/metrics.h"
#include "gateway/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

/* Splits line in place at tabs and decodes the escapes of each field. */
static int split(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;
	while (n < max) {
		f[n++] = p;
		char *o = p;
		while (*p && *p != '\t') {
			if (*p == '\\' && p[1]) {
				p++;
				*o++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
				p++;
			} else {
				*o++ = *p++;
			}
		}
		int end = *p == '\0';
		*o = '\0';
		if (end)
			break;
		p++;
	}
	return n;
}

/* Builds a label string k="v",... from raw pairs, escaping the values. */
static void labels(char **f, int n, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = '\0';
	for (int i = 0; i + 1 < n && o < len; i += 2) {
		char esc[1024];
		prom_escape(f[i + 1], esc, sizeof(esc));
		o += snprintf(buf + o, len - o, "%s%s=\"%s\"", o ? "," : "", f[i], esc);
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench(struct metrics *m, long n)
{
	static const double b[] = { .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 };
	metrics_declare(m, "bench_requests_total", METRICS_COUNTER, "bench", NULL, 0);
	metrics_declare(m, "bench_latency_seconds", METRICS_HISTOGRAM, "bench", b, 11);
	/* Some other series so that the table is not trivially small. */
	for (int i = 0; i < 200; i++) {
		char l[64];
		snprintf(l, sizeof(l), "upstream=\"u%d\",code=\"200\"", i);
		metrics_add(m, "bench_requests_total", l, 1);
	}
	double t0 = now_s();
	for (long i = 0; i < n; i++)
		metrics_add(m, "bench_requests_total", "upstream=\"u7\",code=\"200\"", 1);
	double t1 = now_s();
	for (long i = 0; i < n; i++)
		metrics_observe(m, "bench_latency_seconds", "upstream=\"u7\"", (i % 1000) / 100.0);
	double t2 = now_s();
	fprintf(stderr, "bench: add %.1f ns/op, observe %.1f ns/op (%ld ops each)\n",
		(t1 - t0) * 1e9 / n, (t2 - t1) * 1e9 / n, n);
}

int main(void)
{
	struct metrics *m = metrics_new();
	char line[8192], lb[4096];
	char *f[64];
	if (!m)
		return 1;
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		int n = split(line, f, 64);
		if (strcmp(f[0], "declare") == 0 && n >= 4) {
			enum metrics_type t = strcmp(f[2], "counter") == 0 ? METRICS_COUNTER :
				strcmp(f[2], "gauge") == 0 ? METRICS_GAUGE : METRICS_HISTOGRAM;
			double b[64];
			int nb = 0;
			if (n >= 5 && f[4][0]) {
				for (char *p = f[4]; nb < 64; p++) {
					b[nb++] = strtod(p, &p);
					if (*p != ',')
						break;
				}
			}
			metrics_declare(m, f[1], t, f[3], b, nb);
		} else if ((strcmp(f[0], "add") == 0 || strcmp(f[0], "set") == 0 ||
			    strcmp(f[0], "observe") == 0) && n >= 3) {
			labels(f + 3, n - 3, lb, sizeof(lb));
			double v = strtod(f[2], NULL);
			if (f[0][0] == 'a')
				metrics_add(m, f[1], lb, v);
			else if (f[0][0] == 's')
				metrics_set(m, f[1], lb, v);
			else
				metrics_observe(m, f[1], lb, v);
		} else if (strcmp(f[0], "get") == 0 && n >= 2) {
			labels(f + 2, n - 2, lb, sizeof(lb));
			printf("%.17g\n", metrics_get(m, f[1], lb));
		} else if (strcmp(f[0], "escape") == 0 && n >= 2) {
			char buf[4096];
			size_t len = n >= 3 ? strtoul(f[2], NULL, 10) : sizeof(buf);
			if (len > sizeof(buf))
				len = sizeof(buf);
			prom_escape(f[1], buf, len);
			printf("%s\n", buf);
		} else if (strcmp(f[0], "labels") == 0 && n >= 4) {
			char buf[4096];
			const char *kv[6] = { NULL };
			size_t len = strtoul(f[1], NULL, 10);
			if (len > sizeof(buf))
				len = sizeof(buf);
			for (int i = 2; i < n && i < 8; i++)
				kv[i - 2] = f[i];
			if (n % 2)
				kv[n - 3 < 6 ? n - 3 : 5] = NULL;	/* a key without a value ends the list */
			prom_labels(buf, len, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], NULL);
			printf("%s\n", len ? buf : "");
		} else if (strcmp(f[0], "render") == 0) {
			struct evbuffer *out = evbuffer_new();
			metrics_render(m, out);
			size_t len = evbuffer_get_length(out);
			fwrite(evbuffer_pullup(out, -1), 1, len, stdout);
			evbuffer_free(out);
		} else if (strcmp(f[0], "bench") == 0 && n >= 2) {
			bench(m, strtol(f[1], NULL, 10));
		} else {
			fprintf(stderr, "metrics-test: bad command \"%s\"\n", f[0]);
			metrics_free(m);
			return 2;
		}
		fflush(stdout);
	}
	metrics_free(m);
	return 0;
}
