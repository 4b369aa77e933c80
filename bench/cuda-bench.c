/*
 * cuda-bench: the GPU measurements of bench/gpu-check, on the model core's
 * ops API (no HTTP, no model files):
 *
 *   cuda-bench probe      exit 0 when a CUDA device passes a self-test, else
 *                         "no GPU: WHY" and exit 77
 *   cuda-bench compare [quick]
 *                         CPU vs CUDA on synthetic networks (odd sizes, wide
 *                         softmax rows, batches 1..257; kernels and cuBLAS);
 *                         quick: batches 1, 7, 17 and no big network (for
 *                         the fake runtime, whose kernels run emulated)
 *   cuda-bench gemm       hand kernels vs cuBLAS over a ladder of layer sizes
 *                         and batches, and the --cublas-min that follows
 *   cuda-bench sleep [N]  a level-1 sleep/wake cycle of a net of four N x N
 *                         layers (default 4096: ~270 MB), with
 *                         cudaMemGetInfo before and after each step
 *
 * Prints one line per result; exits 1 when a result is wrong.
 */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu-worker/ops.h"

#define CB_TOL 1e-4

static double cb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long cb_seed = 42;

static float cb_rand(void)
{
	cb_seed = cb_seed * 6364136223846793005UL + 1442695040888963407UL;
	return (float)((cb_seed >> 33) % 20001) / 10000.0f - 1.0f;
}

/* A network of n layers from a spec: 'd' IN OUT (weights scaled by 1/sqrt(IN)), 'r', 's'. */
struct cb_net {
	struct ops_layer l[16];
	int n;
	float *mem[16];
};

static void cb_dense(struct cb_net *net, int in, int out)
{
	struct ops_layer *l = &net->l[net->n];
	float *w = malloc(sizeof(float) * ((size_t)in * out + out)), scale = 1.0f / sqrtf((float)in);

	if (!w) {
		fprintf(stderr, "cuda-bench: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < (size_t)in * out + out; i++)
		w[i] = cb_rand() * scale;
	*l = (struct ops_layer){ OPS_DENSE, in, out, w, w + (size_t)in * out };
	net->mem[net->n++] = w;
}

static void cb_act(struct cb_net *net, enum ops_kind k)
{
	int d = net->l[net->n - 1].out;

	net->l[net->n++] = (struct ops_layer){ k, d, d, NULL, NULL };
}

static void cb_free(struct cb_net *net)
{
	for (int i = 0; i < net->n; i++)
		free(net->mem[i]);
	memset(net, 0, sizeof(*net));
}

/* The CPU path over a batch (as model.c runs it); returns a malloc'd output. */
static float *cb_cpu(const struct cb_net *net, const float *in, int batch)
{
	size_t maxd = (size_t)net->l[0].in;
	float *a, *b, *t;

	for (int i = 0; i < net->n; i++)
		maxd = (size_t)net->l[i].out > maxd ? (size_t)net->l[i].out : maxd;
	a = malloc(sizeof(float) * maxd * batch);
	b = malloc(sizeof(float) * maxd * batch);
	memcpy(a, in, sizeof(float) * (size_t)net->l[0].in * batch);
	for (int i = 0; i < net->n; i++) {
		const struct ops_layer *l = &net->l[i];

		if (l->kind == OPS_DENSE) {
			ops_cpu_dense(a, batch, l->in, l->out, l->w, l->b, b);
			t = a;
			a = b;
			b = t;
		} else if (l->kind == OPS_RELU) {
			ops_cpu_relu(a, (size_t)batch * l->out);
		} else {
			ops_cpu_softmax(a, batch, l->out);
		}
	}
	free(b);
	return a;
}

static double cb_diff(const float *x, const float *y, size_t n)
{
	double worst = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)x[i] - y[i]) / (1.0 + fabs((double)y[i]));

		if (!(d <= worst))
			worst = d;
	}
	return worst;
}

static struct ops_cuda_net *cb_upload(const struct cb_net *net, long cublas_min, char *name, size_t namelen)
{
	struct ops_cuda_opts o = { 0, cublas_min };
	char err[512];
	struct ops_cuda_net *g = ops_cuda_net_new(net->l, net->n, &o, name, namelen, err, sizeof(err));

	if (!g)
		fprintf(stderr, "cuda-bench: %s\n", err);
	return g;
}

static int cb_probe(void)
{
	struct cb_net net = { 0 };
	struct ops_cuda_net *g;
	char why[512], name[160];

	if (!ops_cuda_available(why, sizeof(why))) {
		printf("no GPU: %s\n", why);
		return 77;
	}
	cb_dense(&net, 64, 10);
	cb_act(&net, OPS_SOFTMAX);
	g = cb_upload(&net, -1, name, sizeof(name));
	cb_free(&net);
	if (!g) {
		printf("no GPU: the self-test failed\n");
		return 77;
	}
	printf("gpu: %s\n", name);
	ops_cuda_net_free(g);
	return 0;
}

/* One network, both GEMM paths, every batch: CUDA vs CPU. */
static int cb_quick;	/* compare quick */

static int cb_compare_one(const char *label, struct cb_net *net)
{
	static const int all[] = { 1, 7, 16, 17, 33, 64, 100, 257 }, quick[] = { 1, 7, 17 };
	const int *batches = cb_quick ? quick : all;
	size_t nbatches = cb_quick ? 3 : sizeof(all) / sizeof(all[0]);
	int bad = 0, out = net->l[net->n - 1].out;

	for (int path = 0; path < 2; path++) {
		char name[160];
		struct ops_cuda_net *g = cb_upload(net, path ? 1 : -1, name, sizeof(name));

		if (!g)
			return 1;
		for (size_t bi = 0; bi < nbatches; bi++) {
			int batch = batches[bi];
			float *in = malloc(sizeof(float) * (size_t)batch * net->l[0].in);
			float *gout = malloc(sizeof(float) * (size_t)batch * out), *cout;
			char err[512];
			double d;

			for (size_t i = 0; i < (size_t)batch * net->l[0].in; i++)
				in[i] = 3.0f * cb_rand();
			cout = cb_cpu(net, in, batch);
			if (ops_cuda_net_run(g, in, batch, gout, err, sizeof(err)) != 0) {
				printf("FAIL compare %s (%s) batch %d: %s\n", label, ops_cuda_net_gemm(g), batch, err);
				bad = 1;
			} else {
				d = cb_diff(gout, cout, (size_t)batch * out);
				printf("%s compare %s (%s) batch %d: max rel diff %.2g\n", d <= CB_TOL ? "ok  " : "FAIL",
					label, ops_cuda_net_gemm(g), batch, d);
				bad |= !(d <= CB_TOL);
			}
			free(in);
			free(gout);
			free(cout);
		}
		ops_cuda_net_free(g);
	}
	return bad;
}

static int cb_compare(void)
{
	struct cb_net net = { 0 };
	int bad = 0;

	cb_dense(&net, 64, 32), cb_act(&net, OPS_RELU), cb_dense(&net, 32, 10), cb_act(&net, OPS_SOFTMAX);
	bad |= cb_compare_one("digits-shaped 64-32-10", &net);
	cb_free(&net);
	cb_dense(&net, 37, 53), cb_act(&net, OPS_RELU), cb_dense(&net, 53, 19), cb_act(&net, OPS_SOFTMAX);
	bad |= cb_compare_one("odd 37-53-19", &net);
	cb_free(&net);
	cb_dense(&net, 5, 300), cb_act(&net, OPS_SOFTMAX), cb_act(&net, OPS_RELU), cb_dense(&net, 300, 3);
	bad |= cb_compare_one("softmax then a lone relu 5-300-3", &net);
	cb_free(&net);
	cb_dense(&net, 16, 4099), cb_act(&net, OPS_SOFTMAX);
	bad |= cb_compare_one("wide softmax 16-4099", &net);
	cb_free(&net);
	if (cb_quick)
		return bad;
	cb_dense(&net, 784, 1000), cb_act(&net, OPS_RELU), cb_dense(&net, 1000, 1000), cb_act(&net, OPS_RELU),
		cb_dense(&net, 1000, 10), cb_act(&net, OPS_SOFTMAX);
	bad |= cb_compare_one("synthetic 784-1000-1000-10", &net);
	cb_free(&net);
	return bad;
}

/* Mean seconds of one run at batch, after warming up. */
static double cb_time(struct ops_cuda_net *g, const float *in, int batch, float *out, int reps)
{
	char err[512];
	double t0;

	for (int i = 0; i < 3; i++)
		if (ops_cuda_net_run(g, in, batch, out, err, sizeof(err)) != 0) {
			fprintf(stderr, "cuda-bench: %s\n", err);
			return -1;
		}
	t0 = cb_now();
	for (int i = 0; i < reps; i++)
		ops_cuda_net_run(g, in, batch, out, err, sizeof(err));
	return (cb_now() - t0) / reps;
}

static int cb_gemm(void)
{
	static const int sizes[] = { 128, 256, 512, 1024, 2048, 4096 };
	static const int batches[] = { 8, 64, 256 };
	long suggest = -1;
	int bad = 0;

	printf("gemm: one dense+relu layer N x N; ms a batch (copies in and out included), kernels vs cublas\n");
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		int n = sizes[si], wins = 0;
		struct cb_net net = { 0 };
		struct ops_cuda_net *k, *c;
		char name[160];

		cb_dense(&net, n, n);
		cb_act(&net, OPS_RELU);
		k = cb_upload(&net, -1, name, sizeof(name));
		c = cb_upload(&net, 1, name, sizeof(name));
		if (!k || !c) {
			ops_cuda_net_free(k);
			ops_cuda_net_free(c);
			cb_free(&net);
			return 1;
		}
		for (size_t bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++) {
			int batch = batches[bi];
			float *in = malloc(sizeof(float) * (size_t)batch * n);
			float *ok = malloc(sizeof(float) * (size_t)batch * n), *oc = malloc(sizeof(float) * (size_t)batch * n);
			double tk, tc, d;

			for (size_t i = 0; i < (size_t)batch * n; i++)
				in[i] = cb_rand();
			tk = cb_time(k, in, batch, ok, 20);
			tc = cb_time(c, in, batch, oc, 20);
			d = cb_diff(oc, ok, (size_t)batch * n);
			printf("gemm N=%d batch=%d: kernels %.3f ms, %s %.3f ms, diff %.2g%s\n", n, batch, tk * 1e3,
				ops_cuda_net_gemm(c), tc * 1e3, d, d <= CB_TOL ? "" : " FAIL");
			bad |= !(d <= CB_TOL) || tk < 0 || tc < 0;
			wins += tc < tk;
			free(in);
			free(ok);
			free(oc);
		}
		if (wins == (int)(sizeof(batches) / sizeof(batches[0])) && suggest < 0)
			suggest = (long)n * n;
		ops_cuda_net_free(k);
		ops_cuda_net_free(c);
		cb_free(&net);
	}
	if (suggest > 0)
		printf("gemm: cublas wins at every batch from %ld weights: suggested --cublas-min %ld (default %ld)\n",
			suggest, suggest, (long)OPS_CUBLAS_MIN_DEFAULT);
	else
		printf("gemm: cublas never won at every batch up to 4096 x 4096: suggested --cublas-min off\n");
	return bad;
}

static void cb_meminfo(const char *when)
{
	size_t free_b = 0, total = 0;

	cudaMemGetInfo(&free_b, &total);
	printf("sleep: %-28s cudaMemGetInfo free %8.1f MiB of %.1f MiB\n", when, free_b / 1048576.0, total / 1048576.0);
}

static int cb_sleep(int n)
{
	struct cb_net net = { 0 };
	struct ops_cuda_net *g;
	char name[160], err[512];
	float *in, *before, *after;
	int batch = 32, bad = 0;
	double t0;
	size_t free0 = 0, free1 = 0, free2 = 0, total;

	for (int i = 0; i < 4; i++) {
		cb_dense(&net, n, n);
		cb_act(&net, OPS_RELU);
	}
	cb_dense(&net, n, 10);
	cb_act(&net, OPS_SOFTMAX);
	in = malloc(sizeof(float) * (size_t)batch * n);
	before = malloc(sizeof(float) * batch * 10);
	after = malloc(sizeof(float) * batch * 10);
	for (size_t i = 0; i < (size_t)batch * n; i++)
		in[i] = cb_rand();
	cb_meminfo("before the net");
	if (!(g = cb_upload(&net, OPS_CUBLAS_MIN_DEFAULT, name, sizeof(name)))) {
		cb_free(&net);
		return 1;
	}
	if (ops_cuda_net_run(g, in, batch, before, err, sizeof(err)) != 0) {
		printf("FAIL sleep: run before: %s\n", err);
		bad = 1;
		goto out;
	}
	cudaMemGetInfo(&free0, &total);
	cb_meminfo("awake, after a batch");
	printf("sleep: the net holds %.1f MiB on the device\n", ops_cuda_net_device_bytes(g) / 1048576.0);
	t0 = cb_now();
	if (ops_cuda_net_sleep(g, err, sizeof(err)) != 0) {
		printf("FAIL sleep: %s\n", err);
		bad = 1;
		goto out;
	}
	printf("sleep: level 1 took %.1f ms; the net holds %zu bytes on the device\n", (cb_now() - t0) * 1e3,
		ops_cuda_net_device_bytes(g));
	cudaMemGetInfo(&free1, &total);
	cb_meminfo("asleep");
	if (ops_cuda_net_run(g, in, batch, after, err, sizeof(err)) == 0) {
		printf("FAIL sleep: a run while asleep worked\n");
		bad = 1;
	} else {
		printf("ok   sleep: a run while asleep fails: %s\n", err);
	}
	t0 = cb_now();
	if (ops_cuda_net_wake(g, err, sizeof(err)) != 0) {
		printf("FAIL wake: %s\n", err);
		bad = 1;
		goto out;
	}
	printf("sleep: wake took %.1f ms\n", (cb_now() - t0) * 1e3);
	cudaMemGetInfo(&free2, &total);
	cb_meminfo("awake again (before a batch)");
	if (ops_cuda_net_run(g, in, batch, after, err, sizeof(err)) != 0) {
		printf("FAIL wake: run after: %s\n", err);
		bad = 1;
		goto out;
	}
	printf("%s sleep: outputs after the wake are %s\n", memcmp(before, after, sizeof(float) * batch * 10) ? "FAIL" : "ok  ",
		memcmp(before, after, sizeof(float) * batch * 10) ? "different" : "bit-identical");
	bad |= memcmp(before, after, sizeof(float) * batch * 10) != 0;
	printf("%s sleep: freed %.1f MiB of device memory (the net's weights are %.1f MiB)\n",
		free1 > free0 ? "ok  " : "FAIL", ((double)free1 - (double)free0) / 1048576.0,
		4.0 * ((double)n * (n + 1) * 4 + (double)n * 10 + 10) / 1048576.0);
	bad |= !(free1 > free0);
	(void)free2;
out:
	ops_cuda_net_free(g);
	cb_free(&net);
	free(in);
	free(before);
	free(after);
	return bad;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";

	if (!strcmp(what, "probe"))
		return cb_probe();
	if (!strcmp(what, "compare")) {
		cb_quick = argc > 2 && !strcmp(argv[2], "quick");
		return cb_compare();
	}
	if (!strcmp(what, "gemm"))
		return cb_gemm();
	if (!strcmp(what, "sleep"))
		return cb_sleep(argc > 2 && atoi(argv[2]) > 0 ? atoi(argv[2]) : 4096);
	fprintf(stderr, "usage: cuda-bench probe | compare [quick] | gemm | sleep [N]\n");
	return 2;
}
