/*
 * log_escape: \xHH escaping of client bytes in log lines. See log_escape.h.
 */
#include "config.h"

#include "gateway/log_escape.h"

static int plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* See log_escape.h. */
char *log_escape(char *dst, size_t len, const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (len == 0)
		return dst;
	for (const unsigned char *p = (const unsigned char *)src; p && *p; p++) {
		if (plain(*p)) {
			if (o + 1 >= len)
				break;
			dst[o++] = (char)*p;
		} else {
			if (o + 4 >= len)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[*p >> 4];
			dst[o++] = hex[*p & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

/* The bytes of a request id a client may choose: one lookup a byte (every
 * proxied request checks its id twice). */
static const unsigned char token_byte[256] = {
	['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1,
	['.'] = 1, ['_'] = 1, [':'] = 1, ['-'] = 1,
};

/* See log_escape.h. */
int log_token_ok(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	if (!s)
		return 0;
	while (token_byte[p[n]])
		n++;
	return p[n] == '\0' && n > 0 && n < max;
}
