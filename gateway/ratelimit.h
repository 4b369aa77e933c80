/*
 * ratelimit: the gateway side of limit_req and limit_conn. It makes the
 * zones the conf describes (gateway/limit.c does the arithmetic), keeps
 * them across a reload when name, kind, size and key stay (as nginx keeps
 * a shared zone), checks each routed request, delays it on a timer or
 * rejects it, and holds its limit_conn slots until the request ends.
 *
 * Two phases (phase.h): limit_req passes, delays (parked on a timer; a
 * client that leaves meanwhile is dropped) or rejects (limit_req_status,
 * Retry-After, a JSON reason); then limit_conn counts it (over:
 * limit_conn_status, Retry-After: 1) and keeps its slots in the request,
 * given back by request_free() when the request ends, however it ends. Zones with
 * "redis" are checked in Redis (ratelimit_redis.c) while it answers; the
 * request waits for the answer as a delayed one waits, up to 250ms, and
 * its local buckets decide when Redis is down or slow.
 */
#ifndef WG_RATELIMIT_H
#define WG_RATELIMIT_H

#include <sys/types.h>

struct conf;
struct conf_server;
struct conf_location;
struct ratelimit_slots;
struct limit_key;
struct wg_request;

/* Makes or keeps the zones of c; called by server_configure() once c's listeners are up. */
void ratelimit_configure(const struct conf *c);

/* Registers the limit_req and limit_conn phases (at start, once). */
void ratelimit_init(void);

/* Gives back a request's limit_conn slots and frees them; NULL is fine. */
void ratelimit_slots_release(struct ratelimit_slots *slots);

/*
 * Evaluates key template k (limit_key.c) for r's request, with the
 * variables limit_req_zone keys read, into buf; returns the length, or -1
 * when it does not fit. For other phases that key on the same variables
 * (split_phase.c).
 */
ssize_t ratelimit_key_eval(const struct limit_key *k, const struct wg_request *r, void *buf, size_t len);

/* Shutdown: every delayed request is answered 503 now. */
void ratelimit_shutdown(void);
/* At exit: frees the zones (after every request ended). */
void ratelimit_free_all(void);

#endif
