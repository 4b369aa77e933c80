/*
 * model-check: loads a model file and checks it, for tests and by hand.
 *
 *   model-check MODEL REF.json [--device cpu|cuda|both]
 *       runs the reference inputs and compares with the reference outputs
 *       (cpu: max abs diff <= 1e-5; cuda vs cpu: <= 1e-4); exit 0 or 1
 *   model-check MODEL --info
 *       prints name, input shape, dimensions and layer count
 *   model-check MODEL --accuracy TEST.json [--device cpu|cuda]
 *       prints the share of {"inputs":..,"labels":..} classified right
 *
 * Errors (a malformed model included) go to stderr with exit code 1.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-worker/model.h"

#define MC_TOL_CPU 1e-5
#define MC_TOL_CUDA 1e-4

static void mc_usage(void)
{
	fprintf(stderr,
		"usage: model-check MODEL REF.json [--device cpu|cuda|both]\n"
		"       model-check MODEL --info\n"
		"       model-check MODEL --accuracy TEST.json [--device cpu|cuda]\n");
}

/* The rows of a JSON array of arrays of width numbers; caller frees. NULL after a message. */
static float *mc_matrix(const char *path, json_t *a, const char *key, int width, int *rows)
{
	json_t *row, *v;
	size_t i, j;
	float *m;

	if (!json_is_array(a) || json_array_size(a) < 1) {
		fprintf(stderr, "model-check: %s: \"%s\" is not a non-empty array\n", path, key);
		return NULL;
	}
	*rows = (int)json_array_size(a);
	m = malloc((size_t)*rows * (size_t)width * sizeof(float));
	if (!m) {
		fprintf(stderr, "model-check: out of memory\n");
		return NULL;
	}
	json_array_foreach(a, i, row) {
		if (!json_is_array(row) || json_array_size(row) != (size_t)width) {
			fprintf(stderr, "model-check: %s: %s[%zu] is not an array of %d numbers\n", path, key, i, width);
			free(m);
			return NULL;
		}
		json_array_foreach(row, j, v) {
			if (!json_is_number(v)) {
				fprintf(stderr, "model-check: %s: %s[%zu][%zu] is not a number\n", path, key, i, j);
				free(m);
				return NULL;
			}
			m[i * (size_t)width + j] = (float)json_number_value(v);
		}
	}
	return m;
}

static json_t *mc_load_json(const char *path)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);

	if (!j)
		fprintf(stderr, "model-check: %s: %s (line %d)\n", path, jerr.text, jerr.line);
	else if (!json_is_object(j)) {
		fprintf(stderr, "model-check: %s: not a JSON object\n", path);
		json_decref(j);
		j = NULL;
	}
	return j;
}

static double mc_max_diff(const float *a, const float *b, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)b[i]);

		if (!(d <= m))	/* NaN counts as the largest difference */
			m = isnan(d) ? INFINITY : d;
	}
	return m;
}

/* Runs in on dev into a new array (caller frees); NULL after a message. */
static float *mc_run(struct model *m, enum model_device dev, const float *in, int batch)
{
	char err[512];
	float *out = malloc((size_t)batch * model_output_dim(m) * sizeof(float));

	if (!out) {
		fprintf(stderr, "model-check: out of memory\n");
		return NULL;
	}
	if (model_use_device(m, dev, err, sizeof(err)) < 0 || model_run(m, in, batch, out, err, sizeof(err)) < 0) {
		fprintf(stderr, "model-check: %s: %s\n", dev == MODEL_CUDA ? "cuda" : "cpu", err);
		free(out);
		return NULL;
	}
	return out;
}

static int mc_info(struct model *m)
{
	int ndim;
	const int64_t *shape = model_input_shape(m, &ndim);

	printf("name: %s\ninput_shape: [", model_name(m));
	for (int i = 0; i < ndim; i++)
		printf("%s%lld", i ? "," : "", (long long)shape[i]);
	printf("]\ninput_dim: %d\noutput_dim: %d\nlayers: %d\n", model_input_dim(m), model_output_dim(m),
		model_layer_count(m));
	return 0;
}

/* Prints one comparison; 1 when within tol. */
static int mc_report(const char *what, double diff, int rows, int cols, double tol)
{
	int ok = diff <= tol;

	printf("%s: max abs diff %.3g over %d samples x %d outputs (tolerance %g): %s\n",
		what, diff, rows, cols, tol, ok ? "ok" : "FAIL");
	return ok;
}

static int mc_reference(struct model *m, const char *path, const char *device)
{
	json_t *j = mc_load_json(path), *name;
	float *in = NULL, *want = NULL, *cpu = NULL, *gpu = NULL;
	int rows = 0, orows = 0, ok = 0, od = model_output_dim(m);
	size_t n;
	char why[256];

	if (!j)
		return 1;
	name = json_object_get(j, "model");
	if (json_is_string(name) && strcmp(json_string_value(name), model_name(m)) != 0)
		fprintf(stderr, "model-check: note: %s is for model \"%s\", this is \"%s\"\n", path,
			json_string_value(name), model_name(m));
	if (!(in = mc_matrix(path, json_object_get(j, "inputs"), "inputs", model_input_dim(m), &rows)) ||
	    !(want = mc_matrix(path, json_object_get(j, "outputs"), "outputs", od, &orows)))
		goto out;
	if (rows != orows) {
		fprintf(stderr, "model-check: %s: %d inputs but %d outputs\n", path, rows, orows);
		goto out;
	}
	n = (size_t)rows * od;
	if (strcmp(device, "cuda") != 0) {
		if (!(cpu = mc_run(m, MODEL_CPU, in, rows)) ||
		    !mc_report("cpu", mc_max_diff(cpu, want, n), rows, od, MC_TOL_CPU))
			goto out;
	}
	if (strcmp(device, "cpu") != 0) {
		if (strcmp(device, "both") == 0 && !model_cuda_available(why, sizeof(why))) {
			printf("cuda: skipped: %s\n", why);
			ok = 1;
			goto out;
		}
		if (!(gpu = mc_run(m, MODEL_CUDA, in, rows)))
			goto out;
		printf("cuda device: %s\n", model_device_name(m));
		if (!mc_report("cuda vs reference", mc_max_diff(gpu, want, n), rows, od, MC_TOL_CUDA) ||
		    (cpu && !mc_report("cuda vs cpu", mc_max_diff(gpu, cpu, n), rows, od, MC_TOL_CUDA)))
			goto out;
	}
	ok = 1;
out:
	free(in);
	free(want);
	free(cpu);
	free(gpu);
	json_decref(j);
	return ok ? 0 : 1;
}

static int mc_accuracy(struct model *m, const char *path, const char *device)
{
	json_t *j = mc_load_json(path), *labels, *v;
	float *in = NULL, *out = NULL;
	int rows = 0, right = 0, rc = 1, od = model_output_dim(m);
	enum model_device dev = strcmp(device, "cuda") == 0 ? MODEL_CUDA : MODEL_CPU;
	size_t i;

	if (!j)
		return 1;
	if (strcmp(device, "both") == 0) {
		fprintf(stderr, "model-check: --accuracy runs on one device: cpu or cuda\n");
		goto out;
	}
	labels = json_object_get(j, "labels");
	if (!(in = mc_matrix(path, json_object_get(j, "inputs"), "inputs", model_input_dim(m), &rows)))
		goto out;
	if (!json_is_array(labels) || json_array_size(labels) != (size_t)rows) {
		fprintf(stderr, "model-check: %s: \"labels\" is not an array of %d labels\n", path, rows);
		goto out;
	}
	if (!(out = mc_run(m, dev, in, rows)))
		goto out;
	json_array_foreach(labels, i, v) {
		json_int_t want = json_is_integer(v) ? json_integer_value(v) : -1;
		const float *r = out + i * (size_t)od;
		int best = 0;

		if (want < 0 || want >= od) {
			fprintf(stderr, "model-check: %s: labels[%zu] is not an integer in [0,%d)\n", path, i, od);
			goto out;
		}
		for (int k = 1; k < od; k++)
			if (r[k] > r[best])
				best = k;
		right += best == want;
	}
	printf("accuracy: %.4f (%d/%d) on %s\n", (double)right / rows, right, rows, model_device_name(m));
	rc = 0;
out:
	free(in);
	free(out);
	json_decref(j);
	return rc;
}

int main(int argc, char **argv)
{
	const char *model_path, *ref = NULL, *acc = NULL, *device = "cpu";
	int info = 0, rc;
	struct model *m;
	char err[1024];

	if (argc < 3) {
		mc_usage();
		return 1;
	}
	model_path = argv[1];
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--info") == 0) {
			info = 1;
		} else if (strcmp(argv[i], "--accuracy") == 0 && i + 1 < argc) {
			acc = argv[++i];
		} else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
			device = argv[++i];
			if (strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0 && strcmp(device, "both") != 0) {
				fprintf(stderr, "model-check: --device must be cpu, cuda or both, not \"%s\"\n", device);
				return 1;
			}
		} else if (argv[i][0] != '-' && !ref) {
			ref = argv[i];
		} else {
			mc_usage();
			return 1;
		}
	}
	if (info + !!acc + !!ref != 1) {
		mc_usage();
		return 1;
	}
	model_cpu_threads_init();
	if (!(m = model_load(model_path, err, sizeof(err)))) {
		fprintf(stderr, "model-check: %s\n", err);
		return 1;
	}
	if (info)
		rc = mc_info(m);
	else if (acc)
		rc = mc_accuracy(m, acc, device);
	else
		rc = mc_reference(m, ref, device);
	model_free(m);
	return rc;
}
