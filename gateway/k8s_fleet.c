/*
 * k8s_fleet: several gateways in front of one Deployment (see k8s.h). Each
 * writes its own held + in-flight count and newest activity to
 *   PREFIX k8s:UPSTREAM  HASH  TOKEN -> "LOAD ACTIVITY_MS WALL_MS"
 * every K8S_SHARE_S; Redis hash fields have no expiry of their own, so
 * WALL_MS is the TTL: the writer ignores (and deletes) an entry older than
 * K8S_STALE_MS, a gateway that died. One gateway writes the count: the one
 * holding PREFIX lock:UPSTREAM:scale (SET NX PX lock_ttl, renewed every
 * lock_ttl/3, store_lock.c). It scales on the sum of every fresh entry and
 * its own live count, and keeps the count the API server last accepted in
 * PREFIX k8s:UPSTREAM:patched, so that a gateway that takes over sends
 * nothing until the count must change. Without Redis, or while it is away,
 * a gateway writes the count alone (logged once).
 */
#include "config.h"
#include "gateway/k8s.h"
#include "gateway/conf.h"
#include "gateway/fleet.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/store.h"
#include "gateway/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K8S_SHARE_S	0.2
#define K8S_STALE_MS	2000
#define K8S_LOCK_MIN_MS	1000

static int64_t lock_ttl(const struct upstream *u)
{
	return u->p.lock_ttl_ms < K8S_LOCK_MIN_MS ? K8S_LOCK_MIN_MS : u->p.lock_ttl_ms;
}

static void share_key(const struct upstream *u, char *out, size_t len)
{
	snprintf(out, len, "k8s:%s", u->name);
}

static void patched_cb(const char *value, void *arg)
{
	struct k8s_up *k = arg;
	k->patched_pending = 0;
	if (k->writer != K8S_WRITER_LOCK)
		return;
	char *end;
	long n = value ? strtol(value, &end, 10) : -1;
	k->taken_count = value && end != value && n >= 0 && n <= 1000 ? (int)n : -1;
	log_notice("upstream \"%s\": kubernetes: this gateway writes the Deployment's count now (last accepted: %s)",
		   k->u->name, value ? value : "none");
}

static void lock_cb(int status, const char *value, int64_t pttl, void *arg)
{
	(void)pttl;
	struct k8s_up *k = arg;
	struct upstream *u = k->u;
	k->lock_pending = 0;
	k->lock_at = gw_now();
	if (status < 0)
		return;		/* no answer: the tick decides from store_connected */
	if (status == 1) {
		if (k->writer != K8S_WRITER_LOCK) {
			k->writer = K8S_WRITER_LOCK;
			k->restart = 1;		/* a fresh start from the count in Redis */
			k->taken_count = -1;
			k->patched_pending = 1;
			char key[300];
			share_key(u, key, sizeof(key));
			strncat(key, ":patched", sizeof(key) - strlen(key) - 1);
			store_get(gw.store, key, patched_cb, k);
		}
		return;
	}
	if (k->writer != K8S_WRITER_NOT) {
		log_notice("upstream \"%s\": kubernetes: another gateway writes the Deployment's count (%s)", u->name,
			   value ? value : "?");
		k->restart = 1;
	}
	k->writer = K8S_WRITER_NOT;
}

static void read_cb(const char *const *fields, const char *const *values, int n, void *arg)
{
	struct k8s_up *k = arg;
	k->read_pending = 0;
	int64_t wall = gw_wall_ms();
	int load = 0, peers = 0;
	int64_t act = 0;
	char key[300];
	share_key(k->u, key, sizeof(key));
	for (int i = 0; i < n; i++) {
		if (strcmp(fields[i], fleet_id()) == 0)
			continue;	/* ours: the live count is used */
		long l = 0;
		long long a = 0, w = 0;
		if (sscanf(values[i], "%ld %lld %lld", &l, &a, &w) != 3 || wall - w > K8S_STALE_MS) {
			store_hdel(gw.store, key, fields[i]);	/* a gateway that died */
			continue;
		}
		load += l > 0 ? (int)l : 0;
		peers++;
		if (a > act)
			act = a;
	}
	k->peer_load = load;
	k->peers = peers;
	k->peer_activity_ms = act;
}

void k8s_fleet_tick(struct upstream *u, struct k8s_up *k, double now, int own_load)
{
	k->u = u;
	if (!store_enabled(gw.store)) {
		k->writer = K8S_WRITER_ALONE;
		k->peer_load = k->peers = 0;
		return;
	}
	if (!store_connected(gw.store)) {
		if (k->writer != K8S_WRITER_ALONE && !k->warned_alone)
			log_warn("upstream \"%s\": kubernetes: redis is away, writing the Deployment's count alone", u->name);
		k->warned_alone = 1;
		k->writer = K8S_WRITER_ALONE;
		k->peer_load = k->peers = 0;
		return;
	}
	k->warned_alone = 0;
	char key[300];
	share_key(u, key, sizeof(key));
	if (now - k->share_at >= K8S_SHARE_S) {
		char v[96];
		k->share_at = now;
		snprintf(v, sizeof(v), "%d %lld %lld", own_load, (long long)u->last_activity_ms, (long long)gw_wall_ms());
		store_hset(gw.store, key, fleet_id(), v);
	}
	if (!k->lock_pending) {
		double every = k->writer == K8S_WRITER_LOCK ? (double)lock_ttl(u) / 3000 : 0.5;
		if (now - k->lock_at >= every) {
			char v[64];
			snprintf(v, sizeof(v), "%s scale", fleet_id());
			k->lock_pending = 1;
			if (k->writer == K8S_WRITER_LOCK)
				store_lock_renew(gw.store, u->name, STORE_LOCK_SCALE, fleet_id(), v, lock_ttl(u), lock_cb, k);
			else
				store_lock_acquire(gw.store, u->name, STORE_LOCK_SCALE, v, lock_ttl(u), lock_cb, k);
		}
	}
	if (k->writer == K8S_WRITER_LOCK && !k->read_pending && now - k->read_at >= K8S_SHARE_S) {
		k->read_at = now;
		k->read_pending = 1;
		store_hgetall(gw.store, key, read_cb, k);
	}
}

void k8s_fleet_patched(struct k8s_up *k)
{
	if (k->writer != K8S_WRITER_LOCK || !k->u)
		return;
	char key[300], v[32];
	share_key(k->u, key, sizeof(key));
	strncat(key, ":patched", sizeof(key) - strlen(key) - 1);
	snprintf(v, sizeof(v), "%d", k->patched);
	store_set(gw.store, key, v);
}

void k8s_fleet_reset(struct k8s_up *k)
{
	if (gw.store) {
		store_cancel(gw.store, k);
		if (k->writer == K8S_WRITER_LOCK && k->u)
			store_lock_release(gw.store, k->u->name, STORE_LOCK_SCALE, fleet_id());
	}
	k->lock_pending = k->read_pending = k->patched_pending = 0;
	k->writer = K8S_WRITER_NOT;
	k->peer_load = k->peers = 0;
	k->peer_activity_ms = 0;
}
