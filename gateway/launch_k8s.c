/*
 * launch_k8s: "launch kubernetes deployment=NS/NAME url=URL [api=URL]
 * [token_file=F] [ca=F]". Starting scales the Deployment to 1 and stopping
 * to 0 through the API server's scale subresource:
 *   PATCH {api}/apis/apps/v1/namespaces/NS/deployments/NAME/scale
 *   Content-Type: application/merge-patch+json
 *   {"spec":{"replicas":1}}
 * with the service account's bearer token, TLS verified against ca=. The
 * replicas answer at url= (a Service). An API error (403, 404) fails the
 * start with the Status object's message. Requests: launch_curl.c.
 */
#include "config.h"
#include "gateway/launch.h"
#include "gateway/launch_proc.h"
#include "gateway/launch_curl.h"
#include "gateway/conf.h"
#include "gateway/k8s_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct launch *launch_k8s_new(struct event_base *base, const struct conf_upstream *cf,
			      char *err, size_t errlen)
{
	char api[512], scale[1024];
	if (launch_url_check(cf->launch_url, err, errlen) < 0)
		return NULL;
	if (!cf->launch_namespace || !cf->launch_deployment) {
		snprintf(err, errlen, "no deployment=NAMESPACE/NAME");
		return NULL;
	}
	k8s_api_base(cf->launch_api, api, sizeof(api));
	snprintf(scale, sizeof(scale), "%s/apis/apps/v1/namespaces/%s/deployments/%s/scale", api,
		 cf->launch_namespace, cf->launch_deployment);
	struct launch_remote_spec s = {
		.kind = "kubernetes",
		.name = cf->name,
		.url = cf->launch_url,
		.method = "PATCH",
		.start_url = scale,
		.stop_url = scale,
		.start_body = "{\"spec\":{\"replicas\":1}}",
		.stop_body = "{\"spec\":{\"replicas\":0}}",
		.content_type = "application/merge-patch+json",
		.token_file = cf->launch_token_file,
		.ca_file = cf->launch_ca,
	};
	return launch_remote_new(base, &s, err, errlen);
}
