/*
 * ops_cuda: the network on a CUDA device (Runtime API, linked statically).
 * ops_cuda_net_new() uploads the weights once and runs a one-sample
 * self-test; a run stages the batch through pinned host buffers the net
 * owns, launches the forward pass of ops_kernels.cuh on the net's stream and
 * waits for it. Dense layers of at least cublas_min weights use cuBLAS,
 * opened with dlopen() on first need so that a build runs where cuBLAS is not
 * installed (the hand kernels serve then).
 *
 * Errors: every CUDA call is checked and turned into a message. After a
 * failure the runtime's last error is read (which clears it) so that the
 * next request does not report it again; an error that survives that is
 * sticky (the context is lost) and the net is dead for good (OPS_DEAD).
 *
 * Kept to C-like C++ (malloc, no exceptions, no iostream) so that the
 * object links into the C programs with the static runtime alone.
 *
 * With OPS_FAKE_CUDA, gpu-worker/cuda-fake.cc includes this file after its
 * fake runtime (host memory, kernels run by the emulation, injected errors):
 * device memory is then ops_dptr, and only the calls it fakes are used.
 */
#ifndef OPS_FAKE_CUDA
#include <cuda_runtime.h>
#include <cublas_v2.h>
#endif
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-worker/ops.h"

struct ops_cuda_net;
static __thread struct ops_cuda_net *ops_cur;	/* the net whose call is checking errors (for stickiness) */
static int ops_ok(cudaError_t e, const char *what, char *err, size_t errlen);

static int ops_launch_failed(const char *what, char *err, size_t errlen)
{
	return !ops_ok(cudaGetLastError(), what, err, errlen);
}

#include "gpu-worker/ops_kernels.cuh"

/* cuBLAS entry points, from dlopen(). */
struct ops_cublas {
	void *lib;
	cublasHandle_t h;
	cublasStatus_t (*create)(cublasHandle_t *);
	cublasStatus_t (*destroy)(cublasHandle_t);
	cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
	cublasStatus_t (*set_math)(cublasHandle_t, cublasMath_t);
	cublasStatus_t (*sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
		const float *, const float *, int, const float *, int, const float *, float *, int);
};

struct ops_cuda_net {
	int device;
	int nlayers;
	struct ops_dev_layer *layers;
	float **host_w, **host_b;	/* pinned copies while asleep, per layer; NULL while awake */
	int asleep;
	int dead;			/* a sticky error was seen: every run fails */
	char dead_err[256];
	int in_dim, out_dim, max_dim;
	cudaStream_t stream;
	ops_dptr act[2];		/* device activations, cap floats each */
	size_t cap;
	float *pin_in, *pin_out;	/* pinned staging, pin_cap samples each */
	int pin_cap;
	long cublas_min;
	struct ops_cublas blas;		/* lib set once any layer uses it */
	size_t weight_bytes;
};

/* Errors after which the context cannot be used again (CUDA's "sticky" ones). */
static int ops_sticky(cudaError_t e)
{
	switch (e) {
	case cudaErrorIllegalAddress:
	case cudaErrorLaunchFailure:
	case cudaErrorHardwareStackError:
	case cudaErrorIllegalInstruction:
	case cudaErrorMisalignedAddress:
	case cudaErrorInvalidAddressSpace:
	case cudaErrorInvalidPc:
	case cudaErrorAssert:
	case cudaErrorLaunchTimeout:
	case cudaErrorECCUncorrectable:
	case cudaErrorContextIsDestroyed:
		return 1;
	default:
		return 0;
	}
}

/*
 * 1 on success; else 0 with "cuda: WHAT: cudaErrorX (text)" in err. The
 * last error is cleared; if it does not clear, or is one of the sticky
 * kind, the current net is marked dead.
 */
static int ops_ok(cudaError_t e, const char *what, char *err, size_t errlen)
{
	if (e == cudaSuccess)
		return 1;
	snprintf(err, errlen, "cuda: %s: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
	cudaGetLastError();
	if (ops_cur && (ops_sticky(e) || cudaPeekAtLastError() != cudaSuccess)) {
		ops_cur->dead = 1;
		snprintf(ops_cur->dead_err, sizeof(ops_cur->dead_err), "%s", err);
	}
	return 0;
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

/* Frees the device copies of the weights and the activations. */
static void ops_free_device(struct ops_cuda_net *net)
{
	for (int i = 0; i < net->nlayers; i++) {
		cudaFree(net->layers[i].w);
		cudaFree(net->layers[i].b);
		net->layers[i].w = net->layers[i].b = ops_dptr();
	}
	cudaFree(net->act[0]);
	cudaFree(net->act[1]);
	net->act[0] = net->act[1] = ops_dptr();
	net->cap = 0;
}

/* Frees the pinned copies sleep made. */
static void ops_free_host(struct ops_cuda_net *net)
{
	for (int i = 0; net->host_w && i < net->nlayers; i++) {
		cudaFreeHost(net->host_w[i]);
		cudaFreeHost(net->host_b[i]);
		net->host_w[i] = net->host_b[i] = NULL;
	}
}

extern "C" void ops_cuda_net_free(struct ops_cuda_net *net)
{
	if (!net)
		return;
	cudaSetDevice(net->device);
	ops_free_device(net);
	ops_free_host(net);
	cudaFreeHost(net->pin_in);
	cudaFreeHost(net->pin_out);
	if (net->blas.lib) {
		if (net->blas.h)
			net->blas.destroy(net->blas.h);
		dlclose(net->blas.lib);
	}
	if (net->stream)
		cudaStreamDestroy(net->stream);
	cudaGetLastError();
	free(net->host_w);
	free(net->host_b);
	free(net->layers);
	free(net);
}

/* Copies n host floats into new device memory at *dst. */
static int ops_upload(const float *src, size_t n, ops_dptr *dst, const char *what, char *err, size_t errlen)
{
	if (!ops_ok(cudaMalloc(dst, n * sizeof(float)), what, err, errlen))
		return -1;
	if (!ops_ok(cudaMemcpy(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice), what, err, errlen))
		return -1;
	return 0;
}

/* Opens cuBLAS and makes a handle on the net's stream, TF32 off. */
static int ops_cublas_open(struct ops_cuda_net *net, char *err, size_t errlen)
{
	struct ops_cublas *b = &net->blas;
#ifdef OPS_FAKE_CUDA
	snprintf(err, errlen, "cublas: not in the fake CUDA runtime");
	return -1;
#endif
	/* The loader's paths first, then the toolkit the build used (often not in ld.so.conf). */
	const char *names[] = { "libcublas.so.13", "libcublas.so.12", "libcublas.so",
#ifdef OPS_CUDA_LIBDIR
		OPS_CUDA_LIBDIR "/libcublas.so.13", OPS_CUDA_LIBDIR "/libcublas.so.12",
#endif
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !b->lib; i++)
		b->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!b->lib) {
		snprintf(err, errlen, "cublas: %s", dlerror());
		return -1;
	}
	*(void **)&b->create = dlsym(b->lib, "cublasCreate_v2");
	*(void **)&b->destroy = dlsym(b->lib, "cublasDestroy_v2");
	*(void **)&b->set_stream = dlsym(b->lib, "cublasSetStream_v2");
	*(void **)&b->set_math = dlsym(b->lib, "cublasSetMathMode");
	*(void **)&b->sgemm = dlsym(b->lib, "cublasSgemm_v2");
	if (!b->create || !b->destroy || !b->set_stream || !b->set_math || !b->sgemm) {
		snprintf(err, errlen, "cublas: a symbol is missing from the library");
		goto fail;
	}
	if (b->create(&b->h) != CUBLAS_STATUS_SUCCESS) {
		b->h = NULL;
		snprintf(err, errlen, "cublas: cublasCreate failed");
		goto fail;
	}
	/* Plain FP32: the CPU path and the reference outputs are FP32, TF32 would not match them. */
	if (b->set_stream(b->h, net->stream) != CUBLAS_STATUS_SUCCESS ||
	    b->set_math(b->h, CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS) {
		snprintf(err, errlen, "cublas: cannot set the stream or the math mode");
		goto fail;
	}
	return 0;
fail:
	if (b->h)
		b->destroy(b->h);
	b->h = NULL;
	dlclose(b->lib);
	b->lib = NULL;
	return -1;
}

/* y[batch][out] = x[batch][in] * w[out][in]^T, in cuBLAS's column-major terms y^T = w x^T. */
static int ops_cublas_gemm(void *arg, const struct ops_dev_layer *l, ops_dptr x, ops_dptr y, int batch,
	char *err, size_t errlen)
{
#ifdef OPS_FAKE_CUDA
	cublasStatus_t s = CUBLAS_STATUS_NOT_SUPPORTED;	/* never opened there */
#else
	struct ops_cuda_net *net = (struct ops_cuda_net *)arg;
	const float one = 1.0f, zero = 0.0f;
	cublasStatus_t s = net->blas.sgemm(net->blas.h, CUBLAS_OP_T, CUBLAS_OP_N, l->out, batch, l->in,
		&one, l->w, l->in, x, l->in, &zero, y, l->out);
#endif

	if (s != CUBLAS_STATUS_SUCCESS) {
		snprintf(err, errlen, "cublas: sgemm %dx%dx%d: status %d", batch, l->out, l->in, (int)s);
		ops_launch_failed("cublas sgemm", err, errlen);	/* a CUDA error under it replaces the message */
		return -1;
	}
	return 0;
}

/* Grows both activation buffers to n floats and the pinned staging to batch samples. */
static int ops_reserve(struct ops_cuda_net *net, int batch, char *err, size_t errlen)
{
	size_t n = (size_t)batch * net->max_dim;

	if (n > net->cap) {
		for (int i = 0; i < 2; i++) {
			cudaFree(net->act[i]);
			net->act[i] = ops_dptr();
		}
		net->cap = 0;
		for (int i = 0; i < 2; i++)
			if (!ops_ok(cudaMalloc(&net->act[i], n * sizeof(float)), "cudaMalloc activations",
				err, errlen))
				return -1;
		net->cap = n;
	}
	if (batch > net->pin_cap) {
		cudaFreeHost(net->pin_in);
		cudaFreeHost(net->pin_out);
		net->pin_in = net->pin_out = NULL;
		net->pin_cap = 0;
		if (!ops_ok(cudaHostAlloc((void **)&net->pin_in, (size_t)batch * net->in_dim * sizeof(float),
			cudaHostAllocDefault), "cudaHostAlloc staging", err, errlen) ||
		    !ops_ok(cudaHostAlloc((void **)&net->pin_out, (size_t)batch * net->out_dim * sizeof(float),
			cudaHostAllocDefault), "cudaHostAlloc staging", err, errlen))
			return -1;
		net->pin_cap = batch;
	}
	return 0;
}

/* The run itself; ops_cuda_net_run() adds the dead-net bookkeeping. */
static int ops_run(struct ops_cuda_net *net, const float *in, int batch, float *out, char *err, size_t errlen)
{
	int res;

	if (batch < 1) {
		snprintf(err, errlen, "cuda: a batch of %d samples", batch);
		return -1;
	}
	if (net->asleep) {
		snprintf(err, errlen, "cuda: the model is asleep (level 1): wake it first");
		return -1;
	}
	if (!ops_ok(cudaSetDevice(net->device), "cudaSetDevice", err, errlen) ||
	    ops_reserve(net, batch, err, errlen) < 0)
		return -1;
	memcpy(net->pin_in, in, (size_t)batch * net->in_dim * sizeof(float));
	if (!ops_ok(cudaMemcpyAsync(net->act[0], net->pin_in, (size_t)batch * net->in_dim * sizeof(float),
		cudaMemcpyHostToDevice, net->stream), "copying the input in", err, errlen))
		return -1;
	res = ops_forward(net->layers, net->nlayers, net->act, batch, net->stream,
		net->blas.lib ? ops_cublas_gemm : NULL, net, err, errlen);
	if (res < 0)
		return -1;
	if (!ops_ok(cudaMemcpyAsync(net->pin_out, net->act[res], (size_t)batch * net->out_dim * sizeof(float),
		cudaMemcpyDeviceToHost, net->stream), "copying the output out", err, errlen) ||
	    !ops_ok(cudaStreamSynchronize(net->stream), "running the batch", err, errlen))
		return -1;
	memcpy(out, net->pin_out, (size_t)batch * net->out_dim * sizeof(float));
	return 0;
}

extern "C" int ops_cuda_net_run(struct ops_cuda_net *net, const float *in, int batch, float *out,
	char *err, size_t errlen)
{
	int rc;

	if (net->dead) {
		snprintf(err, errlen, "%.200s (the CUDA context is lost)", net->dead_err);
		return OPS_DEAD;
	}
	ops_cur = net;
	rc = ops_run(net, in, batch, out, err, errlen);
	ops_cur = NULL;
	return rc < 0 && net->dead ? OPS_DEAD : rc;
}

extern "C" struct ops_cuda_net *ops_cuda_net_new(const struct ops_layer *layers, int nlayers,
	const struct ops_cuda_opts *o, char *name, size_t namelen, char *err, size_t errlen)
{
	struct ops_cuda_net *net;
	struct cudaDeviceProp prop;
	int ndev = 0, dev = o ? o->device : 0, want_blas = 0;
	float *zin = NULL, *zout = NULL;
	char why[512];

	if (nlayers < 1) {
		snprintf(err, errlen, "cuda: a network needs at least one layer");
		return NULL;
	}
	if (!ops_ok(cudaGetDeviceCount(&ndev), "cudaGetDeviceCount", err, errlen))
		return NULL;
	if (dev < 0 || dev >= ndev) {
		snprintf(err, errlen, "cuda: no device cuda:%d (%d visible; CUDA_VISIBLE_DEVICES=%s)", dev, ndev,
			getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "(unset)");
		return NULL;
	}
	net = (struct ops_cuda_net *)calloc(1, sizeof(*net));
	if (!net || !(net->layers = (struct ops_dev_layer *)calloc((size_t)nlayers, sizeof(*net->layers))) ||
	    !(net->host_w = (float **)calloc((size_t)nlayers, sizeof(float *))) ||
	    !(net->host_b = (float **)calloc((size_t)nlayers, sizeof(float *)))) {
		if (net) {
			free(net->layers);
			free(net->host_w);
		}
		free(net);
		snprintf(err, errlen, "cuda: out of memory");
		return NULL;
	}
	net->device = dev;
	net->nlayers = nlayers;
	net->cublas_min = o ? o->cublas_min : OPS_CUBLAS_MIN_DEFAULT;
	if (!ops_ok(cudaSetDevice(dev), "cudaSetDevice", err, errlen) ||
	    !ops_ok(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties", err, errlen) ||
	    !ops_ok(cudaStreamCreateWithFlags(&net->stream, cudaStreamNonBlocking), "cudaStreamCreate", err, errlen))
		goto fail;
	snprintf(name, namelen, "cuda:%d (%s, sm_%d%d)", dev, prop.name, prop.major, prop.minor);
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
		net->weight_bytes += ((size_t)l->out * l->in + (size_t)l->out) * sizeof(float);
		d->gemm = net->cublas_min >= 0 && (long)l->out * l->in >= net->cublas_min;
		want_blas |= d->gemm;
	}
	net->out_dim = layers[nlayers - 1].out;
	/* cuBLAS only where it was asked for; without it the hand kernels run every layer. */
	if (want_blas && ops_cublas_open(net, why, sizeof(why)) < 0) {
		fprintf(stderr, "ops_cuda: %s: the hand-written kernels run every layer\n", why);
		for (int i = 0; i < nlayers; i++)
			net->layers[i].gemm = 0;
	}
	/* The self-test: one sample of zeros through every kernel, synchronised. */
	zin = (float *)calloc((size_t)net->in_dim, sizeof(float));
	zout = (float *)calloc((size_t)net->out_dim, sizeof(float));
	if (!zin || !zout) {
		snprintf(err, errlen, "cuda: out of memory");
		goto fail;
	}
	if (ops_cuda_net_run(net, zin, 1, zout, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "self-test on cuda:%d (%s, sm_%d%d) failed: %s", dev, prop.name, prop.major,
			prop.minor, why);
		goto fail;
	}
	free(zin);
	free(zout);
	return net;
fail:
	free(zin);
	free(zout);
	ops_cuda_net_free(net);
	return NULL;
}

extern "C" const char *ops_cuda_net_gemm(const struct ops_cuda_net *net)
{
	return net->blas.lib ? "cublas" : "kernels";
}

extern "C" int ops_cuda_net_sleep(struct ops_cuda_net *net, char *err, size_t errlen)
{
	int rc = -1;

	if (net->asleep)
		return 0;
	if (net->dead) {
		snprintf(err, errlen, "%.200s (the CUDA context is lost)", net->dead_err);
		return -1;
	}
	ops_cur = net;
	if (!ops_ok(cudaSetDevice(net->device), "cudaSetDevice", err, errlen) ||
	    !ops_ok(cudaStreamSynchronize(net->stream), "finishing the last batch", err, errlen))
		goto out;
	for (int i = 0; i < net->nlayers; i++) {
		struct ops_dev_layer *d = &net->layers[i];
		size_t nw = (size_t)d->out * d->in, nb = (size_t)d->out;

		if (d->kind != OPS_DENSE)
			continue;
		if (!ops_ok(cudaHostAlloc((void **)&net->host_w[i], nw * sizeof(float), cudaHostAllocDefault),
			"cudaHostAlloc for sleep", err, errlen) ||
		    !ops_ok(cudaHostAlloc((void **)&net->host_b[i], nb * sizeof(float), cudaHostAllocDefault),
			"cudaHostAlloc for sleep", err, errlen) ||
		    !ops_ok(cudaMemcpy(net->host_w[i], d->w, nw * sizeof(float), cudaMemcpyDeviceToHost),
			"copying weights out for sleep", err, errlen) ||
		    !ops_ok(cudaMemcpy(net->host_b[i], d->b, nb * sizeof(float), cudaMemcpyDeviceToHost),
			"copying biases out for sleep", err, errlen)) {
			ops_free_host(net);	/* the device copies are untouched: still awake */
			goto out;
		}
	}
	ops_free_device(net);
	net->asleep = 1;
	rc = 0;
out:
	ops_cur = NULL;
	return rc;
}

extern "C" int ops_cuda_net_wake(struct ops_cuda_net *net, char *err, size_t errlen)
{
	int rc = -1;

	if (!net->asleep)
		return 0;
	ops_cur = net;
	if (!ops_ok(cudaSetDevice(net->device), "cudaSetDevice", err, errlen))
		goto out;
	for (int i = 0; i < net->nlayers; i++) {
		struct ops_dev_layer *d = &net->layers[i];

		if (d->kind != OPS_DENSE)
			continue;
		if (ops_upload(net->host_w[i], (size_t)d->out * d->in, &d->w, "uploading weights on wake",
			err, errlen) < 0 ||
		    ops_upload(net->host_b[i], (size_t)d->out, &d->b, "uploading biases on wake", err, errlen) < 0) {
			ops_free_device(net);	/* still asleep, the pinned copies kept */
			goto out;
		}
	}
	ops_free_host(net);
	net->asleep = 0;
	rc = 0;
out:
	ops_cur = NULL;
	return rc;
}

extern "C" size_t ops_cuda_net_device_bytes(const struct ops_cuda_net *net)
{
	if (!net || net->asleep)
		return 0;
	return net->weight_bytes + 2 * net->cap * sizeof(float);
}
