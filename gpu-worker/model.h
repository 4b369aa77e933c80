/*
 * model: a feed-forward network loaded from a safetensors file. The layer
 * list lives in the file's __metadata__ ("wakegate.layers", a JSON string);
 * see models/train-digits for the format. model_run() runs a batch on the
 * device chosen with model_use_device() (CPU until then).
 *
 * Threads: model_run(), model_sleep(), model_wake() and model_reload() may
 * be called from one thread at a time (the worker's inference thread); the
 * other functions only read, and are for that thread too while it runs
 * (the worker reads the byte counts between batches, through the batcher).
 *
 * Sleep levels, as vLLM's: 0 awake; 1 the working weights are freed (on the
 * GPU path the device memory, the weights kept in pinned host memory; on
 * the CPU path the host copy, the file kept mapped, its pages in the page
 * cache); 2 the weights and the file are let go of and the file's pages
 * dropped from the page cache (posix_fadvise), so a wake reads the file.
 */
#ifndef WG_MODEL_H
#define WG_MODEL_H

#include <stddef.h>
#include <stdint.h>

enum model_device { MODEL_CPU, MODEL_CUDA };

struct model;

/* Returns a new model for model_free(), or NULL with a message in err. */
struct model *model_load(const char *path, char *err, size_t errlen);
void model_free(struct model *m);

const char *model_name(const struct model *m);	/* metadata "wakegate.name", else file stem */
int model_input_dim(const struct model *m);	/* floats per sample, e.g. 64 */
int model_output_dim(const struct model *m);	/* floats per sample, e.g. 10 */
/* per-sample input shape without the batch dimension, e.g. {64} or {1,8,8} */
const int64_t *model_input_shape(const struct model *m, int *ndim);
int model_layer_count(const struct model *m);

/* Sets up the CPU kernels' threads (see ops_cpu_threads_init()); returns their count. */
int model_cpu_threads_init(void);

/* 1 when a CUDA device can be used; else 0 with the reason in why. */
int model_cuda_available(char *why, size_t whylen);
/*
 * For the next model_use_device(MODEL_CUDA): the device index (after
 * CUDA_VISIBLE_DEVICES) and the dense layer size, in weights, from which
 * cuBLAS does the product (< 0: never).
 */
void model_cuda_options(struct model *m, int device, long cublas_min);
/* "cublas" or "kernels" on CUDA, "cpu" on the CPU; for logs. */
const char *model_gemm(const struct model *m);
/*
 * 1 once a run failed for good (a sticky CUDA error: the context is lost);
 * every later model_run() fails. Any thread may ask.
 */
int model_dead(const struct model *m);
/* Moves the weights to dev. 0 on success, -1 with err (e.g. no GPU). */
int model_use_device(struct model *m, enum model_device dev, char *err, size_t errlen);
enum model_device model_device(const struct model *m);
const char *model_device_name(const struct model *m);	/* "cpu" or "cuda:0 (NAME)" */

/*
 * in: batch * input_dim floats, out: batch * output_dim floats (caller's).
 * 0 on success, -1 with err.
 */
int model_run(struct model *m, const float *in, int batch, float *out, char *err, size_t errlen);

/*
 * Goes to sleep level 1 or 2 (from 1 to 2 too; a level at or below the
 * current one does nothing). model_run() fails while asleep. 0, or -1 with
 * err, the model then unchanged.
 */
int model_sleep(struct model *m, int level, char *err, size_t errlen);
/*
 * Back to level 0: from 1 it copies the weights back (page cache or pinned
 * memory); from 2 it loads the file again, which must hold the same network
 * (input shape, layers and sizes). 0, or -1 with err, still asleep.
 */
int model_wake(struct model *m, char *err, size_t errlen);
/*
 * vLLM's reload_weights: loads the file at the model's path again when it
 * is not the one loaded (device, inode, size or mtime differ) and swaps the
 * weights in; *changed says whether it did. The file must hold the same
 * network. Awake only. 0, or -1 with err and the old weights still serving.
 */
int model_reload(struct model *m, int *changed, char *err, size_t errlen);
int model_sleep_level(const struct model *m);
/* Bytes of the weights and biases (what the model takes awake, on either device). */
size_t model_weight_bytes(const struct model *m);
/* Host bytes the working weights hold now (0 asleep on the CPU path). */
size_t model_host_bytes(const struct model *m);
/* Device bytes the network holds now (0 on the CPU, and asleep). */
size_t model_device_bytes(const struct model *m);

#endif
