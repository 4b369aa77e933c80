/*
 * ops_cuda_pending: weak stand-ins for the sleep functions of ops.h, built
 * only with CUDA, so that the worker links while ops_cuda.cu does not yet
 * define them (they land with the CUDA branch). A strong definition in
 * ops_cuda.o wins over these at link time; once ops_cuda.cu has all three,
 * delete this file and its line in local.mk.
 */
#include "gpu-worker/ops.h"

#include <stdio.h>

__attribute__((weak)) int ops_cuda_net_sleep(struct ops_cuda_net *net, char *err, size_t errlen)
{
	snprintf(err, errlen, "sleep level 1 on the GPU is not in this build (ops_cuda.cu lacks ops_cuda_net_sleep)");
	return -1;
}

__attribute__((weak)) int ops_cuda_net_wake(struct ops_cuda_net *net, char *err, size_t errlen)
{
	snprintf(err, errlen, "wake on the GPU is not in this build (ops_cuda.cu lacks ops_cuda_net_wake)");
	return -1;
}

/* Unknown: 0, so /metrics shows nothing rather than a wrong number. */
__attribute__((weak)) size_t ops_cuda_net_device_bytes(const struct ops_cuda_net *net)
{
	return 0;
}
