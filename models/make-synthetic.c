/*
 * make-synthetic: writes a deterministic MLP of about SIZE bytes of weights
 * in the format models/train-digits writes (safetensors, F32, the layers in
 * __metadata__; see models/README.md), for benches and tests that need a
 * model bigger than digits without committing one:
 *
 *   models/make-synthetic SIZE OUT.safetensors
 *
 * SIZE is bytes with an optional k, m or g (powers of 1024): 16m, 256m, 1g.
 * The network takes the digits model's 64 inputs and gives 10 softmax
 * outputs: 64 -> H relu -> (H -> H relu) x L -> 10 softmax, H the narrowest
 * of 256, 1024, 2048, 4096 with L at most 16 (64 for the widest), so that
 * the weights come to about SIZE (16m: H 1024, L 4; 1g: H 4096, L 16). Weights are He-uniform from a fixed
 * splitmix64 stream, so the same SIZE gives the same file byte for byte.
 *
 * Beside it, OUT without ".safetensors" plus "-ref.json": 8 inputs and the
 * outputs of a double-precision forward pass, computed here independently
 * of the worker's kernels, in digits-ref.json's shape, for model-check.
 * The file is fsync'd, so its pages are clean and a sleeping worker can
 * drop them from the page cache (posix_fadvise only drops clean pages).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MS_IN 64
#define MS_OUT 10
#define MS_NREF 8
#define MS_MAX_LAYERS 64

static uint64_t ms_state;

static uint64_t ms_next(void)
{
	uint64_t z = (ms_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [-a, a), as a float32. */
static float ms_uniform(double a)
{
	return (float)(((double)(ms_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0) * a);
}

static void __attribute__((noreturn, format(printf, 1, 2))) ms_die(const char *fmt, ...)
{
	va_list ap;

	fputs("make-synthetic: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t ms_parse_size(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v > 0))
		ms_die("SIZE \"%s\" is not a size such as 16m or 1g", s);
	switch (*end) {
	case 'k': case 'K': v *= 1024; end++; break;
	case 'm': case 'M': v *= 1024 * 1024; end++; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
	}
	if (*end || v < 64 * 1024 || v > 64.0 * 1024 * 1024 * 1024)
		ms_die("SIZE \"%s\" is not a size from 64k to 64g (e.g. 16m, 1g)", s);
	return (uint64_t)v;
}

struct ms_layer {
	int in, out;
	int relu;
	uint64_t woff, boff;	/* byte offsets in the data section */
};

int main(int argc, char **argv)
{
	static const int widths[] = { 256, 1024, 2048, 4096 };
	struct ms_layer ly[MS_MAX_LAYERS + 2];
	int nl = 0, h = 0, hidden = 0;
	uint64_t size, off = 0;
	char *ref_path, *hdr = NULL;
	size_t hlen = 0, cap = 0, plen;
	double *act[2];
	float *x0, *row;
	FILE *f, *rf;

	if (argc != 3)
		ms_die("usage: make-synthetic SIZE OUT.safetensors (SIZE e.g. 16m, 256m, 1g)");
	size = ms_parse_size(argv[1]);
	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
		h = widths[i];
		/* the narrowest width that needs at most 16 hidden layers: few, wide GEMMs */
		if (size / (4ULL * h * h) <= 16)
			break;
	}
	hidden = (int)((double)size / (4.0 * h * h) + 0.5);
	if (hidden < 1)
		hidden = 1;
	if (hidden > MS_MAX_LAYERS)
		hidden = MS_MAX_LAYERS;
	ly[nl++] = (struct ms_layer){ MS_IN, h, 1, 0, 0 };
	for (int i = 0; i < hidden; i++)
		ly[nl++] = (struct ms_layer){ h, h, 1, 0, 0 };
	ly[nl++] = (struct ms_layer){ h, MS_OUT, 0, 0, 0 };
	for (int i = 0; i < nl; i++) {
		ly[i].woff = off;
		off += 4ULL * ly[i].in * ly[i].out;
		ly[i].boff = off;
		off += 4ULL * ly[i].out;
	}

	/* The header: tensors, then the layer list as a JSON string in __metadata__. */
	{
		char layers[MS_MAX_LAYERS * 96 + 256], tens[MS_MAX_LAYERS * 192 + 256];
		size_t ln = 0, tn = 0;
		char name[64];

		ln += (size_t)snprintf(layers + ln, sizeof(layers) - ln, "[");
		for (int i = 0; i < nl; i++) {
			ln += (size_t)snprintf(layers + ln, sizeof(layers) - ln,
				"%s{\\\"op\\\":\\\"dense\\\",\\\"weight\\\":\\\"l%d.weight\\\",\\\"bias\\\":\\\"l%d.bias\\\"},%s",
				i ? "," : "", i, i, ly[i].relu ? "{\\\"op\\\":\\\"relu\\\"}" : "{\\\"op\\\":\\\"softmax\\\"}");
			tn += (size_t)snprintf(tens + tn, sizeof(tens) - tn,
				",\"l%d.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%llu,%llu]}"
				",\"l%d.bias\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%llu,%llu]}",
				i, ly[i].out, ly[i].in, (unsigned long long)ly[i].woff, (unsigned long long)ly[i].boff,
				i, ly[i].out, (unsigned long long)ly[i].boff,
				(unsigned long long)(ly[i].boff + 4ULL * ly[i].out));
		}
		snprintf(layers + ln, sizeof(layers) - ln, "]");
		snprintf(name, sizeof(name), "synthetic-%s", argv[1]);
		cap = strlen(layers) + strlen(tens) + 512;
		hdr = malloc(cap + 8);
		if (!hdr)
			ms_die("out of memory");
		hlen = (size_t)snprintf(hdr, cap, "{\"__metadata__\":{\"wakegate.name\":\"%s\",\"wakegate.input_shape\":\"[64]\","
			"\"wakegate.layers\":\"%s\"}%s}", name, layers, tens);
		while (hlen % 8)	/* the data section starts 8-aligned, as safetensors' writers do */
			hdr[hlen++] = ' ';
	}
	if (!(f = fopen(argv[2], "wb")))
		ms_die("%s: %s", argv[2], strerror(errno));
	{
		unsigned char le[8];

		for (int i = 0; i < 8; i++)
			le[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
		if (fwrite(le, 1, 8, f) != 8 || fwrite(hdr, 1, hlen, f) != hlen)
			ms_die("%s: %s", argv[2], strerror(errno));
	}

	/* The reference inputs: 8 samples uniform in [0,1), as float32. */
	x0 = malloc(sizeof(float) * MS_NREF * MS_IN);
	act[0] = calloc((size_t)MS_NREF * h, sizeof(double));
	act[1] = calloc((size_t)MS_NREF * h, sizeof(double));
	row = malloc(sizeof(float) * (size_t)h);
	if (!x0 || !act[0] || !act[1] || !row)
		ms_die("out of memory");
	ms_state = 0x5eed;
	for (int i = 0; i < MS_NREF * MS_IN; i++) {
		x0[i] = (ms_uniform(0.5) + 0.5f);
		act[0][i / MS_IN * h + i % MS_IN] = x0[i];
	}

	/* Each layer: weight rows written as they are drawn, the reference pass row by row beside. */
	for (int l = 0; l < nl; l++) {
		const struct ms_layer *L = &ly[l];
		double a = sqrt((L->relu ? 6.0 : 3.0) / L->in);	/* He-uniform; the last layer's logits O(1) */
		double *in = act[l % 2], *out = act[(l + 1) % 2];
		float *bias = malloc(sizeof(float) * (size_t)L->out);

		if (!bias)
			ms_die("out of memory");
		ms_state = 0x5eed0000ULL + (uint64_t)l * 0x100000001ULL;
		for (int o = 0; o < L->out; o++) {
			for (int i = 0; i < L->in; i++)
				row[i] = ms_uniform(a);
			if (fwrite(row, sizeof(float), (size_t)L->in, f) != (size_t)L->in)
				ms_die("%s: %s", argv[2], strerror(errno));
			for (int s = 0; s < MS_NREF; s++) {
				double acc = 0;

				for (int i = 0; i < L->in; i++)
					acc += (double)row[i] * in[(size_t)s * h + i];
				out[(size_t)s * h + o] = acc;
			}
		}
		for (int o = 0; o < L->out; o++)
			bias[o] = ms_uniform(0.05);
		if (fwrite(bias, sizeof(float), (size_t)L->out, f) != (size_t)L->out)
			ms_die("%s: %s", argv[2], strerror(errno));
		for (int s = 0; s < MS_NREF; s++) {
			double *r = out + (size_t)s * h, m = -INFINITY, sum = 0;

			for (int o = 0; o < L->out; o++) {
				r[o] += bias[o];
				if (L->relu && r[o] < 0)
					r[o] = 0;
				if (r[o] > m)
					m = r[o];
			}
			if (!L->relu) {
				for (int o = 0; o < L->out; o++)
					sum += (r[o] = exp(r[o] - m));
				for (int o = 0; o < L->out; o++)
					r[o] /= sum;
			}
		}
		free(bias);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
		ms_die("%s: %s", argv[2], strerror(errno));

	/* OUT.safetensors -> OUT-ref.json */
	plen = strlen(argv[2]);
	if (plen > 12 && strcmp(argv[2] + plen - 12, ".safetensors") == 0)
		plen -= 12;
	if (!(ref_path = malloc(plen + 16)))
		ms_die("out of memory");
	snprintf(ref_path, plen + 16, "%.*s-ref.json", (int)plen, argv[2]);
	if (!(rf = fopen(ref_path, "w")))
		ms_die("%s: %s", ref_path, strerror(errno));
	fprintf(rf, "{\"model\":\"synthetic-%s\",\n\"inputs\":[\n", argv[1]);
	for (int s = 0; s < MS_NREF; s++) {
		fputc('[', rf);
		for (int i = 0; i < MS_IN; i++)
			fprintf(rf, "%s%.9g", i ? "," : "", (double)x0[s * MS_IN + i]);
		fprintf(rf, "]%s\n", s + 1 < MS_NREF ? "," : "");
	}
	fprintf(rf, "],\n\"outputs\":[\n");
	for (int s = 0; s < MS_NREF; s++) {
		const double *r = act[nl % 2] + (size_t)s * h;

		fputc('[', rf);
		for (int o = 0; o < MS_OUT; o++)
			fprintf(rf, "%s%.9g", o ? "," : "", r[o]);
		fprintf(rf, "]%s\n", s + 1 < MS_NREF ? "," : "");
	}
	fprintf(rf, "]}\n");
	if (fclose(rf) != 0)
		ms_die("%s: %s", ref_path, strerror(errno));
	printf("%s: %d layers (64 -> %d x %d -> 10), %llu bytes of weights; reference: %s\n", argv[2], nl,
		h, hidden + 1, (unsigned long long)off, ref_path);
	free(ref_path);
	free(hdr);
	free(x0);
	free(row);
	free(act[0]);
	free(act[1]);
	return 0;
}
