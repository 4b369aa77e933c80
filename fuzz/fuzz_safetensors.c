/*
 * fuzz_safetensors: feeds arbitrary bytes to the model loader as a file.
 * The bytes go into one memfd, reopened by path (/proc/self/fd/N) as
 * st_open() and model_load() do with a real file. A file that loads is
 * then used as the worker would: every tensor read, metadata looked up,
 * and one CPU inference run on zeros, so that a header that passes the
 * checks but lies about its shapes shows up under ASan. Under libFuzzer a
 * custom mutator keeps the 8-byte header length right half of the time,
 * so that mutations reach the JSON checks instead of the framing check.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpu-worker/model.h"
#include "gpu-worker/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fz_fd = -1;
static char fz_path[64];

/* The memfd lives for the whole process; each input replaces its bytes. */
static int fz_put(const uint8_t *data, size_t size)
{
	size_t off = 0;

	if (fz_fd < 0) {
		fz_fd = memfd_create("fuzz-safetensors", MFD_CLOEXEC);
		if (fz_fd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(fz_path, sizeof(fz_path), "/proc/self/fd/%d", fz_fd);
	}
	if (ftruncate(fz_fd, 0) < 0)
		abort();
	while (off < size) {
		ssize_t n = pwrite(fz_fd, data + off, size - off, (off_t)off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	return 0;
}

/* Reads every tensor of a file that opened, as model.c would. */
static void fz_walk_file(const struct st_file *f)
{
	int n = st_tensor_count(f);
	float sum = 0;

	for (int i = 0; i < n; i++) {
		const struct st_tensor *t = st_tensor_at(f, i);
		float *buf;

		if (st_tensor_find(f, t->name) != t)
			abort();	/* names are unique: find must return the same tensor */
		if (t->count > (1u << 24))
			continue;
		buf = malloc(t->count ? t->count * sizeof(float) : 1);
		if (!buf)
			continue;
		st_tensor_read_f32(t, buf);
		for (uint64_t k = 0; k < t->count; k++)
			sum += buf[k];
		free(buf);
	}
	(void)st_meta(f, "wakegate.layers");
	(void)st_meta(f, "wakegate.name");
	(void)st_path(f);
	(void)sum;
}

/* Runs a loaded model on one sample of zeros on the CPU. */
static void fz_run_model(struct model *m)
{
	int in = model_input_dim(m), out = model_output_dim(m), nd = 0;
	char err[256];
	float *x, *y;

	(void)model_name(m);
	(void)model_input_shape(m, &nd);
	(void)model_layer_count(m);
	(void)model_device_name(m);
	if (in < 1 || out < 1 || in > (1 << 22) || out > (1 << 22))
		return;
	x = calloc((size_t)in, sizeof(float));
	y = calloc((size_t)out, sizeof(float));
	if (x && y)
		(void)model_run(m, x, 1, y, err, sizeof(err));
	free(x);
	free(y);
}

#ifdef WG_LIBFUZZER
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

/*
 * Odd seeds: libFuzzer's own byte mutations. Even seeds on a well framed
 * file: mutate the JSON header alone, then rewrite its length and put the
 * tensor data back after it.
 */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	uint64_t hlen = 0;
	size_t dlen, room, nh;
	uint8_t *h, *d;

	if (size < 9 || (seed & 1))
		return LLVMFuzzerMutate(data, size, max_size);
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | data[i];
	if (hlen == 0 || hlen > size - 8 || max_size < size)
		return LLVMFuzzerMutate(data, size, max_size);
	dlen = size - 8 - (size_t)hlen;
	room = max_size - 8 - dlen;
	h = malloc(room);
	d = malloc(dlen ? dlen : 1);
	if (!h || !d) {
		free(h);
		free(d);
		return LLVMFuzzerMutate(data, size, max_size);
	}
	memcpy(h, data + 8, (size_t)hlen);
	memcpy(d, data + 8 + hlen, dlen);
	nh = LLVMFuzzerMutate(h, (size_t)hlen, room);
	for (int i = 0; i < 8; i++)
		data[i] = (uint8_t)((uint64_t)nh >> (8 * i));
	memcpy(data + 8, h, nh);
	memcpy(data + 8 + nh, d, dlen);
	free(h);
	free(d);
	return 8 + nh + dlen;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct st_file *f;
	struct model *m;

	fz_put(data, size);
	f = st_open(fz_path, err, sizeof(err));
	if (f) {
		fz_walk_file(f);
		st_close(f);
	}
	m = model_load(fz_path, err, sizeof(err));
	if (m) {
		fz_run_model(m);
		model_free(m);
	}
	return 0;
}
