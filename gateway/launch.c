/*
 * launch: picks the driver the conf names and owns the few helpers the
 * drivers share (the replica URL's host and port).
 */
#include "config.h"
#include "gateway/launch.h"
#include "gateway/conf.h"
#include "common/url.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int launch_url_check(const char *url, char *err, size_t errlen)
{
	char host[LAUNCH_URL_MAX];
	int port;
	if (!url || strlen(url) >= LAUNCH_URL_MAX || url_split(url, host, sizeof(host), &port, NULL) < 0) {
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
	return l;
}

void launch_free(struct launch *l)
{
	if (l)
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
