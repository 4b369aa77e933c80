/* url: the replica URL parser (see url.h). */
#include "config.h"
#include "common/url.h"

#include <stdlib.h>
#include <string.h>

int url_split(const char *url, char *host, size_t hostlen, int *port, int *tls)
{
	int https = strncmp(url, "https://", 8) == 0;
	if (!https && strncmp(url, "http://", 7) != 0)
		return -1;
	const char *h = url + (https ? 8 : 7), *end = h + strcspn(h, "/?#"), *pe;
	if (*end && strcmp(end, "/") != 0)
		return -1;
	const char *hs = h, *he;
	if (*h == '[') {
		he = memchr(h, ']', (size_t)(end - h));
		if (!he)
			return -1;
		hs = h + 1;
		pe = he + 1;
	} else {
		he = memchr(h, ':', (size_t)(end - h));
		if (!he)
			he = end;
		pe = he;
	}
	if (he == hs || (size_t)(he - hs) >= hostlen)
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = 0;
	*port = https ? 443 : 80;
	if (pe < end) {
		if (*pe != ':' || pe + 1 == end)
			return -1;
		char *stop;
		long p = strtol(pe + 1, &stop, 10);
		if (stop != end || p < 1 || p > 65535)
			return -1;
		*port = (int)p;
	}
	if (tls)
		*tls = https;
	return 0;
}
