/*
 * wakegate-replay: replays a request trace in simulated time against
 * always-on, fixed keep-alive and adaptive policies, and prints what each
 * would have cost: billed GPU time, cold starts, and the wait they added.
 * See man/wakegate-replay.1 for the model it simulates.
 */
#include "common/units.h"
#include "gateway/policy.h"
#include "tools/replay_gpu.h"
#include "tools/replay_ladder.h"
#include "tools/replay_sched.h"
#include "tools/trace.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POLICIES 16
#define MAX_MODELS 256
#define N_REASONS 8

struct opts {
	int64_t boot_ms, gran_ms, dur_ms;
	double price;		/* per GPU-hour */
	int azure, csv, verbose;
	int wday0;		/* weekday of day 0 of the trace's clock (0 = Sunday) */
	size_t top;
	const char *path;
	/* --gpu: the multi-model replay (replay_gpu.h) instead of the keep-alive one */
	int64_t gpu_bytes, idle_timeout_ms;
	const char *model[MAX_MODELS];	/* --model NAME=SIZE[,BOOT] and --models FILE lines */
	int nmodel;
	const char *gpu_policy[MAX_POLICIES];
	int ngpu_policy;
	const char *events;	/* --events FILE ("-": stdout) */
	char *models_text;	/* owned: --models FILE's contents, model[] points into it */
};

/* What one policy did over the whole trace. */
struct result {
	char name[160];	/* the spec as given: ladder options make it long */
	int always_on;
	int oracle;		/* the clairvoyant bound (replay_ladder.h) */
	int ladder;		/* the sleep ladder, with lc */
	struct ladder_conf lc;
	struct ladder_out lo;	/* the oracle's or the ladder's counts */
	struct policy_conf pc;
	double billed_ms, alive_ms;
	uint64_t cold;
	int sched;		/* "+schedule": the gateway's prewarm schedule too */
	uint64_t wakes;		/* ... and how often it woke a stopped worker */
	int64_t *wait;		/* per request, owned */
	size_t nwait;
	const char *reason[N_REASONS];	/* adaptive: how often each reason decided */
	uint64_t reason_n[N_REASONS];
};

/* Bills one worker run [a, b), clipped at clip. */
static void bill(struct result *r, const struct opts *o, int64_t a, int64_t b, int64_t clip)
{
	if (b > clip)
		b = clip;
	if (b <= a)
		return;
	r->alive_ms += (double)(b - a);
	r->billed_ms += ceil((double)(b - a) / (double)o->gran_ms) * (double)o->gran_ms;
}

static void count_reason(struct result *r, const char *reason)
{
	for (int i = 0; i < N_REASONS; i++) {
		if (r->reason[i] == reason || !r->reason[i]) {
			r->reason[i] = reason;
			r->reason_n[i]++;
			return;
		}
	}
}

/* A run of the worker: booting from a, stopped at b. */
struct span {
	int64_t a, b;
};

/* Adds [a, b] to sp[0..*n), kept sorted by start. */
static void span_add(struct span *sp, size_t *n, int64_t a, int64_t b)
{
	size_t i = *n;

	while (i > 0 && sp[i - 1].a > a) {
		sp[i] = sp[i - 1];
		i--;
	}
	sp[i] = (struct span){ a, b };
	(*n)++;
}

/* Runs that overlap or touch are one run: the worker simply stays up. */
static size_t span_merge(struct span *sp, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (k && sp[i].a <= sp[k - 1].b) {
			if (sp[i].b > sp[k - 1].b)
				sp[k - 1].b = sp[i].b;
		} else {
			sp[k++] = sp[i];
		}
	}
	return k;
}

/* The schedule's wakes in wk[*wi..nw) up to t, each a run from the wake
 * to wake_ms later, unless the worker is already up then (the gateway wakes
 * only a stopped upstream). Consumes them from *wi. */
static void add_wakes(struct result *r, struct span *sp, size_t *n, const int64_t *wk, size_t nw,
	size_t *wi, int64_t t, int64_t wake_ms)
{
	for (; *wi < nw && wk[*wi] <= t; (*wi)++) {
		int64_t w = wk[*wi];
		int up = 0;

		for (size_t i = 0; i < *n && !up; i++)
			up = sp[i].a <= w && w <= sp[i].b;
		if (!up) {
			span_add(sp, n, w, w + wake_ms);
			r->wakes++;
		}
	}
}

/* How long a schedule wake keeps the worker up with no request: until
 * idle_timeout (the fixed keep-alive) after the stretch starts, lead
 * minutes after the wake, or the keep-alive after it is ready if longer. */
static int64_t wake_hold_ms(const struct result *r, const struct opts *o, int64_t ka_ms)
{
	int64_t hold = (int64_t)policy_sched_lead_min(o->boot_ms) * 60000 + r->pc.fixed_ms;

	return hold > o->boot_ms + ka_ms ? hold : o->boot_ms + ka_ms;
}

/* One upstream's requests q[0..n), sorted by arrival, on one worker under
 * r's policy. The worker's schedule after each request is the policy's
 * decision from the gaps seen before it went idle, plus, with the
 * schedule, the wakes wk[0..nw). Runs are clipped at span_end (the
 * trace's end) unless work is still going on then. */
static void sim_upstream(struct result *r, const struct opts *o, const struct trace_req *q,
	size_t n, int64_t span_end, const int64_t *wk, size_t nw, struct span *sp, struct replay_tod *tod)
{
	struct policy_hist h;
	struct policy_decision d = { 0 };
	int64_t run = -1, ready = 0, busy = 0, counted = -1, b = o->boot_ms, clip;
	size_t wi = 0, ns;

	policy_hist_init(&h);
	for (size_t i = 0; i < n; i++) {
		int64_t t = q[i].t_ms, w, end;

		if (run < 0 || t > busy) {
			/* an idle period ends: which runs did it have, and is one up at t? */
			ns = 0;
			if (run >= 0) {
				int64_t gap = t - busy;

				d = replay_tod_decide(tod, policy_decide(&r->pc, &h), busy);
				count_reason(r, d.reason);
				policy_observe_gap(&h, gap);
				span_add(sp, &ns, run, busy + d.keepalive_ms);
				if (d.prewarm_ms > 0)
					span_add(sp, &ns, busy + d.prewarm_ms, busy + d.until_ms);
			}
			add_wakes(r, sp, &ns, wk, nw, &wi, t, wake_hold_ms(r, o, d.keepalive_ms));
			ns = span_merge(sp, ns);
			int64_t cur = -1;
			for (size_t k = 0; k < ns; k++) {
				if (sp[k].b < t)
					bill(r, o, sp[k].a, sp[k].b, INT64_MAX);
				else if (sp[k].a <= t)
					cur = sp[k].a;
			}
			if (cur < 0)
				cur = t;
			if (cur != run) {
				run = cur;
				ready = run + b;
			}
		}
		w = ready > t ? ready - t : 0;
		if (w > 0 && counted != run) {
			r->cold++;
			counted = run;
		}
		r->wait[r->nwait++] = w;
		end = (t > ready ? t : ready) + q[i].dur_ms;
		if (end > busy)
			busy = end;
	}
	if (run >= 0) {
		clip = busy > span_end ? busy : span_end;
		d = replay_tod_decide(tod, policy_decide(&r->pc, &h), busy);
		ns = 0;
		span_add(sp, &ns, run, busy + d.keepalive_ms);
		add_wakes(r, sp, &ns, wk, nw, &wi, clip, wake_hold_ms(r, o, d.keepalive_ms));
		ns = span_merge(sp, ns);
		for (size_t k = 0; k < ns; k++)
			bill(r, o, sp[k].a, sp[k].b, clip);
	}
}

static void sim_policy(struct result *r, const struct opts *o, const struct trace *tr,
	int64_t span_start, int64_t span_end)
{
	size_t i, j;

	r->wait = calloc(tr->n ? tr->n : 1, sizeof(*r->wait));
	if (!r->wait) {
		fputs("wakegate-replay: out of memory\n", stderr);
		exit(1);
	}
	if (r->always_on) {
		for (i = 0; i < tr->nup; i++)
			bill(r, o, span_start, span_end, span_end);
		r->nwait = tr->n;
		return;
	}
	if (r->oracle || r->ladder) {
		for (i = 0; i < tr->n; i = j) {
			for (j = i; j < tr->n && tr->req[j].up == tr->req[i].up; j++)
				;
			if (r->oracle)
				replay_oracle(tr->req + i, j - i, o->boot_ms, o->gran_ms, &r->lo, r->wait + i);
			else
				replay_ladder(&r->lc, tr->req + i, j - i, o->boot_ms, o->gran_ms, span_end, &r->lo,
					r->wait + i);
		}
		r->billed_ms = r->lo.billed_ms;
		r->alive_ms = r->lo.alive_ms;
		r->cold = r->lo.cold;
		r->nwait = tr->n;
		return;
	}
	for (i = 0; i < tr->n; i = j) {
		int64_t *wk = NULL;
		long nw = 0;
		struct span *sp;
		struct replay_tod tod;

		for (j = i; j < tr->n && tr->req[j].up == tr->req[i].up; j++)
			;
		if (r->sched)
			nw = replay_sched_wakes(tr->req + i, j - i, span_start, span_end, o->boot_ms, &wk);
		sp = nw >= 0 ? malloc(((size_t)nw + 3) * sizeof(*sp)) : NULL;
		if (!sp) {
			fputs("wakegate-replay: out of memory\n", stderr);
			exit(1);
		}
		if (replay_tod_init(&tod, &r->pc, tr->req + i, j - i, o->wday0) < 0) {
			fputs("wakegate-replay: out of memory\n", stderr);
			exit(1);
		}
		sim_upstream(r, o, tr->req + i, j - i, span_end, wk, (size_t)nw, sp, &tod);
		replay_tod_free(&tod);
		free(sp);
		free(wk);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of r's waits, in seconds; sorts them. */
static double wait_pct(struct result *r, double q)
{
	size_t k;

	if (!r->nwait)
		return 0;
	qsort(r->wait, r->nwait, sizeof(*r->wait), cmp_i64);
	k = (size_t)ceil(q / 100.0 * (double)r->nwait);
	return (double)r->wait[k ? k - 1 : 0] / 1000.0;
}

static void usage(FILE *f)
{
	fputs("usage: wakegate-replay TRACE.csv\n"
		"       [--policy always-on|oracle|fixed:TIME|adaptive[:OPTS]|ladder[:OPTS]|schedule|POLICY+schedule|all]...\n"
		"       [--boot TIME] [--price AMOUNT/h] [--granularity 1s|1m|1h|off] [--duration TIME]\n"
		"       [--azure [--top N]] [--csv] [-v]\n"
		"       wakegate-replay TRACE.csv --gpu SIZE (--model NAME=SIZE[,BOOT] | --models FILE)...\n"
		"       [--policy lru|one-at-a-time|penalty|oracle|all]... [--boot TIME] [--idle-timeout TIME]\n"
		"       [--duration TIME] [--events FILE] [--csv] [-v]\n", f);
}

static void die(const char *msg, const char *arg)
{
	fprintf(stderr, "wakegate-replay: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	exit(2);
}

/* Adds the policy named by spec ("all" adds three) to res. */
static void add_policy(struct result *res, int *nres, const struct opts *o, const char *spec)
{
	const char *err;
	struct result *r;

	const char *plus;
	char base[160];

	if (!strcmp(spec, "all")) {
		add_policy(res, nres, o, "always-on");
		add_policy(res, nres, o, "fixed:5m");
		add_policy(res, nres, o, "adaptive");
		add_policy(res, nres, o, "schedule");
		add_policy(res, nres, o, "adaptive+schedule");
		add_policy(res, nres, o, "ladder");
		return;
	}
	if (*nres == MAX_POLICIES)
		die("too many policies", spec);
	r = &res[(*nres)++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", spec);
	policy_conf_default(&r->pc);
	/* "schedule" is the default fixed 5 minutes with the schedule; "P+schedule" is P with it */
	plus = strchr(spec, '+');
	snprintf(base, sizeof(base), "%.*s", plus ? (int)(plus - spec) : (int)strlen(spec), spec);
	if (!strcmp(spec, "schedule")) {
		r->sched = 1;
		snprintf(base, sizeof(base), "fixed:5m");
	} else if (plus) {
		if (strcmp(plus, "+schedule"))
			die("the only addition to a policy is +schedule", spec);
		r->sched = 1;
	}
	ladder_conf_default(&r->lc);
	if (!strcmp(base, "always-on") && !r->sched) {
		r->always_on = 1;
	} else if (!strcmp(base, "oracle") || !strncmp(base, "ladder", 6)) {
		if (r->sched)
			die("the oracle and the ladder take no +schedule", spec);
		if (base[0] == 'o') {
			r->oracle = 1;
		} else if (base[6] && (base[6] != ':' || ladder_conf_parse(&r->lc, base + 7, &err) < 0)) {
			die(base[6] == ':' ? err : "the ladder's options follow \"ladder:\"", spec);
		} else {
			r->ladder = 1;
		}
	} else if (policy_conf_parse(&r->pc, base, &err) < 0) {
		die(err, spec);
	}
}

/* --models FILE: one NAME=SIZE[,BOOT] a line; blank lines and '#' comments skipped. */
static void read_models(struct opts *o, const char *path)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 0;
	char buf[4096], *text = NULL;
	size_t n;

	if (!f) {
		fprintf(stderr, "wakegate-replay: %s: %m\n", path);
		exit(2);
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			text = realloc(text, cap);
			if (!text)
				die("out of memory", path);
		}
		memcpy(text + len, buf, n);
		len += n;
	}
	fclose(f);
	if (!text)
		return;
	text[len] = '\0';
	if (o->models_text)
		die("one --models at a time", path);
	o->models_text = text;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *e = line + strlen(line);
		while (*line == ' ' || *line == '\t')
			line++;
		while (e > line && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			*--e = '\0';
		if (!*line || *line == '#')
			continue;
		if (o->nmodel == MAX_MODELS)
			die("too many models", path);
		o->model[o->nmodel++] = line;
	}
}

static void parse_args(int argc, char **argv, struct opts *o, struct result *res, int *nres)
{
	const char *specs[MAX_POLICIES];
	int nspec = 0;
	char *end;

	*o = (struct opts){ .boot_ms = 30000, .gran_ms = 1000, .dur_ms = 100, .price = 1.0,
		.idle_timeout_ms = 300000 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--azure")) {
			o->azure = 1;
		} else if (!strcmp(a, "--csv")) {
			o->csv = 1;
		} else if (!strcmp(a, "-v")) {
			o->verbose = 1;
		} else if (a[0] == '-' && a[1] && !v) {
			die("option needs a value", a);
		} else if (!strcmp(a, "--policy")) {
			if (nspec == MAX_POLICIES)
				die("too many policies", v);
			specs[nspec++] = argv[++i];
		} else if (!strcmp(a, "--boot")) {
			if (policy_parse_ms(argv[++i], &o->boot_ms) < 0)
				die("--boot needs a time such as 30s", v);
		} else if (!strcmp(a, "--duration")) {
			if (policy_parse_ms(argv[++i], &o->dur_ms) < 0)
				die("--duration needs a time such as 100ms", v);
		} else if (!strcmp(a, "--granularity")) {
			/* billing_granularity's rule (common/units.h): 1s, 1m or 1h, never 2m or 1.5s;
			 * "off" (replay only: no bill is exact) rounds to the trace's own unit, 1ms */
			o->gran_ms = !strcmp(argv[++i], "off") ? 1 : units_granularity_ms(argv[i]);
			if (o->gran_ms < 0)
				die("--granularity must be 1s, 1m or 1h (as billing_granularity in wakegate.conf(5)), or off", v);
		} else if (!strcmp(a, "--price")) {
			o->price = strtod(argv[++i], &end);
			if (end == v || (*end && strcmp(end, "/h")) || !(o->price >= 0))
				die("--price needs an amount per hour such as 1.0/h", v);
		} else if (!strcmp(a, "--gpu")) {
			if (replay_gpu_parse_size(argv[++i], &o->gpu_bytes) < 0)
				die("--gpu needs a memory size such as 24g", v);
		} else if (!strcmp(a, "--model")) {
			if (o->nmodel == MAX_MODELS)
				die("too many models", v);
			o->model[o->nmodel++] = argv[++i];
		} else if (!strcmp(a, "--models")) {
			read_models(o, argv[++i]);
		} else if (!strcmp(a, "--idle-timeout")) {
			if (policy_parse_ms(argv[++i], &o->idle_timeout_ms) < 0)
				die("--idle-timeout needs a time such as 5m", v);
		} else if (!strcmp(a, "--events")) {
			o->events = argv[++i];
		} else if (!strcmp(a, "--top")) {
			long n = strtol(argv[++i], &end, 10);
			if (end == v || *end || n < 0)
				die("--top needs a count", v);
			o->top = (size_t)n;
		} else if (a[0] == '-' && a[1]) {
			die("unknown option", a);
		} else if (o->path) {
			die("one trace at a time", a);
		} else {
			o->path = a;
		}
	}
	if (!o->path) {
		usage(stderr);
		exit(2);
	}
	if (o->gpu_bytes) {
		if (!nspec)
			specs[nspec++] = "all";
		for (int i = 0; i < nspec; i++) {
			if (!strcmp(specs[i], "all")) {
				o->gpu_policy[o->ngpu_policy++] = "lru";
				o->gpu_policy[o->ngpu_policy++] = "one-at-a-time";
				o->gpu_policy[o->ngpu_policy++] = "penalty";
			} else if (!strcmp(specs[i], "lru") || !strcmp(specs[i], "one-at-a-time")
				|| !strcmp(specs[i], "penalty") || !strcmp(specs[i], "oracle")) {
				o->gpu_policy[o->ngpu_policy++] = specs[i];
			} else {
				die("with --gpu a policy is lru, one-at-a-time, penalty, oracle or all", specs[i]);
			}
			if (o->ngpu_policy > MAX_POLICIES - 3)
				die("too many policies", specs[i]);
		}
		return;
	}
	if (o->nmodel || o->events)
		die("--model, --models and --events need --gpu", NULL);
	/* always-on first: the baseline the others save against; the oracle
	 * second: the bound every policy's GPU time is a ratio to */
	add_policy(res, nres, o, "always-on");
	add_policy(res, nres, o, "oracle");
	if (!nspec)
		specs[nspec++] = "all";
	for (int i = 0; i < nspec; i++) {
		if (!strcmp(specs[i], "always-on") || !strcmp(specs[i], "oracle"))
			continue;
		if (!strcmp(specs[i], "all")) {
			add_policy(res, nres, o, "fixed:5m");
			add_policy(res, nres, o, "adaptive");
			add_policy(res, nres, o, "schedule");
			add_policy(res, nres, o, "adaptive+schedule");
			add_policy(res, nres, o, "ladder");
		} else {
			add_policy(res, nres, o, specs[i]);
		}
	}
	for (int i = 0; i < *nres; i++)
		res[i].pc.boot_ms = o->boot_ms;
}

static void print_results(struct result *res, int nres, const struct opts *o,
	const struct trace *tr, int64_t span)
{
	double base = res[0].billed_ms, orc = res[1].billed_ms;	/* always-on, the oracle */

	if (o->csv)
		puts("policy,gpu_seconds,cost,saving_pct,cold_starts,wait_p50_s,wait_p99_s,gpu_vs_oracle,wakes");
	else
		printf("%s: %zu upstream%s, %zu requests over %.1f h; boot %.1fs, price %.2f/h, billed per %gs\n"
			"%-22s %12s %10s %8s %12s %9s %9s %9s %7s\n", o->path, tr->nup, tr->nup == 1 ? "" : "s",
			tr->n, (double)span / 3600000.0, (double)o->boot_ms / 1000.0, o->price,
			(double)o->gran_ms / 1000.0, "policy", "GPU-seconds", "cost", "saving",
			"cold-starts", "wait-p50", "wait-p99", "vs-oracle", "wakes");
	for (int i = 0; i < nres; i++) {
		struct result *r = &res[i];
		double gpu_s = r->billed_ms / 1000.0, cost = gpu_s / 3600.0 * o->price;
		double saving = base > 0 ? 100.0 * (1.0 - r->billed_ms / base) : 0;
		double p50 = wait_pct(r, 50), p99 = wait_pct(r, 99);
		double vs = orc > 0 ? r->billed_ms / orc : 0;
		uint64_t wakes = r->lo.wakes[1] + r->lo.wakes[2];

		if (o->csv) {
			char name[sizeof(r->name)], *c;

			/* a spec's own commas (ladder:price1=0,price2=0) would split the row */
			memcpy(name, r->name, sizeof(name));
			while ((c = strchr(name, ',')))
				*c = ';';
			printf("%s,%.1f,%.4f,%.2f,%" PRIu64 ",%.3f,%.3f,%.3f,%" PRIu64 "\n", name, gpu_s, cost,
				saving, r->cold, p50, p99, vs, wakes);
		}
		else
			printf("%-22s %12.1f %10.2f %7.1f%% %12" PRIu64 " %8.2fs %8.2fs %8.2fx %7" PRIu64 "\n",
				r->name, gpu_s, cost, saving, r->cold, p50, p99, vs, wakes);
	}
	if (!o->verbose)
		return;
	for (int i = 0; i < nres; i++)
		if (res[i].ladder)
			printf("# %s: %" PRIu64 " process starts; wakes from level 1 %" PRIu64 ", level 2 %" PRIu64
				"; asleep %.1f s at level 1, %.1f s at level 2, of %.1f s alive\n", res[i].name,
				res[i].lo.runs, res[i].lo.wakes[1], res[i].lo.wakes[2], res[i].lo.asleep_ms[1] / 1000,
				res[i].lo.asleep_ms[2] / 1000, res[i].lo.alive_ms / 1000);
	for (int i = 0; i < nres; i++)
		if (res[i].sched)
			printf("# %s: the schedule woke the stopped worker %" PRIu64 " times\n", res[i].name,
				res[i].wakes);
	for (int i = 0; i < nres; i++) {
		if (!res[i].reason[0] || res[i].pc.kind != POLICY_ADAPTIVE)
			continue;
		printf("# %s decisions:", res[i].name);
		for (int j = 0; j < N_REASONS && res[i].reason[j]; j++)
			printf(" %s %" PRIu64 ";", res[i].reason[j], res[i].reason_n[j]);
		printf(" worker alive %.1f s before rounding\n", res[i].alive_ms / 1000.0);
	}
}

/* Nearest-rank percentile of n waits (ms), sorted, in seconds. */
static double hold_pct(const int64_t *w, size_t n, double q)
{
	size_t k = (size_t)ceil(q / 100.0 * (double)n);

	return n ? (double)w[k ? k - 1 : 0] / 1000.0 : 0;
}

/* --gpu: every model of the trace on one device, under each eviction policy. */
static int gpu_main(struct opts *o, const struct trace *tr, int64_t span)
{
	struct gpu_model_spec *spec = calloc(tr->nup, sizeof(*spec));
	struct gpu_result res[MAX_POLICIES];
	struct gpu_conf c = { .device_bytes = o->gpu_bytes, .idle_timeout_ms = o->idle_timeout_ms, .spec = spec };
	int rc = 0, nres = 0;

	if (!spec)
		die("out of memory", NULL);
	for (size_t u = 0; u < tr->nup; u++) {
		int found = 0;
		for (int k = 0; k < o->nmodel; k++) {
			const char *name;
			size_t nlen;
			struct gpu_model_spec sp;
			if (replay_gpu_parse_model(o->model[k], o->boot_ms, &name, &nlen, &sp) < 0)
				die("a model is NAME=SIZE[,BOOT], such as llama-8b=16g,40s", o->model[k]);
			if (nlen == strlen(tr->names[u]) && !memcmp(name, tr->names[u], nlen)) {
				spec[u] = sp;
				found = 1;
			}
		}
		if (!found) {
			fprintf(stderr, "wakegate-replay: model \"%s\" of the trace has no --model NAME=SIZE\n",
				tr->names[u]);
			free(spec);
			return 2;
		}
		if (spec[u].bytes > o->gpu_bytes) {
			fprintf(stderr, "wakegate-replay: model \"%s\" (%" PRId64 " bytes) is larger than the device (%"
				PRId64 " bytes)\n", tr->names[u], spec[u].bytes, o->gpu_bytes);
			free(spec);
			return 2;
		}
	}
	if (o->events) {
		c.events = strcmp(o->events, "-") ? fopen(o->events, "w") : stdout;
		if (!c.events) {
			fprintf(stderr, "wakegate-replay: %s: %m\n", o->events);
			free(spec);
			return 1;
		}
	}
	for (int k = 0; k < o->ngpu_policy; k++) {
		enum gpu_policy p = !strcmp(o->gpu_policy[k], "lru") ? GPU_LRU
			: !strcmp(o->gpu_policy[k], "one-at-a-time") ? GPU_ONE
			: !strcmp(o->gpu_policy[k], "oracle") ? GPU_ORACLE : GPU_PENALTY;
		if (replay_gpu_run(&c, tr, p, &res[nres]) < 0) {
			fputs("wakegate-replay: out of memory\n", stderr);
			rc = 1;
			break;
		}
		qsort(res[nres].hold, res[nres].nhold, sizeof(*res[nres].hold), cmp_i64);
		nres++;
	}
	if (c.events && c.events != stdout)
		fclose(c.events);
	if (o->csv)
		puts("policy,loads,gpu_seconds,hold_p50_s,hold_p99_s,mem_waits,evictions,peak_bytes,peak_models,lru_choices");
	else
		printf("%s: %zu models, %zu requests over %.1f h; device %.1f GiB, idle_timeout %.0fs\n"
			"%-14s %8s %12s %9s %9s %10s %9s\n", o->path, tr->nup, tr->n, (double)span / 3600000.0,
			(double)o->gpu_bytes / (1 << 30), (double)o->idle_timeout_ms / 1000, "policy", "loads",
			"GPU-seconds", "hold-p50", "hold-p99", "mem-waits", "evictions");
	for (int k = 0; k < nres; k++) {
		struct gpu_result *r = &res[k];
		double p50 = hold_pct(r->hold, r->nhold, 50), p99 = hold_pct(r->hold, r->nhold, 99);
		if (o->csv)
			printf("%s,%" PRIu64 ",%.1f,%.3f,%.3f,%" PRIu64 ",%" PRIu64 ",%" PRId64 ",%d,%" PRIu64 "\n",
				r->name, r->all.loads, r->device_ms / 1000, p50, p99, r->all.mem_waits,
				r->all.evictions, r->peak_bytes, r->peak_models, r->lru_choices);
		else
			printf("%-14s %8" PRIu64 " %12.1f %8.2fs %8.2fs %10" PRIu64 " %9" PRIu64 "\n", r->name,
				r->all.loads, r->device_ms / 1000, p50, p99, r->all.mem_waits, r->all.evictions);
	}
	for (int k = 0; o->verbose && k < nres; k++) {
		struct gpu_result *r = &res[k];
		printf("# %s: peak %.2f GiB in %d models; %" PRIu64 " choices fell back to LRU\n", r->name,
			(double)r->peak_bytes / (1 << 30), r->peak_models, r->lru_choices);
		for (size_t u = 0; u < tr->nup; u++) {
			struct gpu_count *m = &r->model[u];
			printf("#   %-16s %8" PRIu64 " requests %6" PRIu64 " loads %6" PRIu64 " evictions %6"
				PRIu64 " mem-waits %10.1f s loaded %8.2f s mean hold\n", tr->names[u], m->reqs,
				m->loads, m->evictions, m->mem_waits, m->resident_ms / 1000,
				m->reqs ? m->hold_ms / 1000 / (double)m->reqs : 0);
		}
	}
	for (int k = 0; k < nres; k++)
		replay_gpu_free(&res[k]);
	free(spec);
	return rc;
}

int main(int argc, char **argv)
{
	struct result res[MAX_POLICIES];
	struct opts o;
	struct trace tr;
	char err[512];
	int nres = 0, rc;
	int64_t span_start = INT64_MAX, span_end = 0;
	FILE *f;

	parse_args(argc, argv, &o, res, &nres);
	f = strcmp(o.path, "-") ? fopen(o.path, "r") : stdin;
	if (!f) {
		fprintf(stderr, "wakegate-replay: %s: %m\n", o.path);
		return 1;
	}
	trace_init(&tr);
	rc = o.azure ? trace_read_azure(&tr, f, o.path, o.top, o.dur_ms, err, sizeof(err))
		: trace_read_csv(&tr, f, o.path, o.dur_ms, err, sizeof(err));
	if (f != stdin)
		fclose(f);
	if (rc < 0 || tr.n == 0) {
		fprintf(stderr, "wakegate-replay: %s\n", rc < 0 ? err : "the trace has no requests");
		trace_free(&tr);
		return 1;
	}
	trace_sort(&tr);
	for (size_t i = 0; i < tr.n; i++) {
		if (tr.req[i].t_ms < span_start)
			span_start = tr.req[i].t_ms;
		if (tr.req[i].t_ms + tr.req[i].dur_ms > span_end)
			span_end = tr.req[i].t_ms + tr.req[i].dur_ms;
	}
	if (o.gpu_bytes) {
		rc = gpu_main(&o, &tr, span_end - span_start);
		trace_free(&tr);
		free(o.models_text);
		return rc;
	}
	/* Unix times (after 2001): day 0 is 1970-01-01, a Thursday; else the trace's time 0 is a Monday */
	o.wday0 = span_start >= INT64_C(1000000000000) ? 4 : 1;
	for (int i = 0; i < nres; i++)
		sim_policy(&res[i], &o, &tr, span_start, span_end);
	print_results(res, nres, &o, &tr, span_end - span_start);
	for (int i = 0; i < nres; i++)
		free(res[i].wait);
	trace_free(&tr);
	return 0;
}
