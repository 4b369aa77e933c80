/*
 * version: which version of its upstream a replica runs (issue 16). A
 * version is what the launcher is told (kind, command, URLs) plus the model
 * file the upstream's model_file resolves to at the start: two replicas of
 * the same key run the same thing. A reload or a symlink flip that changes
 * the key makes the running replicas outdated; rollout.c replaces them
 * warm-first.
 *
 * Pure but for realpath(3): it calls nothing of the gateway's, so replica.c
 * (at each start) and rollout.c (at a reload, on the admin API) both use it.
 * Ownership: a struct version_id is a value, copied where it is kept (the
 * upstream's current one, each replica's own), never pointing into a conf.
 */
#ifndef WG_VERSION_H
#define WG_VERSION_H

#include <stddef.h>
#include <stdint.h>

struct conf_upstream;

#define VERSION_PATH_MAX 512

struct version_id {
	uint64_t key;			/* FNV-1a of the launch and the resolved file; 0: none yet */
	char label[64];			/* the file's name without extension, else "conf-XXXXXXXX" */
	char model_file[VERSION_PATH_MAX];	/* model_file resolved; "" when the upstream has none */
};

/*
 * What cf would start now: resolves cf->model_file (symlinks followed) and
 * hashes it with the launch settings. 0, or -1 with the reason in err (the
 * file is missing: such a start fails).
 */
int version_resolve(const struct conf_upstream *cf, struct version_id *v, char *err, size_t errlen);

/*
 * The conf the launcher gets for a replica of version v: a copy of cf in
 * *tmp whose launch command and start= have $model_file and $model_version
 * put in ("" and "conf-XXXXXXXX" without model_file); those two strings are
 * malloc'd into owned[0..1] for version_launch_free() after launch_new()
 * (which copies what it keeps). NULL when out of memory.
 */
const struct conf_upstream *version_launch_conf(const struct conf_upstream *cf, const struct version_id *v,
						struct conf_upstream *tmp, char *owned[2]);
void version_launch_free(char *owned[2]);

#endif
