/*
 * gw: the few things the whole daemon shares: the loop, the conf now in
 * force, the metrics registry and the store (defined in gw.c). main.c owns
 * all of them; other modules only read these pointers (a reload swaps gw.conf).
 */
#ifndef WG_GW_H
#define WG_GW_H

#include <stdint.h>

#include "common/clock.h"

struct event_base;
struct conf;
struct metrics;
struct store;

struct gw {
	struct event_base *base;
	struct conf *conf;
	struct metrics *metrics;
	struct store *store;
	int stopping;		/* SIGTERM/SIGQUIT seen: no new work */
};

extern struct gw gw;

#endif
