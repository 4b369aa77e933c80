/*
 * launch: picks the driver the conf names and owns the few helpers the
 * drivers share (the replica URL's host and port).
 */
#include "config.h"
#include "gateway/launch.h"
#include "gateway/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int launch_url_split(const char *url, char *host, size_t hostlen, int *port)
{
	int https = strncmp(url, "https://", 8) == 0;	/* TLS: tls.c picks it up from the URL */
	if ((!https && strncmp(url, "http://", 7) != 0) || strlen(url) >= LAUNCH_URL_MAX)
		return -1;
	const char *h = url + (https ? 8 : 7), *end = h + strcspn(h, "/?#"), *pe;
	if (*end && strcmp(end, "/") != 0)
		return -1;
	const char *hs = h, *he;
	if (*h == '[') {
		he = memchr(h, ']', (size_t)(end - h));
		if (!he)
			return -1;
		hs = h + 1;
		pe = he + 1;
	} else {
		he = memchr(h, ':', (size_t)(end - h));
		if (!he)
			he = end;
		pe = he;
	}
	if (he == hs || (size_t)(he - hs) >= hostlen)
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = 0;
	*port = https ? 443 : 80;
	if (pe < end) {
		if (*pe != ':' || pe + 1 == end)
			return -1;
		char *stop;
		long p = strtol(pe + 1, &stop, 10);
		if (stop != end || p < 1 || p > 65535)
			return -1;
		*port = (int)p;
	}
	return 0;
}

int launch_url_check(const char *url, char *err, size_t errlen)
{
	char host[LAUNCH_URL_MAX];
	int port;
	if (!url || launch_url_split(url, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "url=%s: not http[s]://HOST[:PORT] of at most %d characters",
			 url ? url : "", LAUNCH_URL_MAX - 1);
		return -1;
	}
	return 0;
}

struct launch *launch_new(struct event_base *base, const struct conf_upstream *cf,
			  const char *prefix, launch_exit_cb on_exit, void *arg,
			  char *err, size_t errlen)
{
	const char *kind = cf->launch_kind;
	struct launch *l = NULL;
	snprintf(err, errlen, "cannot set up the launcher");
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

/* See launch.h. */
pid_t launch_fork(int errfd)
{
	int sync[2];
	if (pipe2(sync, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sync[0]);
		close(sync[1]);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (errfd >= 0 && errfd != 2)
			dup2(errfd, 2);
		/* closes the sync pipe too: that is what the parent waits for */
		if (close_range(3, ~0U, 0) < 0) {
			long max = sysconf(_SC_OPEN_MAX);
			for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
				close((int)fd);
		}
		int null = open("/dev/null", O_RDONLY);
		if (null > 0) {
			dup2(null, 0);
			close(null);
		}
		return 0;
	}
	close(sync[1]);
	char c;
	while (read(sync[0], &c, 1) < 0 && errno == EINTR)
		;
	close(sync[0]);
	return pid;
}
