/*
 * fleet: one replica slot, one gateway running it, across the gateways that
 * share a Redis (see fleet.h for the protocol). Every Redis call is async;
 * its answer is checked against the replica's state at the time it comes,
 * because the replica may have moved meanwhile.
 */
#include "config.h"
#include "common/url.h"
#include "gateway/fleet.h"
#include "gateway/fleet_peers.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/proxy.h"
#include "gateway/store.h"
#include "gateway/tls.h"
#include "gateway/upstream.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLEET_POLL_S 0.2
#define FLEET_TTL_MIN_MS 1000

static char fleet_token[24];	/* this gateway's id in lock values */

/* A random id per process, made on first use. */
const char *fleet_id(void)
{
	if (fleet_token[0])
		return fleet_token;
	unsigned char b[8];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b)) {
		unsigned long x = (unsigned long)random() ^ ((unsigned long)getpid() << 16) ^ (unsigned long)gw_wall_ms();
		memcpy(b, &x, sizeof(b) < sizeof(x) ? sizeof(b) : sizeof(x));
	}
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(fleet_token + 2 * i, 3, "%02x", b[i]);
	return fleet_token;
}

static int fleet_on(void)
{
	return store_enabled(gw.store);
}

/* The lock's expiry; at least 1s, so that renewals on the 100ms tick come well before it. */
static int64_t fleet_ttl(const struct upstream *u)
{
	int64_t ttl = u->p.lock_ttl_ms;
	return ttl < FLEET_TTL_MIN_MS ? FLEET_TTL_MIN_MS : ttl;
}

/* "TOKEN STATE URL TTL" for the replica as it is now; TTL tells the others when a renewal is late. */
static void fleet_value(const struct replica *rep, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s %s %lld", fleet_id(), replica_state_name(rep->state),
		 rep->url[0] && rep->state != REPLICA_STOPPED ? rep->url : "-", (long long)fleet_ttl(rep->up));
}

/* A remote replica this gateway no longer routes to: DRAINING until its requests end, then STOPPED. */
static void fleet_unmirror(struct replica *rep, const char *why)
{
	if (!rep->remote)
		return;
	replica_remote_end(rep, why);
	if (!rep->remote)
		rep->lock = FLEET_LOCK_NONE;
}

/*
 * Follows the holder's value: BOOTING/WARMING -> BOOTING, READY -> READY with
 * a pool, else gone. A holder late to renew (less than 40% of its TTL left,
 * where a live one renews at 67%) has probably died, and its worker with it:
 * requests are held rather than sent there, until it renews or the lock expires.
 */
static void fleet_mirror(struct replica *rep, const char *value, int64_t pttl)
{
	struct upstream *u = rep->up;
	char tok[64] = "", st[32] = "", url[sizeof(rep->url)] = "";
	long long ttl = 0;
	if (value && sscanf(value, "%63s %31s %63s %lld", tok, st, url, &ttl) < 2)
		value = NULL;
	if (value && strcmp(tok, fleet_id()) == 0)
		value = NULL;	/* our own, left from before: not a replica to follow */
	int late = value && ttl > 0 && pttl >= 0 && pttl * 10 < ttl * 4;
	/* a replica the holder put to sleep is followed as one on its way up: requests here wait for
	 * the holder to wake it (its own traffic does; this gateway's does not yet: see wakegate.conf(5)) */
	int booting = value && (strcmp(st, "BOOTING") == 0 || strcmp(st, "WARMING") == 0 ||
				strcmp(st, "WAKING") == 0 || strncmp(st, "ASLEEP", 6) == 0 ||
				(late && strcmp(st, "READY") == 0));
	int ready = value && !late && strcmp(st, "READY") == 0;
	char host[64];
	int port;
	if (ready && url_split(url, host, sizeof(host), &port, NULL) < 0) {
		log_warn("upstream \"%s\" replica %d: another gateway published a URL this one cannot use: \"%s\"",
			 u->name, rep->id, url);
		ready = 0;
	}
	if (ready && !fleet_peer_allowed(gw.conf, u->name, rep->id, url, host))
		ready = 0;	/* outside fleet_peers: as if nobody ran it */
	if (ready && rep->remote && rep->state == REPLICA_READY && strcmp(url, rep->url) == 0)
		return;
	if (rep->remote && rep->state == REPLICA_READY) {
		fleet_unmirror(rep, late ? "the gateway running it is late to renew its lock" :
			       "another gateway stopped it");
		return;		/* the next need follows the holder afresh */
	}
	if (ready) {
		if (rep->pool && rep->in_flight)
			return;		/* the old pool still serves: look again next poll */
		/* an https replica another gateway runs is reached over TLS too */
		struct proxy_pool *pool = rep->up->cf ? tls_pool_new(gw.base, rep->up->cf, url, host, port) :
					  proxy_pool_new(gw.base, host, port);
		if (!pool)
			return;
		char why[160];
		snprintf(why, sizeof(why), "another gateway runs it on %s", url);
		if (replica_remote_ready(rep, url, pool, why) < 0)
			proxy_pool_free(pool);
		return;		/* dispatch.c hears of the move and drains the held requests */
	}
	if (booting) {
		if (rep->remote)
			return;		/* BOOTING already, or DRAINING: let it finish first */
		replica_remote_booting(rep, strcmp(url, "-") ? url : "",
				       late ? "the gateway running it is late to renew its lock, waiting" :
				       "another gateway is starting it, waiting for it");
		return;
	}
	fleet_unmirror(rep, value ? "another gateway stops it" : "no gateway runs it any more");
}

/* Whether a claim's answer still matters: the replica is still down and wanted. */
static int fleet_wanted(const struct replica *rep)
{
	return (rep->state == REPLICA_STOPPED || rep->state == REPLICA_FAILED) && !rep->launch &&
	       !rep->remote && rep->up->cf && !gw.stopping;
}

static void fleet_claim_cb(int status, const char *value, int64_t pttl, void *arg)
{
	struct replica *rep = arg;
	struct upstream *u = rep->up;
	rep->lock_pending = 0;
	rep->lock_at = gw_now();
	if (!fleet_wanted(rep)) {
		if (status == 1)
			store_lock_release(gw.store, u->name, rep->id, fleet_id());
		return;
	}
	if (status == 1) {
		rep->lock = FLEET_LOCK_OWNED;
		log_info("upstream \"%s\" replica %d: took the lock, starting it here", u->name, rep->id);
		replica_wake(rep, rep->wake_cause);
		return;
	}
	if (status < 0) {
		rep->lock = FLEET_LOCK_ALONE;
		log_warn("upstream \"%s\" replica %d: redis did not answer, starting it without the lock",
			 u->name, rep->id);
		replica_wake(rep, rep->wake_cause);
		return;
	}
	if (!value)
		return;		/* not an answer the script gives: ask again on the next tick */
	fleet_mirror(rep, value, pttl);
}

int fleet_claim(struct replica *rep)
{
	if (!fleet_on() || rep->lock != FLEET_LOCK_NONE)
		return 1;
	if (rep->lock_pending)
		return 0;
	struct upstream *u = rep->up;
	if (!store_connected(gw.store)) {
		rep->lock = FLEET_LOCK_ALONE;
		log_warn("upstream \"%s\" replica %d: redis is away, starting it without the lock", u->name, rep->id);
		return 1;
	}
	char v[128];
	snprintf(v, sizeof(v), "%s BOOTING - %lld", fleet_id(), (long long)fleet_ttl(u));
	rep->lock_pending = 1;
	store_lock_acquire(gw.store, u->name, rep->id, v, fleet_ttl(u), fleet_claim_cb, rep);
	return 0;	/* the answer wakes it, even when it came already */
}

/* Renew answer: a lost lock means another gateway may run this slot now: stop ours. */
static void fleet_renew_cb(int status, const char *value, int64_t pttl, void *arg)
{
	(void)pttl;
	struct replica *rep = arg;
	struct upstream *u = rep->up;
	rep->lock_pending = 0;
	if (rep->lock != FLEET_LOCK_OWNED || status != 0)
		return;
	if (!value) {
		/* expired with nobody else on it (Redis restarted, or a long stall): take it again */
		char v[256];
		fleet_value(rep, v, sizeof(v));
		rep->lock_pending = 1;
		store_lock_acquire(gw.store, u->name, rep->id, v, fleet_ttl(u), fleet_renew_cb, rep);
		return;
	}
	log_error("upstream \"%s\" replica %d: lost its lock to another gateway (%s), stopping it here",
		  u->name, rep->id, value);
	rep->lock = FLEET_LOCK_NONE;
	replica_drain(rep, CAUSE_FLEET_PEER, "lost its lock to another gateway");
}

/* After every state move: publishes it in the lock, or releases the lock. */
static void fleet_on_move(struct replica *rep, const struct replica_change *ch, void *arg)
{
	(void)arg;
	if (ch->event != REPLICA_EV_MOVE || !fleet_on() || rep->remote)
		return;
	struct upstream *u = rep->up;
	int down = rep->state == REPLICA_STOPPED || rep->state == REPLICA_FAILED;
	if (rep->lock == FLEET_LOCK_ALONE && down)
		rep->lock = FLEET_LOCK_NONE;
	if (rep->lock != FLEET_LOCK_OWNED)
		return;
	if (down) {
		store_lock_release(gw.store, u->name, rep->id, fleet_id());
		rep->lock = FLEET_LOCK_NONE;
		return;
	}
	char v[256];
	fleet_value(rep, v, sizeof(v));
	store_lock_renew(gw.store, u->name, rep->id, fleet_id(), v, fleet_ttl(u), NULL, NULL);
	rep->lock_at = gw_now();
}

static void fleet_poll_cb(int status, const char *value, int64_t pttl, void *arg)
{
	struct replica *rep = arg;
	rep->lock_pending = 0;
	if (!rep->remote || status < 0)
		return;		/* Redis away: keep following what we knew */
	fleet_mirror(rep, value, pttl);
}

int fleet_tick(struct replica *rep, double now)
{
	if (!fleet_on())
		return 0;
	struct upstream *u = rep->up;
	if (rep->remote) {
		if ((gw.stopping || !u->cf) && replica_in(rep, RS_UP))
			replica_move(rep, REPLICA_DRAINING, gw.stopping ? CAUSE_SHUTDOWN : CAUSE_RELOAD,
				     gw.stopping ? "shutting down" : "upstream removed");
		if (rep->state == REPLICA_DRAINING) {
			if (rep->in_flight == 0)
				fleet_unmirror(rep, "its last request here ended");
			return 1;
		}
		if (!rep->lock_pending && now - rep->lock_at >= FLEET_POLL_S) {
			rep->lock_at = now;
			rep->lock_pending = 1;
			store_lock_get(gw.store, u->name, rep->id, fleet_poll_cb, rep);
		}
		return 1;
	}
	if (rep->lock == FLEET_LOCK_OWNED && !rep->lock_pending &&
	    (now - rep->lock_at) * 1000 >= (double)fleet_ttl(u) / 3) {
		char v[256];
		fleet_value(rep, v, sizeof(v));
		rep->lock_at = now;
		rep->lock_pending = 1;
		store_lock_renew(gw.store, u->name, rep->id, fleet_id(), v, fleet_ttl(u), fleet_renew_cb, rep);
	}
	return 0;
}

void fleet_init(void)
{
	replica_subscribe(fleet_on_move, NULL);
	replica_add_gate(fleet_claim);
}

void fleet_replica_free(struct replica *rep)
{
	if (!gw.store)
		return;
	store_cancel(gw.store, rep);
	rep->lock_pending = 0;
	if (rep->lock == FLEET_LOCK_OWNED)
		store_lock_release(gw.store, rep->up->name, rep->id, fleet_id());
	rep->lock = FLEET_LOCK_NONE;
}
