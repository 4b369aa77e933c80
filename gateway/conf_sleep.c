/*
 * conf_sleep: the sleep ladder of an upstream (issue 15).
 *   sleep level=1|2 after=TIME;   an idle READY replica sleeps at that level
 *                                 after TIME without activity (either or both)
 *   sleep_api vllm|triton;        how: vLLM's /sleep, /wake_up (the default,
 *                                 and what wakegate-worker serves), or Triton's
 *                                 model control (unload / load: level 2 only)
 * idle_timeout then stops the process as without sleep; conf_sleep_check()
 * (from conf_check) refuses a ladder whose steps come in the wrong order.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "gateway/conf_int.h"

int conf_set_sleep(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;
	int level = 0;
	int64_t after = -1;
	for (int i = 0; i < ac; i++) {
		if (strcmp(av[i], "level=1") == 0 || strcmp(av[i], "level=2") == 0)
			level = av[i][6] - '0';
		else if (strncmp(av[i], "after=", 6) == 0) {
			after = conf_parse_time(av[i] + 6);
			if (after <= 0)
				return conf_error(p, "invalid time \"%s\" in \"sleep\" directive (above 0, such as 30s)",
						  av[i] + 6);
		} else
			return conf_error(p, "invalid parameter \"%s\" in \"sleep\" directive "
					  "(sleep level=1|2 after=TIME)", av[i]);
	}
	if (!level)
		return conf_error(p, "no level=1 or level=2 in \"sleep\" directive");
	if (after < 0)
		return conf_error(p, "no after=TIME in \"sleep\" directive");
	if (u->sleep_after_ms[level])
		return conf_error(p, "\"sleep level=%d\" is given twice", level);
	u->sleep_after_ms[level] = after;
	return 0;
}

int conf_set_sleep_api(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (strcmp(av[0], "vllm") == 0)
		p->ups->sleep_api = CONF_SLEEP_API_VLLM;
	else if (strcmp(av[0], "triton") == 0)
		p->ups->sleep_api = CONF_SLEEP_API_TRITON;
	else
		return conf_error(p, "invalid value \"%s\" in \"sleep_api\" directive (vllm or triton)", av[0]);
	return 0;
}

int conf_sleep_check(struct conf_parse *p, struct conf_upstream *u)
{
	int64_t a1 = u->sleep_after_ms[1], a2 = u->sleep_after_ms[2];
	if (!a1 && !a2)
		return 0;
	if (a1 && a2 && a2 <= a1)
		return conf_error_at(p, u->file, u->line, "upstream \"%s\": sleep level=2 after= must come after "
				     "level=1 after=", u->name);
	if ((a2 ? a2 : a1) >= u->idle_timeout_ms)
		return conf_error_at(p, u->file, u->line, "upstream \"%s\": sleep level=%d after= must come before "
				     "idle_timeout, which stops the process", u->name, a2 ? 2 : 1);
	if (u->sleep_api == CONF_SLEEP_API_TRITON && a1)
		return conf_error_at(p, u->file, u->line, "upstream \"%s\": sleep_api triton has no level 1 "
				     "(Triton unloads and loads a model: use sleep level=2)", u->name);
	if (u->keepalive_adaptive)
		return conf_error_at(p, u->file, u->line, "upstream \"%s\": sleep and keepalive adaptive cannot be "
				     "combined yet (the ladder uses fixed times)", u->name);
	return 0;
}
