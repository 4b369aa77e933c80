/*
 * launch_proc: what the process-starting drivers (exec, command) share,
 * below them: fork, $var expansion, the one SIGCHLD reaper, and the check
 * of a launcher's url=. It calls no driver and no file above it, so the
 * launcher files form a tree: launch.c -> drivers -> launch_curl.c,
 * launch_proc.c -> common/.
 */
#include "config.h"
#include "gateway/launch_proc.h"
#include "gateway/launch.h"
#include "common/url.h"
#include "common/vars.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct event *sigchld_ev;

/* launch_child_watch(): every launcher's children, reaped here */
struct child_watch {
	pid_t pid;
	launch_child_fn fn;
	void *arg;
	struct child_watch *next;
};
static struct child_watch *watches;

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

char *launch_expand(const char *cmd, const char *name, int port, const char *prefix)
{
	const struct launch_vars v = { .name = name, .port = port, .prefix = prefix, .gpu_index = -1 };
	return launch_expand_vars(cmd, &v);
}

struct expand_ctx {
	const struct launch_vars *v;
	char port[16], replica[16], gpu_index[16];
};

static const char *lookup(const char *name, size_t nlen, size_t *vlen, void *arg)
{
	struct expand_ctx *x = arg;
	const struct launch_vars *v = x->v;
	const struct { const char *var; const char *val; } vars[] = {
		{ "port", x->port }, { "name", v->name ? v->name : "" }, { "prefix", v->prefix ? v->prefix : "." },
		{ "replica", x->replica }, { "gpu", v->gpu ? v->gpu : "" },
		/* not placed on a GPU: empty, which the man page says */
		{ "gpu_index", v->gpu_index >= 0 ? x->gpu_index : "" },
	};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (strlen(vars[i].var) == nlen && strncmp(name, vars[i].var, nlen) == 0) {
			*vlen = strlen(vars[i].val);
			return vars[i].val;
		}
	return NULL;	/* kept as written: the conf check refused any other name */
}

char *launch_expand_vars(const char *cmd, const struct launch_vars *v)
{
	struct expand_ctx x = { .v = v };
	snprintf(x.port, sizeof(x.port), "%d", v->port);
	snprintf(x.replica, sizeof(x.replica), "%d", v->replica);
	snprintf(x.gpu_index, sizeof(x.gpu_index), "%d", v->gpu_index);
	return vars_expand(cmd, VARS_ESCAPE, lookup, &x);	/* "$$": one "$" for the shell ($$HOME) */
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

/* See launch_proc.h. */
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

/* SIGCHLD: reap every child that ended and tell whoever watches it. */
static void proc_reap(evutil_socket_t sig, short what, void *arg)
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
	}
}

/* See launch_proc.h. */
int launch_proc_init(struct event_base *base)
{
	if (!sigchld_ev) {
		sigchld_ev = evsignal_new(base, SIGCHLD, proc_reap, NULL);
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
	if (!w || launch_proc_init(base) < 0) {
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

void launch_proc_cleanup(void)
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
