/*
 * rules: the gateway side of the degradation rules (gateway/degrade.c does
 * the deciding). It feeds each upstream's struct degrade_sig (u->sig) as
 * requests start (counted on the upstream the location names: the demand;
 * dispatch.c feeds the ends: latency and errors), keeps the
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

/* Registers the degrade phase (at start, once). */
void rules_init(void);

/* At exit: the timer and the rule states. */
void rules_free_all(void);

#endif
