/*
 * admin: the admin listener's endpoints. GET /metrics (Prometheus text),
 * GET /status (JSON: each upstream, its replicas with state, cause and
 * time in it, cost and keep-alive, version), POST /upstreams/NAME/wake|sleep|rollout.
 */
#include "config.h"
#include "gateway/admin.h"
#include "gateway/conf.h"
#include "gateway/cost.h"
#include "gateway/dispatch.h"
#include "gateway/gpu.h"
#include "gateway/gw.h"
#include "gateway/http_strict.h"
#include "gateway/tenant.h"
#include "gateway/keepalive.h"
#include "gateway/k8s.h"
#include "gateway/scale.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/rollout.h"
#include "gateway/status_page.h"
#include "gateway/upstream.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <strings.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The admin action's answer: the most awake replica speaks for the upstream. */
static int state_rank(enum replica_state s)
{
	static const int rank[REPLICA_NSTATES] = {
		[REPLICA_STOPPED] = 0, [REPLICA_FAILED] = 1, [REPLICA_DRAINING] = 2, [REPLICA_ASLEEP2] = 3,
		[REPLICA_ASLEEP1] = 4, [REPLICA_BOOTING] = 5, [REPLICA_WAKING] = 6, [REPLICA_WARMING] = 7,
		[REPLICA_READY] = 8,
	};
	return (unsigned)s < REPLICA_NSTATES ? rank[s] : 0;
}

/* /status: the first READY replica speaks for its upstream, else the one furthest along this order
 * (a failure or a drain outranks a boot, so that it is seen). */
static int status_rank(enum replica_state s)
{
	static const int rank[REPLICA_NSTATES] = {
		[REPLICA_STOPPED] = 0, [REPLICA_ASLEEP2] = 1, [REPLICA_ASLEEP1] = 2, [REPLICA_BOOTING] = 3,
		[REPLICA_WAKING] = 4, [REPLICA_WARMING] = 5, [REPLICA_READY] = 6, [REPLICA_DRAINING] = 7,
		[REPLICA_FAILED] = 8,
	};
	return (unsigned)s < REPLICA_NSTATES ? rank[s] : 0;
}

/* GET /status: one JSON object per upstream. */
static json_t *status_json(void)
{
	json_t *root = json_object(), *ups = json_object();
	double now = gw_now();
	for (struct upstream *u = upstream_list(); u; u = u->next) {
		if (!u->cf)
			continue;
		json_t *o = json_object(), *reps = json_array();
		const struct replica *main_rep = &u->rep[0];
		int inflight = 0;
		for (int i = 0; i < u->nrep; i++) {
			const struct replica *rep = &u->rep[i];
			inflight += rep->in_flight;
			json_t *ro = json_pack("{s:i, s:s, s:s, s:i, s:f}", "id", rep->id,
					       "state", replica_state_name(rep->state),
					       "url", rep->state == REPLICA_STOPPED ? "" : rep->url,
					       "in_flight", rep->in_flight, "state_seconds", now - rep->since);
			json_object_set_new(ro, "cause", json_string(replica_cause_name(rep->cause)));
			if (gpu_name(rep->gpu))
				json_object_set_new(ro, "gpu", json_string(gpu_name(rep->gpu)));
			if (rep->state == REPLICA_FAILED)
				json_object_set_new(ro, "reason", json_string(rep->reason));
			rollout_replica_json(rep, ro);
			json_array_append_new(reps, ro);
			if (status_rank(rep->state) > status_rank(main_rep->state) && main_rep->state != REPLICA_READY)
				main_rep = rep;
		}
		json_object_set_new(o, "state", json_string(replica_state_name(main_rep->state)));
		json_object_set_new(o, "url", json_string(main_rep->state == REPLICA_STOPPED ? "" : main_rep->url));
		json_object_set_new(o, "in_flight", json_integer(inflight));
		json_object_set_new(o, "held", json_integer(u->hold.n));
		json_object_set_new(o, "last_activity_ms", u->last_activity_ms ? json_integer(u->last_activity_ms) : json_null());
		json_object_set_new(o, "idle_seconds", json_real(u->last_activity > 0 ? now - u->last_activity : 0));
		json_object_set_new(o, "cold_starts", json_integer(u->cold_starts));
		json_object_set_new(o, "requests", json_integer((json_int_t)u->requests));
		json_object_set_new(o, "boot_seconds", u->boot_s > 0 ? json_real(u->boot_s) : json_null());
		json_object_set_new(o, "warmup_seconds", u->boot_s > 0 ? json_real(u->warm_s) : json_null());
		json_t *wk = json_object();
		for (int lv = 1; lv <= 2; lv++) {
			char k[2] = { (char)('0' + lv), 0 };
			json_object_set_new(wk, k, u->wake_s[lv] > 0 ? json_real(u->wake_s[lv]) : json_null());
		}
		json_object_set_new(o, "wake_seconds", wk);
		json_object_set_new(o, "eta_seconds", json_integer(upstream_eta_s(u)));
		json_object_set_new(o, "waiting_for_gpu_memory", json_boolean(gpu_waiting_for_memory(u)));
		if (u->p.gpu_memory)
			json_object_set_new(o, "gpu_memory", json_pack("{s:I, s:o}", "declared", (json_int_t)u->p.gpu_memory,
				"measured", u->gpu_measured ? json_integer((json_int_t)u->gpu_measured) : json_null()));
		json_object_set_new(o, "idle_timeout_seconds", json_real((double)u->p.idle_timeout_ms / 1000));
		json_object_set_new(o, "max_conns", json_integer(u->p.max_conns));
		json_object_set_new(o, "replicas", reps);
		rollout_status_json(u, o);
		json_object_set_new(o, "cost", cost_status_json(u));
		json_object_set_new(o, "keepalive", keepalive_status_json(u));
		json_object_set_new(o, "scale", scale_status_json(u));
		json_t *kube = k8s_status_json(u);
		if (kube)
			json_object_set_new(o, "kubernetes", kube);
		json_object_set_new(ups, u->name, o);
	}
	json_object_set_new(root, "upstreams", ups);
	json_object_set_new(root, "gpus", gpu_status_json());
	json_object_set_new(root, "tenants", tenant_status_json());
	return root;
}

/*
 * POST /upstreams/NAME/wake and /upstreams/NAME/sleep: an operator starts a
 * worker ahead of traffic, or stops it now instead of after idle_timeout.
 * Sleep drains (in-flight requests finish) and is refused while requests are
 * held, since they are waiting for exactly that worker. Answers 202 with the
 * upstream's state, 404 for an unknown upstream.
 */
static void admin_upstream_action(struct evhttp_request *req, const char *path)
{
	char name[256], action[16];
	if (sscanf(path, "/upstreams/%255[^/]/%15s", name, action) != 2 ||
	    (strcmp(action, "wake") != 0 && strcmp(action, "sleep") != 0 && strcmp(action, "rollout") != 0)) {
		proxy_send_error(req, 404, "try POST /upstreams/NAME/wake, /upstreams/NAME/sleep or /upstreams/NAME/rollout", 0);
		return;
	}
	struct upstream *u = upstream_find(name);
	if (!u || !u->cf) {
		char msg[300];
		snprintf(msg, sizeof(msg), "no upstream \"%s\"", name);
		proxy_send_error(req, 404, msg, 0);
		return;
	}
	if (u->cf->nservers && strcmp(action, "wake") != 0) {	/* conf_static.c: nothing of theirs starts or stops */
		proxy_send_error(req, 409, "an upstream of server lines is never put to sleep, stopped or rolled out", 0);
		return;
	}
	char rollout_msg[300] = "";
	if (strcmp(action, "rollout") == 0) {
		/* a switch: the running replicas are replaced warm-first (rollout.c) */
		rollout_request(u, rollout_msg, sizeof(rollout_msg));
	} else if (strcmp(action, "wake") == 0) {
		log_notice("upstream \"%s\": woken by the admin API", u->name);
		dispatch_wake(u, CAUSE_ADMIN);
	} else {
		if (u->hold.n) {
			proxy_send_error(req, 409, "requests are held for this upstream: not put to sleep", 0);
			return;
		}
		const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
		const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
		int level = q && strcmp(q, "level=1") == 0 ? 1 : q && strcmp(q, "level=2") == 0 ? 2 : 0;
		if (q && *q && !level) {
			proxy_send_error(req, 400, "sleep takes ?level=1 or ?level=2, or nothing to stop it", 0);
			return;
		}
		if (level) {
			/* the sleep ladder's level now, through the backend's sleep API */
			log_notice("upstream \"%s\": put to sleep at level %d by the admin API", u->name, level);
			int slept = 0;
			for (int i = 0; i < u->nrep; i++)
				if (!u->rep[i].remote)
					slept += replica_sleep(&u->rep[i], level, CAUSE_ADMIN, "by the admin API") == 0;
			if (!slept) {
				proxy_send_error(req, 409, "no replica can sleep now (none READY with nothing in flight, "
						 "or already asleep at that level)", 0);
				return;
			}
		} else {
			log_notice("upstream \"%s\": put to sleep by the admin API", u->name);
			for (int i = 0; i < u->nrep; i++)
				if (!u->rep[i].remote)
					replica_drain(&u->rep[i], CAUSE_ADMIN, "put to sleep by the admin API");
		}
	}
	/* the most awake replica speaks for the upstream */
	enum replica_state best = u->rep[0].state;
	for (int i = 1; i < u->nrep; i++)
		if (state_rank(u->rep[i].state) > state_rank(best))
			best = u->rep[i].state;
	const char *state = replica_state_name(best);
	json_t *j = json_pack("{s:s, s:s, s:s}", "upstream", u->name, "action", action, "state", state);
	if (rollout_msg[0]) {
		json_object_set_new(j, "version", json_string(u->ver.label));
		json_object_set_new(j, "message", json_string(rollout_msg));
	}
	char *body = json_dumps(j, JSON_COMPACT);
	struct evbuffer *out = evbuffer_new();
	evbuffer_add_printf(out, "%s\n", body ? body : "{}");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 202, "Accepted", out);
	evbuffer_free(out);
	free(body);
	json_decref(j);
}

/*
 * A browser on the operator's machine can send requests to a loopback
 * listener; it cannot make them carry a Host or Origin that is an address
 * (DNS rebinding gives a name). So the admin listener answers only Hosts
 * (and Origins) that are "localhost" or an IP literal, with any port.
 */
static int admin_host_ok(const char *h)
{
	if (!h)
		return 1;	/* HTTP/1.0 without Host: no browser sends that */
	const char *s = h;
	if (strncmp(s, "http://", 7) == 0)
		s += 7;
	else if (strncmp(s, "https://", 8) == 0)
		s += 8;
	char host[256];
	size_t n;
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || (size_t)(e - s - 1) >= sizeof(host))
			return 0;
		n = (size_t)(e - s - 1);
		memcpy(host, s + 1, n);
		host[n] = 0;
		struct in6_addr a6;
		return inet_pton(AF_INET6, host, &a6) == 1;
	}
	n = strcspn(s, ":/");
	if (n >= sizeof(host))
		return 0;
	memcpy(host, s, n);
	host[n] = 0;
	struct in_addr a4;
	return strcasecmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &a4) == 1;
}

/* 1 when req carries the admin token (or none is set); else it was answered 401. */
static int admin_authorized(struct evhttp_request *req)
{
	const char *tok = gw.conf ? gw.conf->admin_token : NULL;
	if (!tok)
		return 1;
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	size_t tl = strlen(tok);
	if (a && strncasecmp(a, "Bearer ", 7) == 0 && strlen(a + 7) == tl && CRYPTO_memcmp(a + 7, tok, tl) == 0)
		return 1;
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer realm=\"wakegate admin\"");
	proxy_send_error(req, 401, "the admin API's POST endpoints need Authorization: Bearer TOKEN (admin_token)", 0);
	return 0;
}

void admin_cb(struct evhttp_request *req, void *arg)
{
	if (http_strict_refused(req))	/* framing nginx refuses: answered and closed there */
		return;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	if (!admin_host_ok(evhttp_find_header(in, "Host")) || !admin_host_ok(evhttp_find_header(in, "Origin"))) {
		proxy_send_error(req, 403, "the admin listener answers only Host and Origin \"localhost\" or an address", 0);
		return;
	}
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : "/";
	if (path && strncmp(path, "/upstreams/", 11) == 0) {
		if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
			proxy_send_error(req, 405, "use POST", 0);
			return;
		}
		if (!admin_authorized(req))
			return;
		admin_upstream_action(req, path);
		return;
	}
	if (path && strcmp(path, "/healthz") == 0 &&
	    (evhttp_request_get_command(req) == EVHTTP_REQ_GET || evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)) {
		/*
		 * For load balancers: the gateway's loop answers, and nothing is
		 * woken (a probe on the main port would keep a GPU up). Says
		 * nothing about the replicas: /status does.
		 */
		struct evbuffer *ok = evbuffer_new();
		if (ok)
			evbuffer_add(ok, "ok\n", 3);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
		evhttp_send_reply(req, 200, "OK", ok);
		if (ok)
			evbuffer_free(ok);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		proxy_send_error(req, 405, "only GET here", 0);
		return;
	}
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	if (path && strcmp(path, "/metrics") == 0) {
		metrics_render(gw.metrics, out);
		evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4");
	} else if (path && strcmp(path, "/status") == 0) {
		json_t *j = status_json();
		char *s = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
		evbuffer_add_printf(out, "%s\n", s ? s : "{}");
		free(s);
		json_decref(j);
		evhttp_add_header(h, "Content-Type", "application/json");
	} else {
		evbuffer_free(out);
		if (status_page_serve(req, path))	/* GET / and /ui: the page for people */
			return;
		proxy_send_error(req, 404, "try /, /healthz, /metrics, /status or POST /upstreams/NAME/wake|sleep|rollout", 0);
		return;
	}
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

