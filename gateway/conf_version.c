/*
 * conf_version: what a replica of an upstream runs and how long it may run
 * (issue 16).
 *   model_file PATH;       the model the launch command gets as $model_file:
 *                          PATH resolved (symlinks followed) at each start,
 *                          so flipping a symlink and reloading is a switch;
 *                          $model_version is the resolved file's name
 *                          without its extension
 *   recycle memory > SIZE | requests > N | age > TIME;
 *                          a READY replica that crosses one of the lines is
 *                          replaced warm-first (rollout.c); a line may be
 *                          given alone, or several joined by "|"
 * Both are "none" when absent: no default row text.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"

static int set_model_file(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	(void)cmd;
	(void)ac;
	if (!*av[0])
		return conf_error(p, "empty path in \"model_file\" directive");
	free(p->ups->model_file);
	p->ups->model_file = conf_path(p, av[0]);	/* relative: against the prefix, as commands run there */
	return 0;
}

/* "memory > 512m" may come as 3 words, or glued ("memory>512m", "memory >512m"). */
static int set_recycle(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	(void)cmd;
	struct conf_upstream *u = p->ups;
	char line[512] = "";
	for (int i = 0; i < ac; i++) {	/* back to one string, then split on '|' */
		if (strlen(line) + strlen(av[i]) + 2 >= sizeof(line))
			return conf_error(p, "\"recycle\" directive too long");
		strcat(line, av[i]);
		strcat(line, " ");
	}
	char *save = NULL;
	for (char *part = strtok_r(line, "|", &save); part; part = strtok_r(NULL, "|", &save)) {
		char what[32], val[64], extra[8];
		char *gt = strchr(part, '>');
		if (!gt)
			return conf_error(p, "invalid \"recycle\" condition \"%s\" (memory > SIZE, requests > N or "
					  "age > TIME)", part);
		*gt = ' ';
		if (sscanf(part, "%31s %63s %7s", what, val, extra) != 2)
			return conf_error(p, "invalid \"recycle\" condition (memory > SIZE, requests > N or age > TIME)");
		if (strcmp(what, "memory") == 0) {
			int64_t b = conf_parse_size(val);
			if (b <= 0)
				return conf_error(p, "invalid size \"%s\" in \"recycle memory\" (above 0, such as 2g)", val);
			u->recycle_memory = b;
		} else if (strcmp(what, "requests") == 0) {
			char *end;
			long long n = strtoll(val, &end, 10);
			if (*end || n <= 0)
				return conf_error(p, "invalid number \"%s\" in \"recycle requests\" (above 0)", val);
			u->recycle_requests = n;
		} else if (strcmp(what, "age") == 0) {
			int64_t ms = conf_parse_time(val);
			if (ms <= 0)
				return conf_error(p, "invalid time \"%s\" in \"recycle age\" (above 0, such as 12h)", val);
			u->recycle_age_ms = ms;
		} else {
			return conf_error(p, "unknown \"recycle\" measure \"%s\" (memory, requests or age)", what);
		}
	}
	return 0;
}

const struct conf_cmd conf_version_cmds[] = {
	{ "model_file", CONF_UPSTREAM, 0, 1, 1, set_model_file, 0, NULL },
	{ "recycle", CONF_UPSTREAM, CONF_MULTI, 1, 16, set_recycle, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL, 0, NULL },
};
