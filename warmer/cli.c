/*
 * wakegate-warmer: runs one warmup by hand against a worker, on its own
 * event loop, and says how it went. Exit 0 on success, 1 on failure, 2 on
 * bad usage. See man/wakegate-warmer.1.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "warmer/warmer.h"
#include "warmer/warmer_progress.h"

static const char *prog = "wakegate-warmer";

struct cli {
	int quiet;
	int done;
	int ok;
	struct warmer_result res;
	char reason[1024];
	struct event_base *base;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s URL [--model NAME] [--request FILE] [--path PATH] [--count N]\n"
		"       [--until-stable] [--timeout TIME] [-q] [-h]\n"
		"Sends warmup inference to a KServe v2 worker at URL and prints latencies.\n"
		"  -m, --model NAME     model to warm (default: from URL .../v2/models/NAME)\n"
		"  -r, --request FILE   JSON body to POST (default: zeros shaped from the model metadata)\n"
		"  -p, --path PATH      where to POST (default: /v2/models/NAME/infer)\n"
		"  -c, --count N        requests to send (default: 3)\n"
		"  -s, --until-stable   go on until the last 3 latencies agree within 20%% (at most 10*N)\n"
		"  -t, --timeout TIME   limit for the whole warmup: 500ms, 30s, 2m (default: 30s)\n"
		"  -q, --quiet          print nothing on success\n"
		"  -h, --help           this text\n",
		prog);
}

static void bad_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "%s: %s%s%s\n", prog, msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	exit(2);
}

/* "250ms", "30s", "5m", "1h", or plain seconds; -1 when malformed. */
static long parse_time_ms(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || v < 0)
		return -1;
	double mul;
	if (!*end || !strcmp(end, "s"))
		mul = 1000;
	else if (!strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60e3;
	else if (!strcmp(end, "h"))
		mul = 3600e3;
	else
		return -1;
	v *= mul;
	if (v > 86400e3 * 365)
		return -1;
	return (long)v;
}

/* Reads a whole file ("-": stdin) into a malloc'd buffer the caller frees. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *p = realloc(buf, cap);
			if (!p) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f)) {
				free(buf);
				buf = NULL;
			}
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	*len = n;
	return buf;
}

/*
 * Splits "http://h:p/v2/models/NAME[/]" into base and model, in place.
 * Returns the model (pointing into url), or NULL when url has no such path.
 */
static char *model_from_url(char *url)
{
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
	char *p = strstr(url, "/v2/models/");
	if (!p)
		return NULL;
	char *name = p + strlen("/v2/models/");
	if (!*name || strchr(name, '/'))
		return NULL;
	*p = '\0';
	return name;
}

static void on_progress(int n, const char *what, long status, double ms, void *arg)
{
	struct cli *c = arg;

	if (c->quiet)
		return;
	if (status)
		printf("%d %s %ld %.3f ms\n", n, what, status, ms);
	else
		printf("%d %s - %.3f ms\n", n, what, ms);
	fflush(stdout);
}

static void on_done(int ok, const char *reason, const struct warmer_result *res, void *arg)
{
	struct cli *c = arg;

	c->done = 1;
	c->ok = ok;
	c->res = *res;
	snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
	event_base_loopbreak(c->base);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "request", required_argument, NULL, 'r' },
		{ "path", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'c' },
		{ "until-stable", no_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct warmer_opts o = { .count = 3, .timeout_ms = 30000 };
	struct cli c = { 0 };
	const char *request = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "m:r:p:c:st:qh", longopts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'm':
			o.model = optarg;
			break;
		case 'r':
			request = optarg;
			break;
		case 'p':
			o.path = optarg;
			break;
		case 'c':
			errno = 0;
			long n = strtol(optarg, &end, 10);
			if (end == optarg || *end || errno || n < 1 || n > 1000000)
				bad_usage("--count wants a number from 1", optarg);
			o.count = (int)n;
			break;
		case 's':
			o.until_stable = 1;
			break;
		case 't':
			o.timeout_ms = parse_time_ms(optarg);
			if (o.timeout_ms < 0)
				bad_usage("--timeout wants a time like 500ms, 30s or 2m", optarg);
			break;
		case 'q':
			c.quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1)
		bad_usage(optind < argc ? "one URL, please" : "no URL given", NULL);
	if (strncmp(argv[optind], "http://", 7) && strncmp(argv[optind], "https://", 8))
		bad_usage("URL must start with http:// or https://", argv[optind]);

	char *url = strdup(argv[optind]);
	char *body = NULL;
	if (!url) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	char *url_model = model_from_url(url);
	if (!o.model)
		o.model = url_model;
	o.base_url = url;
	if (!o.model && !(o.path && request)) {
		free(url);
		bad_usage("no model: give --model NAME, a URL ending in /v2/models/NAME, "
			  "or --path with --request", NULL);
	}
	if (request) {
		body = read_file(request, &o.body_len);
		if (!body) {
			fprintf(stderr, "%s: %s: %s\n", prog, request, strerror(errno ? errno : ENOMEM));
			free(url);
			return 2;
		}
		o.body = body;
	}

	/* The program, not the library, owns libcurl's global state. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "%s: cannot initialise libcurl\n", prog);
		free(url);
		free(body);
		return 1;
	}
	c.base = event_base_new();
	struct warmer *w = c.base ? warmer_start(c.base, &o, on_done, &c) : NULL;
	int rc = 1;
	if (!w) {
		fprintf(stderr, "%s: cannot start the warmup\n", prog);
	} else {
		warmer_set_progress(w, on_progress, &c);
		event_base_dispatch(c.base);
		if (!c.done) {
			warmer_cancel(w);	/* the loop ran dry: should not happen */
			snprintf(c.reason, sizeof(c.reason), "the event loop stopped early");
		}
		if (c.done && c.ok) {
			if (!c.quiet)
				printf("ok: %d requests in %.3f ms (first %.3f ms, last %.3f ms)\n",
				       c.res.sent, c.res.total_ms, c.res.first_ms, c.res.last_ms);
			rc = 0;
		} else {
			fprintf(stderr, "%s: %s\n", prog, c.reason);
		}
	}
	if (c.base)
		event_base_free(c.base);
	curl_global_cleanup();
	libevent_global_shutdown();
	free(url);
	free(body);
	return rc;
}
