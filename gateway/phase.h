/*
 * phase: a request's way through the gateway as a list, as nginx's phase
 * handlers. Each phase has at most one handler, registered by its module at
 * start (phase.c names no module, so no module calls back into one that
 * calls it). A handler returns
 *   PHASE_NEXT   on to the next phase;
 *   PHASE_AGAIN  parked or handed over: its module owns the request now and
 *                later calls phase_continue() (on to the next phase),
 *                phase_restart() (route again: the conf changed meanwhile)
 *                or request_free() (the client left);
 *   PHASE_DONE   answered: the engine frees the request.
 * A new check is a new row here and a registration, not an edit of the
 * phase before it.
 */
#ifndef WG_PHASE_H
#define WG_PHASE_H

struct evhttp_request;
struct wg_request;

enum phase_id {
	PHASE_ROUTE,		/* server + location + upstream (server.c) */
	PHASE_AUTH,		/* API keys and tenants (auth.c) */
	PHASE_MODEL,		/* routing by model name (model_route.c) */
	PHASE_SPLIT,		/* A/B split by a key's hash (split_phase.c) */
	PHASE_LIMIT_REQ,	/* limit_req (ratelimit.c) */
	PHASE_LIMIT_CONN,	/* limit_conn (ratelimit.c) */
	PHASE_DEGRADE,		/* degrade rules (rules.c) */
	PHASE_UPSTREAM,		/* hold or forward (dispatch.c) */
	PHASE_N
};

enum phase_rc { PHASE_NEXT, PHASE_AGAIN, PHASE_DONE };

typedef enum phase_rc (*phase_handler)(struct wg_request *r);

/* Sets the handler of phase id (at start; a second registration replaces the first). */
void phase_register(enum phase_id id, phase_handler h);
const char *phase_name(enum phase_id id);

/* A new client request from evhttp on listener: makes its wg_request and runs it from the first phase. */
void phase_start(struct evhttp_request *req, void *listener);
/* A parked request goes on with the phase after the one that parked it. */
void phase_continue(struct wg_request *r);
/* A parked request is routed again from the first phase (the conf changed while it waited). */
void phase_restart(struct wg_request *r);

/* Bumps on every conf change: a parked request whose conf_gen is older must be routed again. */
unsigned phase_conf_gen(void);
void phase_conf_changed(void);

#endif
