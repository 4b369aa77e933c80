/*
 * launch: picks the driver the conf names. The top of the launcher files:
 * it calls the drivers, and no driver calls it (what they share is below
 * them, in launch_proc.c).
 */
#include "config.h"
#include "gateway/launch.h"
#include "gateway/conf.h"
#include "gateway/launch_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct launch *launch_new(struct event_base *base, const struct conf_upstream *cf,
			  const char *prefix, launch_exit_cb on_exit, void *arg,
			  char *err, size_t errlen)
{
	const char *kind = cf->launch_kind;
	struct launch *l = NULL;
	snprintf(err, errlen, "cannot set up the launcher");
	/* SIGCHLD is watched before any driver can fork: no exit goes unseen */
	if (launch_proc_init(base) < 0) {
		snprintf(err, errlen, "cannot watch SIGCHLD");
		return NULL;
	}
	if (!kind || strcmp(kind, CONF_LAUNCH_EXEC) == 0) {
		if (!cf->launch_cmd || !*cf->launch_cmd) {
			snprintf(err, errlen, "no launch command");
			return NULL;
		}
		l = launch_exec_new(base, cf->launch_cmd, prefix);
	} else if (strcmp(kind, CONF_LAUNCH_COMMAND) == 0) {
		l = launch_command_new(base, cf, prefix, err, errlen);
	} else if (strcmp(kind, CONF_LAUNCH_HTTP) == 0) {
		l = launch_http_new(base, cf, err, errlen);
	} else if (strcmp(kind, CONF_LAUNCH_KUBERNETES) == 0) {
		l = launch_k8s_new(base, cf, err, errlen);
	} else if (strcmp(kind, CONF_LAUNCH_SERVER) == 0) {
		l = launch_server_new(base, cf, err, errlen);
	} else {
		snprintf(err, errlen, "launch driver \"%s\" is not available", kind);
		return NULL;
	}
	if (!l)
		return NULL;
	l->on_exit = on_exit;
	l->arg = arg;
	l->why[0] = 0;
	/* a copy: a reload may free cf while the replica runs */
	l->env = cf->nenv ? calloc(cf->nenv, sizeof(*l->env)) : NULL;
	for (size_t i = 0; l->env && i < cf->nenv; i++)
		if ((l->env[i] = strdup(cf->env[i])))
			l->nenv = i + 1;
	return l;
}

void launch_free(struct launch *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nenv; i++)
		free(l->env[i]);
	free(l->env);
	l->ops->free(l);
}
