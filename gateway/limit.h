/*
 * limit: request rate limiting (limit_req) and connection counting
 * (limit_conn) with nginx's semantics, as a pure module: the caller passes
 * the clock in milliseconds and the keys it evaluated; nothing here does
 * I/O, logs or touches libevent, so the same sequence of calls always gives
 * the same answers.
 *
 * limit_req is nginx's leaky bucket (ngx_http_limit_req_module): a zone has
 * a rate and holds one state per key; a state keeps "excess", the requests
 * over the rate that are still in the bucket, in milli-requests, and the
 * time of its last update. A request at `now` computes
 *
 *     excess = max(excess - rate * (now - last) / 1000 + 1000, 0)
 *
 * (rate in milli-requests per second, integer arithmetic); the first
 * request of a key has excess 0. If excess > burst * 1000 the request is
 * rejected and the state is left as it was; otherwise the state takes the
 * new excess and the request waits (excess - delay * 1000) * 1000 / rate
 * milliseconds when excess > delay * 1000, and none otherwise.
 *
 * Memory is bounded by the zone's size, counted as nginx's slab allocator
 * would on a 64-bit machine:
 *   limit_req:  a state costs the next power of two of 80 + key length:
 *               128 bytes for keys up to 48 bytes ($binary_remote_addr,
 *               IPv4 or IPv6), 256 up to 176 bytes, ... : a 1m zone keeps
 *               8192 address states.
 *   limit_conn: the next power of two of 36 + key length: 64 bytes for keys
 *               up to 28 bytes, 128 up to 92, 256 up to 220; keys longer
 *               than 255 bytes are not counted.
 * A new limit_req key first drops one or two least recently used states
 * idle for a minute whose bucket has drained; when the zone is still full,
 * it evicts the least recently used state by force. A limit_conn zone
 * never evicts (its states are live connections): when full, it refuses.
 */
#ifndef WAKEGATE_LIMIT_H
#define WAKEGATE_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* delay= value of "nodelay": no request within burst waits. */
#define LIMIT_NODELAY UINT32_MAX
/* Longer keys are not counted, as in nginx (which logs an error). */
#define LIMIT_REQ_KEY_MAX 65535
#define LIMIT_CONN_KEY_MAX 255
/* Cost of one state with a short key; the smallest useful zone. */
#define LIMIT_REQ_STATE_BYTES 128
#define LIMIT_CONN_STATE_BYTES 64
/* A buffer this large holds any key limit_key_eval() would keep. */
#define LIMIT_KEY_BUF (LIMIT_REQ_KEY_MAX + 1)

enum limit_verdict {
	LIMIT_PASS,	/* go on now */
	LIMIT_DELAY,	/* go on after delay_ms */
	LIMIT_REJECT,	/* answer limit_req_status (503 by default) */
};

/* nginx's $limit_req_status; LIMIT_UNCOUNTED when no key applied. */
enum limit_status {
	LIMIT_UNCOUNTED,
	LIMIT_PASSED,
	LIMIT_DELAYED,
	LIMIT_REJECTED,
	LIMIT_DELAYED_DRY_RUN,
	LIMIT_REJECTED_DRY_RUN,
};

/* "PASSED", "DELAYED", ... as nginx spells them; "" for LIMIT_UNCOUNTED. */
const char *limit_status_name(enum limit_status status);

/*
 * Parses nginx's rate syntax: "10r/s", "30r/m", or a bare number of
 * requests per second. Sets *rate in milli-requests per second (nginx's
 * unit: 30r/m is 500, 1r/m is 16). Returns 0, or -1 when invalid or zero.
 */
int limit_parse_rate(const char *s, size_t len, uint64_t *rate);

typedef struct limit_zone limit_zone;
typedef struct limit_conn_zone limit_conn_zone;

struct limit_counters {
	uint64_t passed;	/* requests let through at once */
	uint64_t delayed;	/* let through after a delay (limit_req) */
	uint64_t rejected;	/* refused (or would be, in a dry run) */
	uint64_t evicted;	/* states dropped by force to make room */
	size_t states;		/* keys held now */
	size_t bytes;		/* their cost, at most the zone's size */
	size_t size;		/* the zone's size */
};

/*
 * A limit_req zone of `size` bytes and `rate` milli-requests per second
 * (from limit_parse_rate). The caller owns it: limit_zone_free(). Returns
 * NULL when size cannot hold one state, rate is 0, or memory runs out.
 * The name is copied.
 */
limit_zone *limit_zone_new(const char *name, size_t size, uint64_t rate);
void limit_zone_free(limit_zone *zone);
const char *limit_zone_name(const limit_zone *zone);
uint64_t limit_zone_rate(const limit_zone *zone);
/* A reload that keeps the zone (same name and size) may change its rate. */
void limit_zone_set_rate(limit_zone *zone, uint64_t rate);
void limit_zone_counters(const limit_zone *zone, struct limit_counters *c);
/* Whether a state for key is held (tests and debugging; no LRU bump). */
bool limit_zone_has(const limit_zone *zone, const void *key, size_t keylen);

/* One limit_req directive as it applies to one request. */
struct limit_req_rule {
	limit_zone *zone;
	const void *key;	/* the zone's key evaluated for this request */
	size_t keylen;		/* 0: this rule does not count the request */
	uint32_t burst;		/* requests */
	uint32_t delay;		/* requests; LIMIT_NODELAY for nodelay */
};

struct limit_req_result {
	enum limit_verdict verdict;	/* what to do: never REJECT/DELAY in a dry run */
	enum limit_status status;	/* what happened, for $limit_req_status */
	uint64_t delay_ms;		/* LIMIT_DELAY: how long to wait */
	uint32_t retry_after_s;		/* rejected: seconds until one more fits, >= 1 */
	limit_zone *zone;		/* the zone that rejected or set the delay, or NULL */
	uint64_t excess;		/* that zone's excess, milli-requests (nginx logs it) */
};

/*
 * Checks one request against all limit_req rules of its location, as nginx
 * does: the rules are looked at in order; the first one whose bucket would
 * overflow rejects the request, and then no state changes (the earlier
 * zones' new excess is never written, later zones are not looked at);
 * otherwise every rule's state is updated and the longest delay wins.
 * With dry_run nothing is delayed or rejected, but states and counters
 * move as they would. Counters: a rejected request counts in the zone that
 * rejected it only; a let-through request counts as delayed in the zone
 * that set its delay and as passed in the other zones that counted it.
 * Fills *res and returns res->verdict.
 */
enum limit_verdict limit_req_check_many(const struct limit_req_rule *rules, size_t n,
	uint64_t now_ms, bool dry_run, struct limit_req_result *res);

/* One rule; *delay_ms (may be NULL) is set for LIMIT_DELAY, else 0. */
enum limit_verdict limit_req_check(limit_zone *zone, const void *key, size_t keylen,
	uint64_t now_ms, uint32_t burst, uint32_t delay, bool dry_run, uint64_t *delay_ms);

/*
 * A limit_conn zone of `size` bytes; NULL when size cannot hold one
 * state or memory runs out. The caller owns it: limit_conn_zone_free().
 */
limit_conn_zone *limit_conn_zone_new(const char *name, size_t size);
void limit_conn_zone_free(limit_conn_zone *zone);
const char *limit_conn_zone_name(const limit_conn_zone *zone);
void limit_conn_zone_counters(const limit_conn_zone *zone, struct limit_counters *c);

/*
 * Counts one more connection (request) for key unless key already has
 * `max`: returns 0 when counted or when the key does not count (empty, or
 * longer than LIMIT_CONN_KEY_MAX), -1 when over the limit or the zone is
 * full. Every 0 must be paired with one limit_conn_release() of the same
 * key; a key's state is freed when its count falls to 0. With several
 * limit_conn rules, release the ones already acquired when one fails.
 */
int limit_conn_acquire(limit_conn_zone *zone, const void *key, size_t keylen, uint32_t max);
void limit_conn_release(limit_conn_zone *zone, const void *key, size_t keylen);
/* Connections counted for key now. */
uint32_t limit_conn_count(const limit_conn_zone *zone, const void *key, size_t keylen);

/*
 * Keys: a zone's key is a template of literal text and variables, as
 * nginx's complex values: "$binary_remote_addr", "$http_x_api_key:$uri",
 * "${remote_addr}x". Names are case-insensitive.
 */
enum limit_var {
	LIMIT_VAR_BINARY_REMOTE_ADDR,	/* 4 or 16 raw bytes; empty for unix sockets */
	LIMIT_VAR_REMOTE_ADDR,		/* the address as text */
	LIMIT_VAR_HTTP,			/* a request header; name is "x-api-key" */
	LIMIT_VAR_HOST,
	LIMIT_VAR_URI,
	LIMIT_VAR_REQUEST_URI,
	LIMIT_VAR_SERVER_NAME,
	LIMIT_VAR_TENANT,	/* $tenant: the API key's tenant (auth.c) */
};

typedef struct limit_key limit_key;

/*
 * Gives a variable's value for the request at hand: sets *val and *len
 * (an absent value is empty: *len = 0). For LIMIT_VAR_HTTP, name is the
 * header's name in lower case with "_" turned into "-" ($http_x_api_key
 * -> "x-api-key"), to be matched case-insensitively as nginx does; for the
 * others it is the variable's name. The value must stay valid until
 * limit_key_eval() returns.
 */
typedef void (*limit_var_fn)(void *arg, enum limit_var var, const char *name,
	size_t namelen, const void **val, size_t *len);

/*
 * Compiles a key template; the caller owns it: limit_key_free(). On error
 * returns NULL and writes nginx's message to err (e.g. `unknown "foo"
 * variable`), which the conf parser shows with "in FILE:LINE".
 */
limit_key *limit_key_compile(const char *src, char *err, size_t errlen);
void limit_key_free(limit_key *key);
/* The template as written (nginx refuses a reload that changes a zone's key). */
const char *limit_key_source(const limit_key *key);
/* Whether the key has no variables (all requests share one state). */
bool limit_key_is_constant(const limit_key *key);

/*
 * Evaluates the template into buf (not NUL-terminated) and returns the
 * length, or -1 when it does not fit in bufsize (a key that long is not
 * counted: nginx logs an error and skips the limit). LIMIT_KEY_BUF bytes
 * always suffice for limit_req.
 */
ssize_t limit_key_eval(const limit_key *key, limit_var_fn fn, void *arg,
	void *buf, size_t bufsize);

#endif
