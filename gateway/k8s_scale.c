/*
 * k8s_scale: the Deployment's replica count from the gateway's own rules
 * (see k8s.h), PATCHed to
 *   {api}/apis/apps/v1/namespaces/NS/deployments/NAME/scale
 *   Content-Type: application/merge-patch+json   {"spec":{"replicas":N}}
 * only when the count changes. Kubernetes picks the pod that goes on a
 * scale-down; k8s_watch.c learns it from the EndpointSlice (terminating)
 * and drains that slot.
 */
#include "config.h"
#include "gateway/k8s.h"
#include "gateway/k8s_api.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/scale.h"
#include "gateway/upstream.h"

#include <stdio.h>
#include <string.h>

#define K8S_PATCH_TIMEOUT_MS	30000L

void k8s_scale_reset(struct k8s_up *k)
{
	k8s_call_cancel(k->patch_call);
	k->patch_call = NULL;
	k->rule.want = -1;
	k->patched = -1;
	k->sending = -1;
	k->rule.high_at = 0;
	k->started = 0;
	k->patch_retry_at = 0;
	k->patch_fails = 0;
}

static void patch_done(int code, const char *err, const char *body, size_t len, double retry_after, void *arg)
{
	struct upstream *u = arg;
	struct k8s_up *k = u->k8s;
	k->patch_call = NULL;
	const char *dep = u->cf ? u->cf->launch_deployment : "?", *ns = u->cf ? u->cf->launch_namespace : "?";
	if (!err && code >= 200 && code < 300) {
		log_notice("upstream \"%s\": kubernetes: deployment %s/%s scaled to %d (was %d%s)", u->name, ns, dep,
			   k->sending, k->patched, k->patched < 0 ? ": not known" : "");
		k->patched = k->sending;
		k->refused[0] = 0;
		k->patches++;
		k8s_fleet_patched(k);
		k->patch_fails = 0;
		metrics_add(gw.metrics, "wakegate_k8s_patches_total", upstream_label(u, 0), 1);
		return;
	}
	char msg[300] = "";
	json_t *j = len ? json_loadb(body, len, 0, NULL) : NULL;
	const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
	snprintf(msg, sizeof(msg), "%s%s", m ? ": " : "", m ? m : "");
	json_decref(j);
	double wait;
	if (!err && (code == 409 || code == 429)) {
		/* a conflict or the API server's rate limit: its Retry-After says when */
		wait = retry_after > 0 ? retry_after : 1;
	} else {
		k->patch_fails++;
		wait = (double)(1 << (k->patch_fails > 5 ? 5 : k->patch_fails - 1));
		if (wait > 30)
			wait = 30;
	}
	k->patch_retry_at = gw_now() + wait;
	char how[400];
	if (err)
		snprintf(how, sizeof(how), "%s", err);
	else
		snprintf(how, sizeof(how), "HTTP %d%s", code, msg);
	if (!err && code >= 400 && code < 500 && code != 409 && code != 429)	/* asking again will not help soon */
		snprintf(k->refused, sizeof(k->refused), "kubernetes: PATCH deployments/%.60s/%.60s/scale: %.230s", ns, dep, how);
	log_msg(code == 409 || code == 429 ? LOG_LVL_WARN : LOG_LVL_ERROR,
		"upstream \"%s\": kubernetes: PATCH deployments/%s/%s/scale to %d: %s; again in %gs",
		u->name, ns, dep, k->sending, how, wait);
}

static void patch_send(struct upstream *u, struct k8s_up *k, int n)
{
	const struct conf_upstream *cf = u->cf;
	char api[512], url[1100], body[64], err[300];
	k8s_api_base(cf->launch_api, api, sizeof(api));
	snprintf(url, sizeof(url), "%s/apis/apps/v1/namespaces/%s/deployments/%s/scale", api, cf->launch_namespace,
		 cf->launch_deployment);
	snprintf(body, sizeof(body), "{\"spec\":{\"replicas\":%d}}", n);
	struct k8s_call_spec s = { .method = "PATCH", .url = url, .body = body,
		.content_type = "application/merge-patch+json", .token_file = cf->launch_token_file,
		.ca_file = cf->launch_ca, .timeout_ms = K8S_PATCH_TIMEOUT_MS };
	k->sending = n;
	k->patch_call = k8s_call_start(k->loop, &s, NULL, patch_done, u, err, sizeof(err));
	if (!k->patch_call) {
		k->patch_fails++;
		k->patch_retry_at = gw_now() + 5;
		log_error("upstream \"%s\": kubernetes: PATCH %s: %s; again in 5s", u->name, url, err);
	}
}

void k8s_scale_tick(struct upstream *u, struct k8s_up *k, double now)
{
	const struct conf_upstream *cf = u->cf;
	int own = u->hold.n;
	for (int i = 0; i < u->nrep; i++)
		own += u->rep[i].in_flight;
	k8s_fleet_tick(u, k, now, own);
	if (k->restart && !k->patched_pending) {
		k8s_scale_reset(k);	/* the writer changed: what this gateway decided before no longer holds */
		k->restart = 0;
		if (k->writer == K8S_WRITER_LOCK && k->taken_count >= 0) {
			/* the count in force: the cooldown and the idle timer start now, nothing is sent until it must change */
			k->patched = k->rule.want = k->taken_count;
			k->rule.high_at = now;
			k->started = now;
		}
	}
	if (k->writer == K8S_WRITER_NOT || k->patched_pending) {
		metrics_set(gw.metrics, "wakegate_k8s_replicas_wanted", upstream_label(u, 0), 0);
		return;		/* another gateway writes the count, from every gateway's load */
	}
	if (k->rule.want < 0 && k->started <= 0)
		k->started = now;	/* the first tick: nothing known, the idle timer starts now */
	int load = own + k->peer_load;
	double last = u->last_activity;
	if (k->peer_activity_ms > 0) {	/* the others' newest activity, on our clock */
		double peer = now - (double)(gw_wall_ms() - k->peer_activity_ms) / 1000;
		if (peer > last)
			last = peer;
	}
	struct k8s_rule_in in = {
		.now = now,
		.load = load,
		.target = scale_rule_target(cf->target_concurrency, cf->headroom_pct),
		.floor = scale_min_warm(u, now),
		/* a pod the gateway has no slot for would be paid for and never routed to */
		.max = cf->replicas_max < u->nrep ? cf->replicas_max : u->nrep,
		.idle = load == 0 && (now - (last > k->started ? last : k->started)) * 1000 >=
			(double)cf->idle_timeout_ms,
		.cooldown_s = (double)cf->scale_down_cooldown_ms / 1000,
	};
	if (now < u->prewarm_until && in.floor < 1) {
		in.floor = 1;	/* a pre-warm (the keep-alive policy, the schedule): one pod until then */
		in.idle = 0;
	}
	int ready = 0, up = 0;
	for (int i = 0; i < u->nrep; i++) {
		ready += u->rep[i].pod && u->rep[i].state == REPLICA_READY;
		up += u->rep[i].pod && replica_in(&u->rep[i], RS_UP);
	}
	/* coming: pods on their way (bound, not READY), or asked for and not bound yet */
	int coming = (up - ready) + (k->patched > up);
	char why[160];
	if (scale_p99_due(u, ready, coming, in.max, now, why, sizeof(why))) {
		in.more = ready + 1;
		u->p99_high_since = 0;
		log_notice("upstream \"%s\": scale up: %s, asking the Deployment for %d", u->name, why, in.more);
	}
	int keep_on = 0;
	if (scale_on_due(u, ready, coming, in.max, now, &keep_on) && in.more < ready + 1)
		in.more = ready + 1;
	in.keep = u->p99_high_since > 0 || keep_on;
	int was = k->rule.want;
	int want = k8s_rule_decide(&k->rule, &in);
	if (want != was && was >= 0)
		log_info("upstream \"%s\": kubernetes: %d replica%s wanted (was %d): %d request%s held or in flight "
			 "(%d at %d other gateway%s), target_concurrency %d%s", u->name, want, want == 1 ? "" : "s",
			 was, load, load == 1 ? "" : "s", k->peer_load, k->peers, k->peers == 1 ? "" : "s",
			 in.target, in.idle ? ", idle" : "");
	metrics_set(gw.metrics, "wakegate_k8s_replicas_wanted", upstream_label(u, 0), want);
	/* at the first tick of an idle upstream nothing is sent: the Deployment keeps what it has until idle */
	if (k->patch_call || now < k->patch_retry_at || want == k->patched || (k->patched < 0 && want == 0 && !in.idle))
		return;
	patch_send(u, k, want);
}
