/*
 * launch_exec: the default launcher. Runs the upstream's command through
 * /bin/sh -c in its own process group, cwd = prefix. Exits are seen through
 * launch_proc.c's SIGCHLD reaper; stop sends SIGTERM to the group and
 * SIGKILL after the grace time.
 */
#include "config.h"
#include "gateway/launch.h"
#include "gateway/launch_proc.h"
#include "gateway/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct exec_launch {
	struct launch base;	/* first: the generic part */
	struct event_base *evb;
	char *cmd;
	char *prefix;
	pid_t pid;		/* 0: nothing running */
	struct event *kill_timer;
};

/* Child side of launch_fork (own group, clean signals, stdin /dev/null): cwd, exec. Never returns. */
static void exec_child(const char *cmd, const char *prefix)
{
	/* a gateway killed hard should not leave GPU workers behind */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (prefix && chdir(prefix) < 0) {
		fprintf(stderr, "wakegate: chdir %s: %s\n", prefix, strerror(errno));
		_exit(126);
	}
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	fprintf(stderr, "wakegate: exec /bin/sh: %s\n", strerror(errno));
	_exit(127);
}

/* The reaper saw the replica's process end: the rest of its group goes too. */
static void exec_exited(pid_t pid, int status, void *arg)
{
	struct exec_launch *e = arg;

	e->pid = 0;
	event_del(e->kill_timer);
	/* the rest of the group, if the shell left any */
	kill(-pid, SIGKILL);
	if (e->base.on_exit)
		e->base.on_exit(status, e->base.arg);
}

/* fork + exec through /bin/sh -c; the child's pid is its process group. */
static int exec_start(struct launch *l, const char *name, int port, char *err, size_t errlen)
{
	struct exec_launch *e = (struct exec_launch *)l;
	if (e->pid > 0) {
		snprintf(err, errlen, "already running as pid %d", (int)e->pid);
		return -1;
	}
	char *cmd = launch_expand(e->cmd, name, port, e->prefix);
	if (!cmd) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pid_t pid = launch_fork(-1);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		free(cmd);
		return -1;
	}
	if (pid == 0)
		exec_child(cmd, e->prefix);
	/* both sides set the group, so a signal right after fork reaches it */
	setpgid(pid, pid);
	if (launch_child_watch(e->evb, pid, exec_exited, e) < 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		snprintf(err, errlen, "out of memory");
		free(cmd);
		return -1;
	}
	log_info("launch exec: pid %d: %s", (int)pid, cmd);
	free(cmd);
	e->pid = pid;
	return 0;
}

/* stop_grace passed after SIGTERM. */
static void exec_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_launch *e = arg;
	if (e->pid > 0) {
		log_warn("launch exec: pid %d did not stop in time, sending SIGKILL", (int)e->pid);
		kill(-e->pid, SIGKILL);
		kill(e->pid, SIGKILL);
	}
}

/* SIGTERM to the whole group, so the shell's children stop too. */
static void exec_stop(struct launch *l, int64_t grace_ms)
{
	struct exec_launch *e = (struct exec_launch *)l;
	if (e->pid <= 0)
		return;
	kill(-e->pid, SIGTERM);
	kill(e->pid, SIGTERM);
	if (grace_ms < 0)
		grace_ms = 0;
	struct timeval tv = { (time_t)(grace_ms / 1000), (suseconds_t)(grace_ms % 1000) * 1000 };
	event_add(e->kill_timer, &tv);
}

static int exec_running(const struct launch *l)
{
	return ((const struct exec_launch *)l)->pid > 0;
}

static pid_t exec_pid(const struct launch *l)
{
	return ((const struct exec_launch *)l)->pid;
}

/* Kills and reaps what still runs: nothing outlives its launcher. */
static void exec_free(struct launch *l)
{
	struct exec_launch *e = (struct exec_launch *)l;
	if (e->pid > 0) {
		kill(-e->pid, SIGKILL);
		kill(e->pid, SIGKILL);
		launch_child_unwatch(e->pid);
		waitpid(e->pid, NULL, 0);
	}
	event_free(e->kill_timer);
	free(e->cmd);
	free(e->prefix);
	free(e);
}

static const struct launch_ops exec_ops = {
	.kind = "exec",
	.start = exec_start,
	.stop = exec_stop,
	.running = exec_running,
	.free = exec_free,
	.pid = exec_pid,
};

struct launch *launch_exec_new(struct event_base *base, const char *cmd, const char *prefix)
{
	struct exec_launch *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->base.ops = &exec_ops;
	e->evb = base;
	e->cmd = strdup(cmd);
	e->prefix = prefix ? strdup(prefix) : NULL;
	e->kill_timer = evtimer_new(base, exec_kill_cb, e);
	return &e->base;
}
