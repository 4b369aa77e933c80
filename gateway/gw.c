/*
 * gw: the daemon's shared pointers (see gw.h; the clock is common/clock.c). Its own file,
 * below every module, so that reading them makes no module depend on main.c.
 */
#include "config.h"
#include "gateway/gw.h"

struct gw gw;
