/*
 * The one call of the CUDA runtime that bench/cuda-bench.c makes beside the
 * ops API, for its build over the fake runtime (gpu-worker/cuda-fake.cc).
 */
#ifndef WG_FAKE_CUDA_RUNTIME_API_H
#define WG_FAKE_CUDA_RUNTIME_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
int cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
#ifdef __cplusplus
}
#endif

#endif
