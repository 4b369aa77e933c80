/*
 * replica_health: server lines' health checks while READY (replica_health.h).
 */
#include "config.h"

#include <stdio.h>

#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/probe.h"
#include "gateway/replica.h"
#include "gateway/replica_health.h"
#include "gateway/upstream.h"

void replica_health_free(struct replica *rep)
{
	probe_free(rep->hprobe);
	rep->hprobe = NULL;
}

static void health_cb(int ok, const char *why, void *arg)
{
	struct replica *rep = arg;
	char got[300];
	if (ok) {
		replica_health_free(rep);
		rep->hcheck_at = gw_now() + REPLICA_HEALTH_EVERY_S;
		return;
	}
	snprintf(got, sizeof(got), "health check failed: %s", why ? why : "?");
	replica_health_free(rep);
	replica_health_lost(rep, got);
}

void replica_health_tick(struct upstream *u, double now)
{
	for (int i = 0; i < u->nrep; i++) {
		struct replica *rep = &u->rep[i];
		if (!u->cf || !u->cf->nservers || rep->state != REPLICA_READY || gw.stopping) {
			replica_health_free(rep);
			rep->hcheck_at = now + REPLICA_HEALTH_EVERY_S;	/* the first check comes that long after READY */
			continue;
		}
		if (!rep->hprobe) {
			if (now < rep->hcheck_at)
				continue;
			rep->hcheck_at = now;
			rep->hprobe = probe_start(gw.base, u->cf, rep->url,
						  u->cf->health_path ? u->cf->health_path : "/v2/health/ready",
						  health_cb, rep);
			continue;	/* out of memory: the next tick tries again */
		}
		if (now - rep->hcheck_at < REPLICA_HEALTH_WINDOW_S)
			continue;
		char got[300], why[400];
		probe_describe(rep->hprobe, got, sizeof(got));
		snprintf(why, sizeof(why), "health check failed: no 200 in %gs (%s)", REPLICA_HEALTH_WINDOW_S, got);
		replica_health_free(rep);
		replica_health_lost(rep, why);
	}
}
