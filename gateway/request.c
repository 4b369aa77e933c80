/* request: a client request's record, made and freed in one place (see request.h). */
#include "config.h"
#include "gateway/request.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/hold.h"
#include "gateway/park.h"

#include <stdlib.h>

static void (*slots_release)(struct ratelimit_slots *slots);

void request_set_slots_release(void (*fn)(struct ratelimit_slots *slots))
{
	slots_release = fn;
}

struct wg_request *request_new(struct evhttp_request *req, void *listener)
{
	struct wg_request *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->req = req;
	r->listener = listener;
	r->t_arrive = gw_now();
	return r;
}

void request_free(struct wg_request *r)
{
	if (r->in_hold && r->hold)
		hold_remove(r->hold, r);
	client_unpark(r);
	free(r->fwd_uri);
	while (r->fwd_headers) {
		struct conf_header *h = r->fwd_headers;
		r->fwd_headers = h->next;
		free(h->name);
		free(h->value);
		free(h);
	}
	if (r->slots && slots_release)
		slots_release(r->slots);
	r->slots = NULL;
	free(r);
}
