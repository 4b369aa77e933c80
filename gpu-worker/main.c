/*
 * wakegate-worker: serves one model over HTTP (/predict and KServe v2) with
 * dynamic batching, on the GPU with CUDA or on the CPU. main() parses the
 * flags, loads the model, picks the device, listens, and runs the loop
 * until SIGTERM/SIGINT has drained the queue.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/http.h>

#include "common/clock.h"
#include "gpu-worker/api.h"
#include "gpu-worker/batch.h"
#include "gpu-worker/model.h"
#include "gpu-worker/ops.h"
#include "gpu-worker/stats.h"
#include "gpu-worker/wlog.h"
#include "gpu-worker/worker.h"

#define PROG "wakegate-worker"
#define DRAIN_GRACE_S 30

struct opts {
	const char *model;
	const char *listen;
	const char *device;		/* "auto", "cpu" or "cuda" */
	const char *device_arg;		/* as given, for messages */
	int cuda_index;			/* N of cuda:N */
	long cublas_min;
	const char *name;
	const char *model_version;
	int max_batch;
	long delay_ms;
	int queue;
	int warmup;
	size_t leak;
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " --model FILE --listen ADDR:PORT [options]\n"
		"\n"
		"Serves a wakegate model over HTTP: POST /predict, the KServe v2 API\n"
		"(/v2/health/live, /v2/health/ready, /v2/models/NAME[/ready|/infer]) and GET /metrics.\n"
		"\n"
		"  -m, --model FILE        the model (safetensors, see wakegate-worker(8))\n"
		"  -l, --listen ADDR:PORT  where to listen, e.g. 127.0.0.1:9001, :9001 or [::1]:9001\n"
		"  -d, --device DEV        auto (CUDA when a GPU is there, else the CPU), cpu, cuda\n"
		"                          or cuda:N (device N of CUDA_VISIBLE_DEVICES) (default auto)\n"
		"      --cublas-min N      dense layers of N weights or more use cuBLAS on the GPU;\n"
		"                          off: never (default %ld)\n"
		"  -b, --max-batch N       samples per batch, and per request, at most (default 32)\n"
		"  -D, --batch-delay TIME  how long a request waits for others to fill a batch:\n"
		"                          250ms, 2s; a bare number is seconds (default 0: no waiting)\n"
		"  -q, --queue N           requests that may wait; more get 503 (default 256)\n"
		"  -n, --name NAME         the model's name in /v2/models/NAME (default: from the file)\n"
		"  -w, --warmup N          runs of a full batch of zeros before ready (default 1)\n"
		"      --model-version V   the version in KServe metadata and answers (default 1)\n"
		"      --leak-per-request BYTES\n"
		"                          tests only: leak BYTES (k, m suffixes) per answered inference\n"
		"  -h, --help              this text\n"
		"  -V, --version           the version\n", OPS_CUBLAS_MIN_DEFAULT);
}

/* Bad usage: a message, then exit 2. */
static void __attribute__((noreturn, format(printf, 1, 2)))
die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see " PROG " --help)\n", stderr);
	exit(2);
}

static int
parse_int(const char *flag, const char *s, int min, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		die_usage("%s: \"%s\" is not a number from %d to %d", flag, s, min, max);
	return (int)v;
}

/* BYTES: "4096", "64k", "1m" (powers of 1024), at most 1g. */
static size_t
parse_bytes(const char *flag, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		die_usage("%s: \"%s\" is not a size (e.g. 4096, 64k, 1m)", flag, s);
	if (*end == 'k' || *end == 'K')
		v *= 1024, end++;
	else if (*end == 'm' || *end == 'M')
		v *= 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		v *= 1024.0 * 1024 * 1024, end++;
	if (*end || v > 1024.0 * 1024 * 1024)
		die_usage("%s: \"%s\" is not a size up to 1g (e.g. 4096, 64k, 1m)", flag, s);
	return (size_t)v;
}

/* TIME: "250ms", "2s", "1.5s", "1m", or plain milliseconds. */
static long
parse_time_ms(const char *flag, const char *s)
{
	char *end;
	double v, mul = 1;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		die_usage("%s: \"%s\" is not a time (e.g. 250ms, 2s)", flag, s);
	/* a bare number is seconds, as in wakegate.conf and the other programs (nginx's rule) */
	if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else
		die_usage("%s: \"%s\" is not a time (e.g. 250ms, 2s)", flag, s);
	if (v * mul > 3600000)
		die_usage("%s: %s is longer than an hour", flag, s);
	return (long)(v * mul + 0.5);
}

/* ADDR:PORT, :PORT, PORT or [V6]:PORT into addr (without brackets) and port. */
static void
parse_listen(const char *s, char *addr, size_t alen, int *port)
{
	const char *colon;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			die_usage("--listen: \"%s\" is not [ADDR]:PORT", s);
		snprintf(addr, alen, "%.*s", (int)(close - s - 1), s + 1);
		colon = close + 1;
	} else if ((colon = strrchr(s, ':'))) {
		snprintf(addr, alen, "%.*s", (int)(colon - s), s);
	} else {
		snprintf(addr, alen, "%s", "0.0.0.0");
		colon = s - 1;
	}
	if (!*addr)
		snprintf(addr, alen, "%s", "0.0.0.0");
	*port = parse_int("--listen", colon + 1, 0, 65535);
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "listen", required_argument, NULL, 'l' },
		{ "device", required_argument, NULL, 'd' },
		{ "max-batch", required_argument, NULL, 'b' },
		{ "batch-delay", required_argument, NULL, 'D' },
		{ "queue", required_argument, NULL, 'q' },
		{ "name", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "leak-per-request", required_argument, NULL, 'L' },
		{ "model-version", required_argument, NULL, 'M' },
		{ "cublas-min", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	*o = (struct opts){ .device = "auto", .device_arg = "auto", .cublas_min = OPS_CUBLAS_MIN_DEFAULT, .max_batch = 32,
		.delay_ms = 0, .queue = 256, .warmup = 1, .model_version = "1" };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:l:d:b:D:q:n:w:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'd': o->device = o->device_arg = optarg; break;
		case 'b': o->max_batch = parse_int("--max-batch", optarg, 1, 65536); break;
		case 'D': o->delay_ms = parse_time_ms("--batch-delay", optarg); break;
		case 'q': o->queue = parse_int("--queue", optarg, 1, 1000000); break;
		case 'n': o->name = optarg; break;
		case 'w': o->warmup = parse_int("--warmup", optarg, 0, 1000000); break;
		case 'L': o->leak = parse_bytes("--leak-per-request", optarg); break;
		case 'M': o->model_version = optarg; break;
		case 'C': o->cublas_min = strcmp(optarg, "off") ? parse_int("--cublas-min", optarg, 1, INT_MAX) : -1; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf(PROG " %s\n", PACKAGE_VERSION); exit(0);
		case ':': die_usage("%s needs a value", argv[optind - 1]);
		default: die_usage("unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument \"%s\"", argv[optind]);
	if (!o->model)
		die_usage("--model FILE is required");
	if (!o->listen)
		die_usage("--listen ADDR:PORT is required");
	if (strncmp(o->device, "cuda:", 5) == 0) {
		o->cuda_index = parse_int("--device cuda:N", o->device + 5, 0, 1023);
		o->device = "cuda";
	} else if (strcmp(o->device, "auto") && strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) {
		die_usage("--device: \"%s\" is not auto, cpu, cuda or cuda:N", o->device);
	}
	if (!*o->model_version || strlen(o->model_version) > 64 || strchr(o->model_version, '/'))
		die_usage("--model-version: \"%s\" is not a version (1 to 64 characters, no '/')", o->model_version);
	if (o->name && (!*o->name || strchr(o->name, '/') || strlen(o->name) > 128))
		die_usage("--name: \"%s\" is not a model name (1 to 128 characters, no '/')", o->name);
}

/*
 * Picks the device per --device; logs one line saying which and why. CUDA is
 * chosen only once the weights are up and one sample has run through every
 * kernel (ops_cuda_net_new's self-test), so that auto falls back to the CPU
 * on a GPU this build cannot drive. -1 on failure.
 */
static int
pick_device(struct model *m, const char *want, const char *arg)
{
	char why[256] = "", err[256] = "";

	if (strcmp(want, "cpu") == 0) {
		wlog(WLOG_NOTICE, "device: cpu (--device cpu)");
		return 0;
	}
	if (!model_cuda_available(why, sizeof(why))) {
		if (strcmp(want, "cuda") == 0) {
			wlog(WLOG_ERROR, "--device %s: %s", arg, why);
			return -1;
		}
		wlog(WLOG_NOTICE, "device: cpu (--device auto: %s)", why);
		return 0;
	}
	if (model_use_device(m, MODEL_CUDA, err, sizeof(err)) < 0) {
		if (strcmp(want, "cuda") == 0) {
			wlog(WLOG_ERROR, "--device %s: %s", arg, err);
			return -1;
		}
		wlog(WLOG_WARN, "device: cpu (--device auto: CUDA failed: %s)", err);
		return 0;
	}
	wlog(WLOG_NOTICE, "device: %s (self-test passed; dense products: %s)", model_device_name(m), model_gemm(m));
	return 0;
}

static void
on_ready(int ok, const char *err, double seconds, void *arg)
{
	struct worker *w = arg;

	w->warmup_s = seconds;
	if (!ok) {
		wlog(WLOG_ERROR, "warmup failed: %s", err);
		w->exit_code = 1;
		event_base_loopbreak(w->base);
		return;
	}
	wlog(WLOG_NOTICE, "ready: warmup (%d run%s of a batch of %d) took %.2fms",
	     w->warmup, w->warmup == 1 ? "" : "s", w->max_batch, seconds * 1e3);
}

void
worker_fatal(struct worker *w, const char *why)
{
	if (w->fatal)
		return;
	w->fatal = 1;
	wlog(WLOG_ERROR, "the model is dead (%s): answering what is queued, then exiting %d", why,
	     WORKER_EXIT_DEAD);
	w->exit_code = WORKER_EXIT_DEAD;
	if (w->draining)
		return;
	w->draining = 1;
	if (w->listener) {
		evhttp_del_accept_socket(w->http, w->listener);
		w->listener = NULL;
	}
	batch_drain(w->batch);
}

static void
on_drained(void *arg)
{
	struct worker *w = arg;

	w->drained = 1;
	worker_check_done(w);
}

void
worker_check_done(struct worker *w)
{
	if (w->draining && w->drained && w->unflushed <= 0)
		event_base_loopexit(w->base, NULL);
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	wlog(WLOG_WARN, "shutdown: gave up after %ds (%d replies not written)", DRAIN_GRACE_S, w->unflushed);
	event_base_loopexit(w->base, NULL);
}

/*
 * SIGTERM/SIGINT: stop accepting, answer what is queued, then exit 0. A
 * second signal exits at once.
 */
static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval grace = { DRAIN_GRACE_S, 0 };

	if (w->draining) {
		wlog(WLOG_WARN, "%s again: exiting without waiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		event_base_loopbreak(w->base);
		return;
	}
	w->draining = 1;
	if (w->listener) {
		evhttp_del_accept_socket(w->http, w->listener);
		w->listener = NULL;
	}
	wlog(WLOG_NOTICE, "%s: not accepting; answering %d queued requests, then exiting",
	     sig == SIGTERM ? "SIGTERM" : "SIGINT", batch_queue_depth(w->batch));
	event_base_once(w->base, -1, EV_TIMEOUT, on_drain_timeout, w, &grace);
	batch_drain(w->batch);
}

/* The address the socket really got (port 0 picks one), for the log. */
static void
bound_name(struct evhttp_bound_socket *bs, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
			snprintf(buf, len, "[%s]:%d", host, port);
			return;
		}
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	snprintf(buf, len, "%s:%d", host, port);
}

/* Everything from here on is freed at the end of main(), in reverse order. */
int
main(int argc, char **argv)
{
	struct opts o;
	struct worker w = { 0 };
	struct event *sigterm = NULL, *sigint = NULL;
	struct batch_opts bo;
	char err[512], addr[256], where[300];
	const int64_t *shape;
	int port, blas_threads;
	double t0;

	parse_opts(argc, argv, &o);
	parse_listen(o.listen, addr, sizeof(addr), &port);
	signal(SIGPIPE, SIG_IGN);
	w.exit_code = 1;

	blas_threads = model_cpu_threads_init();
	t0 = gw_now();
	w.model = model_load(o.model, err, sizeof(err));
	if (!w.model) {
		wlog(WLOG_ERROR, "cannot load model %s: %s", o.model, err);
		return 1;
	}
	w.load_s = gw_now() - t0;
	w.name = o.name ? o.name : model_name(w.model);
	w.version = o.model_version;
	shape = model_input_shape(w.model, &w.in_ndim);
	if (w.in_ndim < 1 || w.in_ndim > WORKER_MAX_NDIM) {
		wlog(WLOG_ERROR, "model %s: an input of %d dimensions is not supported", o.model, w.in_ndim);
		goto out;
	}
	memcpy(w.in_shape, shape, sizeof(int64_t) * (size_t)w.in_ndim);
	w.in_dim = model_input_dim(w.model);
	w.out_dim = model_output_dim(w.model);
	wlog(WLOG_NOTICE, "model \"%s\" from %s: %d layers, %d inputs, %d outputs, loaded in %.2fms"
	     " (%.1f MB of weights; CPU GEMM on OpenBLAS, %d thread%s)",
	     w.name, o.model, model_layer_count(w.model), w.in_dim, w.out_dim, w.load_s * 1e3,
	     (double)model_weight_bytes(w.model) / (1024.0 * 1024.0), blas_threads,
	     blas_threads == 1 ? "" : "s");
	model_cuda_options(w.model, o.cuda_index, o.cublas_min);
	if (pick_device(w.model, o.device, o.device_arg) < 0)
		goto out;
	w.device_kind = model_device(w.model) == MODEL_CUDA ? "cuda" : "cpu";
	w.max_batch = o.max_batch;
	w.queue_max = o.queue;
	w.delay_ms = o.delay_ms;
	w.warmup = o.warmup;
	/* Room for every number printed at full precision, and then some. */
	w.max_body = 65536 + (size_t)o.max_batch * (size_t)w.in_dim * 40;

	w.base = event_base_new();
	w.http = w.base ? evhttp_new(w.base) : NULL;
	w.stats = stats_new(o.max_batch, gw_now());
	w.leak_per_request = o.leak;
	if (o.leak)
		wlog(WLOG_WARN, "--leak-per-request %zu: leaking that much per answered request, on purpose (tests only)",
		     o.leak);
	if (!w.base || !w.http || !w.stats) {
		wlog(WLOG_ERROR, "out of memory");
		goto out;
	}
	evhttp_set_gencb(w.http, api_request, &w);
	evhttp_set_allowed_methods(w.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PATCH);
	/*
	 * Bodies up to 4x the limit are read and refused with a JSON 413 (see
	 * api.c); bigger ones evhttp reads and throws away, then answers 413
	 * (lingering close: a client still sending would otherwise see a reset).
	 */
	evhttp_set_max_body_size(w.http, (ev_ssize_t)w.max_body * 4);
	evhttp_set_flags(w.http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_timeout(w.http, 60);
	w.listener = evhttp_bind_socket_with_handle(w.http, addr, (ev_uint16_t)port);
	if (!w.listener) {
		wlog(WLOG_ERROR, "cannot listen on %s: %s", o.listen, strerror(errno));
		goto out;
	}
	bound_name(w.listener, where, sizeof(where));

	bo = (struct batch_opts){ .max_batch = o.max_batch, .delay_ms = o.delay_ms,
		.queue_max = o.queue, .warmup = o.warmup, .on_ready = on_ready,
		.on_batch = api_on_batch, .on_drained = on_drained, .arg = &w };
	w.batch = batch_new(w.base, w.model, &bo, err, sizeof(err));
	if (!w.batch) {
		wlog(WLOG_ERROR, "cannot start the inference thread: %s", err);
		goto out;
	}
	sigterm = evsignal_new(w.base, SIGTERM, on_signal, &w);
	sigint = evsignal_new(w.base, SIGINT, on_signal, &w);
	if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0) {
		wlog(WLOG_ERROR, "cannot watch signals");
		goto out;
	}
	wlog(WLOG_NOTICE, "listening on http://%s (model \"%s\", max batch %d, batch delay %ldms, queue %d)",
	     where, w.name, o.max_batch, o.delay_ms, o.queue);

	w.exit_code = 0;
	event_base_dispatch(w.base);
	if (w.exit_code == 0)
		wlog(WLOG_NOTICE, "exiting");
	else if (w.fatal)
		wlog(WLOG_ERROR, "exiting %d: the model is dead", w.exit_code);
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	/* evhttp first: closing its connections cancels their calls' jobs in the batcher. */
	if (w.http)
		evhttp_free(w.http);
	batch_free(w.batch);
	stats_free(w.stats);
	if (w.base)
		event_base_free(w.base);
	model_free(w.model);
	return w.exit_code;
}
