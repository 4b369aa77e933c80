/*
 * path_norm: nginx's normalisation of a request path for location matching.
 * See path_norm.h.
 */
#include "config.h"

#include "gateway/path_norm.h"

#include <string.h>

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* See path_norm.h. One pass: decode a byte, then treat it as if the client
 * had sent it, except that a decoded "%" is never decoded again. */
int path_norm(const char *path, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *)path;
	size_t o = 0, seg;	/* seg: where the segment being written starts (after its "/") */

	/* the common path has nothing to change: copy it, up to its query */
	size_t plain = strcspn(path, "%?#");
	if (p[0] == '/' && (path[plain] == '\0' || path[plain] == '?' || path[plain] == '#') &&
	    !strstr(path, "//") && !strstr(path, "/.")) {	/* (in a query too: then the long way) */
		if (plain >= len)
			return -2;
		memcpy(out, path, plain);
		out[plain] = '\0';
		return 0;
	}
	if (p[0] != '/') {
		if (strlen(path) >= len)
			return -2;
		memcpy(out, path, strlen(path) + 1);
		return 0;
	}
	if (len < 2)
		return -2;
	out[o++] = '/';
	seg = o;
	p++;
	for (;;) {
		int c = *p == '?' || *p == '#' ? 0 : *p;
		if (c == '%') {
			int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			if (c == 0)
				return -1;
			p += 3;
		} else if (c) {
			p++;
		}
		if (c == '/' || c == 0) {
			size_t n = o - seg;
			if (n == 1 && out[seg] == '.') {
				o = seg;	/* "/./" -> "/" */
			} else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
				if (seg == 1)
					return -1;	/* above the root */
				o = seg - 1;	/* drop "/..", then the segment before it */
				while (o > 0 && out[o - 1] != '/')
					o--;
			} else if (n > 0 && c == '/') {
				if (o + 1 >= len)
					return -2;
				out[o++] = '/';
			}
			/* n == 0: an empty segment, "//" merged */
			seg = o;
			if (c == 0)
				break;
			continue;
		}
		if (o + 1 >= len)
			return -2;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* See path_norm.h. */
int path_escape(const char *path, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		unsigned char c = *p;
		/* RFC 3986 pchar and "/": unreserved, sub-delims, ":" and "@" */
		int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			   (c && strchr("-._~!$&'()*+,;=:@/", c));
		if (o + (keep ? 1 : 3) >= len)
			return -2;
		if (keep) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= len)
		return -2;
	out[o] = '\0';
	return 0;
}
