/* auth: the auth phase; see auth.h. */
#include "config.h"
#include "gateway/auth.h"
#include "gateway/accesslog.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/phase.h"
#include "gateway/proxy.h"
#include "gateway/request.h"
#include "gateway/tenant.h"

#include <event2/http.h>
#include <string.h>
#include <strings.h>

/* The key the request carries: Bearer first, then X-Api-Key; NULL when none. */
static const char *auth_key_of(struct evkeyvalq *h, size_t *len, const char **header)
{
	const char *a = evhttp_find_header(h, "Authorization");
	if (a && strncasecmp(a, "Bearer ", 7) == 0) {
		a += 7;
		while (*a == ' ')
			a++;
		*len = strlen(a);
		while (*len && a[*len - 1] == ' ')
			(*len)--;
		*header = "Authorization";
		return *len ? a : NULL;
	}
	a = evhttp_find_header(h, "X-Api-Key");
	if (a && *a) {
		*len = strlen(a);
		*header = "X-Api-Key";
		return a;
	}
	return NULL;
}

static enum phase_rc auth_phase(struct wg_request *r)
{
	const struct conf_location *loc = r->loc;
	struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
	const char *header = NULL;
	size_t len = 0;
	const char *key = auth_key_of(h, &len, &header);
	const struct conf_auth_key *k = key ? conf_auth_find(gw.conf, key, len) : NULL;

	r->priority = loc->priority;
	r->tenant[0] = '\0';
	if (k) {
		size_t n = strlen(k->tenant);
		memcpy(r->tenant, k->tenant, n < sizeof(r->tenant) ? n + 1 : sizeof(r->tenant));
		r->tenant[sizeof(r->tenant) - 1] = '\0';
		if (k->priority > r->priority)
			r->priority = k->priority;
	}
	if (!k && loc->auth_required) {
		/* the same answer for a missing and a wrong key: nothing tells which keys exist */
		log_info("auth: %s %s: %s API key", loc->path, evhttp_request_get_uri(r->req),
			 key ? "an unknown" : "no");
		tenant_refused(key ? "invalid_key" : "missing_key");
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate",
				  "Bearer realm=\"wakegate\"");
		static const char msg[] = "a valid API key is required (Authorization: Bearer KEY or X-Api-Key)";
		accesslog_refused(r->req, 401, loc->proxy_pass, proxy_error_size(msg));
		proxy_send_error(r->req, 401, msg, 0);
		return PHASE_DONE;
	}
	/*
	 * A known key is the gateway's, not the backend's: dispatch takes its
	 * header off when it forwards (not here: limit keys such as
	 * $http_x_api_key still read it). An unknown key is left alone.
	 */
	r->auth_header = k && !loc->auth_forward ? header : NULL;
	return PHASE_NEXT;
}

void auth_init(void)
{
	tenant_init(gw.metrics);
	phase_register(PHASE_AUTH, auth_phase);
}
