/*
 * launch_exec: the default launcher. Runs the upstream's command through
 * /bin/sh -c in its own process group, cwd = prefix. Exits are seen through
 * launch_proc.c's SIGCHLD reaper; stop sends SIGTERM to the group and
 * SIGKILL after the grace time. A simple command is run as "exec command",
 * so that the worker itself is the child: it gets the parent-death signal
 * and its own exit status is the one reported. The child's stdout and stderr
 * go to a pipe this driver owns (launch_output.c reads it into the error log).
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
	struct launch_output *out;	/* the child's stdout/stderr pipe; NULL: none */
	struct event *kill_timer;
};

/* Child side of launch_fork (own group, clean signals, stdin /dev/null): env, cwd, exec. Never returns. */
static void exec_child(const char *cmd, const char *prefix, char **env, size_t nenv, pid_t gateway)
{
	for (size_t i = 0; i < nenv; i++)	/* "env NAME=VALUE" lines, expanded */
		if (env[i])
			putenv(env[i]);
	/* a gateway killed hard should not leave GPU workers behind */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* the gateway died before prctl: nobody will send it (not "== 1": the gateway may be pid 1) */
	if (getppid() != gateway)
		_exit(1);
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
	/* what it wrote last, before anyone reads launch.tail */
	launch_output_drain(e->out);
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
	const struct launch_vars v = { .name = name, .port = port, .prefix = e->prefix,
		.replica = l->replica, .gpu = l->gpu[0] ? l->gpu : NULL, .gpu_index = l->gpu_index };
	char *ex = launch_expand_vars(e->cmd, &v);
	char *cmd = ex ? launch_exec_wrap(ex) : NULL;
	free(ex);
	if (!cmd) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* the env lines' values take the same variables, expanded in the parent (the child only execs) */
	char **env = l->nenv ? calloc(l->nenv, sizeof(*env)) : NULL;
	for (size_t i = 0; env && i < l->nenv; i++)
		env[i] = launch_expand_vars(l->env[i], &v);
	int outfd[2] = { -1, -1 };
	pid_t pid = -1, self = getpid();
	if (pipe2(outfd, O_CLOEXEC) < 0)
		snprintf(err, errlen, "pipe: %s", strerror(errno));
	else if ((pid = launch_fork(outfd[1])) < 0)
		snprintf(err, errlen, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(2, 1);	/* stdout too: both reach the error log */
		exec_child(cmd, e->prefix, env, env ? l->nenv : 0, self);
	}
	for (size_t i = 0; env && i < l->nenv; i++)
		free(env[i]);
	free(env);
	if (pid < 0) {
		free(cmd);
		if (outfd[0] >= 0) {
			close(outfd[0]);
			close(outfd[1]);
		}
		return -1;
	}
	close(outfd[1]);
	launch_output_free(e->out);
	e->out = launch_output_new(e->evb, outfd[0], l);
	if (!e->out)
		close(outfd[0]);
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

/* SIGTERM to the whole group, so a shell's children stop too. */
static void exec_stop(struct launch *l, int64_t grace_ms)
{
	struct exec_launch *e = (struct exec_launch *)l;
	if (e->pid <= 0)
		return;
	/*
	 * One SIGTERM: the group has the worker (exec'd, it leads the group).
	 * A second one would be a worker's "stop now, without draining".
	 * The pid alone only when the group is gone (it left it).
	 */
	if (kill(-e->pid, SIGTERM) < 0)
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
	launch_output_free(e->out);
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
