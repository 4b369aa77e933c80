/*
 * ops_cpu: the CPU kernels. A dense layer is a GEMM on OpenBLAS
 * (cblas_sgemm) followed by the hand-written bias add; below a measured
 * size the plain loop is faster than BLAS's call and packing overhead and
 * runs instead (see OPS_CPU_BLAS_MIN_WEIGHTS). ReLU and softmax have no
 * library op and stay hand-written.
 */
#include "gpu-worker/ops.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define OPS_CPU_BLOCK 4	/* samples sharing one pass over a weight row */

/*
 * Weights (in * out) from which a layer runs on cblas_sgemm. The choice
 * must not depend on the batch: a sample's answer would then depend on
 * which requests shared its batch (the loop and BLAS round differently).
 * Measured on
 * the 2-core build machine (OpenBLAS 0.3.21, one thread, CPU time a call):
 * BLAS takes 0.3-0.8x the loop's time from 64x64 at batch 1 (4k MACs) up to
 * 4096x4096 at batch 32; only below about 2k MACs (digits' 64x10 output
 * layer at batch 1: 0.42us against 0.39us) is the loop as fast or faster.
 */
#define OPS_CPU_BLAS_MIN_WEIGHTS 2048

/* Both x rows and w rows are contiguous in the inner index: dot products, 4 samples at a time. */
static void ops_cpu_dense_loop(const float *x, int batch, int in, int out, const float *w, const float *b, float *y)
{
	int s = 0;

	for (; s + OPS_CPU_BLOCK <= batch; s += OPS_CPU_BLOCK) {
		const float *x0 = x + (size_t)s * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
		float *y0 = y + (size_t)s * out;

		for (int o = 0; o < out; o++) {
			const float *wr = w + (size_t)o * in;
			float a0 = 0, a1 = 0, a2 = 0, a3 = 0;

			for (int i = 0; i < in; i++) {
				float wi = wr[i];

				a0 += x0[i] * wi;
				a1 += x1[i] * wi;
				a2 += x2[i] * wi;
				a3 += x3[i] * wi;
			}
			y0[o] = a0 + b[o];
			y0[out + o] = a1 + b[o];
			y0[2 * (size_t)out + o] = a2 + b[o];
			y0[3 * (size_t)out + o] = a3 + b[o];
		}
	}
	for (; s < batch; s++) {
		const float *xr = x + (size_t)s * in;
		float *yr = y + (size_t)s * out;

		for (int o = 0; o < out; o++) {
			const float *wr = w + (size_t)o * in;
			float a = 0;

			for (int i = 0; i < in; i++)
				a += xr[i] * wr[i];
			yr[o] = a + b[o];
		}
	}
}

int ops_cpu_threads_init(void)
{
	/* The user's choice wins: OpenBLAS read these when it loaded. */
	if (getenv("OPENBLAS_NUM_THREADS") || getenv("OMP_NUM_THREADS"))
		return openblas_get_num_threads();
	openblas_set_num_threads(1);
	return 1;
}

void ops_cpu_dense(const float *x, int batch, int in, int out, const float *w, const float *b, float *y)
{
	if ((double)in * out < OPS_CPU_BLAS_MIN_WEIGHTS) {
		ops_cpu_dense_loop(x, batch, in, out, w, b, y);
		return;
	}
	/* y[batch][out] = x[batch][in] * (w[out][in])^T, then the bias row by row. */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
	for (int s = 0; s < batch; s++) {
		float *yr = y + (size_t)s * out;

		for (int o = 0; o < out; o++)
			yr[o] += b[o];
	}
}
void ops_cpu_relu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (x[i] < 0)
			x[i] = 0;
}

/* Stable: exp(x - max) never overflows; the sum is at least 1. */
void ops_cpu_softmax(float *x, int batch, int dim)
{
	for (int s = 0; s < batch; s++) {
		float *r = x + (size_t)s * dim, m = r[0], sum = 0;

		for (int i = 1; i < dim; i++)
			if (r[i] > m)
				m = r[i];
		for (int i = 0; i < dim; i++) {
			r[i] = expf(r[i] - m);
			sum += r[i];
		}
		for (int i = 0; i < dim; i++)
			r[i] /= sum;
	}
}
