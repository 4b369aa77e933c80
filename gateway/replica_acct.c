/* replica_acct: a replica's metrics and store accounting (see replica_acct.h). */
#include "config.h"
#include "gateway/replica_acct.h"
#include "common/prom.h"
#include "gateway/gw.h"
#include "gateway/launch.h"
#include "gateway/metrics.h"
#include "gateway/replica.h"
#include "gateway/store.h"
#include "gateway/upstream.h"

#include <stdio.h>
#include <string.h>

void replica_acct_move(const struct replica *rep, const char *const *names, int nnames,
		       const char *from, const char *to, const char *cause)
{
	if (!gw.metrics)
		return;
	char labels[800], id[16];
	snprintf(id, sizeof(id), "%d", rep->id);
	for (int s = 0; s < nnames; s++) {
		prom_labels(labels, sizeof(labels), "upstream", rep->up->name, "replica", id, "state", names[s], NULL);
		metrics_set(gw.metrics, "wakegate_replica_state", labels, strcmp(names[s], to) == 0);
	}
	prom_labels(labels, sizeof(labels), "upstream", rep->up->name, "from", from, "to", to, "cause", cause, NULL);
	metrics_add(gw.metrics, "wakegate_replica_moves_total", labels, 1);
}

void replica_acct_time(struct replica *rep, double now, int flush)
{
	/* a pod counts while bound to its slot (k8s_watch.c): from its endpoint ready to its slot drained */
	int running = rep->launch ? rep->launch->ops->running(rep->launch) : rep->pod && replica_in(rep, RS_RUNNING);
	if (rep->acct_at > 0 && running) {
		double dt = now - rep->acct_at;
		int idle = rep->state == REPLICA_READY && rep->in_flight == 0;
		rep->gpu_s += dt;
		if (idle)
			rep->idle_s += dt;
		if (gw.metrics) {
			char labels[300];
			prom_labels(labels, sizeof(labels), "upstream", rep->up->name, NULL);
			metrics_add(gw.metrics, "wakegate_gpu_seconds_total", labels, dt);
			if (idle)
				metrics_add(gw.metrics, "wakegate_idle_seconds_total", labels, dt);
		}
	}
	rep->acct_at = now;
	if (flush || rep->gpu_s >= 10) {
		if (rep->gpu_s > 0)
			store_add(gw.store, rep->up->name, "gpu_seconds", rep->gpu_s);
		if (rep->idle_s > 0)
			store_add(gw.store, rep->up->name, "idle_seconds", rep->idle_s);
		rep->gpu_s = rep->idle_s = 0;
	}
}
