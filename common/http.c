/* http: method names and JSON error bodies (see http.h). */
#include "config.h"
#include "common/http.h"

#include <jansson.h>
#include <stdlib.h>

const char *http_method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

char *http_json_error(const char *reason)
{
	json_t *o = json_object();
	char *s;

	if (!o)
		return NULL;
	/* json_string refuses text that is not UTF-8: say "error" then */
	if (json_object_set_new(o, "error", json_string(reason ? reason : "error")) != 0 &&
	    json_object_set_new(o, "error", json_string("error")) != 0) {
		json_decref(o);
		return NULL;
	}
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}
