/*
 * launch_exec: the default launcher. Runs the upstream's command through
 * /bin/sh -c in its own process group, cwd = prefix. Exits are seen through
 * SIGCHLD on the loop plus waitpid(); stop sends SIGTERM to the group and
 * SIGKILL after the grace time.
 */
#include "config.h"
#include "gateway/launch.h"
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
	struct exec_launch *next;	/* in the list of live launchers */
};

static struct exec_launch *exec_all;	/* every exec launcher not yet freed */
static struct event *sigchld_ev;
static int exec_live;

/* launch_child_watch(): other drivers' children, reaped here too */
struct child_watch {
	pid_t pid;
	launch_child_fn fn;
	void *arg;
	struct child_watch *next;
};
static struct child_watch *watches;

static void exec_reap(evutil_socket_t sig, short what, void *arg);

char *launch_expand(const char *cmd, const char *name, int port, const char *prefix)
{
	size_t cap = strlen(cmd) + 1, len = 0;
	char portbuf[16];
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	const struct { const char *var; const char *val; } vars[] = {
		{ "port", portbuf }, { "name", name ? name : "" }, { "prefix", prefix ? prefix : "." },
	};
	for (size_t i = 0; i < 3; i++)
		cap += 4 * strlen(vars[i].val) + 64;
	/* a generous bound: each $var may appear several times */
	cap *= 4;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	for (const char *p = cmd; *p;) {
		int done = 0;
		if (*p == '$') {
			for (size_t i = 0; i < 3; i++) {
				size_t vl = strlen(vars[i].var);
				int braced = p[1] == '{' && strncmp(p + 2, vars[i].var, vl) == 0 && p[2 + vl] == '}';
				int bare = strncmp(p + 1, vars[i].var, vl) == 0 &&
					!(p[1 + vl] == '_' || (p[1 + vl] >= 'a' && p[1 + vl] <= 'z') ||
					  (p[1 + vl] >= 'A' && p[1 + vl] <= 'Z') || (p[1 + vl] >= '0' && p[1 + vl] <= '9'));
				if (!braced && !bare)
					continue;
				size_t l = strlen(vars[i].val);
				if (len + l + 1 >= cap) {
					cap = (len + l + 1) * 2;
					char *n = realloc(out, cap);
					if (!n) { free(out); return NULL; }
					out = n;
				}
				memcpy(out + len, vars[i].val, l);
				len += l;
				p += braced ? vl + 3 : vl + 1;
				done = 1;
				break;
			}
		}
		if (done)
			continue;
		if (len + 2 >= cap) {
			cap *= 2;
			char *n = realloc(out, cap);
			if (!n) { free(out); return NULL; }
			out = n;
		}
		out[len++] = *p++;
	}
	out[len] = 0;
	return out;
}

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
	log_info("launch exec: pid %d: %s", (int)pid, cmd);
	free(cmd);
	e->pid = pid;
	exec_live++;
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
		int st;
		if (waitpid(e->pid, &st, 0) == e->pid)
			exec_live--;
	}
	for (struct exec_launch **pp = &exec_all; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
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

/* SIGCHLD: reap every child that ended and tell its launcher. */
static void exec_reap(evutil_socket_t sig, short what, void *arg)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		for (struct child_watch **pp = &watches; *pp; pp = &(*pp)->next) {
			struct child_watch *w = *pp;
			if (w->pid != pid)
				continue;
			*pp = w->next;
			launch_child_fn fn = w->fn;
			void *warg = w->arg;
			free(w);
			fn(pid, st, warg);
			break;
		}
		for (struct exec_launch *e = exec_all; e; e = e->next) {
			if (e->pid != pid)
				continue;
			e->pid = 0;
			exec_live--;
			event_del(e->kill_timer);
			/* the rest of the group, if the shell left any */
			kill(-pid, SIGKILL);
			if (e->base.on_exit)
				e->base.on_exit(st, e->base.arg);
			break;
		}
	}
}

/* One SIGCHLD event for every driver, made on first use. */
static int exec_sigchld_init(struct event_base *base)
{
	if (!sigchld_ev) {
		sigchld_ev = evsignal_new(base, SIGCHLD, exec_reap, NULL);
		if (!sigchld_ev || evsignal_add(sigchld_ev, NULL) < 0) {
			if (sigchld_ev)
				event_free(sigchld_ev);
			sigchld_ev = NULL;
			return -1;
		}
	}
	return 0;
}

/* Called right after fork, before the loop runs again: no exit can be missed. */
int launch_child_watch(struct event_base *base, pid_t pid, launch_child_fn fn, void *arg)
{
	struct child_watch *w = calloc(1, sizeof(*w));
	if (!w || exec_sigchld_init(base) < 0) {
		free(w);
		return -1;
	}
	w->pid = pid;
	w->fn = fn;
	w->arg = arg;
	w->next = watches;
	watches = w;
	return 0;
}

void launch_child_unwatch(pid_t pid)
{
	for (struct child_watch **pp = &watches; *pp; pp = &(*pp)->next)
		if ((*pp)->pid == pid) {
			struct child_watch *w = *pp;
			*pp = w->next;
			free(w);
			return;
		}
}

struct launch *launch_exec_new(struct event_base *base, const char *cmd, const char *prefix)
{
	if (exec_sigchld_init(base) < 0)
		return NULL;
	struct exec_launch *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->base.ops = &exec_ops;
	e->evb = base;
	e->cmd = strdup(cmd);
	e->prefix = prefix ? strdup(prefix) : NULL;
	e->kill_timer = evtimer_new(base, exec_kill_cb, e);
	e->next = exec_all;
	exec_all = e;
	return &e->base;
}

int launch_exec_live(void)
{
	return exec_live;
}

void launch_exec_cleanup(void)
{
	while (watches) {
		struct child_watch *w = watches;
		watches = w->next;
		free(w);
	}
	if (sigchld_ev)
		event_free(sigchld_ev);
	sigchld_ev = NULL;
}
