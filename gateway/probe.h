/*
 * probe: polls a booting replica's health URL until it answers 200. One GET
 * at a time on a connection kept for the boot; after a miss the next poll
 * comes soon (every 2ms for the first 50ms, then backing off to 100ms),
 * since a worker is often healthy a few ms after fork and a cold start
 * should not be rounded up to a poll.
 * It remembers what the checks got, so a boot that times out can say why.
 *
 * Ownership: the caller owns the probe and frees it with probe_free(), also
 * from inside its callback; the probe owns its connection and timer.
 */
#ifndef WG_PROBE_H
#define WG_PROBE_H

#include <stddef.h>

struct event_base;
struct conf_upstream;
struct probe;

/* ok 1: the health URL answered 200. ok 0: it never will (why says so, e.g. an untrusted certificate). */
typedef void (*probe_cb)(int ok, const char *why, void *arg);

/* Starts polling url + path (cf: the upstream's TLS settings, may be NULL). NULL when out of memory. */
struct probe *probe_start(struct event_base *base, const struct conf_upstream *cf, const char *url,
			  const char *path, probe_cb cb, void *arg);
/* What the checks got so far: "GET /v2/health/ready: 404 x28" or "...: connection refused x40". */
void probe_describe(const struct probe *p, char *buf, size_t len);
/* The status of the last answer to a poll; 0: none yet (refused, timed out, not polled). */
int probe_last_code(const struct probe *p);
void probe_free(struct probe *p);

#endif
