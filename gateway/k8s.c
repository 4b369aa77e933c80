/* k8s: the glue of a kubernetes upstream with service= (see k8s.h): state, tick, status. */
#include "config.h"
#include "gateway/k8s.h"
#include "gateway/k8s_api.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/upstream.h"
#include "warmer/curl_loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the state is for: another API server, namespace, Service or Deployment starts afresh. */
static void k8s_key(const struct conf_upstream *cf, char *out, size_t len)
{
	char api[512];
	k8s_api_base(cf->launch_api, api, sizeof(api));
	snprintf(out, len, "%s %s %s %s", api, cf->launch_namespace, cf->launch_service, cf->launch_deployment);
}

void k8s_tick(struct upstream *u, double now)
{
	if (!u->cf || !u->cf->launch_service)
		return;
	struct k8s_up *k = u->k8s;
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k || !(k->loop = cloop_new(gw.base))) {
			free(k);
			log_error("upstream \"%s\": out of memory, not watching its pods", u->name);
			return;
		}
		k8s_scale_reset(k);
		u->k8s = k;
	}
	char key[sizeof(k->key)];
	k8s_key(u->cf, key, sizeof(key));
	if (strcmp(key, k->key) != 0) {
		if (k->key[0])
			log_notice("upstream \"%s\": kubernetes: now %s (was %s)", u->name, key, k->key);
		snprintf(k->key, sizeof(k->key), "%s", key);
		k8s_fleet_reset(k);
		k8s_watch_reset(k);
		k8s_scale_reset(k);
	}
	k->u = u;
	k8s_watch_tick(u, k, now);
	if (!gw.stopping)
		k8s_scale_tick(u, k, now);
}

const char *k8s_refused(struct upstream *u)
{
	static char msg[sizeof(((struct k8s_up *)0)->refused)];
	struct k8s_up *k = u->k8s;
	if (!k || !k->refused[0])
		return NULL;
	snprintf(msg, sizeof(msg), "%s", k->refused);
	k->refused[0] = 0;
	return msg;
}

void k8s_free(struct upstream *u)
{
	struct k8s_up *k = u->k8s;
	if (!k)
		return;
	k8s_fleet_reset(k);
	k8s_watch_reset(k);
	k8s_scale_reset(k);
	cloop_free(k->loop);
	free(k);
	u->k8s = NULL;
}

json_t *k8s_status_json(const struct upstream *u)
{
	const struct k8s_up *k = u->k8s;
	if (!k)
		return NULL;
	json_t *o = json_object();
	json_object_set_new(o, "replicas_wanted", json_integer(k->rule.want));
	json_object_set_new(o, "replicas_patched", k->patched >= 0 ? json_integer(k->patched) : json_null());
	json_object_set_new(o, "patches", json_integer((json_int_t)k->patches));
	json_object_set_new(o, "resource_version", json_string(k->rv));
	json_object_set_new(o, "endpoint_slices", json_integer(k->slices ? (json_int_t)json_object_size(k->slices) : 0));
	json_object_set_new(o, "watching", json_boolean(k->watch_call != NULL));
	static const char *const writer[] = { "another gateway", "this gateway (lock)", "this gateway (alone)" };
	json_object_set_new(o, "count_writer", json_string(writer[k->writer]));
	json_object_set_new(o, "other_gateways", json_integer(k->peers));
	json_object_set_new(o, "other_gateways_load", json_integer(k->peer_load));
	return o;
}

void k8s_metrics_declare(struct metrics *m)
{
	metrics_declare(m, "wakegate_k8s_patches_total", METRICS_COUNTER,
			"kubernetes upstreams with service=: PATCHes of the Deployment's scale the API server accepted.",
			NULL, 0);
	metrics_declare(m, "wakegate_k8s_replicas_wanted", METRICS_GAUGE,
			"kubernetes upstreams with service=: the replica count the gateway's rules want.", NULL, 0);
}
