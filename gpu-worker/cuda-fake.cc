/*
 * cuda-fake: a fake CUDA runtime, so that ops_cuda.cu's host code (uploads,
 * the self-test, pinned staging, sleep and wake, error clearing and sticky
 * errors) runs and is tested without a GPU. Device memory is host memory
 * held by the emulation (emu.h), kernels run there with all its checks, and
 * ops_cuda.cu is included below as it is (OPS_FAKE_CUDA). Linked into
 * wakegate-worker-fakecuda and cuda-bench-fakecuda, which t/15-fake-cuda.t
 * drives; never into what is installed.
 *
 * The runtime's error rules are kept: a failed call sets the last error,
 * cudaGetLastError() returns and clears it, and a sticky error is returned
 * by every call after it and never cleared.
 *
 * WAKEGATE_FAKE_CUDA picks the device's behaviour, comma separated:
 *   nodevice      cudaGetDeviceCount finds none
 *   nokernel      every launch fails with cudaErrorNoKernelImageForDevice
 *                 (a GPU the build has no code for)
 *   transient:N   the Nth launch fails with cudaErrorLaunchOutOfResources
 *   sticky:N      the Nth launch faults: cudaErrorIllegalAddress, for good
 *   mem:MIB       the device's memory (default 1024)
 */
#define OPS_FAKE_CUDA 1

#include "gpu-worker/emu.h"

enum cudaError {
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorInvalidConfiguration = 9,
	cudaErrorInvalidDevice = 101,
	cudaErrorNoDevice = 100,
	cudaErrorNoKernelImageForDevice = 209,
	cudaErrorECCUncorrectable = 214,
	cudaErrorIllegalAddress = 700,
	cudaErrorLaunchOutOfResources = 701,
	cudaErrorLaunchTimeout = 702,
	cudaErrorContextIsDestroyed = 709,
	cudaErrorAssert = 710,
	cudaErrorHardwareStackError = 714,
	cudaErrorIllegalInstruction = 715,
	cudaErrorMisalignedAddress = 716,
	cudaErrorInvalidAddressSpace = 717,
	cudaErrorInvalidPc = 718,
	cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
typedef int cudaStream_t;
#define cudaStreamNonBlocking 1u
#define cudaHostAllocDefault 0u
struct cudaDeviceProp {
	char name[256];
	int major, minor;
};
typedef void *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0 } cublasMath_t;

static struct {
	int parsed, nodevice, nokernel;
	long transient_at, sticky_at, launches;
	cudaError_t last, sticky;
	size_t total, used;
	int streams;
} fk;

static void fk_parse(void)
{
	const char *s = getenv("WAKEGATE_FAKE_CUDA");

	fk.parsed = 1;
	fk.total = (size_t)1024 << 20;
	while (s && *s) {
		long v = 0;
		int len = 0;

		if (!strncmp(s, "nodevice", 8))
			fk.nodevice = 1, len = 8;
		else if (!strncmp(s, "nokernel", 8))
			fk.nokernel = 1, len = 8;
		else if (sscanf(s, "transient:%ld%n", &v, &len) == 1)
			fk.transient_at = v;
		else if (sscanf(s, "sticky:%ld%n", &v, &len) == 1)
			fk.sticky_at = v;
		else if (sscanf(s, "mem:%ld%n", &v, &len) == 1)
			fk.total = (size_t)v << 20;
		if (len == 0) {
			fprintf(stderr, "WAKEGATE_FAKE_CUDA: cannot read \"%s\"\n", s);
			return;
		}
		s += len;
		if (*s == ',')
			s++;
	}
}

/* Every call starts here: a sticky error answers it. */
static cudaError_t fk_enter(void)
{
	if (!fk.parsed)
		fk_parse();
	return fk.sticky;
}

/* A call's result: a failure is also the last error. */
static cudaError_t fk_ret(cudaError_t e)
{
	if (e != cudaSuccess && !fk.sticky)
		fk.last = e;
	return e;
}

static int fk_launch_hook(const char *kernel)
{
	fk_enter();
	fk.launches++;
	if (fk.sticky)
		return 1;
	if (fk.nokernel) {
		fk.last = cudaErrorNoKernelImageForDevice;
		return 1;
	}
	if (fk.launches == fk.transient_at) {
		fk.last = cudaErrorLaunchOutOfResources;
		return 1;
	}
	if (fk.launches == fk.sticky_at) {
		/* as a kernel that faults: the launch went out, the context is lost */
		fk.sticky = cudaErrorIllegalAddress;
		return 1;
	}
	return 0;
}

static const char *cudaGetErrorName(cudaError_t e)
{
	switch (e) {
	case cudaSuccess: return "cudaSuccess";
	case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
	case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
	case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
	case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
	case cudaErrorNoDevice: return "cudaErrorNoDevice";
	case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
	case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
	case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
	default: return "cudaErrorUnknown";
	}
}

static const char *cudaGetErrorString(cudaError_t e)
{
	return e == cudaSuccess ? "no error" : "fake CUDA runtime";
}

static cudaError_t cudaGetLastError(void)
{
	cudaError_t e;

	if ((e = fk_enter()))
		return e;
	if (emu_launch_bad) {
		emu_launch_bad = 0;
		return cudaErrorInvalidConfiguration;
	}
	e = fk.last;
	fk.last = cudaSuccess;
	return e;
}

static cudaError_t cudaPeekAtLastError(void)
{
	cudaError_t e;

	if ((e = fk_enter()))
		return e;
	return emu_launch_bad ? cudaErrorInvalidConfiguration : fk.last;
}

static cudaError_t cudaGetDeviceCount(int *n)
{
	fk_enter();
	*n = fk.nodevice ? 0 : 1;
	return fk_ret(fk.nodevice ? cudaErrorNoDevice : cudaSuccess);
}

static cudaError_t cudaSetDevice(int d)
{
	cudaError_t e = fk_enter();

	return fk_ret(e ? e : fk.nodevice || d != 0 ? cudaErrorInvalidDevice : cudaSuccess);
}

static cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d)
{
	cudaError_t e = fk_enter();

	if (e || d != 0)
		return fk_ret(e ? e : cudaErrorInvalidDevice);
	snprintf(p->name, sizeof(p->name), "wakegate fake CUDA device");
	p->major = 8;
	p->minor = 6;
	return cudaSuccess;
}

static cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	cudaError_t e = fk_enter();

	if (!e)
		*s = ++fk.streams;
	return fk_ret(e);
}

static cudaError_t cudaStreamDestroy(cudaStream_t s) { return fk_ret(fk_enter()); }
static cudaError_t cudaStreamSynchronize(cudaStream_t s) { return fk_ret(fk_enter()); }

static cudaError_t cudaMalloc(ops_dptr *p, size_t bytes)
{
	cudaError_t e = fk_enter();

	if (e)
		return fk_ret(e);
	if (bytes == 0 || fk.used + bytes > fk.total)
		return fk_ret(cudaErrorMemoryAllocation);
	*p = ops_dptr(emu_alloc("device memory", bytes / sizeof(float)), 0);
	fk.used += bytes;
	return cudaSuccess;
}

/* Like the real one, a free works after a sticky error, so that a dead net can still be freed. */
static cudaError_t cudaFree(ops_dptr p)
{
	size_t bytes;

	if (!p.m)
		return cudaSuccess;
	bytes = p.m->data.size() * sizeof(float);
	if (p.off != 0 || emu_free(p.m) < 0)
		return fk_ret(cudaErrorInvalidValue);
	fk.used -= bytes;
	return cudaSuccess;
}

/* The span [p, p + bytes) inside its allocation? */
static int fk_span(ops_dptr p, size_t bytes)
{
	return p.m && p.off >= 0 && (size_t)p.off + bytes / sizeof(float) <= p.m->data.size();
}

static cudaError_t cudaMemcpy(ops_dptr dst, const void *src, size_t bytes, enum cudaMemcpyKind k)
{
	cudaError_t e = fk_enter();

	if (e || k != cudaMemcpyHostToDevice || !fk_span(dst, bytes))
		return fk_ret(e ? e : cudaErrorInvalidValue);
	memcpy(dst.m->data.data() + dst.off, src, bytes);
	return cudaSuccess;
}

static cudaError_t cudaMemcpy(void *dst, ops_dptr src, size_t bytes, enum cudaMemcpyKind k)
{
	cudaError_t e = fk_enter();

	if (e || k != cudaMemcpyDeviceToHost || !fk_span(src, bytes))
		return fk_ret(e ? e : cudaErrorInvalidValue);
	memcpy(dst, src.m->data.data() + src.off, bytes);
	return cudaSuccess;
}

static cudaError_t cudaMemcpyAsync(ops_dptr dst, const void *src, size_t bytes, enum cudaMemcpyKind k, cudaStream_t)
{
	return cudaMemcpy(dst, src, bytes, k);
}

static cudaError_t cudaMemcpyAsync(void *dst, ops_dptr src, size_t bytes, enum cudaMemcpyKind k, cudaStream_t)
{
	return cudaMemcpy(dst, src, bytes, k);
}

static cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags)
{
	cudaError_t e = fk_enter();

	if (e)
		return fk_ret(e);
	*p = malloc(bytes ? bytes : 1);
	return fk_ret(*p ? cudaSuccess : cudaErrorMemoryAllocation);
}

static cudaError_t cudaFreeHost(void *p)
{
	free(p);
	return cudaSuccess;
}

extern "C" int cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
	cudaError_t e = fk_enter();

	*free_bytes = fk.total - fk.used;
	*total_bytes = fk.total;
	return e;
}

/* Installs the launch hook before anything runs. */
static struct fk_init {
	fk_init() { emu_launch_hook = fk_launch_hook; }
} fk_init_once;

#include "gpu-worker/ops_cuda.cu"
