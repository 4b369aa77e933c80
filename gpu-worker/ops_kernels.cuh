/*
 * ops_kernels: the CUDA kernels and the host code that launches them for a
 * forward pass, in one source for two compilers. nvcc reads it through
 * ops_cuda.cu; the host emulation (gpu-worker/kernel-emu.cc, run by make
 * check) reads it as plain C++ with OPS_EMU defined, and then every macro
 * below is its checked stand-in: pointers that know their allocation, shared
 * arrays with a shadow per element, barriers that really wait, launches that
 * run each thread of each block. Nothing here may touch memory or CUDA
 * except through these macros, so that what the emulation checks is what
 * the GPU runs.
 *
 * OPS_EMU_PLANT_BUG (1 to 4) plants a known bug for the emulation's own
 * test (t/12-kernel-emu.t); nvcc never sees it defined.
 *
 * The includer provides, before including this file:
 *   int ops_launch_failed(const char *what, char *err, size_t errlen);
 *     1 with err set when the launch just made failed, else 0.
 */
#ifndef WG_OPS_KERNELS_CUH
#define WG_OPS_KERNELS_CUH

#include <math.h>
#include <stddef.h>

#include "gpu-worker/ops.h"

#ifndef OPS_EMU
#define OPS_IN(T) const T *__restrict__		/* kernel input in global memory */
#define OPS_OUT(T) T *__restrict__		/* kernel output in global memory */
#define OPS_IO(T) T *				/* updated in place */
#define OPS_SHARED2(T, name, r, c) __shared__ T name[r][c]
#define OPS_SHARED_DYN(T, name) extern __shared__ T name[]
#define OPS_SYNC() __syncthreads()
#define OPS_LAUNCH(kernel, grid, block, shmem, stream, ...) \
	kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__)
typedef float *ops_dptr;			/* device memory */
typedef cudaStream_t ops_stream;
#endif

#define OPS_TILE 16			/* dense: a TILE x TILE block of outputs per thread block */
#define OPS_MAX_GRID_Y 65535u		/* the grid's y limit: dense runs larger batches in slices */
#define OPS_EW_THREADS 256		/* element-wise kernels: threads a block */
#define OPS_EW_MAX_BLOCKS 65535u	/* ...and blocks at most; they stride over the rest */

/* A layer on the device. gemm: the dense product goes to cuBLAS. */
struct ops_dev_layer {
	enum ops_kind kind;
	int in, out;
	ops_dptr w, b;			/* dense only */
	int gemm;
};

/*
 * y[row][col] = act(b[col] + sum_k x[row][k] * w[col][k]), act = relu when
 * relu is set (a dense layer followed by relu is one launch). Both x and w
 * are read in tiles along k with coalesced loads; the +1 padding keeps the
 * w tile's column reads free of shared-memory bank conflicts.
 */
__global__ void ops_dense_kernel(OPS_IN(float) x, OPS_IN(float) w, OPS_IN(float) b, OPS_OUT(float) y,
	int batch, int in, int out, int relu)
{
	OPS_SHARED2(float, xs, OPS_TILE, OPS_TILE + 1);
	OPS_SHARED2(float, ws, OPS_TILE, OPS_TILE + 1);
	int tx = threadIdx.x, ty = threadIdx.y;
	int row = blockIdx.y * OPS_TILE + ty;
	int col = blockIdx.x * OPS_TILE + tx;
	int wrow = blockIdx.x * OPS_TILE + ty;
	float acc = 0.0f;

	for (int k0 = 0; k0 < in; k0 += OPS_TILE) {
		int k = k0 + tx;

		xs[ty][tx] = (row < batch && k < in) ? x[(size_t)row * in + k] : 0.0f;
		ws[ty][tx] = (wrow < out && k < in) ? w[(size_t)wrow * in + k] : 0.0f;
#if !defined(OPS_EMU_PLANT_BUG) || OPS_EMU_PLANT_BUG != 1
		OPS_SYNC();	/* the tiles are loaded before anyone reads them */
#endif
#pragma unroll
		for (int kk = 0; kk < OPS_TILE; kk++)
#if defined(OPS_EMU_PLANT_BUG) && OPS_EMU_PLANT_BUG == 2
			acc += xs[ty][kk] * ws[kk][tx];	/* planted: the w tile read transposed */
#else
			acc += xs[ty][kk] * ws[tx][kk];
#endif
		OPS_SYNC();	/* everyone is done with the tiles before the next load */
	}
#if defined(OPS_EMU_PLANT_BUG) && OPS_EMU_PLANT_BUG == 4
	if (row < batch) {	/* planted: the column guard is gone */
#else
	if (row < batch && col < out) {
#endif
		float v = acc + b[col];

		y[(size_t)row * out + col] = relu && v < 0.0f ? 0.0f : v;
	}
}

/* After a cuBLAS product: y[row][col] = act(y[row][col] + b[col]), n = batch * out. */
__global__ void ops_bias_act_kernel(OPS_IO(float) y, OPS_IN(float) b, size_t n, int out, int relu)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		float v = y[i] + b[i % (size_t)out];

		y[i] = relu && v < 0.0f ? 0.0f : v;
	}
}

__global__ void ops_relu_kernel(OPS_IO(float) x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		if (x[i] < 0.0f)
			x[i] = 0.0f;
}

/* One block a row; blockDim.x is a power of two; shared memory holds blockDim.x floats. */
__global__ void ops_softmax_kernel(OPS_IO(float) x, int dim)
{
	OPS_SHARED_DYN(float, red);
	auto r = x + (size_t)blockIdx.x * dim;
	int t = threadIdx.x;
	float m = -INFINITY, s = 0.0f;

	for (int i = t; i < dim; i += blockDim.x)
		m = fmaxf(m, r[i]);
	red[t] = m;
	OPS_SYNC();
	for (int h = blockDim.x / 2; h > 0; h /= 2) {
		if (t < h)
			red[t] = fmaxf(red[t], red[t + h]);
		OPS_SYNC();
	}
	m = red[0];
#if !defined(OPS_EMU_PLANT_BUG) || OPS_EMU_PLANT_BUG != 3
	OPS_SYNC();	/* everyone has read the max before red[] is reused for the sum */
#endif
	for (int i = t; i < dim; i += blockDim.x) {
		float e = expf(r[i] - m);

		r[i] = e;
		s += e;
	}
	red[t] = s;
	OPS_SYNC();
	for (int h = blockDim.x / 2; h > 0; h /= 2) {
		if (t < h)
			red[t] += red[t + h];
		OPS_SYNC();
	}
	s = red[0];
	for (int i = t; i < dim; i += blockDim.x)
		r[i] /= s;
}

/* Blocks for an element-wise kernel over n floats. */
static inline unsigned ops_ew_blocks(size_t n)
{
	size_t blocks = (n + OPS_EW_THREADS - 1) / OPS_EW_THREADS;

	return (unsigned)(blocks < OPS_EW_MAX_BLOCKS ? blocks : OPS_EW_MAX_BLOCKS);
}

/* Threads for a softmax row of dim: a power of two from 32 to 256. */
static inline unsigned ops_softmax_threads(int dim)
{
	unsigned threads;

	for (threads = 32; threads < 256 && threads < (unsigned)dim; threads *= 2)
		;
	return threads;
}

/*
 * y = x * w^T for a layer marked gemm (cuBLAS in ops_cuda.cu); the bias and
 * activation follow in ops_bias_act_kernel. 0 or -1 with err.
 */
typedef int (*ops_gemm_fn)(void *arg, const struct ops_dev_layer *l, ops_dptr x, ops_dptr y, int batch,
	char *err, size_t errlen);

/* Launches the dense layer l (relu fused when set) in slices of rows that fit the grid's y limit. */
static int ops_dense_layer(const struct ops_dev_layer *l, ops_dptr x, ops_dptr y, int batch, int relu,
	ops_stream stream, ops_gemm_fn gemm, void *gemm_arg, char *err, size_t errlen)
{
	const int slice = (int)(OPS_MAX_GRID_Y * OPS_TILE);
	dim3 block(OPS_TILE, OPS_TILE);

	if (l->gemm && gemm) {
		size_t n = (size_t)batch * l->out;

		if (gemm(gemm_arg, l, x, y, batch, err, errlen) < 0)
			return -1;
		OPS_LAUNCH(ops_bias_act_kernel, ops_ew_blocks(n), OPS_EW_THREADS, 0, stream, y, l->b, n, l->out, relu);
		return ops_launch_failed("bias+activation kernel", err, errlen) ? -1 : 0;
	}
	for (int r = 0; r < batch; r += slice) {
		int rows = batch - r < slice ? batch - r : slice;
		dim3 grid((unsigned)((l->out + OPS_TILE - 1) / OPS_TILE), (unsigned)((rows + OPS_TILE - 1) / OPS_TILE));

		OPS_LAUNCH(ops_dense_kernel, grid, block, 0, stream, x + (size_t)r * l->in, l->w, l->b,
			y + (size_t)r * l->out, rows, l->in, l->out, relu);
		if (ops_launch_failed("dense kernel", err, errlen))
			return -1;
	}
	return 0;
}

/*
 * The forward pass over act[0] (holding batch rows of the first layer's in)
 * with act[1] as the other buffer, both at least batch * the widest layer.
 * Returns which of the two holds the result, or -1 with err. A dense layer
 * followed by relu runs as one launch.
 */
static int ops_forward(const struct ops_dev_layer *layers, int nlayers, ops_dptr act[2], int batch,
	ops_stream stream, ops_gemm_fn gemm, void *gemm_arg, char *err, size_t errlen)
{
	int cur = 0;

	for (int i = 0; i < nlayers; i++) {
		const struct ops_dev_layer *l = &layers[i];
		size_t cnt = (size_t)batch * l->out;
		int relu;

		switch (l->kind) {
		case OPS_DENSE:
			relu = i + 1 < nlayers && layers[i + 1].kind == OPS_RELU;
			if (ops_dense_layer(l, act[cur], act[!cur], batch, relu, stream, gemm, gemm_arg, err, errlen) < 0)
				return -1;
			cur = !cur;
			i += relu;
			break;
		case OPS_RELU:
			OPS_LAUNCH(ops_relu_kernel, ops_ew_blocks(cnt), OPS_EW_THREADS, 0, stream, act[cur], cnt);
			if (ops_launch_failed("relu kernel", err, errlen))
				return -1;
			break;
		case OPS_SOFTMAX: {
			unsigned threads = ops_softmax_threads(l->out);

			OPS_LAUNCH(ops_softmax_kernel, (unsigned)batch, threads, threads * sizeof(float), stream,
				act[cur], l->out);
			if (ops_launch_failed("softmax kernel", err, errlen))
				return -1;
			break;
		}
		}
	}
	return cur;
}

#endif
