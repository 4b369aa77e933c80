/*
 * launch_exec: the default launcher. Runs the upstream's command through
 * /bin/sh -c in its own process group, cwd = prefix. Exits are seen through
 * SIGCHLD on the loop plus waitpid(); stop sends SIGTERM to the group and
 * SIGKILL after the grace time. A simple command is run as "exec command",
 * so that the worker itself is the child: it gets the parent-death signal
 * and its own exit status is the one reported. The child's stdout and stderr
 * go to a pipe this driver owns (launch_output.c reads it into the error log).
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
	struct launch_output *out;	/* the child's stdout/stderr pipe; NULL: none */
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
	const struct launch_vars v = { .name = name, .port = port, .prefix = prefix, .gpu_index = -1 };
	return launch_expand_vars(cmd, &v);
}

/* Appends n bytes of s to the growing out; -1 when out of memory (out freed). */
static int expand_put(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = (*len + n + 1) * 2;
		char *x = realloc(*out, c);
		if (!x) {
			free(*out);
			*out = NULL;
			return -1;
		}
		*out = x;
		*cap = c;
	}
	memcpy(*out + *len, s, n);
	*len += n;
	return 0;
}

char *launch_expand_vars(const char *cmd, const struct launch_vars *v)
{
	char portbuf[16], repbuf[16], gibuf[16];
	snprintf(portbuf, sizeof(portbuf), "%d", v->port);
	snprintf(repbuf, sizeof(repbuf), "%d", v->replica);
	/* not placed on a GPU: empty, which the man page says */
	snprintf(gibuf, sizeof(gibuf), "%d", v->gpu_index);
	const struct { const char *var; const char *val; } vars[] = {
		{ "port", portbuf }, { "name", v->name ? v->name : "" }, { "prefix", v->prefix ? v->prefix : "." },
		{ "replica", repbuf }, { "gpu", v->gpu ? v->gpu : "" },
		{ "gpu_index", v->gpu_index >= 0 ? gibuf : "" },
	};
	size_t len = 0, cap = strlen(cmd) + 64;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	for (const char *p = cmd; *p;) {
		if (p[0] == '$' && p[1] == '$') {	/* "$$": one "$" for the shell ($$HOME) */
			if (expand_put(&out, &len, &cap, "$", 1) < 0)
				return NULL;
			p += 2;
			continue;
		}
		size_t i = sizeof(vars) / sizeof(vars[0]);
		size_t vl = 0;
		int braced = 0;
		if (*p == '$') {
			for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
				vl = strlen(vars[i].var);
				char after = p[1 + vl];
				braced = p[1] == '{' && strncmp(p + 2, vars[i].var, vl) == 0 && p[2 + vl] == '}';
				int bare = strncmp(p + 1, vars[i].var, vl) == 0 &&
					!(after == '_' || (after >= 'a' && after <= 'z') ||
					  (after >= 'A' && after <= 'Z') || (after >= '0' && after <= '9'));
				if (braced || bare)
					break;
			}
		}
		if (i < sizeof(vars) / sizeof(vars[0])) {
			if (expand_put(&out, &len, &cap, vars[i].val, strlen(vars[i].val)) < 0)
				return NULL;
			p += braced ? vl + 3 : vl + 1;
		} else {
			if (expand_put(&out, &len, &cap, p, 1) < 0)
				return NULL;
			p++;
		}
	}
	out[len] = 0;
	return out;
}

/*
 * "exec CMD" when CMD is one simple command, so that no shell stays between
 * the gateway and the worker (the shell would get the parent-death signal
 * and leave the worker orphaned, and its "killed by signal 15" would hide
 * the worker's own exit status). A command with a list, a pipe, a subshell,
 * a leading assignment or a reserved word is left as written: exec would
 * change what it means. Returns malloc'd text.
 */
char *launch_exec_wrap(const char *cmd)
{
	const char *p = cmd + strspn(cmd, " \t");
	size_t w = strcspn(p, " \t");
	int simple = *p && strpbrk(p, ";&|\n()`{}!") == NULL && memchr(p, '=', w) == NULL;
	static const char *const reserved[] = { "exec", "if", "for", "while", "until", "case", "then" };
	for (size_t i = 0; simple && i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == w && strncmp(p, reserved[i], w) == 0)
			simple = 0;
	size_t n = strlen(cmd) + 6;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s%s", simple ? "exec " : "", cmd);
	return out;
}

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
			/* what it wrote last, before anyone reads launch.tail */
			launch_output_drain(e->out);
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
