/*
 * rules: degradation on the request path, the degrade phase. Signals are
 * kept in the upstream (u->sig: they outlive reloads); rule state per location is rebuilt with each
 * conf, since a location's rules may have changed. A timer samples every
 * location's rules once a second, so that "for" runs on time even when no
 * request comes.
 */
#include "config.h"
#include "gateway/accesslog.h"
#include "gateway/rules.h"
#include "gateway/conf.h"
#include "gateway/degrade.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/dispatch.h"
#include "gateway/phase.h"
#include "gateway/request.h"
#include "gateway/upstream.h"

#include <event2/event.h>
#include <event2/http.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One location's rule states, for the conf in force. */
struct rules_loc {
	const struct conf_location *loc;
	struct degrade_state *st;	/* loc->ndegrade of them */
	struct rules_loc *next;
};

static struct rules_loc *locs;
static struct event *sample_ev;

static int64_t now_ms(void)
{
	return (int64_t)(gw_now() * 1000);
}

static void locs_free(void)
{
	while (locs) {
		struct rules_loc *l = locs;
		locs = l->next;
		free(l->st);
		free(l);
	}
}

static struct rules_loc *loc_state(const struct conf_location *loc)
{
	for (struct rules_loc *l = locs; l; l = l->next)
		if (l->loc == loc)
			return l;
	return NULL;
}

/* What the rules of a location look at: its own upstream now. */
static void rules_input(struct upstream *u, struct degrade_input *in)
{
	in->queue = u->hold.n;
	in->cold = !upstream_count(u, RS(REPLICA_READY));
	in->sig = &u->sig;
}

/* Samples every location's rules, so that "for" counts between requests. */
static void sample_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = now_ms();
	for (struct rules_loc *l = locs; l; l = l->next) {
		struct upstream *u = l->loc->proxy_pass ? upstream_find(l->loc->proxy_pass) : NULL;
		if (!u)
			continue;
		struct degrade_input in;
		struct degrade_decision d;
		rules_input(u, &in);
		degrade_eval(l->loc->degrade, l->st, l->loc->ndegrade, &in, now, &d);
	}
}

void rules_configure(const struct conf *c)
{
	static int declared;
	if (!declared) {
		declared = 1;
		metrics_declare(gw.metrics, "wakegate_degraded_total", METRICS_COUNTER,
				"Requests a degrade rule sent elsewhere (to) or answered (code), by location and condition.",
				NULL, 0);
	}
	locs_free();
	for (const struct conf_server *s = c->servers; s; s = s->next)
		for (const struct conf_location *loc = s->locations; loc; loc = loc->next) {
			if (!loc->ndegrade)
				continue;
			struct rules_loc *l = calloc(1, sizeof(*l));
			if (!l || !(l->st = calloc(loc->ndegrade, sizeof(*l->st)))) {
				free(l);
				log_error("location \"%s\": out of memory, its degrade rules are off", loc->path);
				continue;
			}
			l->loc = loc;
			l->next = locs;
			locs = l;
		}
	if (!sample_ev) {
		sample_ev = event_new(gw.base, -1, EV_PERSIST, sample_cb, NULL);
		struct timeval tv = { 1, 0 };
		if (sample_ev)
			event_add(sample_ev, &tv);
	}
}

/* Counts a degraded request: wakegate_degraded_total{location, to|code, reason}. */
static void count(const struct conf_location *loc, const struct degrade_decision *d, const struct degrade_rule *rule)
{
	char code[16], l[1200];
	snprintf(code, sizeof(code), "%d", d->code);
	prom_labels(l, sizeof(l), "location", loc->path, d->action == DEGRADE_TO ? "to" : "code",
		    d->action == DEGRADE_TO ? d->to_name : code, "reason", degrade_cond_name(rule->cond), NULL);
	metrics_add(gw.metrics, "wakegate_degraded_total", l, 1);
}

/* The degrade phase: the location's rules may send the request to another upstream, or answer it. */
static enum phase_rc rules_phase(struct wg_request *r)
{
	const struct conf_location *loc = r->loc;
	struct upstream *u = r->up;
	int64_t now = now_ms();
	degrade_sig_request_start(&u->sig, now);
	struct rules_loc *l = loc->ndegrade ? loc_state(loc) : NULL;
	if (!l)
		return PHASE_NEXT;
	struct degrade_input in;
	struct degrade_decision d;
	rules_input(u, &in);
	degrade_eval(loc->degrade, l->st, loc->ndegrade, &in, now, &d);
	struct upstream *to = d.action == DEGRADE_TO ? upstream_find(d.to_name) : NULL;
	if (d.action == DEGRADE_NONE || (d.action == DEGRADE_TO && !to)) {
		if (d.action == DEGRADE_TO)
			log_error("location \"%s\": degrade to \"%s\": no such upstream now, serving as usual",
				  loc->path, d.to_name);
		return PHASE_NEXT;
	}
	char hdr[DEGRADE_REASON_MAX + 300];
	if (d.action == DEGRADE_TO)
		snprintf(hdr, sizeof(hdr), "%s %s", d.to_name, d.reason);
	else
		snprintf(hdr, sizeof(hdr), "%d %s", d.code, d.reason);
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "X-Wakegate-Degraded", hdr);
	count(loc, &d, &loc->degrade[d.rule]);
	log_info("location \"%s\": degraded (%s) by the rule at %s:%d", loc->path, hdr,
		 loc->degrade[d.rule].file ? loc->degrade[d.rule].file : "?", loc->degrade[d.rule].line);
	/* the rule must not keep the upstream cold: wake it, without holding this request */
	if (in.cold)
		dispatch_wake(u, CAUSE_REQUEST);
	if (d.action == DEGRADE_TO) {
		r->up = to;
		return PHASE_NEXT;
	}
	char msg[DEGRADE_REASON_MAX + 64];
	snprintf(msg, sizeof(msg), "degraded: %s", d.reason);
	int retry = d.retry_after_ms < 0 ? 0 : (int)ceil((double)d.retry_after_ms / 1000);
	accesslog_refused(r->req, d.code, u->name);
	proxy_send_error(r->req, d.code, msg, retry);
	return PHASE_DONE;
}

void rules_init(void)
{
	phase_register(PHASE_DEGRADE, rules_phase);
}

void rules_free_all(void)
{
	if (sample_ev)
		event_free(sample_ev);
	sample_ev = NULL;
	locs_free();
}
