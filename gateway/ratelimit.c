/*
 * ratelimit: limit_req and limit_conn on the request path. Zones live here,
 * not in the conf, so that a reload keeps their buckets and counts (nginx
 * keeps a shared zone whose name, size and key stay); the conf's zone
 * descriptions only point the way. A delayed request waits on a timer,
 * parked as a held one is (park.c): a client that leaves during the delay
 * is freed then, never touched after.
 */
#include "config.h"
#include "common/evtricks.h"
#include "common/http.h"
#include "gateway/accesslog.h"
#include "gateway/ratelimit.h"
#include "gateway/ratelimit_redis.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/limit.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/park.h"
#include "gateway/phase.h"
#include "gateway/request.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

/* One zone made from the conf. */
struct rl_zone {
	char *name;
	int conn;			/* limit_conn_zone */
	int64_t size;
	char *key_src;
	limit_zone *req;		/* limit_req_zone */
	limit_conn_zone *cz;		/* limit_conn_zone */
	const struct conf_limit_zone *cf;	/* its description in the newest conf; NULL: retired */
	int refs;			/* limit_conn slots held in it: a retired zone lives until 0 */
	struct rl_zone *next;
};

/* The limit_conn slots of one request, released when it ends. */
struct ratelimit_slots {
	size_t n;
	struct rl_slot {
		struct rl_zone *z;
		char *key;
		size_t len;
	} s[];
};

/* One limit_req check: the request's rules with their keys evaluated (owned). */
struct rl_check {
	size_t n;
	int dry;
	struct limit_req_rule *rules;	/* keylen 0: not counted */
	int *redis;			/* per rule: its zone keeps the bucket in Redis */
	size_t *ridx;			/* the Redis rules that count the request, in order */
	size_t nr;
};

/* What limit_req decided, from the local buckets, Redis, or both. */
struct rl_decision {
	enum limit_verdict verdict;
	enum limit_status status;
	const char *zone;		/* the zone that rejected or set the delay; "" */
	uint64_t excess;
	uint64_t delay_ms;
	uint32_t retry_after_s;
	int dry;
};

/* How long a request waits for Redis before its local buckets decide. */
#define RL_REDIS_WAIT_MS 250

/* A request waiting out its limit_req delay (check NULL), or Redis' answer on check. */
struct rl_delay {
	struct wg_request *r;		/* parked (park.c) while it waits */
	unsigned gen;			/* conf_gen when parked: r->srv and r->loc are valid while equal */
	struct event *timer;
	struct rl_check *check;		/* waiting for Redis: the check to decide */
	void *ticket;			/* rlr_check()'s, while its answer is pending */
	LIST_ENTRY(rl_delay) link;
};

static struct rl_zone *zones;
static LIST_HEAD(, rl_delay) delays = LIST_HEAD_INITIALIZER(delays);
static unsigned conf_gen;		/* bumps on every configure: conf pointers older than it are gone */
static char keybuf[LIMIT_KEY_BUF];

/* What a key's variables read; the buffers keep values alive during limit_key_eval(). */
struct rl_vars {
	struct evhttp_request *req;
	const struct conf_server *s;
	unsigned char bin[16];
	char host[256];
	char hdr[256];
};

static void zone_free(struct rl_zone *z)
{
	if (z->req)
		limit_zone_free(z->req);
	if (z->cz)
		limit_conn_zone_free(z->cz);
	free(z->name);
	free(z->key_src);
	free(z);
}

/* Frees retired zones that nothing holds any more. */
static void zones_sweep(void)
{
	struct rl_zone **pp = &zones;
	while (*pp) {
		struct rl_zone *z = *pp;
		if (!z->cf && z->refs == 0) {
			*pp = z->next;
			zone_free(z);
		} else {
			pp = &z->next;
		}
	}
}

static void metrics_once(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	metrics_declare(gw.metrics, "wakegate_limit_req_total", METRICS_COUNTER,
			"Requests checked by limit_req, by zone and result (dry_run: counted, not enforced).", NULL, 0);
	metrics_declare(gw.metrics, "wakegate_limit_conn_rejected_total", METRICS_COUNTER,
			"Requests refused by limit_conn, by zone.", NULL, 0);
}

void ratelimit_configure(const struct conf *c)
{
	metrics_once();
	rlr_configure(c, gw.base);	/* first: checks it cuts short are decided in the old conf */
	conf_gen++;
	for (struct rl_zone *z = zones; z; z = z->next)
		z->cf = NULL;
	for (const struct conf_limit_zone *cf = c->limit_zones; cf; cf = cf->next) {
		struct rl_zone *z = NULL;
		for (struct rl_zone *x = zones; x && !z; x = x->next)
			if (!x->cf && x->conn == cf->conn && x->size == cf->size && strcmp(x->name, cf->name) == 0 &&
			    strcmp(x->key_src, cf->key_src) == 0)
				z = x;
		if (z) {
			if (z->req)
				limit_zone_set_rate(z->req, cf->rate);
			z->cf = cf;
			log_info("limit zone \"%s\": kept across reload", cf->name);
		} else {
			z = calloc(1, sizeof(*z));
			if (!z || !(z->name = strdup(cf->name)) || !(z->key_src = strdup(cf->key_src))) {
				log_error("limit zone \"%s\": out of memory, not limiting", cf->name);
				if (z) {
					free(z->name);
					free(z);
				}
				continue;
			}
			z->conn = cf->conn;
			z->size = cf->size;
			if (cf->conn)
				z->cz = limit_conn_zone_new(cf->name, (size_t)cf->size);
			else
				z->req = limit_zone_new(cf->name, (size_t)cf->size, cf->rate);
			if (!z->cz && !z->req) {
				log_error("limit zone \"%s\": cannot make it, not limiting", cf->name);
				free(z->name);
				free(z->key_src);
				free(z);
				continue;
			}
			z->cf = cf;
			z->next = zones;
			zones = z;
		}
	}
	zones_sweep();
}

static struct rl_zone *zone_of(const struct conf_limit_zone *cf)
{
	for (struct rl_zone *z = zones; z; z = z->next)
		if (z->cf == cf)
			return z;
	return NULL;
}

/* limit_key_eval()'s variables, read from the request. */
static void rl_var(void *arg, enum limit_var var, const char *name, size_t namelen,
		   const void **val, size_t *len)
{
	struct rl_vars *v = arg;
	struct evhttp_connection *c = evhttp_request_get_connection(v->req);
	const char *s = NULL;
	*val = "";
	*len = 0;
	switch (var) {
	case LIMIT_VAR_BINARY_REMOTE_ADDR:
	case LIMIT_VAR_REMOTE_ADDR: {
		char *addr = NULL;
		ev_uint16_t port = 0;
		if (c)
			evhttp_connection_get_peer(c, &addr, &port);
		if (!addr || !*addr)
			return;
		if (var == LIMIT_VAR_REMOTE_ADDR) {
			s = addr;
			break;
		}
		if (inet_pton(AF_INET, addr, v->bin) == 1) {
			*val = v->bin;
			*len = 4;
		} else if (inet_pton(AF_INET6, addr, v->bin) == 1) {
			*val = v->bin;
			*len = 16;
		}
		return;
	}
	case LIMIT_VAR_HTTP:
		if (namelen >= sizeof(v->hdr))
			return;
		memcpy(v->hdr, name, namelen);
		v->hdr[namelen] = '\0';
		s = evhttp_find_header(evhttp_request_get_input_headers(v->req), v->hdr);
		break;
	case LIMIT_VAR_HOST: {
		/* nginx: the Host without its port, in lower case; else the server's name */
		const char *h = evhttp_request_get_host(v->req);
		if (!h || !*h)
			h = v->s && v->s->server_name ? v->s->server_name : "";
		size_t i;
		for (i = 0; h[i] && i + 1 < sizeof(v->host); i++)
			v->host[i] = (char)tolower((unsigned char)h[i]);
		v->host[i] = '\0';
		s = v->host;
		break;
	}
	case LIMIT_VAR_URI: {
		const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(v->req);
		s = u ? evhttp_uri_get_path(u) : NULL;
		break;
	}
	case LIMIT_VAR_REQUEST_URI:
		s = evhttp_request_get_uri(v->req);
		break;
	case LIMIT_VAR_SERVER_NAME:
		s = v->s ? v->s->server_name : NULL;
		break;
	}
	if (s) {
		*val = s;
		*len = strlen(s);
	}
}

ssize_t ratelimit_key_eval(const struct limit_key *k, const struct wg_request *r, void *buf, size_t len)
{
	if (!r->req)
		return -1;
	struct rl_vars v = { .req = r->req, .s = r->srv };
	return limit_key_eval(k, rl_var, &v, buf, len);
}

/* nginx's tail of a request's log lines: client, server, request, host. */
static void req_where(struct evhttp_request *req, const struct conf_server *s, char *buf, size_t len)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (c)
		evhttp_connection_get_peer(c, &addr, &port);
	const char *m = http_method_name(evhttp_request_get_command(req));
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	snprintf(buf, len, "client: %s, server: %s, request: \"%s %.300s HTTP/1.1\", host: \"%.200s\"",
		 addr ? addr : "-", s && s->server_name && *s->server_name ? s->server_name : "_", m,
		 evhttp_request_get_uri(req), host ? host : "");
}

/* Adds what one check did to each zone's counters to the metrics. */
static void count_deltas(const struct limit_req_rule *rules, const struct limit_counters *before, size_t n,
			 int dry_run)
{
	for (size_t i = 0; i < n; i++) {
		struct limit_counters after;
		char l[700];
		limit_zone_counters(rules[i].zone, &after);
		static const char *const results[] = { "passed", "delayed", "rejected" };
		uint64_t d[3] = { after.passed - before[i].passed, after.delayed - before[i].delayed,
				  after.rejected - before[i].rejected };
		for (int k = 0; k < 3; k++) {
			if (!d[k])
				continue;
			prom_labels(l, sizeof(l), "zone", limit_zone_name(rules[i].zone), "result", results[k],
				    dry_run ? "dry_run" : NULL, "on", NULL);
			metrics_add(gw.metrics, "wakegate_limit_req_total", l, (double)d[k]);
		}
	}
}

/* One count in wakegate_limit_req_total, for a decision Redis made. */
static void count_one(const char *zone, const char *result, int dry_run)
{
	char l[700];
	prom_labels(l, sizeof(l), "zone", zone, "result", result, dry_run ? "dry_run" : NULL, "on", NULL);
	metrics_add(gw.metrics, "wakegate_limit_req_total", l, 1);
}

static void check_free(struct rl_check *ck)
{
	if (!ck)
		return;
	for (size_t i = 0; i < ck->n; i++)
		free((void *)ck->rules[i].key);
	free(ck->rules);
	free(ck->redis);
	free(ck->ridx);
	free(ck);
}

/* The request's limit_req rules with their keys evaluated now; NULL when memory runs out. */
static struct rl_check *check_new(struct evhttp_request *req, const struct conf_server *s,
				  const struct conf_location *loc)
{
	const struct conf_limits *lim = &loc->limits;
	size_t n = 0;
	for (const struct conf_limit_req *r = lim->req; r; r = r->next)
		n++;
	struct rl_check *ck = calloc(1, sizeof(*ck));
	if (!ck || !(ck->rules = calloc(n, sizeof(*ck->rules))) || !(ck->redis = calloc(n, sizeof(*ck->redis))) ||
	    !(ck->ridx = calloc(n, sizeof(*ck->ridx)))) {
		check_free(ck);
		return NULL;
	}
	ck->dry = lim->req_dry_run > 0;
	struct rl_vars v = { .req = req, .s = s };
	for (const struct conf_limit_req *r = lim->req; r; r = r->next) {
		struct rl_zone *z = zone_of(r->zone);
		if (!z || !z->req)
			continue;
		ssize_t len = limit_key_eval(r->zone->key, rl_var, &v, keybuf, sizeof(keybuf));
		void *key = len > 0 ? malloc((size_t)len) : NULL;
		if (key)
			memcpy(key, keybuf, (size_t)len);
		ck->rules[ck->n] = (struct limit_req_rule){ .zone = z->req, .key = key, .keylen = key ? (size_t)len : 0,
			.burst = r->burst, .delay = r->delay };
		if (r->zone->redis) {
			ck->redis[ck->n] = 1;
			if (key)
				ck->ridx[ck->nr++] = ck->n;
		}
		ck->n++;
	}
	return ck;
}

static enum log_level lower_level(enum log_level l)
{
	return l < LOG_LVL_DEBUG ? l + 1 : LOG_LVL_DEBUG;
}

static enum phase_rc wait_start(struct wg_request *r, uint64_t ms, struct rl_check *ck);

/* Logs a limit_req decision as nginx does, and acts on it: NEXT (passed), AGAIN (delayed), DONE (answered). */
static enum phase_rc act(struct wg_request *r, const struct rl_decision *v)
{
	const struct conf_location *loc = r->loc;
	const struct conf_limits *lim = &loc->limits;
	enum log_level lvl = lim->req_log_level;
	int rejected = v->status == LIMIT_REJECTED || v->status == LIMIT_REJECTED_DRY_RUN;
	int delayed = v->status == LIMIT_DELAYED || v->status == LIMIT_DELAYED_DRY_RUN;
	unsigned long long ei = (unsigned long long)(v->excess / 1000), ef = (unsigned long long)(v->excess % 1000);
	if ((rejected && log_enabled(lvl)) || (delayed && log_enabled(lower_level(lvl)))) {
		char where[700];
		req_where(r->req, r->srv, where, sizeof(where));
		if (rejected)
			log_msg(lvl, "limiting requests%s, excess: %llu.%03llu by zone \"%s\", %s",
				v->dry ? ", dry run" : "", ei, ef, v->zone, where);
		else
			log_msg(lower_level(lvl), "delaying request%s, excess: %llu.%03llu, by zone \"%s\", %s",
				v->dry ? ", dry run" : "", ei, ef, v->zone, where);
	}
	switch (v->verdict) {
	case LIMIT_PASS:
		return PHASE_NEXT;
	case LIMIT_DELAY:
		return wait_start(r, v->delay_ms, NULL);
	case LIMIT_REJECT: {
		char msg[300];
		snprintf(msg, sizeof(msg), "limiting requests by zone \"%s\"", v->zone);
		accesslog_refused(r->req, lim->req_status, loc->proxy_pass);
		proxy_send_error(r->req, lim->req_status, msg,
				 v->retry_after_s > 0 ? (int)v->retry_after_s : 1);
		return PHASE_DONE;
	}
	}
	return PHASE_NEXT;
}

/*
 * Decides with Redis' answer a for the Redis rules (NULL: every rule on the
 * local buckets), the local buckets for the rest; frees ck. A Redis
 * rejection is final (the local buckets are not touched); otherwise the
 * local rules are checked and the longer delay wins. Local states are not
 * rolled back when Redis rejects after them, nor Redis' when a local rule
 * rejects: only rules of one kind combine exactly as nginx's.
 */
static enum phase_rc decide(struct wg_request *r, struct rl_check *ck, const struct rlr_answer *a)
{
	struct rl_decision v = { .verdict = LIMIT_PASS, .status = LIMIT_UNCOUNTED, .zone = "", .dry = ck->dry };
	if (a && a->verdict == LIMIT_REJECT) {
		const char *zone = limit_zone_name(ck->rules[ck->ridx[a->rule < ck->nr ? a->rule : 0]].zone);
		count_one(zone, "rejected", ck->dry);
		v = (struct rl_decision){ .verdict = ck->dry ? LIMIT_PASS : LIMIT_REJECT,
			.status = ck->dry ? LIMIT_REJECTED_DRY_RUN : LIMIT_REJECTED, .zone = zone,
			.excess = a->excess, .retry_after_s = a->retry_after_s, .dry = ck->dry };
		check_free(ck);
		return act(r, &v);
	}
	struct limit_req_rule *rules = calloc(ck->n ? ck->n : 1, sizeof(*rules));
	struct limit_counters *before = calloc(ck->n ? ck->n : 1, sizeof(*before));
	size_t m = 0;
	struct limit_req_result res;
	if (!rules || !before) {
		memset(&res, 0, sizeof(res));	/* out of memory: let it through */
	} else {
		for (size_t i = 0; i < ck->n; i++)
			if (!a || !ck->redis[i]) {
				rules[m] = ck->rules[i];
				limit_zone_counters(rules[m].zone, &before[m]);
				m++;
			}
		limit_req_check_many(rules, m, (uint64_t)(gw_now() * 1000), ck->dry, &res);
		count_deltas(rules, before, m, ck->dry);
	}
	v.verdict = res.verdict;
	v.status = res.status;
	v.zone = res.zone ? limit_zone_name(res.zone) : "";
	v.excess = res.excess;
	v.delay_ms = res.delay_ms;
	v.retry_after_s = res.retry_after_s;
	int local_rejected = res.status == LIMIT_REJECTED || res.status == LIMIT_REJECTED_DRY_RUN;
	if (a && !local_rejected) {
		for (size_t i = 0; i < ck->nr; i++)
			count_one(limit_zone_name(ck->rules[ck->ridx[i]].zone),
				  a->verdict == LIMIT_DELAY && i == a->rule ? "delayed" : "passed", ck->dry);
		if (a->verdict == LIMIT_DELAY && a->delay_ms >= res.delay_ms && a->rule < ck->nr) {
			v.zone = limit_zone_name(ck->rules[ck->ridx[a->rule]].zone);
			v.excess = a->excess;
			v.delay_ms = a->delay_ms;
			v.status = ck->dry ? LIMIT_DELAYED_DRY_RUN : LIMIT_DELAYED;
			v.verdict = ck->dry ? LIMIT_PASS : LIMIT_DELAY;
		} else if (v.status == LIMIT_UNCOUNTED && ck->nr) {
			v.status = LIMIT_PASSED;
		}
	}
	free(rules);
	free(before);
	check_free(ck);
	return act(r, &v);
}

/* A parked request's outcome after its wait: on, answered, or parked again. */
static void resume(struct wg_request *r, enum phase_rc rc)
{
	if (rc == PHASE_NEXT)
		phase_continue(r);
	else if (rc == PHASE_DONE)
		request_free(r);
}

static void delay_unlink(struct rl_delay *d)
{
	LIST_REMOVE(d, link);
	if (d->timer)
		event_free(d->timer);
	d->timer = NULL;
	if (d->ticket)
		rlr_cancel(d->ticket);
	d->ticket = NULL;
	client_unpark(d->r);
}

/* Frees a waiting request's own parts; its wg_request is the caller's business. */
static void delay_free(struct rl_delay *d)
{
	check_free(d->check);
	free(d);
}

/* The wait is over (delay done, or Redis too slow: a is NULL): on with the request. */
static void wait_over(struct rl_delay *d, const struct rlr_answer *a)
{
	struct wg_request *r = d->r;
	struct rl_check *ck = d->check;
	d->check = NULL;
	delay_unlink(d);
	unsigned gen = d->gen;
	free(d);
	if (gen != conf_gen) {
		check_free(ck);
		phase_restart(r);	/* the conf changed meanwhile: route again */
	} else if (ck) {
		resume(r, decide(r, ck, a));
	} else {
		phase_continue(r);
	}
}

static void delay_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl_delay *d = arg;
	if (d->check)
		log_info("limit_req: Redis did not answer in %dms, the local bucket decides", RL_REDIS_WAIT_MS);
	wait_over(d, NULL);
}

/* Redis answered (or failed: a is NULL). */
static void redis_answer_cb(const struct rlr_answer *a, void *arg)
{
	struct rl_delay *d = arg;
	d->ticket = NULL;	/* spent */
	wait_over(d, a);
}

/* The waiting client left (park.c freed its connection). */
static void delay_gone(struct wg_request *r, void *arg)
{
	struct rl_delay *d = arg;
	delay_unlink(d);
	log_info("limit_req: a delayed client left");
	delay_free(d);
	request_free(r);
}

/* Parks r for ms: its limit_req delay (ck NULL), or the wait for Redis' answer on ck. */
static enum phase_rc wait_start(struct wg_request *r, uint64_t ms, struct rl_check *ck)
{
	struct rl_delay *d = calloc(1, sizeof(*d));
	if (!d || !(d->timer = evtimer_new(gw.base, delay_done_cb, d))) {
		free(d);
		/* out of memory: decide locally, or let it through rather than drop it */
		return ck ? decide(r, ck, NULL) : PHASE_NEXT;
	}
	d->r = r;
	d->gen = conf_gen;
	d->check = ck;
	LIST_INSERT_HEAD(&delays, d, link);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(d->timer, &tv);
	/* without memory for the park the wait ends on its timer, not on a close */
	(void)client_park(gw.base, r, delay_gone, d);
	if (!ck)
		return PHASE_AGAIN;
	/* the Redis rules go in one script; the answer or the timer, whichever first, goes on */
	struct rlr_rule *rr = calloc(ck->nr, sizeof(*rr));
	for (size_t i = 0; rr && i < ck->nr; i++) {
		const struct limit_req_rule *x = &ck->rules[ck->ridx[i]];
		rr[i] = (struct rlr_rule){ .zone = limit_zone_name(x->zone), .key = x->key, .keylen = x->keylen,
			.rate = limit_zone_rate(x->zone), .burst = x->burst, .delay = x->delay };
	}
	d->ticket = rr ? rlr_check(rr, ck->nr, redis_answer_cb, d) : NULL;
	free(rr);
	if (!d->ticket) {
		d->check = NULL;
		delay_unlink(d);
		free(d);
		return decide(r, ck, NULL);
	}
	return PHASE_AGAIN;
}

/* The limit_req phase. */
static enum phase_rc limit_req_phase(struct wg_request *r)
{
	if (!r->loc->limits.req)
		return PHASE_NEXT;
	struct rl_check *ck = check_new(r->req, r->srv, r->loc);
	if (!ck) {
		proxy_send_error(r->req, 500, "out of memory", 0);
		return PHASE_DONE;
	}
	if (ck->nr && rlr_ready())
		return wait_start(r, RL_REDIS_WAIT_MS, ck);
	return decide(r, ck, NULL);
}

/* limit_conn refused the request: log as nginx, count, answer. */
static void conn_reject(struct wg_request *r, const struct rl_zone *z)
{
	const struct conf_location *loc = r->loc;
	char where[700], l[600], msg[300];
	if (log_enabled(LOG_LVL_ERROR)) {
		req_where(r->req, r->srv, where, sizeof(where));
		log_error("limiting connections by zone \"%s\", %s", z->name, where);
	}
	prom_labels(l, sizeof(l), "zone", z->name, NULL);
	metrics_add(gw.metrics, "wakegate_limit_conn_rejected_total", l, 1);
	snprintf(msg, sizeof(msg), "limiting connections by zone \"%s\"", z->name);
	accesslog_refused(r->req, loc->limits.conn_status, loc->proxy_pass);
	proxy_send_error(r->req, loc->limits.conn_status, msg, 1);
}

/* The limit_conn phase: takes a slot per rule, given back when the request ends (request_free). */
static enum phase_rc limit_conn_phase(struct wg_request *r)
{
	size_t n = 0;
	for (const struct conf_limit_conn *c = r->loc->limits.conn; c; c = c->next)
		n++;
	if (!n)
		return PHASE_NEXT;
	struct ratelimit_slots *slots = calloc(1, sizeof(*slots) + n * sizeof(slots->s[0]));
	if (!slots) {
		proxy_send_error(r->req, 500, "out of memory", 0);
		return PHASE_DONE;
	}
	struct rl_vars v = { .req = r->req, .s = r->srv };
	for (const struct conf_limit_conn *c = r->loc->limits.conn; c; c = c->next) {
		struct rl_zone *z = zone_of(c->zone);
		if (!z || !z->cz)
			continue;
		/* longer than LIMIT_CONN_KEY_MAX (-1) or empty: not counted, as in nginx */
		ssize_t len = limit_key_eval(c->zone->key, rl_var, &v, keybuf, LIMIT_CONN_KEY_MAX + 1);
		if (len <= 0)
			continue;
		char *key = malloc((size_t)len);
		if (!key)
			continue;
		memcpy(key, keybuf, (size_t)len);
		if (limit_conn_acquire(z->cz, key, (size_t)len, c->max) < 0) {
			free(key);
			ratelimit_slots_release(slots);
			conn_reject(r, z);
			return PHASE_DONE;
		}
		z->refs++;
		slots->s[slots->n++] = (struct rl_slot){ .z = z, .key = key, .len = (size_t)len };
	}
	if (!slots->n)
		free(slots);
	else
		r->slots = slots;
	return PHASE_NEXT;
}

void ratelimit_init(void)
{
	phase_register(PHASE_LIMIT_REQ, limit_req_phase);
	phase_register(PHASE_LIMIT_CONN, limit_conn_phase);
	request_set_slots_release(ratelimit_slots_release);
}

void ratelimit_slots_release(struct ratelimit_slots *slots)
{
	if (!slots)
		return;
	int retired = 0;
	for (size_t i = 0; i < slots->n; i++) {
		struct rl_slot *sl = &slots->s[i];
		limit_conn_release(sl->z->cz, sl->key, sl->len);
		sl->z->refs--;
		retired |= !sl->z->cf;
		free(sl->key);
	}
	free(slots);
	if (retired)
		zones_sweep();
}

void ratelimit_shutdown(void)
{
	struct rl_delay *d;
	while ((d = LIST_FIRST(&delays)) != NULL) {
		struct wg_request *r = d->r;
		delay_unlink(d);
		delay_free(d);
		if (r->req)
			proxy_send_error(r->req, 503, "wakegate is shutting down", 0);
		request_free(r);
	}
}

void ratelimit_free_all(void)
{
	ratelimit_shutdown();
	rlr_free();
	while (zones) {
		struct rl_zone *z = zones;
		zones = z->next;
		zone_free(z);
	}
}
