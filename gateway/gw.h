/*
 * gw: the few things the whole daemon shares: the loop, the conf now in
 * force, the metrics registry and the store. The global is defined in gw.c;
 * main.c fills and frees what it points to; other modules only read these
 * pointers (a reload swaps gw.conf). The clock is the lower layer's.
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
