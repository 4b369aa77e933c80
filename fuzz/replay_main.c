/*
 * replay_main: runs a libFuzzer harness's LLVMFuzzerTestOneInput over saved
 * inputs without libFuzzer, so that `make check` replays the seed corpus and
 * every committed crash reproducer (regress-*) with gcc on any machine.
 *
 *   fuzz/replay-conf [-v] FILE|DIR ...
 *
 * Directories are read one level deep, in sorted order, skipping dotfiles.
 * With -v each input's name goes to stderr before it runs, so a crash
 * report follows the name of the input that caused it. Exit 0 when every
 * input ran; 2 on a usage or read error; a crash is the sanitizer's report
 * or a signal.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_verbose;
static long replay_count;

/* Reads path whole into a new buffer for free(); NULL with errno. */
static uint8_t *replay_slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, got = 0;

	if (!fp)
		return NULL;
	for (;;) {
		if (got == cap) {
			uint8_t *nb;
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(fp);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		size_t n = fread(buf + got, 1, cap - got, fp);
		got += n;
		if (n == 0)
			break;
	}
	if (ferror(fp)) {
		free(buf);
		fclose(fp);
		errno = EIO;
		return NULL;
	}
	fclose(fp);
	*len = got;
	return buf;
}

/* Runs one file through the harness; -1 when it cannot be read. */
static int replay_file(const char *path)
{
	size_t len = 0;
	uint8_t *buf = replay_slurp(path, &len);

	if (!buf) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (replay_verbose)
		fprintf(stderr, "replaying %s (%zu bytes)\n", path, len);
	/* A copy of exactly len bytes, so that ASan sees reads past the input. */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	replay_count++;
	return 0;
}

static int replay_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every plain file in dir, sorted by name. */
static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn;
			cap = cap ? cap * 2 : 64;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				rc = -1;
				break;
			}
			names = nn;
		}
		if (!(names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2))) {
			rc = -1;
			break;
		}
		sprintf(names[n], "%s/%s", dir, e->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), replay_name_cmp);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			rc = replay_file(names[i]);
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = 0, files = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc && rc == 0; i++) {
		struct stat st;
		if (strcmp(argv[i], "-v") == 0) {
			replay_verbose = 1;
			continue;
		}
		files++;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = replay_dir(argv[i]);
		} else {
			rc = replay_file(argv[i]);
		}
	}
	if (!files) {
		fprintf(stderr, "usage: %s [-v] FILE|DIR ...\n", argv[0]);
		return 2;
	}
	if (rc < 0)
		return 2;
	printf("replayed %ld inputs\n", replay_count);
	return 0;
}
