/*
 * vars: the one reader of "$name" references in the conf's templates (a
 * launch command, env NAME=VALUE, proxy_set_header's value). A reference is
 * "$name" or "${name}", a name being letters, digits and "_" (nginx's
 * rule); with the "$$" escape on, "$$" stands for one "$" (for a shell).
 * The conf checks the names with vars_ref(); the programs fill them in with
 * vars_expand().
 */
#ifndef WG_COMMON_VARS_H
#define WG_COMMON_VARS_H

#include <stddef.h>

enum vars_ref_kind {
	VARS_NONE,	/* a "$" that starts no reference ("$-", "$" at the end): text */
	VARS_NAME,	/* a reference to *name, nlen bytes */
	VARS_DOLLAR,	/* "$$" with the escape on: one "$" */
	VARS_BAD,	/* "${" without a name or without its "}" */
};

/*
 * s points at a "$". Says what starts there; *len is how many bytes of s it
 * takes (1 for VARS_NONE; up to the bad byte for VARS_BAD).
 */
enum vars_ref_kind vars_ref(const char *s, int dollar_escape, const char **name, size_t *nlen, size_t *len);

/*
 * A variable's value: *vlen bytes of the result, or NULL to keep the
 * reference as written. ctx is vars_expand's.
 */
typedef const char *vars_lookup_fn(const char *name, size_t nlen, size_t *vlen, void *ctx);

/*
 * tmpl with each reference replaced by its value; malloc'd, NULL when out of
 * memory. dollar_escape: 0 (no escape), VARS_ESCAPE ("$$" -> "$"), or
 * VARS_ESCAPE_KEEP ("$$" seen and left as "$$", for a pass that fills in
 * some names before another pass fills in the rest).
 */
#define VARS_ESCAPE 1
#define VARS_ESCAPE_KEEP 2
char *vars_expand(const char *tmpl, int dollar_escape, vars_lookup_fn *lookup, void *ctx);

#endif
