/*
 * ops: the layer kernels behind model.c. The CPU ones (ops_cpu.c) work on
 * host buffers; the CUDA side (ops_cuda.cu, or ops_nocuda.c when the build
 * has no CUDA) holds a whole network on the device, weights uploaded once.
 * Everything here is C-callable; ops_cuda.cu defines these as extern "C".
 */
#ifndef WG_OPS_H
#define WG_OPS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ops_kind { OPS_DENSE, OPS_RELU, OPS_SOFTMAX };

/* One layer; for OPS_DENSE w is [out][in] and b is [out], both host memory. */
struct ops_layer {
	enum ops_kind kind;
	int in, out;
	const float *w, *b;
};

/*
 * OpenBLAS runs on one thread unless OPENBLAS_NUM_THREADS or OMP_NUM_THREADS
 * says otherwise: the worker runs one batch at a time on its inference
 * thread, and extra BLAS threads cost more CPU per request than they save
 * (measured: 1.1-2.4x the CPU time at batch 1). Returns the thread count.
 * Call once, before any ops_cpu_dense().
 */
int ops_cpu_threads_init(void);

/* y[batch][out] = x[batch][in] * w^T + b; cblas_sgemm above a size, a plain loop below. */
void ops_cpu_dense(const float *x, int batch, int in, int out, const float *w, const float *b, float *y);
void ops_cpu_relu(float *x, size_t n);
/* In place over each of batch rows of dim floats; subtracts the row max first. */
void ops_cpu_softmax(float *x, int batch, int dim);

/* A network on a CUDA device: its weights and its activation buffers. */
struct ops_cuda_net;

/* 1 when a CUDA device can be used; else 0 with the reason in why. */
int ops_cuda_available(char *why, size_t whylen);
/*
 * Uploads layers' weights to device 0. Returns a net for ops_cuda_net_free(),
 * with the device's name ("cuda:0 (NAME)") in name, or NULL with err.
 */
struct ops_cuda_net *ops_cuda_net_new(const struct ops_layer *layers, int nlayers,
	char *name, size_t namelen, char *err, size_t errlen);
/* in: batch * layers[0].in floats, out: batch * last layer's out floats (host). 0 or -1 with err. */
int ops_cuda_net_run(struct ops_cuda_net *net, const float *in, int batch, float *out,
	char *err, size_t errlen);
void ops_cuda_net_free(struct ops_cuda_net *net);

/*
 * Sleep level 1 on the device: copies every weight and bias to pinned host
 * memory the net owns, then frees their device memory (activations too).
 * ops_cuda_net_run() fails until ops_cuda_net_wake(). 0 or -1 with err; on
 * -1 the net is unchanged (still awake).
 */
int ops_cuda_net_sleep(struct ops_cuda_net *net, char *err, size_t errlen);
/* Copies the weights back from pinned host memory; 0 or -1 with err. */
int ops_cuda_net_wake(struct ops_cuda_net *net, char *err, size_t errlen);
/* Bytes of device memory the net holds now (0 while asleep). */
size_t ops_cuda_net_device_bytes(const struct ops_cuda_net *net);

#ifdef __cplusplus
}
#endif

#endif
