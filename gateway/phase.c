/* phase: the phase engine (see phase.h). */
#include "config.h"
#include "gateway/phase.h"
#include "gateway/gw.h"
#include "gateway/proxy.h"
#include "gateway/request.h"

#include <stddef.h>

static phase_handler handlers[PHASE_N];
static unsigned conf_gen = 1;

static const char *const names[PHASE_N] = {
	"route", "auth", "model", "split", "limit_req", "limit_conn", "degrade", "upstream"
};

void phase_register(enum phase_id id, phase_handler h)
{
	if ((unsigned)id < PHASE_N)
		handlers[id] = h;
}

const char *phase_name(enum phase_id id)
{
	return (unsigned)id < PHASE_N ? names[id] : "?";
}

unsigned phase_conf_gen(void)
{
	return conf_gen;
}

void phase_conf_changed(void)
{
	conf_gen++;
}

/* Runs r from its phase on until a handler parks it or it is answered. */
static void phase_run(struct wg_request *r)
{
	while (r->phase < PHASE_N) {
		phase_handler h = handlers[r->phase];
		enum phase_rc rc = h ? h(r) : PHASE_NEXT;
		if (rc == PHASE_AGAIN)
			return;
		if (rc == PHASE_DONE) {
			request_free(r);
			return;
		}
		r->phase++;
	}
	/* no phase took it: a missing registration, never a request's fault */
	if (r->req)
		proxy_send_error(r->req, 500, "no phase answered the request", 0);
	request_free(r);
}

void phase_start(struct evhttp_request *req, void *listener)
{
	struct wg_request *r = request_new(req, listener);
	if (!r) {
		proxy_send_error(req, 500, "out of memory", 0);
		return;
	}
	phase_run(r);
}

void phase_continue(struct wg_request *r)
{
	r->phase++;
	phase_run(r);
}

void phase_restart(struct wg_request *r)
{
	r->phase = PHASE_ROUTE;
	phase_run(r);
}
