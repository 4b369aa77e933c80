/*
 * rollout: warm-first replacement of old-version and recycled replicas
 * (see rollout.h). Decisions are made on the upstream's tick; the move
 * subscriber only records what a replacement's failure means.
 */
#include "config.h"
#include "gateway/rollout.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/launch.h"
#include "gateway/metrics.h"
#include "gateway/tls.h"
#include "gateway/upstream.h"
#include "gateway/version.h"

#include <event2/buffer.h>
#include <dirent.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROLLOUT_MEM_EVERY_S 1.0		/* how often a READY replica's memory is read */
#define ROLLOUT_MEM_TIMEOUT_S 5	/* a /metrics that does not answer in this long is a miss */

static const char *const recycle_names[] = { "", "memory", "requests", "age" };

void rollout_metrics_declare(struct metrics *m)
{
	metrics_declare(m, "wakegate_rollouts_total", METRICS_COUNTER,
			"Version switches, by upstream and result (started, done, failed).", NULL, 0);
	metrics_declare(m, "wakegate_recycles_total", METRICS_COUNTER,
			"Replicas found past a recycle line, by upstream and reason (memory, requests, age).", NULL, 0);
	metrics_declare(m, "wakegate_upstream_version", METRICS_GAUGE,
			"1 for the version a start of the upstream gets now.", NULL, 0);
	metrics_declare(m, "wakegate_replica_memory_bytes", METRICS_GAUGE,
			"Resident memory each replica reports (wakegate_worker_rss_bytes), read for recycle memory.", NULL, 0);
}

static void count(struct upstream *u, const char *metric, const char *key, const char *val)
{
	char labels[400];
	snprintf(labels, sizeof(labels), "%s,%s=\"%s\"", upstream_label(u, 0), key, val);
	metrics_add(gw.metrics, metric, labels, 1);
}

/* The version gauge: 1 for the current version, 0 for the one before. */
static void version_gauge(struct upstream *u, const struct version_id *old)
{
	char labels[400];
	if (old && old->key && strcmp(old->label, u->ver.label) != 0) {
		snprintf(labels, sizeof(labels), "%s,version=\"%s\"", upstream_label(u, 0), old->label);
		metrics_set(gw.metrics, "wakegate_upstream_version", labels, 0);
	}
	snprintf(labels, sizeof(labels), "%s,version=\"%s\"", upstream_label(u, 0), u->ver.label);
	metrics_set(gw.metrics, "wakegate_upstream_version", labels, 1);
}

/* A new current version (or the same one again, forced): running replicas become old. */
static void new_version(struct upstream *u, const struct version_id *v, const char *why)
{
	struct version_id old = u->ver;
	u->ver = *v;
	u->vgen++;
	version_gauge(u, &old);
	int running = 0;
	for (int i = 0; i < u->nrep; i++)
		running += !u->rep[i].remote && replica_in(&u->rep[i], RS_UP | RS_ASLEEP);
	log_notice("upstream \"%s\": version %s -> %s (%s)%s", u->name, old.label[0] ? old.label : "-", v->label,
		   why, running ? ": switching warm-first" : ": the next start runs it");
}

void rollout_configure(struct upstream *u)
{
	struct version_id v;
	char err[300];
	if (version_resolve(u->cf, &v, err, sizeof(err)) < 0) {
		log_error("upstream \"%s\": %s; running replicas keep their version", u->name, err);
		snprintf(u->rollout_error, sizeof(u->rollout_error), "%s", err);
		return;
	}
	if (!u->ver.key) {	/* the first conf */
		u->ver = v;
		u->vgen = 1;
		version_gauge(u, NULL);
		return;
	}
	if (v.key != u->ver.key)
		new_version(u, &v, "reload");
}

void rollout_request(struct upstream *u, char *msg, size_t len)
{
	struct version_id v;
	char err[300];
	if (version_resolve(u->cf, &v, err, sizeof(err)) < 0) {
		snprintf(msg, len, "%s", err);
		snprintf(u->rollout_error, sizeof(u->rollout_error), "%s", err);
		log_error("upstream \"%s\": rollout asked by the admin API: %s", u->name, err);
		return;
	}
	int changed = v.key != u->ver.key;
	new_version(u, &v, changed ? "the admin API" : "the admin API, same version: a restart");
	snprintf(msg, len, "%s", changed ? "switching to a new version" : "restarting on the same version");
}

/* A replica that must give way: an old version, or past a recycle line. */
static int to_replace(const struct upstream *u, const struct replica *rep)
{
	return !rep->remote && rep->vgen && (rep->vgen != u->vgen || rep->recycle);
}

static enum replica_cause cause_of(const struct upstream *u, const struct replica *rep)
{
	return rep->vgen != u->vgen ? CAUSE_ROLLOUT : CAUSE_RECYCLE;
}

/* A replacement's failure: the old one keeps serving; no more tries for this version. */
static void rollout_on_move(struct replica *rep, const struct replica_change *ch, void *arg)
{
	(void)arg;
	struct upstream *u = rep->up;
	if (ch->event != REPLICA_EV_MOVE)
		return;
	if (ch->to != REPLICA_READY && ch->to != REPLICA_WARMING && rep->mem_conn) {
		evhttp_connection_free(rep->mem_conn);	/* its pending GET goes with it, no callback */
		rep->mem_conn = NULL;
		rep->mem_pending = 0;
	}
	if (!rep->replacing)
		return;
	if (ch->to == REPLICA_FAILED && (RS(ch->from) & (RS_COMING | RS(REPLICA_STOPPED)))) {
		const struct replica *old = &u->rep[rep->replacing - 1];
		u->rollout_failed_gen = rep->vgen ? rep->vgen : u->vgen;
		u->rollout_failed_at = gw_now();
		snprintf(u->rollout_error, sizeof(u->rollout_error), "replica %d of version %.60s: %.200s", rep->id,
			 rep->ver.label[0] ? rep->ver.label : u->ver.label, rep->reason);
		log_error("upstream \"%s\": the %s of replica %d failed: %s; replica %d (version %s) keeps serving",
			  u->name, cause_of(u, old) == CAUSE_ROLLOUT ? "switch" : "recycle", old->id,
			  u->rollout_error, old->id, old->ver.label);
		count(u, "wakegate_rollouts_total", "result", "failed");
		u->rollout_active = 0;
		rep->replacing = 0;
	} else if (ch->to == REPLICA_STOPPED || ch->to == REPLICA_DRAINING || ch->to == REPLICA_FAILED) {
		rep->replacing = 0;	/* it went before it was READY: the tick may start another */
	}
}

void rollout_init(void)
{
	replica_subscribe(rollout_on_move, NULL);
}

/* The /metrics answer: wakegate_worker_rss_bytes, if it is there. */
static void mem_set(struct replica *rep, int64_t bytes)
{
	rep->mem_bytes = bytes;
	char labels[400];
	snprintf(labels, sizeof(labels), "%s,replica=\"%d\"", upstream_label(rep->up, 0), rep->id);
	metrics_set(gw.metrics, "wakegate_replica_memory_bytes", labels, (double)bytes);
}

static void mem_cb(struct evhttp_request *req, void *arg)
{
	struct replica *rep = arg;
	rep->mem_pending = 0;
	if (!req || evhttp_request_get_response_code(req) != 200)
		return;
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(b);
	char *text = n ? malloc(n + 1) : NULL;
	if (!text)
		return;
	evbuffer_copyout(b, text, n);
	text[n] = '\0';
	static const char key[] = "\nwakegate_worker_rss_bytes ";
	char *p = strstr(text, key);
	if (p) {
		rep->mem_reported = 1;
		mem_set(rep, strtoll(p + sizeof(key) - 1, NULL, 10));
	}
	free(text);
}

/*
 * The RSS of every process in group pgid, from /proc: an exec replica's
 * shell, worker and anything they started (the launcher makes the group).
 * -1 when none is found.
 */
static int64_t group_rss(pid_t pgid)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	long page = sysconf(_SC_PAGESIZE);
	int64_t sum = -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[64], buf[1024];
		snprintf(path, sizeof(path), "/proc/%.20s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;	/* gone meanwhile */
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* after "PID (COMM) ": state ppid pgrp ... field 24 is rss in pages; COMM may hold spaces */
		char *s = strrchr(buf, ')'), *save = NULL;
		long pgrp = -1, rss = -1;
		int field = 3;	/* the state, the first field after the name */
		for (char *t = s ? strtok_r(s + 1, " ", &save) : NULL; t && field <= 24; t = strtok_r(NULL, " ", &save), field++)
			if (field == 5)
				pgrp = strtol(t, NULL, 10);
			else if (field == 24)
				rss = strtol(t, NULL, 10);
		if (pgrp != (long)pgid || rss < 0)
			continue;
		sum = (sum < 0 ? 0 : sum) + (int64_t)rss * page;
	}
	closedir(d);
	return sum;
}

/* "http[s]://HOST[:PORT][/...]" ("[v6]" too) -> host and port (80, 443 by default). 0, or -1. */
static int split_url(const char *url, char *host, size_t hostlen, int *port)
{
	int https = strncmp(url, "https://", 8) == 0;
	if (!https && strncmp(url, "http://", 7) != 0)
		return -1;
	const char *h = url + (https ? 8 : 7), *end;
	if (*h == '[') {
		end = strchr(++h, ']');
		if (!end)
			return -1;
	} else {
		end = h + strcspn(h, ":/");
	}
	if (end == h || (size_t)(end - h) >= hostlen)
		return -1;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	end += *end == ']';
	*port = *end == ':' ? atoi(end + 1) : https ? 443 : 80;
	return *port > 0 && *port < 65536 ? 0 : -1;
}

/* Asks rep's /metrics for its memory (TLS for an https:// replica, as its health checks). */
static void mem_poll(struct replica *rep, double now)
{
	if (rep->mem_pending || now - rep->mem_at < ROLLOUT_MEM_EVERY_S)
		return;
	rep->mem_at = now;
	if (!rep->mem_reported && rep->launch && rep->launch->ops->pid) {
		/* until the backend is seen to report its own: the process tree's */
		pid_t pg = rep->launch->ops->pid(rep->launch);
		int64_t b = pg > 0 ? group_rss(pg) : -1;
		if (b >= 0)
			mem_set(rep, b);
	}
	if (!rep->mem_conn) {
		char host[128];
		int port;
		if (split_url(rep->url, host, sizeof(host), &port) < 0)
			return;
		rep->mem_conn = tls_http_connection_new(gw.base, rep->up->cf, rep->url, host, port);
		if (!rep->mem_conn)
			return;
		evhttp_connection_set_timeout(rep->mem_conn, ROLLOUT_MEM_TIMEOUT_S);
	}
	struct evhttp_request *req = evhttp_request_new(mem_cb, rep);
	if (!req)
		return;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "wakegate");
	if (evhttp_make_request(rep->mem_conn, req, EVHTTP_REQ_GET, "/metrics") == 0)
		rep->mem_pending = 1;
}

/* Marks a READY replica of the current version that crossed a recycle line. */
static void recycle_check(struct upstream *u, struct replica *rep, double now)
{
	const struct conf_upstream *cf = u->cf;
	if (rep->remote || rep->state != REPLICA_READY || rep->recycle || rep->vgen != u->vgen)
		return;
	if (cf->recycle_memory)
		mem_poll(rep, now);
	char why[160];
	int reason = ROLLOUT_RECYCLE_NONE;
	if (cf->recycle_memory && rep->mem_bytes > cf->recycle_memory) {
		reason = ROLLOUT_RECYCLE_MEMORY;
		snprintf(why, sizeof(why), "memory %lld > %lld bytes", (long long)rep->mem_bytes,
			 (long long)cf->recycle_memory);
	} else if (cf->recycle_requests && (int64_t)rep->served > cf->recycle_requests) {
		reason = ROLLOUT_RECYCLE_REQUESTS;
		snprintf(why, sizeof(why), "requests %llu > %lld", (unsigned long long)rep->served,
			 (long long)cf->recycle_requests);
	} else if (cf->recycle_age_ms && (now - rep->t_ready) * 1000 > (double)cf->recycle_age_ms) {
		reason = ROLLOUT_RECYCLE_AGE;
		snprintf(why, sizeof(why), "age %.0fs > %.0fs", now - rep->t_ready, (double)cf->recycle_age_ms / 1000);
	}
	if (!reason)
		return;
	rep->recycle = reason;
	count(u, "wakegate_recycles_total", "reason", recycle_names[reason]);
	log_notice("upstream \"%s\" replica %d: recycle: %s, replacing it warm-first", u->name, rep->id, why);
}

/* A slot a replacement may start in: down, nothing running, no claim pending. nrep grows to it. */
static struct replica *free_slot(struct upstream *u, double now)
{
	for (int i = 0; i < UPSTREAM_MAX_REPLICAS; i++) {
		struct replica *rep = &u->rep[i];
		if (rep->lock_pending || rep->remote || rep->launch || !replica_in(rep, RS_DOWN))
			continue;
		if (i < u->nrep && replica_wake_rank(rep, now) != 3)
			continue;	/* FAILED and still in its backoff */
		if (i >= u->nrep)
			u->nrep = i + 1;
		return rep;
	}
	return NULL;
}

/* The replica started to replace old, or NULL. */
static struct replica *replacement_of(struct upstream *u, const struct replica *old)
{
	for (int i = 0; i < u->nrep; i++)
		if (u->rep[i].replacing == old->id + 1)
			return &u->rep[i];
	return NULL;
}

void rollout_tick(struct upstream *u, double now)
{
	/* server lines have no versions to roll out: a changed line is let go at the reload (upstream.c) */
	if (!u->cf || gw.stopping || u->cf->nservers)
		return;
	int old = 0, coming = 0, works = 0;
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		recycle_check(u, rep, now);
		if (rep->replacing && replica_in(rep, RS_COMING | RS(REPLICA_STOPPED)))
			coming++;
		works |= !rep->remote && rep->state == REPLICA_READY && rep->vgen == u->vgen && !rep->recycle &&
			 rep->t_ready > u->rollout_failed_at;
	}
	if (works && u->rollout_failed_gen == u->vgen) {
		/* a failed version came up after all (restarted for held requests): go on with the switch */
		log_notice("upstream \"%s\": version %s is READY after a failure; replacing the old replicas", u->name,
			   u->ver.label);
		u->rollout_failed_gen = 0;
	}
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (!to_replace(u, rep) || !replica_in(rep, RS_UP | RS_ASLEEP))
			continue;
		enum replica_cause cause = cause_of(u, rep);
		if (rep->state != REPLICA_READY) {
			/* serves nobody: no need to wait; the next start is the current version */
			replica_drain(rep, cause, cause == CAUSE_ROLLOUT ? "an old version" : "recycled");
			continue;
		}
		old++;
		struct replica *x = replacement_of(u, rep);
		if (x && x->state == REPLICA_READY) {
			char why[200];
			snprintf(why, sizeof(why), "replaced by replica %d (version %s)", x->id, x->ver.label);
			x->replacing = 0;
			replica_drain(rep, cause, why);
			old--;
			continue;
		}
		if (x || coming || u->rollout_failed_gen == u->vgen)
			continue;	/* one on its way (one at a time), or this version failed: the old one serves */
		struct replica *slot = free_slot(u, now);
		if (!slot)
			continue;
		if (!u->rollout_active || u->rollout_gen != u->vgen) {
			u->rollout_active = 1;
			u->rollout_gen = u->vgen;
			count(u, "wakegate_rollouts_total", "result", "started");
		}
		log_notice("upstream \"%s\": starting replica %d (version %s) to replace replica %d (%s)", u->name,
			   slot->id, u->ver.label, rep->id,
			   cause == CAUSE_ROLLOUT ? "an old version" : recycle_names[rep->recycle]);
		slot->replacing = rep->id + 1;
		coming++;
		if (replica_wake(slot, cause) < 0 && slot->state != REPLICA_FAILED)
			slot->replacing = 0;	/* refused without a failure (stopping, a claim): try again later */
	}
	if (!old && !coming && u->rollout_active) {
		u->rollout_active = 0;
		u->rollout_error[0] = '\0';
		count(u, "wakegate_rollouts_total", "result", "done");
		log_notice("upstream \"%s\": every replica runs version %s", u->name, u->ver.label);
	}
}

void rollout_replica_free(struct replica *rep)
{
	if (rep->mem_conn)
		evhttp_connection_free(rep->mem_conn);
	rep->mem_conn = NULL;
	rep->mem_pending = 0;
}

void rollout_status_json(const struct upstream *u, json_t *o)
{
	json_object_set_new(o, "version", json_string(u->ver.label));
	json_object_set_new(o, "model_file", u->ver.model_file[0] ? json_string(u->ver.model_file) : json_null());
	json_object_set_new(o, "generation", json_integer(u->vgen));
	const char *st = u->rollout_active ? "switching" : u->rollout_error[0] ? "failed" : "idle";
	json_object_set_new(o, "rollout", json_string(st));
	json_object_set_new(o, "rollout_error", u->rollout_error[0] ? json_string(u->rollout_error) : json_null());
}

void rollout_replica_json(const struct replica *rep, json_t *ro)
{
	if (!rep->vgen)
		return;
	json_object_set_new(ro, "version", json_string(rep->ver.label));
	json_object_set_new(ro, "old_version", json_boolean(rep->vgen != rep->up->vgen));
	json_object_set_new(ro, "requests", json_integer((json_int_t)rep->served));
	json_object_set_new(ro, "memory_bytes", rep->mem_bytes >= 0 ? json_integer(rep->mem_bytes) : json_null());
	json_object_set_new(ro, "recycle", rep->recycle ? json_string(recycle_names[rep->recycle]) : json_null());
}
