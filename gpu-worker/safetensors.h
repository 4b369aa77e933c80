/*
 * safetensors: a checked reader for the safetensors file format (8-byte
 * little-endian header length, a JSON header, then the raw tensor data).
 * st_open() validates the whole header before it returns: every tensor's
 * dtype, shape and data_offsets, that no two tensors overlap, and that
 * "__metadata__" is a map of strings. Errors name the file and the problem.
 *
 * Only F32 tensors are accepted; others are refused with a message.
 */
#ifndef WG_SAFETENSORS_H
#define WG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

struct st_tensor {
	const char *name;		/* owned by the st_file */
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	uint64_t count;			/* elements: the product of shape */
	const unsigned char *data;	/* count * 4 bytes, little endian, maybe unaligned */
};

struct st_file;

/* Returns a new st_file for st_close(), or NULL with "PATH: problem" in err. */
struct st_file *st_open(const char *path, char *err, size_t errlen);
void st_close(struct st_file *f);

const char *st_path(const struct st_file *f);
int st_tensor_count(const struct st_file *f);
const struct st_tensor *st_tensor_at(const struct st_file *f, int i);
/* The tensor called name, or NULL. Valid until st_close(). */
const struct st_tensor *st_tensor_find(const struct st_file *f, const char *name);
/* The "__metadata__" string for key, or NULL. Valid until st_close(). */
const char *st_meta(const struct st_file *f, const char *key);

/* Copies a tensor's data into dst (count floats), converting from little endian. */
void st_tensor_read_f32(const struct st_tensor *t, float *dst);

/*
 * The same as st_tensor_read_f32(), with pread() on the file kept open
 * rather than through the mapping: one copy from the page cache with no
 * page fault on the source, for the big copies of a load or a wake. Falls
 * back to the mapping (big-endian hosts, a failed read). Returns 0.
 */
int st_tensor_pread_f32(const struct st_file *f, const struct st_tensor *t, float *dst);

/*
 * Lets go of the mapping's pages in this process (madvise MADV_DONTNEED):
 * they leave its RSS but stay in the page cache, and the next read of a
 * tensor faults them back in from there. The mapping stays valid.
 */
void st_release_pages(struct st_file *f);

/*
 * Asks the kernel to drop path's clean pages from the page cache
 * (posix_fadvise DONTNEED), so that the next read comes from the disk.
 * Pages some other process maps or that are dirty stay. 0 or -1 with err.
 */
int st_drop_cache(const char *path, char *err, size_t errlen);

/* The file's identity when it was opened: device, inode, size and mtime. */
struct st_ident {
	uint64_t dev, ino, size;
	int64_t mtime_ns;
};
void st_ident(const struct st_file *f, struct st_ident *id);
/* path's identity now; 0, or -1 with err (e.g. the file is gone). */
int st_ident_path(const char *path, struct st_ident *id, char *err, size_t errlen);

#endif
