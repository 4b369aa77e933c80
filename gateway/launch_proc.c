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
