/*
 * k8s_watch: the Service's pods as the upstream's replicas (see k8s.h).
 *
 *   GET {api}/apis/discovery.k8s.io/v1/namespaces/NS/endpointslices
 *       ?labelSelector=kubernetes.io/service-name=SVC
 * then, from the list's resourceVersion,
 *   GET ...&watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=300
 * whose body is one JSON event a line ({"type":"ADDED","object":{...}}).
 * A watch that ends or breaks is resumed from the last resourceVersion; a
 * 410 Gone (the HTTP status, or an ERROR event with a Status of code 410:
 * that version was compacted away) lists again. While the API server is
 * away nothing changes here: the known pods keep serving.
 *
 * Every tick the endpoints of all slices are matched against the slots:
 * a ready endpoint (conditions.ready true or absent, not terminating)
 * binds to a free slot; a bound slot whose endpoint went not ready,
 * terminating or away drains.
 */
#include "config.h"
#include "gateway/k8s.h"
#include "gateway/k8s_api.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/launch.h"
#include "gateway/log.h"
#include "gateway/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K8S_WATCH_S		300	/* timeoutSeconds: the server ends a watch, we resume it */
#define K8S_LIST_TIMEOUT_MS	30000L
#define K8S_MAX_ENDPOINTS	64
#define K8S_LINE_MAX		(1024 * 1024)

struct k8s_ep {
	char url[LAUNCH_URL_MAX];
	char pod[128];
	int ready, terminating;
};

static const char *cf_api(const struct conf_upstream *cf, char *buf, size_t len)
{
	k8s_api_base(cf->launch_api, buf, len);
	return buf;
}

static void slices_url(const struct conf_upstream *cf, char *out, size_t len)
{
	char api[512];
	snprintf(out, len, "%s/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices"
		 "?labelSelector=kubernetes.io%%2Fservice-name%%3D%s", cf_api(cf, api, sizeof(api)),
		 cf->launch_namespace, cf->launch_service);
}

void k8s_watch_reset(struct k8s_up *k)
{
	k8s_call_cancel(k->list_call);
	k8s_call_cancel(k->watch_call);
	k->list_call = k->watch_call = NULL;
	k->rv[0] = 0;
	json_decref(k->slices);
	k->slices = NULL;
	free(k->line);
	k->line = NULL;
	k->line_len = 0;
	k->relist = 0;
	k->gone_streak = 0;
	k->fails = 0;
	k->retry_at = 0;
	k->synced = 0;
	k->warned_full = 0;
}

/* The wait before the next try after n failures in a row: 0.5s, 1s, 2s ... 10s. */
static double backoff_s(int n)
{
	double s = 0.5 * (double)(1 << (n > 5 ? 5 : n - 1));
	return s > 10 ? 10 : s;
}

/* The API server's Status message of an error answer, else its first line. */
static void status_message(const char *body, size_t len, char *out, size_t outlen)
{
	out[0] = 0;
	json_t *j = len ? json_loadb(body, len, 0, NULL) : NULL;
	const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
	if (m)
		snprintf(out, outlen, ": %s", m);
	else if (len)
		snprintf(out, outlen, ": %.*s", (int)strcspn(body, "\r\n") > 200 ? 200 : (int)strcspn(body, "\r\n"), body);
	json_decref(j);
}

static void watch_failed(struct upstream *u, struct k8s_up *k, const char *what, const char *how)
{
	k->fails++;
	double wait = backoff_s(k->fails);
	k->retry_at = gw_now() + wait;
	log_warn("upstream \"%s\": kubernetes: %s of the endpointslices of service %s/%s: %s; the %d known "
		 "endpoint slice%s keep%s serving; %s in %.1fs", u->name, what, u->cf ? u->cf->launch_namespace : "?",
		 u->cf ? u->cf->launch_service : "?", how, k->slices ? (int)json_object_size(k->slices) : 0,
		 k->slices && json_object_size(k->slices) == 1 ? "" : "s",
		 k->slices && json_object_size(k->slices) == 1 ? "s" : "",
		 k->rv[0] && !k->relist ? "resuming the watch" : "listing again", wait);
}

/* A list or watch call that failed (err) or answered another status: why, then watch_failed. */
static void call_failed(struct upstream *u, struct k8s_up *k, const char *what, const char *err, int code,
			const char *body, size_t len)
{
	char how[400], msg[300];
	status_message(body, len, msg, sizeof(msg));
	if (err)
		snprintf(how, sizeof(how), "%s", err);
	else
		snprintf(how, sizeof(how), "HTTP %d%s", code, msg);
	watch_failed(u, k, what, how);
}

static const char *slice_name(json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

static void list_done(int code, const char *err, const char *body, size_t len, double retry_after, void *arg)
{
	struct upstream *u = arg;
	struct k8s_up *k = u->k8s;
	(void)retry_after;
	k->list_call = NULL;
	if (err || code != 200) {
		call_failed(u, k, "list", err, code, body, len);
		return;
	}
	json_error_t je;
	json_t *j = json_loadb(body, len, 0, &je);
	json_t *items = json_object_get(j, "items");
	const char *rv = json_string_value(json_object_get(json_object_get(j, "metadata"), "resourceVersion"));
	if (!json_is_array(items) || !rv || strlen(rv) >= sizeof(k->rv)) {
		json_decref(j);
		watch_failed(u, k, "list", "not an EndpointSliceList with a resourceVersion");
		return;
	}
	json_t *slices = json_object();
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		const char *name = slice_name(it);
		if (name)
			json_object_set(slices, name, it);
	}
	json_decref(k->slices);
	k->slices = slices;
	snprintf(k->rv, sizeof(k->rv), "%s", rv);
	json_decref(j);
	log_info("upstream \"%s\": kubernetes: listed %zu endpoint slice%s of service %s/%s at resourceVersion %s",
		 u->name, json_object_size(slices), json_object_size(slices) == 1 ? "" : "s",
		 u->cf->launch_namespace, u->cf->launch_service, k->rv);
	k->synced = 1;
	k->relist = 0;
	k->fails = 0;
	k->retry_at = 0;	/* the watch starts on the next tick */
}

/* One watch event: the slice set and the resourceVersion follow it. -1: stop the watch. */
static int watch_event(struct upstream *u, struct k8s_up *k, const char *line, size_t len)
{
	json_t *ev = json_loadb(line, len, 0, NULL);
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		log_warn("upstream \"%s\": kubernetes: a watch event that is not {type, object}: %.*s", u->name,
			 (int)(len > 200 ? 200 : len), line);
		json_decref(ev);
		return 0;
	}
	if (strcmp(type, "ERROR") == 0) {
		json_int_t code = json_integer_value(json_object_get(obj, "code"));
		const char *m = json_string_value(json_object_get(obj, "message"));
		log_notice("upstream \"%s\": kubernetes: the watch ended with %lld%s%s%s", u->name, (long long)code,
			   m ? " (" : "", m ? m : "", m ? ")" : "");
		if (code == 410)
			k->relist = 1;
		json_decref(ev);
		return -1;
	}
	const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	if (rv && strlen(rv) < sizeof(k->rv))
		snprintf(k->rv, sizeof(k->rv), "%s", rv);
	k->gone_streak = 0;	/* the watch works */
	const char *name = slice_name(obj);
	if (name && (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0))
		json_object_set(k->slices, name, obj);
	else if (name && strcmp(type, "DELETED") == 0)
		json_object_del(k->slices, name);
	json_decref(ev);
	return 0;
}

static int watch_data(const char *p, size_t n, void *arg)
{
	struct upstream *u = arg;
	struct k8s_up *k = u->k8s;
	k->fails = 0;	/* the server answers: a later break resumes at once */
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (k->line_len + take > K8S_LINE_MAX)
			return -1;
		char *nb = realloc(k->line, k->line_len + take + 1);
		if (!nb)
			return -1;
		k->line = nb;
		memcpy(k->line + k->line_len, p, take);
		k->line_len += take;
		k->line[k->line_len] = 0;
		if (!nl)
			break;
		if (k->line_len && watch_event(u, k, k->line, k->line_len) < 0) {
			k->line_len = 0;
			return -1;
		}
		k->line_len = 0;
		p = nl + 1;
		n -= take + 1;
	}
	return 0;
}

static void watch_done(int code, const char *err, const char *body, size_t len, double retry_after, void *arg)
{
	struct upstream *u = arg;
	struct k8s_up *k = u->k8s;
	(void)retry_after;
	k->watch_call = NULL;
	k->line_len = 0;
	if (code == 410 || k->relist) {
		k->relist = 1;
		k->rv[0] = 0;
		/* at once; but a server that answers 410 to the version its own list gave is not asked in a loop */
		k->gone_streak++;
		double wait = k->gone_streak > 1 ? backoff_s(k->gone_streak - 1) : 0;
		k->retry_at = gw_now() + wait;
		log_notice("upstream \"%s\": kubernetes: resourceVersion too old (410 Gone): listing again%s", u->name,
			   wait > 0 ? " after a pause" : "");
		return;
	}
	if (code == 200 && !err) {
		k->retry_at = gw_now() + 0.1;	/* the server ended it (timeoutSeconds): resume */
		return;
	}
	call_failed(u, k, "watch", err, code, body, len);
}

static void watch_start(struct upstream *u, struct k8s_up *k)
{
	const struct conf_upstream *cf = u->cf;
	char url[1400], err[300];
	slices_url(cf, url, sizeof(url));
	struct k8s_call_spec s = { .method = "GET", .url = url, .token_file = cf->launch_token_file,
		.ca_file = cf->launch_ca, .timeout_ms = K8S_LIST_TIMEOUT_MS };
	if (!k->rv[0] || k->relist) {
		k->rv[0] = 0;
		if (!k->slices)
			k->slices = json_object();
		k->list_call = k8s_call_start(k->loop, &s, NULL, list_done, u, err, sizeof(err));
		if (!k->list_call)
			watch_failed(u, k, "list", err);
		return;
	}
	size_t l = strlen(url);
	snprintf(url + l, sizeof(url) - l, "&watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d",
		 k->rv, K8S_WATCH_S);
	s.timeout_ms = (K8S_WATCH_S + 30) * 1000L;
	k->watch_call = k8s_call_start(k->loop, &s, watch_data, watch_done, u, err, sizeof(err));
	if (!k->watch_call)
		watch_failed(u, k, "watch", err);
}

/* The endpoints of every slice, in name order (json objects keep insertion order). */
static int collect(const struct upstream *u, const struct k8s_up *k, struct k8s_ep *eps, int max)
{
	int n = 0;
	const char *name;
	json_t *sl;
	const char *scheme = u->cf && u->cf->tls ? "https" : "http";
	json_object_foreach(k->slices, name, sl) {
		const char *at = json_string_value(json_object_get(sl, "addressType"));
		if (at && strcmp(at, "IPv4") != 0 && strcmp(at, "IPv6") != 0)
			continue;	/* FQDN slices name no pod */
		json_int_t port = 0;
		size_t i;
		json_t *p;
		json_array_foreach(json_object_get(sl, "ports"), i, p) {
			const char *proto = json_string_value(json_object_get(p, "protocol"));
			if ((!proto || strcmp(proto, "TCP") == 0) && json_integer_value(json_object_get(p, "port")) > 0) {
				port = json_integer_value(json_object_get(p, "port"));
				break;
			}
		}
		if (port <= 0 || port > 65535)
			continue;
		json_t *e;
		json_array_foreach(json_object_get(sl, "endpoints"), i, e) {
			const char *addr = json_string_value(json_array_get(json_object_get(e, "addresses"), 0));
			if (!addr || strlen(addr) > 45 || n == max)
				continue;
			json_t *c = json_object_get(e, "conditions");
			json_t *ready = json_object_get(c, "ready"), *term = json_object_get(c, "terminating");
			struct k8s_ep *ep = &eps[n++];
			/* the API: a ready condition that is absent means ready */
			ep->ready = !json_is_false(ready);
			ep->terminating = json_is_true(term);
			snprintf(ep->url, sizeof(ep->url), strchr(addr, ':') ? "%s://[%s]:%lld" : "%s://%s:%lld",
				 scheme, addr, (long long)port);
			const char *pod = json_string_value(json_object_get(json_object_get(e, "targetRef"), "name"));
			snprintf(ep->pod, sizeof(ep->pod), "%s", pod ? pod : addr);
		}
	}
	return n;
}

/* Binds ready endpoints to free slots and drains slots whose endpoint went. */
static void k8s_bind(struct upstream *u, struct k8s_up *k, double now)
{
	struct k8s_ep eps[K8S_MAX_ENDPOINTS];
	int n = collect(u, k, eps, K8S_MAX_ENDPOINTS);
	int slots = u->cf->replicas_max < u->nrep ? u->cf->replicas_max : u->nrep;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (!rep->pod || !replica_in(rep, RS_UP))
			continue;
		const struct k8s_ep *ep = NULL;
		for (int j = 0; j < n && !ep; j++)
			if (strcmp(eps[j].url, rep->url) == 0)
				ep = &eps[j];
		char why[300];
		if (!ep)
			snprintf(why, sizeof(why), "endpoint %s gone", rep->url);
		else if (ep->terminating)
			snprintf(why, sizeof(why), "pod %s terminating", ep->pod);
		else if (!ep->ready)
			snprintf(why, sizeof(why), "pod %s not ready", ep->pod);
		else
			continue;
		replica_drain(rep, CAUSE_ENDPOINT, why);
	}
	int unbound = 0;
	for (int j = 0; j < n; j++) {
		const struct k8s_ep *ep = &eps[j];
		if (!ep->ready || ep->terminating)
			continue;
		struct replica *mine = NULL, *free_slot = NULL;
		for (int i = 0; i < u->nrep; i++) {
			struct replica *rep = &u->rep[i];
			if (rep->pod && rep->state != REPLICA_STOPPED && strcmp(rep->url, ep->url) == 0)
				mine = rep;
		}
		if (mine) {
			/* failed its health or warmup: again once the backoff is over, while Kubernetes says ready */
			if (mine->state == REPLICA_FAILED && now >= mine->retry_at) {
				char why[300];
				snprintf(why, sizeof(why), "pod %.100s ready at %.127s, again after a failure", ep->pod, ep->url);
				replica_pod_bind(mine, ep->url, why);
			}
			continue;
		}
		for (int i = 0; i < slots && !free_slot; i++) {
			struct replica *rep = &u->rep[i];
			if (!rep->remote && !rep->launch && (rep->state == REPLICA_STOPPED ||
			    (rep->state == REPLICA_FAILED && now >= rep->retry_at)))
				free_slot = rep;
		}
		if (!free_slot) {
			unbound++;
			continue;
		}
		char why[300];
		snprintf(why, sizeof(why), "pod %.100s ready at %.127s", ep->pod, ep->url);
		replica_pod_bind(free_slot, ep->url, why);
	}
	if (unbound && !k->warned_full)
		log_warn("upstream \"%s\": kubernetes: %d ready pod%s and no free replica slot (replicas max=%d): "
			 "not routed to", u->name, unbound, unbound == 1 ? "" : "s", slots);
	k->warned_full = unbound > 0;
}

void k8s_watch_tick(struct upstream *u, struct k8s_up *k, double now)
{
	if (!k->list_call && !k->watch_call && now >= k->retry_at && !gw.stopping)
		watch_start(u, k);
	if (k->synced)
		k8s_bind(u, k, now);
}
