/*
 * curl: the settings every libcurl transfer of wakegate's programs starts
 * with (the gateway's remote launchers, the warmer): no signals (the
 * programs run libevent loops and threads), our User-Agent, and http/https
 * only (a URL from a conf or from Redis must not reach file:// or gopher://).
 * Only the programs that link libcurl pull this file out of the library.
 */
#ifndef WG_COMMON_CURL_H
#define WG_COMMON_CURL_H

#include <curl/curl.h>

void wg_curl_defaults(CURL *e, const char *user_agent);

#endif
