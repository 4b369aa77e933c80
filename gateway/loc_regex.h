/*
 * loc_regex: the regular expressions of `location ~ RE` and `location ~* RE`
 * (PCRE2, as nginx uses). Compiled once when the conf is loaded, with
 * its own match data and match limits made then too, so that routing a
 * request allocates nothing and a pathological pattern cannot hold the
 * loop. The conf owns each one (conf.c frees it with the location); the
 * gateway's one loop is its only user, so the match data needs no lock.
 */
#ifndef WG_LOC_REGEX_H
#define WG_LOC_REGEX_H

#include <stddef.h>

struct loc_regex;

/*
 * Compiles pattern (caseless for ~*). NULL with PCRE2's message and the
 * offset in the pattern where it stopped in err ("missing closing
 * parenthesis at offset 4").
 */
struct loc_regex *loc_regex_new(const char *pattern, int caseless, char *err, size_t errlen);

/*
 * 1 when the pattern matches anywhere in path[0..len) (unanchored, as
 * nginx's ~), 0 when not, and also 0 when the match passed its limits
 * (logged once per pattern: the request goes on to the next location).
 */
int loc_regex_match(struct loc_regex *re, const char *path, size_t len);

void loc_regex_free(struct loc_regex *re);

#endif
