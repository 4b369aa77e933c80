/*
 * gw: the daemon's one global (see gw.h). Its own file so that a module
 * that reads gw.conf or gw.base depends on this, not on main.c.
 */
#include "config.h"
#include "gateway/gw.h"

struct gw gw;
