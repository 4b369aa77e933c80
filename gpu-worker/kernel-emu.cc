/*
 * kernel-emu: runs the CUDA kernels of ops_kernels.cuh on the host, thread
 * by thread, and checks them; make check runs it (t/12-kernel-emu.t), no GPU
 * or nvcc needed.
 *
 * The kernel source is included as it is, with OPS_EMU set: its macros then
 * make every global pointer an emu_ptr that knows its allocation, every
 * shared array a checked emu_shared2 / dynamic region, OPS_SYNC() a real
 * barrier and OPS_LAUNCH a launch that runs each block's threads as
 * coroutines (ucontext), switched at each barrier, with the launch limits
 * of a real device checked first. Every access goes through a shadow per
 * element that finds:
 *   - an access outside its allocation (or outside a shared array's row);
 *   - a race: two threads touching one element, at least one writing, with
 *     no barrier between (any two blocks, which share no barrier);
 *   - a read of shared memory no thread of the block wrote;
 *   - a barrier some threads of a block never reach;
 *   - outputs written other than exactly as often as the kernel promises
 *     (dense and bias+activation: each output once; softmax: each twice;
 *     relu: at most once), and writes anywhere else.
 * The results of whole forward passes are then compared with the CPU path
 * (ops_cpu.c) over batches 1..100, odd layer sizes, wide softmax rows and
 * the cuBLAS path's bias+activation kernel (the product done on the host).
 *
 * OPS_EMU_PLANT_BUG=1 (a barrier removed) and =2 (a transposed index) build
 * the same harness over a broken kernel; the test expects those to fail.
 */
#include "gpu-worker/emu.h"

static int ops_launch_failed(const char *what, char *err, size_t errlen)
{
	if (!emu_launch_bad)
		return 0;
	snprintf(err, errlen, "%s: %.180s", what, emu_launch_err);
	emu_launch_bad = 0;
	return 1;
}

#include "gpu-worker/ops_kernels.cuh"

/* ---- the harness ---- */

/* The cuBLAS stand-in: y = x w^T on the host, as the GPU library would leave it. */
static int emu_gemm(void *arg, const struct ops_dev_layer *l, ops_dptr x, ops_dptr y, int batch, char *err,
	size_t errlen)
{
	for (int r = 0; r < batch; r++)
		for (int c = 0; c < l->out; c++) {
			double a = 0;

			for (int k = 0; k < l->in; k++)
				a += (double)x.m->data[x.off + (size_t)r * l->in + k] * l->w.m->data[l->w.off + (size_t)c * l->in + k];
			y.m->data[y.off + (size_t)r * l->out + c] = (float)a;
		}
	return 0;
}

static unsigned long emu_seed = 12345;

static float emu_rand(void)
{
	emu_seed = emu_seed * 6364136223846793005UL + 1442695040888963407UL;
	return (float)((emu_seed >> 33) % 20001) / 10000.0f - 1.0f;
}

/*
 * One case: a network (layers: 'd'ense IN->OUT, 'r'elu, 's'oftmax) at a
 * batch, through the emulated kernels and through the CPU path. Returns the
 * number of failures.
 */
static int emu_case(const char *label, const struct ops_layer *spec, int nlayers, int batch, int use_gemm)
{
	std::vector<std::vector<float>> w(nlayers), b(nlayers);
	std::vector<struct ops_dev_layer> dl(nlayers);
	int in = spec[0].in, maxd = in, out = spec[nlayers - 1].out, errs0 = emu_errors, res;
	std::vector<float> x((size_t)batch * in), cpu, tmp;
	ops_dptr act[2];
	char err[256] = "";
	double worst = 0;

	memset(emu_printed, 0, sizeof(emu_printed));
	for (int i = 0; i < nlayers; i++) {
		dl[i].kind = spec[i].kind;
		dl[i].in = spec[i].in;
		dl[i].out = spec[i].out;
		dl[i].gemm = use_gemm && spec[i].kind == OPS_DENSE;
		maxd = spec[i].out > maxd ? spec[i].out : maxd;
		if (spec[i].kind != OPS_DENSE)
			continue;
		w[i].resize((size_t)spec[i].in * spec[i].out);
		b[i].resize(spec[i].out);
		for (auto &v : w[i])
			v = emu_rand();
		for (auto &v : b[i])
			v = emu_rand();
		emu_mem *mw = emu_alloc("w", w[i].size()), *mb = emu_alloc("b", b[i].size());
		mw->data = w[i];
		mb->data = b[i];
		dl[i].w = ops_dptr(mw, 0);
		dl[i].b = ops_dptr(mb, 0);
	}
	for (auto &v : x)
		v = 3.0f * emu_rand();
	/* Exactly the size ops_cuda.cu allocates: batch rows of the widest layer. */
	act[0] = ops_dptr(emu_alloc("act0", (size_t)batch * maxd), 0);
	act[1] = ops_dptr(emu_alloc("act1", (size_t)batch * maxd), 0);
	memcpy(act[0].m->data.data(), x.data(), x.size() * sizeof(float));

	res = ops_forward(dl.data(), nlayers, act, batch, 0, use_gemm ? emu_gemm : NULL, NULL, err, sizeof(err));

	/* The CPU path, as model.c runs it. */
	cpu = x;
	for (int i = 0; i < nlayers; i++) {
		switch (spec[i].kind) {
		case OPS_DENSE:
			tmp.assign((size_t)batch * spec[i].out, 0.0f);
			ops_cpu_dense(cpu.data(), batch, spec[i].in, spec[i].out, w[i].data(), b[i].data(), tmp.data());
			cpu.swap(tmp);
			break;
		case OPS_RELU:
			ops_cpu_relu(cpu.data(), (size_t)batch * spec[i].out);
			break;
		case OPS_SOFTMAX:
			ops_cpu_softmax(cpu.data(), batch, spec[i].out);
			break;
		}
	}
	if (res < 0) {
		emu_fail("the forward pass failed: %s", err);
	} else {
		const float *g = act[res].m->data.data();

		for (size_t i = 0; i < (size_t)batch * out; i++) {
			double d = fabs((double)g[i] - cpu[i]) / (1.0 + fabs(cpu[i]));

			if (!(d <= worst))
				worst = d;
		}
		if (!(worst <= 1e-4)) {
			emu_cur = NULL;
			fprintf(stderr, "kernel-emu: %s batch %d: differs from the CPU path by %g (relative)\n", label, batch,
				worst);
			emu_errors++;
		}
	}
	emu_free_all();
	printf("%s %s, batch %d: max diff %.2g\n", emu_errors == errs0 ? "ok  " : "FAIL", label, batch, worst);
	return emu_errors != errs0;
}

#define L_D(i, o) { OPS_DENSE, (i), (o), NULL, NULL }
#define L_R(n) { OPS_RELU, (n), (n), NULL, NULL }
#define L_S(n) { OPS_SOFTMAX, (n), (n), NULL, NULL }

int main(void)
{
	static const struct ops_layer digits[] = { L_D(64, 32), L_R(32), L_D(32, 10), L_S(10) };
	static const struct ops_layer odd[] = { L_D(37, 53), L_R(53), L_D(53, 19), L_S(19) };
	static const struct ops_layer plain[] = { L_D(17, 1), L_D(1, 33) };
	static const struct ops_layer lone_relu[] = { L_D(5, 300), L_S(300), L_R(300), L_D(300, 3) };
	static const struct ops_layer wide[] = { L_D(16, 1000), L_S(1000) };
	static const struct ops_layer wider[] = { L_D(8, 4099), L_S(4099) };
	static const struct ops_layer one[] = { L_D(9, 1), L_S(1) };
	static const struct {
		const char *label;
		const struct ops_layer *l;
		int n;
		int gemm;
		int batches[8];
	} cases[] = {
		{ "digits 64-32-relu-10-softmax", digits, 4, 0, { 1, 7, 16, 17, 33, 64, 100 } },
		{ "odd 37-53-relu-19-softmax", odd, 4, 0, { 1, 7, 16, 17, 33, 64, 100 } },
		{ "odd via the gemm path (bias+relu kernel)", odd, 4, 1, { 1, 17, 100 } },
		{ "17-1-33 without activations", plain, 2, 0, { 1, 17, 33 } },
		{ "17-1-33 via the gemm path", plain, 2, 1, { 7 } },
		{ "softmax then a lone relu, 5-300-3", lone_relu, 4, 0, { 1, 7, 33 } },
		{ "wide softmax rows of 1000", wide, 2, 0, { 1, 7, 17 } },
		{ "wider softmax rows of 4099", wider, 2, 0, { 1, 3 } },
		{ "softmax rows of 1", one, 2, 0, { 1, 7 } },
	};
	int failed = 0, run = 0;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		for (int i = 0; i < 8 && cases[c].batches[i]; i++, run++)
			failed += emu_case(cases[c].label, cases[c].l, cases[c].n, cases[c].batches[i], cases[c].gemm);
	printf("kernel-emu: %d cases, %d failed\n", run, failed);
	for (int t = 0; t < EMU_MAX_THREADS; t++)
		free(emu_threads[t].stack);
	return failed ? 1 : 0;
}
