/*
 * launch_http: "launch http start=URL stop=URL url=URL [token_file=F]".
 * Starting is a POST of {"upstream":NAME,"action":"start","url":URL} to the
 * start webhook, stopping the same with "stop" to the stop webhook; the
 * replica then answers at url=. Retries, timeouts and errors: launch_curl.c.
 */
#include "config.h"
#include "gateway/launch.h"
#include "gateway/launch_proc.h"
#include "gateway/launch_curl.h"
#include "gateway/conf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* The webhook's JSON body; malloc'd for the caller, NULL when out of memory. */
static char *http_body(const char *name, const char *action, const char *url)
{
	json_t *j = json_pack("{s:s, s:s, s:s}", "upstream", name, "action", action, "url", url);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

struct launch *launch_http_new(struct event_base *base, const struct conf_upstream *cf,
			       char *err, size_t errlen)
{
	if (launch_url_check(cf->launch_url, err, errlen) < 0)
		return NULL;
	char *start = http_body(cf->name, "start", cf->launch_url);
	char *stop = http_body(cf->name, "stop", cf->launch_url);
	struct launch *l = NULL;
	if (start && stop) {
		struct launch_remote_spec s = {
			.kind = "http",
			.name = cf->name,
			.url = cf->launch_url,
			.method = "POST",
			.start_url = cf->launch_start,
			.stop_url = cf->launch_stop,
			.start_body = start,
			.stop_body = stop,
			.content_type = "application/json",
			.token_file = cf->launch_token_file,
		};
		l = launch_remote_new(base, &s, err, errlen);
	} else {
		snprintf(err, errlen, "out of memory");
	}
	free(start);
	free(stop);
	return l;
}
