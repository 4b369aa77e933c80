/*
 * launch_curl: the engine behind the http and kubernetes launchers, whose
 * start and stop are each one HTTP request (libcurl multi on the gateway's
 * loop, never blocking): a bearer token re-read from its file at every try,
 * connect timeout 5s, 30s a try, up to 3 tries (waits 0.5s, 1s) on transport
 * errors and 5xx; any other non-2xx, and a certificate that does not verify,
 * fail at once. A failure is logged
 *   upstream "x": http launcher: POST URL: HTTP 503 (after 3 tries)
 * and reported through on_exit(LAUNCH_WHY) with that text in launch.why.
 */
#ifndef WG_LAUNCH_CURL_H
#define WG_LAUNCH_CURL_H

#include <stddef.h>

struct event_base;
struct launch;

/* What to send; everything is copied by launch_remote_new(). */
struct launch_remote_spec {
	const char *kind;		/* "http", "kubernetes": the log says "<kind> launcher" */
	const char *name;		/* the upstream */
	const char *url;		/* where the replica answers: http://HOST[:PORT] */
	const char *method;		/* "POST", "PATCH" */
	const char *start_url, *stop_url;
	const char *start_body, *stop_body;
	const char *content_type;
	const char *token_file;		/* NULL: no Authorization header */
	const char *ca_file;		/* NULL: libcurl's default CA bundle */
};

/* A launcher for launch_new(); NULL with a reason in err. */
struct launch *launch_remote_new(struct event_base *base, const struct launch_remote_spec *s,
				 char *err, size_t errlen);

/*
 * A bearer token file's one line, trimmed, re-read at each call (a
 * projected service account token rotates); malloc'd for the caller, or
 * NULL with the reason in err. Also k8s_api.c's.
 */
char *launch_curl_token(const char *path, char *err, size_t errlen);

#endif
