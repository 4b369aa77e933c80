/*
 * rules: the gateway side of the degradation rules (gateway/degrade.c does
 * the deciding). It keeps one struct degrade_sig per upstream, fed as
 * requests start (counted on the upstream the location names: the demand)
 * and end (on the upstream that served them: latency and errors), the
 * hysteresis state of every location's rules, sampled at each request and
 * once a second, and applies a decision: another upstream, or an answer.
 */
#ifndef WG_RULES_H
#define WG_RULES_H

struct conf;
struct conf_location;
struct degrade_sig;
struct evhttp_request;
struct ratelimit_slots;

/* New rule state for c's locations (the old is dropped); called by server_configure(). */
void rules_configure(const struct conf *c);

/* A request that passed the limits: degrade it or hand it to the location's upstream.
 * slots (may be NULL) go with it and are released when it ends. */
void rules_handle(struct evhttp_request *req, const struct conf_location *loc,
		  struct ratelimit_slots *slots);

/* upstream.c, when a request ends: status sent (499: the client left), latency in ms. */
void rules_request_end(const char *upstream, int status, double latency_ms);

/* An upstream's latency window, for scale.c's scale_p99; owned here, NULL only out of memory. */
const struct degrade_sig *rules_sig(const char *upstream);

/* At exit: the timer and the signals. */
void rules_free_all(void);

#endif
