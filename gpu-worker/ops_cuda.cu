/*
 * ops_cuda: the network on a CUDA device (Runtime API). The weights are
 * uploaded once by ops_cuda_net_new(); a run copies the batch in, runs one
 * kernel a layer on two ping-pong activation buffers and copies the result
 * out. Every CUDA call is checked and turned into an error message.
 *
 * Kept to C-like C++ (malloc, no exceptions, no iostream) so that the
 * object links into the C programs with libcudart alone.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-worker/ops.h"

#define OPS_TILE 16			/* dense: a TILE x TILE block of outputs per thread block */
#define OPS_MAX_GRID_Y 65535u		/* the grid's y limit: dense runs larger batches in slices */

struct ops_dev_layer {
	enum ops_kind kind;
	int in, out;
	float *w, *b;			/* device memory, dense only */
};

struct ops_cuda_net {
	int device;
	int nlayers;
	struct ops_dev_layer *layers;
	int in_dim, out_dim, max_dim;
	float *act[2];			/* device activations, cap floats each */
	size_t cap;
};

/* 1 on success; else 0 with "cuda: WHAT: cudaErrorX (text)" in err. */
static int ops_ok(cudaError_t e, const char *what, char *err, size_t errlen)
{
	if (e == cudaSuccess)
		return 1;
	snprintf(err, errlen, "cuda: %s: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
	return 0;
}

/*
 * y[row][col] = b[col] + sum_k x[row][k] * w[col][k]. Both x and w are read
 * in tiles along k with coalesced loads; the +1 padding keeps the w tile's
 * column reads free of shared-memory bank conflicts.
 */
__global__ void ops_dense_kernel(const float *__restrict__ x, const float *__restrict__ w,
	const float *__restrict__ b, float *__restrict__ y, int batch, int in, int out)
{
	__shared__ float xs[OPS_TILE][OPS_TILE + 1];
	__shared__ float ws[OPS_TILE][OPS_TILE + 1];
	int tx = threadIdx.x, ty = threadIdx.y;
	int row = blockIdx.y * OPS_TILE + ty;
	int col = blockIdx.x * OPS_TILE + tx;
	int wrow = blockIdx.x * OPS_TILE + ty;
	float acc = 0.0f;

	for (int k0 = 0; k0 < in; k0 += OPS_TILE) {
		int k = k0 + tx;

		xs[ty][tx] = (row < batch && k < in) ? x[(size_t)row * in + k] : 0.0f;
		ws[ty][tx] = (wrow < out && k < in) ? w[(size_t)wrow * in + k] : 0.0f;
		__syncthreads();
#pragma unroll
		for (int kk = 0; kk < OPS_TILE; kk++)
			acc += xs[ty][kk] * ws[tx][kk];
		__syncthreads();
	}
	if (row < batch && col < out)
		y[(size_t)row * out + col] = acc + b[col];
}

__global__ void ops_relu_kernel(float *x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		if (x[i] < 0.0f)
			x[i] = 0.0f;
}

/* One block a row; blockDim.x is a power of two; shared memory holds blockDim.x floats. */
__global__ void ops_softmax_kernel(float *x, int dim)
{
	extern __shared__ float red[];
	float *r = x + (size_t)blockIdx.x * dim;
	int t = threadIdx.x;
	float m = -INFINITY, s = 0.0f;

	for (int i = t; i < dim; i += blockDim.x)
		m = fmaxf(m, r[i]);
	red[t] = m;
	__syncthreads();
	for (int h = blockDim.x / 2; h > 0; h /= 2) {
		if (t < h)
			red[t] = fmaxf(red[t], red[t + h]);
		__syncthreads();
	}
	m = red[0];
	__syncthreads();
	for (int i = t; i < dim; i += blockDim.x) {
		float e = expf(r[i] - m);

		r[i] = e;
		s += e;
	}
	red[t] = s;
	__syncthreads();
	for (int h = blockDim.x / 2; h > 0; h /= 2) {
		if (t < h)
			red[t] += red[t + h];
		__syncthreads();
	}
	s = red[0];
	for (int i = t; i < dim; i += blockDim.x)
		r[i] /= s;
}

extern "C" int ops_cuda_available(char *why, size_t whylen)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	if (e != cudaSuccess) {
		snprintf(why, whylen, "no CUDA device: %s (%s)", cudaGetErrorName(e), cudaGetErrorString(e));
		cudaGetLastError();
		return 0;
	}
	if (n < 1) {
		snprintf(why, whylen, "no CUDA device: cudaGetDeviceCount found none");
		return 0;
	}
	return 1;
}

extern "C" void ops_cuda_net_free(struct ops_cuda_net *net)
{
	if (!net)
		return;
	cudaSetDevice(net->device);
	for (int i = 0; i < net->nlayers; i++) {
		cudaFree(net->layers[i].w);
		cudaFree(net->layers[i].b);
	}
	cudaFree(net->act[0]);
	cudaFree(net->act[1]);
	free(net->layers);
	free(net);
}

/* Copies n host floats into new device memory at *dst. */
static int ops_upload(const float *src, size_t n, float **dst, const char *what, char *err, size_t errlen)
{
	if (!ops_ok(cudaMalloc((void **)dst, n * sizeof(float)), what, err, errlen))
		return -1;
	if (!ops_ok(cudaMemcpy(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice), what, err, errlen))
		return -1;
	return 0;
}

extern "C" struct ops_cuda_net *ops_cuda_net_new(const struct ops_layer *layers, int nlayers,
	char *name, size_t namelen, char *err, size_t errlen)
{
	struct ops_cuda_net *net;
	struct cudaDeviceProp prop;

	if (nlayers < 1) {
		snprintf(err, errlen, "cuda: a network needs at least one layer");
		return NULL;
	}
	net = (struct ops_cuda_net *)calloc(1, sizeof(*net));
	if (!net || !(net->layers = (struct ops_dev_layer *)calloc((size_t)nlayers, sizeof(*net->layers)))) {
		free(net);
		snprintf(err, errlen, "cuda: out of memory");
		return NULL;
	}
	net->device = 0;
	net->nlayers = nlayers;
	if (!ops_ok(cudaSetDevice(0), "cudaSetDevice(0)", err, errlen) ||
	    !ops_ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties", err, errlen))
		goto fail;
	snprintf(name, namelen, "cuda:0 (%s)", prop.name);
	net->in_dim = layers[0].in;
	net->max_dim = layers[0].in;
	for (int i = 0; i < nlayers; i++) {
		const struct ops_layer *l = &layers[i];
		struct ops_dev_layer *d = &net->layers[i];

		d->kind = l->kind;
		d->in = l->in;
		d->out = l->out;
		if (l->out > net->max_dim)
			net->max_dim = l->out;
		if (l->kind != OPS_DENSE)
			continue;
		if (ops_upload(l->w, (size_t)l->out * l->in, &d->w, "uploading weights", err, errlen) < 0 ||
		    ops_upload(l->b, (size_t)l->out, &d->b, "uploading biases", err, errlen) < 0)
			goto fail;
	}
	net->out_dim = layers[nlayers - 1].out;
	return net;
fail:
	ops_cuda_net_free(net);
	return NULL;
}

/* Grows both activation buffers to n floats. */
static int ops_reserve(struct ops_cuda_net *net, size_t n, char *err, size_t errlen)
{
	if (n <= net->cap)
		return 0;
	for (int i = 0; i < 2; i++) {
		cudaFree(net->act[i]);
		net->act[i] = NULL;
	}
	net->cap = 0;
	for (int i = 0; i < 2; i++)
		if (!ops_ok(cudaMalloc((void **)&net->act[i], n * sizeof(float)), "cudaMalloc activations",
			err, errlen))
			return -1;
	net->cap = n;
	return 0;
}

/* Launches the dense kernel in slices of rows that fit the grid's y limit. */
static int ops_dense(const struct ops_dev_layer *l, const float *x, float *y, int batch, char *err, size_t errlen)
{
	const int slice = (int)(OPS_MAX_GRID_Y * OPS_TILE);
	dim3 block(OPS_TILE, OPS_TILE);

	for (int r = 0; r < batch; r += slice) {
		int rows = batch - r < slice ? batch - r : slice;
		dim3 grid((unsigned)((l->out + OPS_TILE - 1) / OPS_TILE), (unsigned)((rows + OPS_TILE - 1) / OPS_TILE));

		ops_dense_kernel<<<grid, block>>>(x + (size_t)r * l->in, l->w, l->b, y + (size_t)r * l->out,
			rows, l->in, l->out);
		if (!ops_ok(cudaGetLastError(), "dense kernel", err, errlen))
			return -1;
	}
	return 0;
}

extern "C" int ops_cuda_net_run(struct ops_cuda_net *net, const float *in, int batch, float *out,
	char *err, size_t errlen)
{
	float *cur, *next, *t;
	size_t n = (size_t)batch * net->max_dim;

	if (!ops_ok(cudaSetDevice(net->device), "cudaSetDevice", err, errlen) ||
	    ops_reserve(net, n, err, errlen) < 0)
		return -1;
	cur = net->act[0];
	next = net->act[1];
	if (!ops_ok(cudaMemcpy(cur, in, (size_t)batch * net->in_dim * sizeof(float), cudaMemcpyHostToDevice),
		"copying the input in", err, errlen))
		return -1;
	for (int i = 0; i < net->nlayers; i++) {
		const struct ops_dev_layer *l = &net->layers[i];
		size_t cnt = (size_t)batch * l->out;
		unsigned threads;

		switch (l->kind) {
		case OPS_DENSE:
			if (ops_dense(l, cur, next, batch, err, errlen) < 0)
				return -1;
			t = cur;
			cur = next;
			next = t;
			break;
		case OPS_RELU:
			ops_relu_kernel<<<(unsigned)((cnt + 255) / 256 < 65535 ? (cnt + 255) / 256 : 65535), 256>>>(cur, cnt);
			if (!ops_ok(cudaGetLastError(), "relu kernel", err, errlen))
				return -1;
			break;
		case OPS_SOFTMAX:
			for (threads = 32; threads < 256 && threads < (unsigned)l->out; threads *= 2)
				;
			ops_softmax_kernel<<<(unsigned)batch, threads, threads * sizeof(float)>>>(cur, l->out);
			if (!ops_ok(cudaGetLastError(), "softmax kernel", err, errlen))
				return -1;
			break;
		}
	}
	if (!ops_ok(cudaMemcpy(out, cur, (size_t)batch * net->out_dim * sizeof(float), cudaMemcpyDeviceToHost),
		"copying the output out", err, errlen))
		return -1;
	return 0;
}
