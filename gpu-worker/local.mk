# gpu-worker: the model core (libwgmodel.a) and the wakegate-worker server.
noinst_LIBRARIES += gpu-worker/libwgmodel.a
gpu_worker_libwgmodel_a_SOURCES = \
	gpu-worker/safetensors.c gpu-worker/safetensors.h \
	gpu-worker/model.c gpu-worker/model.h \
	gpu-worker/ops_cpu.c gpu-worker/ops.h \
	gpu-worker/ops_fault.c
gpu_worker_libwgmodel_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(OPENBLAS_CFLAGS) $(CUDA_CFLAGS)
MODEL_LIBS = gpu-worker/libwgmodel.a
if HAVE_CUDA
# nvcc's kernel-launch stubs use C++ static guards: libstdc++ resolves them.
MODEL_LIBS += gpu-worker/ops_cuda.o $(CUDA_LIBS) -lstdc++
# NVCC_ARCH comes from configure (CUDA_ARCHS: SASS for each, PTX of the lowest);
# override it on make's command line.
gpu-worker/ops_cuda.o: gpu-worker/ops_cuda.cu gpu-worker/ops_kernels.cuh gpu-worker/ops.h Makefile
	@$(MKDIR_P) gpu-worker
	$(AM_V_GEN)$(NVCC) $(NVCCFLAGS) $(NVCC_WARN) $(NVCC_ARCH) -DOPS_CUDA_LIBDIR='"$(CUDA_LIBDIR)"' -I$(top_srcdir) -I$(top_builddir) -Xcompiler -fPIC -c -o $@ $(srcdir)/gpu-worker/ops_cuda.cu
CLEANFILES += gpu-worker/ops_cuda.o
else
gpu_worker_libwgmodel_a_SOURCES += gpu-worker/ops_nocuda.c
endif
EXTRA_DIST += gpu-worker/ops_cuda.cu gpu-worker/ops_kernels.cuh gpu-worker/ops_nocuda.c
MODEL_LIBS += $(JANSSON_LIBS) $(OPENBLAS_LIBS) -lm

sbin_PROGRAMS += gpu-worker/wakegate-worker
gpu_worker_wakegate_worker_SOURCES = gpu-worker/main.c gpu-worker/worker.h \
	gpu-worker/api.c gpu-worker/api.h \
	gpu-worker/batch.c gpu-worker/batch.h \
	gpu-worker/request.c gpu-worker/request.h \
	gpu-worker/sleep.c gpu-worker/sleep.h \
	gpu-worker/stats.c gpu-worker/stats.h \
	gpu-worker/tensor.c gpu-worker/tensor.h \
	gpu-worker/wlog.h
gpu_worker_wakegate_worker_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JANSSON_CFLAGS)
gpu_worker_wakegate_worker_LDADD = $(MODEL_LIBS) $(COMMON_LIBS) $(LIBEVENT_LIBS) $(JANSSON_LIBS)

# model-check: runs a model file against reference outputs (CPU, and CUDA when a GPU is there).
check_PROGRAMS += gpu-worker/model-check
gpu_worker_model_check_SOURCES = gpu-worker/model-check.c
gpu_worker_model_check_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
gpu_worker_model_check_LDADD = $(MODEL_LIBS)

# models/make-synthetic: deterministic big models for benches and tests (not installed).
noinst_PROGRAMS += models/make-synthetic
models_make_synthetic_SOURCES = models/make-synthetic.c
models_make_synthetic_LDADD = -lm

# cuda-bench: bench/gpu-check's GPU measurements (built here so that it stays compiling).
if HAVE_CUDA
noinst_PROGRAMS += bench/cuda-bench
bench_cuda_bench_SOURCES = bench/cuda-bench.c
bench_cuda_bench_CFLAGS = $(AM_CFLAGS) $(CUDA_CFLAGS)
bench_cuda_bench_LDADD = $(MODEL_LIBS)
endif
EXTRA_DIST += bench/cuda-bench.c bench/gpu-check

# kernel-emu: the CUDA kernels run on the host, thread by thread, with checked
# memory and real barriers (see kernel-emu.cc); no GPU or nvcc needed. The
# -bugN builds plant a bug in the kernels (1: a removed barrier in dense, 2: a
# transposed index, 3: a removed barrier in softmax, 4: a missing bounds
# guard): t/12-kernel-emu.t expects the harness to catch each.
EMU_CXXFLAGS = -std=gnu++14 -pthread $(CXX_WARN) $(SAN_CFLAGS)
check_PROGRAMS += gpu-worker/kernel-emu gpu-worker/kernel-emu-bug1 gpu-worker/kernel-emu-bug2 \
	gpu-worker/kernel-emu-bug3 gpu-worker/kernel-emu-bug4
gpu_worker_kernel_emu_SOURCES = gpu-worker/kernel-emu.cc gpu-worker/emu.h gpu-worker/ops_kernels.cuh
gpu_worker_kernel_emu_CXXFLAGS = $(EMU_CXXFLAGS)
gpu_worker_kernel_emu_LDADD = gpu-worker/libwgmodel.a $(OPENBLAS_LIBS) -lm
gpu_worker_kernel_emu_bug1_SOURCES = $(gpu_worker_kernel_emu_SOURCES)
gpu_worker_kernel_emu_bug1_CPPFLAGS = $(AM_CPPFLAGS) -DOPS_EMU_PLANT_BUG=1
gpu_worker_kernel_emu_bug1_CXXFLAGS = $(EMU_CXXFLAGS)
gpu_worker_kernel_emu_bug1_LDADD = $(gpu_worker_kernel_emu_LDADD)
gpu_worker_kernel_emu_bug2_SOURCES = $(gpu_worker_kernel_emu_SOURCES)
gpu_worker_kernel_emu_bug2_CPPFLAGS = $(AM_CPPFLAGS) -DOPS_EMU_PLANT_BUG=2
gpu_worker_kernel_emu_bug2_CXXFLAGS = $(EMU_CXXFLAGS)
gpu_worker_kernel_emu_bug2_LDADD = $(gpu_worker_kernel_emu_LDADD)
gpu_worker_kernel_emu_bug3_SOURCES = $(gpu_worker_kernel_emu_SOURCES)
gpu_worker_kernel_emu_bug3_CPPFLAGS = $(AM_CPPFLAGS) -DOPS_EMU_PLANT_BUG=3
gpu_worker_kernel_emu_bug3_CXXFLAGS = $(EMU_CXXFLAGS)
gpu_worker_kernel_emu_bug3_LDADD = $(gpu_worker_kernel_emu_LDADD)
gpu_worker_kernel_emu_bug4_SOURCES = $(gpu_worker_kernel_emu_SOURCES)
gpu_worker_kernel_emu_bug4_CPPFLAGS = $(AM_CPPFLAGS) -DOPS_EMU_PLANT_BUG=4
gpu_worker_kernel_emu_bug4_CXXFLAGS = $(EMU_CXXFLAGS)
gpu_worker_kernel_emu_bug4_LDADD = $(gpu_worker_kernel_emu_LDADD)

# The worker and cuda-bench over a fake CUDA runtime (cuda-fake.cc): ops_cuda.cu's
# host code on host memory, its kernels in the emulation, errors injected with
# WAKEGATE_FAKE_CUDA; t/15-fake-cuda.t drives them. Never installed.
check_PROGRAMS += gpu-worker/wakegate-worker-fakecuda bench/cuda-bench-fakecuda
gpu_worker_wakegate_worker_fakecuda_SOURCES = $(gpu_worker_wakegate_worker_SOURCES) \
	gpu-worker/cuda-fake.cc gpu-worker/emu.h
gpu_worker_wakegate_worker_fakecuda_CFLAGS = $(gpu_worker_wakegate_worker_CFLAGS)
gpu_worker_wakegate_worker_fakecuda_CXXFLAGS = $(EMU_CXXFLAGS)
gpu_worker_wakegate_worker_fakecuda_LDADD = gpu-worker/libwgmodel.a $(COMMON_LIBS) $(LIBEVENT_LIBS) $(JANSSON_LIBS) $(OPENBLAS_LIBS) -ldl -lm
bench_cuda_bench_fakecuda_SOURCES = bench/cuda-bench.c gpu-worker/cuda-fake.cc gpu-worker/emu.h
bench_cuda_bench_fakecuda_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/gpu-worker/fake
bench_cuda_bench_fakecuda_CFLAGS = $(AM_CFLAGS)
bench_cuda_bench_fakecuda_CXXFLAGS = $(EMU_CXXFLAGS)
bench_cuda_bench_fakecuda_LDADD = gpu-worker/libwgmodel.a $(JANSSON_LIBS) $(OPENBLAS_LIBS) -ldl -lm
EXTRA_DIST += gpu-worker/fake/cuda_runtime_api.h
