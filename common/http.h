/*
 * http: the small HTTP facts the gateway and the worker share: a method's
 * name, and the JSON body of an error reply. Pure functions: nothing here
 * sends or owns a request.
 */
#ifndef WG_COMMON_HTTP_H
#define WG_COMMON_HTTP_H

#include <event2/http.h>

/* "GET", "POST", ... for each method evhttp knows; "?" for any other value. */
const char *http_method_name(enum evhttp_cmd_type cmd);

/*
 * The body of every error reply of wakegate's programs: {"error":"REASON"}
 * as compact JSON, without a newline. A reason that is NULL or not UTF-8
 * gives "error". Returns malloc'd text for free(); NULL only without memory.
 */
char *http_json_error(const char *reason);

#endif
