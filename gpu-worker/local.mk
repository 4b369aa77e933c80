# gpu-worker: the model core (libwgmodel.a) and the wakegate-worker server.
noinst_LIBRARIES += gpu-worker/libwgmodel.a
gpu_worker_libwgmodel_a_SOURCES = \
	gpu-worker/safetensors.c gpu-worker/safetensors.h \
	gpu-worker/model.c gpu-worker/model.h \
	gpu-worker/ops_cpu.c gpu-worker/ops.h
gpu_worker_libwgmodel_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CUDA_CFLAGS)
MODEL_LIBS = gpu-worker/libwgmodel.a
if HAVE_CUDA
# nvcc's kernel-launch stubs use C++ static guards: libstdc++ resolves them.
MODEL_LIBS += gpu-worker/ops_cuda.o $(CUDA_LIBS) -lstdc++
# SASS for Turing (the default) and Hopper (H100/H200), PTX for the rest; override on make's command line.
NVCC_ARCH = -gencode arch=compute_75,code=sm_75 -gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90
gpu-worker/ops_cuda.o: gpu-worker/ops_cuda.cu gpu-worker/ops.h
	@$(MKDIR_P) gpu-worker
	$(AM_V_GEN)$(NVCC) $(NVCCFLAGS) $(NVCC_ARCH) -I$(top_srcdir) -I$(top_builddir) -Xcompiler -fPIC -c -o $@ $(srcdir)/gpu-worker/ops_cuda.cu
CLEANFILES += gpu-worker/ops_cuda.o
else
gpu_worker_libwgmodel_a_SOURCES += gpu-worker/ops_nocuda.c
endif
EXTRA_DIST += gpu-worker/ops_cuda.cu gpu-worker/ops_nocuda.c
MODEL_LIBS += $(JANSSON_LIBS) -lm

sbin_PROGRAMS += gpu-worker/wakegate-worker
gpu_worker_wakegate_worker_SOURCES = gpu-worker/main.c gpu-worker/worker.h \
	gpu-worker/api.c gpu-worker/api.h \
	gpu-worker/batch.c gpu-worker/batch.h \
	gpu-worker/request.c gpu-worker/request.h \
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
