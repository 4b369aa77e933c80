/*
 * path_norm: the path that locations match, normalised as nginx does
 * before it picks a location (ngx_http_parse_complex_uri with
 * merge_slashes on): every %XX decoded (a decoded "/" separates segments,
 * as in nginx), runs of slashes merged, "." and ".." segments resolved.
 * The request still goes upstream with the target the client sent.
 * Pure: no libevent, no state.
 */
#ifndef WG_PATH_NORM_H
#define WG_PATH_NORM_H

#include <stddef.h>

/*
 * Writes the normalised form of path (a request target in origin form; it
 * ends at its first "?" or "#") to out, len bytes at most with the NUL. Returns 0; -1 for a
 * path nginx refuses with 400 (a bad %XX, an encoded NUL, ".." above the
 * root); -2 when out is too small. A path that does not start with "/" is
 * copied as it is.
 */
int path_norm(const char *path, char *out, size_t len);

/*
 * Writes a normalised path back in request-target form to out (len bytes
 * with the NUL): every byte that is not a path character of RFC 3986 (a
 * decoded "%", "?", "#", space, control or high byte) as %XX, as nginx
 * escapes the URI it sends to a proxy_pass with a URI. Returns 0, or -2
 * when out is too small.
 */
int path_escape(const char *path, char *out, size_t len);

#endif
