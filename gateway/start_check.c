/* start_check: see start_check.h. */
#include "config.h"
#include "gateway/start_check.h"
#include "gateway/conf.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The directory of path exists and this user may create files in it. */
static int dir_ok(const char *what, const char *path, char *err, size_t errlen)
{
	if (!path || strcmp(path, "stderr") == 0 || strcmp(path, "stdout") == 0)
		return 0;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	if (access(dir, W_OK | X_OK) < 0) {
		snprintf(err, errlen, "%s \"%s\": directory \"%s\" %s (%d: %s)", what, path, dir,
			 errno == ENOENT ? "does not exist" : "is not writable", errno, strerror(errno));
		return -1;
	}
	return 0;
}

/* 1 when the pid file names a process that lives (the running daemon). */
static int daemon_running(const struct conf *c)
{
	if (!c->pid_path)
		return 0;
	FILE *f = fopen(c->pid_path, "r");
	long pid = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* -1 with err when addr:port cannot be bound now. */
static int bind_ok(const char *what, const char *addr, int port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int rc = getaddrinfo(addr, ps, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "%s %s:%d: %s", what, addr ? addr : "*", port, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), e = 0;
	if (fd >= 0) {
		int one = 1;
		/* as the start binds it: TIME_WAIT leftovers do not count */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
			e = errno;
		close(fd);
	}
	freeaddrinfo(ai);
	if (e) {
		snprintf(err, errlen, "%s: bind() to %s:%d failed (%d: %s)", what, addr ? addr : "*", port, e, strerror(e));
		return -1;
	}
	return 0;
}

int start_check(const struct conf *c, char *err, size_t errlen)
{
	if (dir_ok("error_log", c->error_log_path, err, errlen) < 0 ||
	    dir_ok("access_log", c->access_log_path, err, errlen) < 0 ||
	    dir_ok("pid", c->pid_path, err, errlen) < 0)
		return -1;
	if (daemon_running(c))	/* its own listeners: a test before a reload */
		return 0;
	for (const struct conf_server *s = c->servers; s; s = s->next)
		for (const struct conf_listen *l = s->listens; l; l = l->next)
			if (bind_ok("listen", l->addr, l->port, err, errlen) < 0)
				return -1;
	if (c->admin_port > 0 && bind_ok("admin_listen", c->admin_addr, c->admin_port, err, errlen) < 0)
		return -1;
	return 0;
}
