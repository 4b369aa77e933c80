/*
 * gw: the daemon's shared pointers and its clock (see gw.h). Its own file,
 * below every module, so that reading them makes no module depend on main.c.
 */
#include "config.h"
#include "gateway/gw.h"

#include <time.h>

struct gw gw;

double gw_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t gw_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
