/*
 * split-test: the split core (split.c) on the command line, for
 * t/73-split.t, which compares its answers with a real nginx's
 * split_clients. Each argument is one split block, its lines joined by
 * commas: "90%:v1,10%:v2" or "33.33%:a,*:c". Reads keys from stdin, one a
 * line (a key may be empty), and prints for each the bucket names, one
 * column per block, tab-separated; "-" where no bucket takes the key.
 * Exits 2 on a bad block, with nginx's reason.
 */
#include "config.h"
#include "gateway/split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 64

struct block {
	struct split_part parts[MAX_PARTS];
	char *names[MAX_PARTS];
	size_t n;
};

static int block_parse(struct block *b, char *spec)
{
	char *save = NULL;
	for (char *line = strtok_r(spec, ",", &save); line; line = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(line, ':');
		if (!colon || b->n == MAX_PARTS)
			return -1;
		*colon = '\0';
		if (split_parse_percent(line, &b->parts[b->n].percent) < 0) {
			fprintf(stderr, "split-test: invalid percent value \"%s\"\n", line);
			return -1;
		}
		b->names[b->n++] = colon + 1;
	}
	if (split_prepare(b->parts, b->n) < 0) {
		fprintf(stderr, "split-test: percent total is greater than 100%%\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: split-test \"90%%:v1,10%%:v2\" ... < keys\n");
		return 2;
	}
	struct block *blocks = calloc((size_t)argc, sizeof(*blocks));
	if (!blocks)
		return 1;
	for (int i = 1; i < argc; i++)
		if (block_parse(&blocks[i], argv[i]) < 0)
			return 2;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		if (len && line[len - 1] == '\n')
			len--;
		uint32_t h = split_murmur2(line, (size_t)len);
		for (int i = 1; i < argc; i++) {
			int k = split_pick(blocks[i].parts, blocks[i].n, h);
			printf("%s%s", i > 1 ? "\t" : "", k < 0 ? "-" : blocks[i].names[k]);
		}
		putchar('\n');
	}
	free(line);
	free(blocks);
	return 0;
}
