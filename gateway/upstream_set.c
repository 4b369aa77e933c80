/*
 * upstream_set: the list of upstreams and the lookups every module may make
 * on it. It calls nothing of the gateway's but the metrics escaper, so any
 * module can use it without a loop (upstream.c makes and frees the members).
 */
#include "config.h"
#include "gateway/upstream.h"
#include "gateway/conf.h"
#include "gateway/metrics.h"

#include <math.h>

#include <stdio.h>
#include <string.h>

static struct upstream *all;

struct upstream *upstream_list(void)
{
	return all;
}

struct upstream *upstream_find(const char *name)
{
	for (struct upstream *u = all; u; u = u->next)
		if (u->cf && strcmp(u->name, name) == 0)
			return u;
	return NULL;
}

void upstream_set_add(struct upstream *u)
{
	u->next = all;
	all = u;
}

void upstream_set_remove(struct upstream *u)
{
	for (struct upstream **pp = &all; *pp; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			return;
		}
}

/* Every request asks for one or two of these: they are made once and kept in u. */
const char *upstream_label(struct upstream *u, int status)
{
	if (!u->label[0])
		prom_labels(u->label, sizeof(u->label), "upstream", u->name, NULL);
	if (status <= 0)
		return u->label;
	if (u->label_code_n != status) {
		size_t n = strlen(u->label);	/* < 300, so the code always fits */
		memcpy(u->label_code, u->label, n);
		snprintf(u->label_code + n, sizeof(u->label_code) - n, ",code=\"%d\"", status);
		u->label_code_n = status;
	}
	return u->label_code;
}

int upstream_eta_s(const struct upstream *u)
{
	for (int level = 1; level <= 2; level++)
		for (int i = 0; i < u->nrep; i++)
			if (u->rep[i].state == (level == 1 ? REPLICA_ASLEEP1 : REPLICA_ASLEEP2) && u->wake_s[level] > 0) {
				int s = (int)ceil(u->wake_s[level] + (u->cf && !u->cf->warmup.off ? u->warm_s : 0));
				return s < 1 ? 1 : s;
			}
	if (u->boot_s <= 0)
		return UPSTREAM_DEFAULT_ETA_S;
	int s = (int)ceil(u->boot_s + u->warm_s);
	return s < 1 ? 1 : s;
}

struct replica *upstream_pick_wake(struct upstream *u, double now)
{
	struct replica *best = NULL;
	int best_rank = 0;
	for (int i = 0; i < u->nrep; i++) {
		int r = replica_wake_rank(&u->rep[i], now);
		if (r && (!best || r < best_rank)) {
			best = &u->rep[i];
			best_rank = r;
		}
	}
	return best;
}
