/*
 * conf_scale: scaling like the seed (issue 16), upstream directives beside
 * replicas, target_concurrency and scale_p99 (conf_upstream.c):
 *   scale_on GAUGE > V [for T] [every=T];  one more replica once the mean of
 *                                          GAUGE over the READY replicas'
 *                                          /metrics stayed above V for T
 *   scale_down_cooldown T;                 no scale-down for T after a scale-up
 *   headroom P%;                           scale up at target_concurrency less P%
 * gpu_util is the bundled worker's wakegate_worker_busy_ratio; any other
 * name is read as written (a vLLM or Triton gauge). "70%" compares with a
 * ratio (0.7); a bare number compares as the backend writes the gauge.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"

#define SCALE_ON_FOR_MS 120000		/* the seed's "for 2 minutes" when "for" is left out */
#define SCALE_ON_EVERY_MS 5000		/* /metrics read every 5s when every= is left out */

/* "70%" into 0.7, "0.8" or "300" as written; -1 when neither. */
static int threshold(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v < 0)
		return -1;
	if (*end == '%' && !end[1]) {
		*out = v / 100;
		return 0;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int valid_gauge(const char *s)
{
	/* Prometheus' metric names: [a-zA-Z_:][a-zA-Z0-9_:]* */
	if (!*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == ':'))
			return 0;
	return 1;
}

/* scale_on GAUGE > V [for T] [every=T] */
static int set_scale_on(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;
	const char *gauge = strcmp(av[0], "gpu_util") == 0 ? "wakegate_worker_busy_ratio" : av[0];
	if (!valid_gauge(gauge))
		return conf_error(p, "invalid gauge name \"%s\" in \"scale_on\" directive", av[0]);
	if (strcmp(av[1], ">") != 0)
		return conf_error(p, "invalid operator \"%s\" in \"scale_on\" directive (scale_on GAUGE > VALUE [for TIME])",
				  av[1]);
	if (threshold(av[2], &u->scale_on_above) < 0)
		return conf_error(p, "invalid value \"%s\" in \"scale_on\" directive (such as 70%% or 0.7)", av[2]);
	u->scale_on_for_ms = SCALE_ON_FOR_MS;
	u->scale_on_every_ms = SCALE_ON_EVERY_MS;
	for (int i = 3; i < ac; i++) {
		if (strcmp(av[i], "for") == 0) {
			if (++i == ac)
				return conf_error(p, "no time after \"for\" in \"scale_on\" directive");
			u->scale_on_for_ms = conf_parse_time(av[i]);
			if (u->scale_on_for_ms < 0)
				return conf_error(p, "invalid time \"%s\" in \"scale_on\" directive", av[i]);
		} else if (strncmp(av[i], "every=", 6) == 0) {
			u->scale_on_every_ms = conf_parse_time(av[i] + 6);
			if (u->scale_on_every_ms < 100)
				return conf_error(p, "invalid time \"%s\" in \"scale_on\" directive (every= at least 100ms)",
						  av[i] + 6);
		} else {
			return conf_error(p, "invalid parameter \"%s\" in \"scale_on\" directive", av[i]);
		}
	}
	free(u->scale_on_gauge);
	u->scale_on_gauge = conf_xstrdup(gauge);
	return 0;
}

static int set_scale_down_cooldown(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	p->ups->scale_down_cooldown_ms = conf_parse_time(av[0]);
	if (p->ups->scale_down_cooldown_ms < 0)
		return conf_error(p, "invalid time \"%s\" in \"scale_down_cooldown\" directive", av[0]);
	return 0;
}

static int set_headroom(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	char *end;
	long v = strtol(av[0], &end, 10);
	if (end == av[0] || strcmp(end, "%") != 0 || v < 0 || v > 90)
		return conf_error(p, "invalid value \"%s\" in \"headroom\" directive (0%% to 90%%)", av[0]);
	p->ups->headroom_pct = (int)v;
	return 0;
}

void conf_scale_upstream_free(struct conf_upstream *u)
{
	free(u->scale_on_gauge);
	u->scale_on_gauge = NULL;
}

const struct conf_cmd conf_scale_cmds[] = {
	{ "scale_on", CONF_UPSTREAM, 0, 3, 7, set_scale_on, 0, NULL },
	{ "scale_down_cooldown", CONF_UPSTREAM, 0, 1, 1, set_scale_down_cooldown, 0, "0s" },
	{ "headroom", CONF_UPSTREAM, 0, 1, 1, set_headroom, 0, "0%" },
	{ NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
