/*
 * url: the one parser of the URLs wakegate's programs hand each other: a
 * replica's address ("http[s]://HOST[:PORT][/]", from a launcher's url=, a
 * launched worker, or another gateway through Redis).
 */
#ifndef WG_COMMON_URL_H
#define WG_COMMON_URL_H

#include <stddef.h>

/*
 * "http://HOST[:PORT][/]" or "https://HOST[:PORT][/]" -> host (an IPv6
 * literal's brackets removed, NUL-terminated in hostlen bytes), port (80 or
 * 443 when absent) and, when tls is not NULL, 1 for https and 0 for http.
 * Nothing else may follow the port but one "/". 0, or -1 for anything else
 * (then the outputs are undefined).
 */
int url_split(const char *url, char *host, size_t hostlen, int *port, int *tls);

#endif
