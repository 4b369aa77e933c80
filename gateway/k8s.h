/*
 * k8s: a kubernetes upstream with "launch kubernetes ... service=NAME": its
 * replica slots are bound to the Service's pods rather than to processes.
 *
 *   k8s_watch.c  lists, then watches, the Service's EndpointSlices
 *                (discovery.k8s.io/v1) and binds each ready endpoint to a
 *                free slot (replica_pod_bind: BOOTING -> health -> WARMING,
 *                the gateway's own warmup -> READY); an endpoint not ready,
 *                terminating or gone drains its slot (CAUSE_ENDPOINT).
 *   k8s_fleet.c  several gateways on one Redis: each publishes its held +
 *                in-flight count; one of them (a lock) writes the count
 *                from the sum.
 *   k8s_scale.c  the count the gateway's rules want (held + in flight over
 *                target_concurrency, min_warm and replicas min=, 0 after
 *                idle_timeout, lowered only after scale_down_cooldown),
 *                PATCHed to the Deployment's scale subresource when it
 *                changes; Retry-After on 409/429, backoff on other errors.
 *
 * Ownership: u->k8s is this module's, made by k8s_tick on first use and
 * freed by k8s_free (upstream.c's free hook). It owns its curl loop and
 * the calls in flight; every URL and body is made from u->cf at call time,
 * so a reload may free the conf between calls.
 */
#ifndef WG_K8S_H
#define WG_K8S_H

#include <jansson.h>

#include "gateway/k8s_rule.h"

struct upstream;
struct cloop;
struct k8s_call;
struct metrics;

struct k8s_up {
	struct cloop *loop;
	char key[600];			/* api + namespace + service + deployment the state below is for */
	/* k8s_watch.c */
	struct k8s_call *list_call, *watch_call;
	char rv[64];			/* the last resourceVersion seen; "": list (again) */
	json_t *slices;			/* metadata.name -> the EndpointSlice, as last listed or watched */
	char *line;			/* a watch event not complete yet */
	size_t line_len;
	int relist;			/* the watch said 410 Gone: list again */
	int gone_streak;		/* 410s with no event between: the next list waits (a server that keeps saying it) */
	int fails;			/* list or watch failures in a row, for the backoff */
	double retry_at;		/* no list or watch before (gw_now) */
	int synced;			/* a list succeeded once: the slices are known */
	int warned_full;		/* "more ready pods than slots" is logged */
	/* k8s_scale.c */
	struct k8s_call *patch_call;
	struct k8s_rule_state rule;	/* the count decided (rule.want; -1: none yet) and its cooldown */
	int patched;			/* the count the API server last accepted; -1: not known */
	int sending;			/* the count of the PATCH in flight */
	double started;			/* the first tick (gw_now): the idle timer counts from here at the latest */
	double patch_retry_at;		/* no PATCH before (gw_now): Retry-After or backoff */
	int patch_fails;
	unsigned long patches;		/* accepted PATCHes */
	/* k8s_fleet.c: several gateways, one writer of the count (see there) */
	struct upstream *u;
	int writer;			/* K8S_WRITER_*: whether this gateway PATCHes */
	int lock_pending, read_pending, patched_pending;
	double lock_at, share_at, read_at;
	int peer_load;			/* held + in flight at the other gateways (fresh entries) */
	int peers;			/* other gateways with a fresh entry */
	int64_t peer_activity_ms;	/* their newest activity, wall clock; 0: none */
	int warned_alone;
	char refused[400];		/* the API server refused the last PATCH for good (4xx but 409/429); "" once told */
	int restart;			/* the writer changed: k8s_scale.c starts afresh from taken_count */
	int taken_count;		/* the count last accepted, as Redis had it when the lock was taken; -1: none */
};

enum { K8S_WRITER_NOT, K8S_WRITER_LOCK, K8S_WRITER_ALONE };

/* Every tick (upstream.c), for an upstream with service=: watch, bind and drain slots, scale. */
void k8s_tick(struct upstream *u, double now);
/*
 * When the API server refused the count for good (401, 403, 404, 422 ...),
 * its message, once (the next refusal is told again): upstream.c answers
 * the held requests with it when nothing is up to take them. NULL: none.
 */
const char *k8s_refused(struct upstream *u);
/* Frees u->k8s: calls in flight are dropped (the upstream is being freed). */
void k8s_free(struct upstream *u);
/* /status's "kubernetes" of u: the count wanted and accepted, patches, the resourceVersion; NULL when none. */
json_t *k8s_status_json(const struct upstream *u);
void k8s_metrics_declare(struct metrics *m);

/* k8s_watch.c's and k8s_scale.c's halves of k8s_tick. */
void k8s_watch_tick(struct upstream *u, struct k8s_up *k, double now);
void k8s_watch_reset(struct k8s_up *k);
void k8s_scale_tick(struct upstream *u, struct k8s_up *k, double now);
void k8s_scale_reset(struct k8s_up *k);
/* k8s_fleet.c: shares this gateway's load, keeps or seeks the writer's lock; reads the others' load (writer). */
void k8s_fleet_tick(struct upstream *u, struct k8s_up *k, double now, int own_load);
/* After an accepted PATCH: the count, for the next writer. */
void k8s_fleet_patched(struct k8s_up *k);
/* Drops pending Redis answers and lets the writer's lock go. */
void k8s_fleet_reset(struct k8s_up *k);

#endif
