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

/* See log_escape.h. */
int log_token_ok(const char *s, size_t max)
{
	size_t n = 0;

	if (!s)
		return 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n + 1 >= max || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				      c == '.' || c == '_' || c == ':' || c == '-'))
			return 0;
	}
	return n > 0;
}
