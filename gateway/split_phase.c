/* split_phase: a location's A/B split picks the request's upstream (see split_phase.h). */
#include "config.h"
#include "gateway/split_phase.h"
#include "gateway/accesslog.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/limit.h"
#include "gateway/metrics.h"
#include "gateway/phase.h"
#include "gateway/proxy.h"
#include "gateway/ratelimit.h"
#include "gateway/request.h"
#include "gateway/split.h"
#include "gateway/upstream.h"

static unsigned char keybuf[LIMIT_KEY_BUF];	/* one request at a time: the loop is single-threaded */

static enum phase_rc split_phase(struct wg_request *r)
{
	const struct conf_split *sp = r->loc ? r->loc->split : NULL;
	if (!sp)
		return PHASE_NEXT;
	ssize_t len = ratelimit_key_eval(sp->key, r, keybuf, sizeof(keybuf));
	if (len < 0)
		len = 0;	/* longer than any limit key: hashed as empty, so it still lands somewhere fixed */
	int i = split_pick(sp->parts, sp->n, split_murmur2(keybuf, (size_t)len));
	if (i >= 0) {
		struct upstream *u = upstream_find(sp->ups[i]->name);
		if (u)
			r->up = u;
	}
	if (!r->up) {
		accesslog_refused(r->req, 502, i >= 0 ? sp->ups[i]->name : NULL);
		proxy_send_error(r->req, 502, "no such upstream", 0);
		return PHASE_DONE;
	}
	metrics_add(gw.metrics, "wakegate_split_requests_total", upstream_label(r->up, 0), 1);
	return PHASE_NEXT;
}

void split_phase_init(void)
{
	metrics_declare(gw.metrics, "wakegate_split_requests_total", METRICS_COUNTER,
			"Requests a location's split sent to each upstream (keys no bucket takes are not counted).",
			NULL, 0);
	phase_register(PHASE_SPLIT, split_phase);
}
