/*
 * ops_nocuda: stands in for ops_cuda.cu when the build has no CUDA
 * (./configure --without-cuda, or no toolkit found), so that the model
 * core links the same way and says why the GPU path is missing.
 */
#include "gpu-worker/ops.h"

#include <stdio.h>

int ops_cuda_available(char *why, size_t whylen)
{
	snprintf(why, whylen, "built without CUDA");
	return 0;
}

struct ops_cuda_net *ops_cuda_net_new(const struct ops_layer *layers, int nlayers,
	const struct ops_cuda_opts *o, char *name, size_t namelen, char *err, size_t errlen)
{
	snprintf(err, errlen, "built without CUDA");
	return NULL;
}

int ops_cuda_net_run(struct ops_cuda_net *net, const float *in, int batch, float *out,
	char *err, size_t errlen)
{
	snprintf(err, errlen, "built without CUDA");
	return -1;
}

void ops_cuda_net_free(struct ops_cuda_net *net)
{
}

const char *ops_cuda_net_gemm(const struct ops_cuda_net *net)
{
	return "kernels";
}

int ops_cuda_net_sleep(struct ops_cuda_net *net, char *err, size_t errlen)
{
	snprintf(err, errlen, "built without CUDA");
	return -1;
}

int ops_cuda_net_wake(struct ops_cuda_net *net, char *err, size_t errlen)
{
	snprintf(err, errlen, "built without CUDA");
	return -1;
}

size_t ops_cuda_net_device_bytes(const struct ops_cuda_net *net)
{
	return 0;
}
