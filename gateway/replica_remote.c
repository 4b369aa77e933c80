/*
 * replica_remote: the mirrors of replicas another gateway runs (fleet.c
 * asks, see replica.h). They move through replica_move() like any replica;
 * they own a pool to the holder's URL while READY, never a process.
 */
#include "config.h"
#include "gateway/replica.h"
#include "gateway/replica_int.h"
#include "gateway/gw.h"
#include "gateway/proxy.h"

#include <stdio.h>

int replica_remote_ready(struct replica *rep, const char *url, struct proxy_pool *pool, const char *why)
{
	struct proxy_pool *old = rep->pool;
	int was_remote = rep->remote;
	rep->pool = pool;
	rep->remote = 1;
	snprintf(rep->url, sizeof(rep->url), "%s", url);
	rep->t_ready = gw_now();
	rep->busy_at = rep->t_ready;
	if (replica_move(rep, REPLICA_READY, CAUSE_FLEET_PEER, "%s", why) < 0) {
		rep->pool = old;
		rep->remote = was_remote;
		return -1;
	}
	if (old)
		proxy_pool_free(old);
	return 0;
}

int replica_remote_booting(struct replica *rep, const char *url, const char *why)
{
	rep->remote = 1;
	snprintf(rep->url, sizeof(rep->url), "%s", url);
	rep->t_start = gw_now();
	return replica_move(rep, REPLICA_BOOTING, CAUSE_FLEET_PEER, "%s", why);
}

void replica_remote_end(struct replica *rep, const char *why)
{
	if (!rep->remote)
		return;
	if (rep->in_flight) {
		if (rep->state != REPLICA_DRAINING)
			replica_move(rep, REPLICA_DRAINING, CAUSE_FLEET_PEER, "%s", why);
		return;
	}
	replica_pool_free(rep);
	if (rep->state != REPLICA_STOPPED)
		replica_move(rep, REPLICA_STOPPED, CAUSE_FLEET_PEER, "%s", why);	/* still remote: the holder's record stays */
	rep->remote = 0;
}
