/*
 * launch_command: "launch command start="CMD" stop="CMD" url=http://HOST:PORT".
 * start and stop are shell commands (systemd, docker, a cloud CLI) that do
 * their job and EXIT: start exiting 0 means the replica is on its way (the
 * gateway then polls url=), non-zero fails the replica with the first line
 * of the command's stderr. Each runs through /bin/sh -c in its own process
 * group, cwd = prefix, with WAKEGATE_UPSTREAM and WAKEGATE_URL in its env and
 * $port $name $prefix expanded (port: url='s). Exits arrive through the exec
 * driver's SIGCHLD watcher (launch_child_watch). What the start command
 * leaves running in the background is not ours: only the stop command ends it.
 */
#include "config.h"
#include "common/url.h"
#include "gateway/launch.h"
#include "gateway/launch_proc.h"
#include "gateway/conf.h"
#include "gateway/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A stop command gets stop_grace plus this long before it is killed. */
#define CMD_STOP_EXTRA_MS 30000

enum cmd_state { C_IDLE, C_STARTING, C_UP, C_STOPPING };

struct cmd_launch {
	struct launch base;	/* first: the generic part */
	struct event_base *evb;
	char *name, *url, *start_cmd, *stop_cmd, *prefix;
	int port;
	enum cmd_state state;
	int stop_wanted;	/* stop() came while the start command ran */
	pid_t pid;		/* the start or stop command running; 0: none */
	int errfd;		/* its stderr: an unlinked temp file; -1: none */
	int timed_out;		/* the stop command ran past its time */
	int64_t grace_ms;
	struct event *kill_timer;	/* the stop command's time limit */
	struct event *later;	/* reports a failure outside the caller's stack */
};

static const char *const cmd_names[] = { "", "start", "", "stop" };

/* Child side of launch_fork (own group, clean signals, stdin /dev/null): env, cwd. Never returns. */
static void cmd_child(const struct cmd_launch *c, const char *cmd)
{
	setenv("WAKEGATE_UPSTREAM", c->name, 1);
	setenv("WAKEGATE_URL", c->url, 1);
	if (c->prefix && chdir(c->prefix) < 0) {
		fprintf(stderr, "wakegate: chdir %s: %s\n", c->prefix, strerror(errno));
		_exit(126);
	}
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	fprintf(stderr, "wakegate: exec /bin/sh: %s\n", strerror(errno));
	_exit(127);
}

/* A temp file for the command's stderr, already unlinked; -1 when none can be made. */
static int cmd_errfile(void)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	char path[512];
	snprintf(path, sizeof(path), "%s/wakegate-cmd-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

/* The first non-empty line the command wrote to stderr, into out ("" when none). */
static void cmd_first_line(const struct cmd_launch *c, char *out, size_t outlen)
{
	char buf[1024];
	ssize_t n = c->errfd >= 0 ? pread(c->errfd, buf, sizeof(buf) - 1, 0) : -1;
	out[0] = 0;
	if (n <= 0)
		return;
	buf[n] = 0;
	char *s = buf + strspn(buf, " \t\r\n");
	s[strcspn(s, "\r\n")] = 0;
	snprintf(out, outlen, "%s", s);
}

static void cmd_exited(pid_t pid, int status, void *arg);

/* Runs the start or stop command (by state). 0, or -1 with err set. */
static int cmd_spawn(struct cmd_launch *c, enum cmd_state st, char *err, size_t errlen)
{
	char *cmd = launch_expand(st == C_STARTING ? c->start_cmd : c->stop_cmd, c->name, c->port, c->prefix);
	if (!cmd) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int errfd = cmd_errfile();
	/* the child keeps only 0-2 (errfd as its stderr): what the command
	 * leaves running must not hold the gateway's sockets */
	pid_t pid = launch_fork(errfd);
	if (pid < 0) {
		snprintf(err, errlen, "cannot run the %s command: fork: %s", cmd_names[st], strerror(errno));
		free(cmd);
		if (errfd >= 0)
			close(errfd);
		return -1;
	}
	if (pid == 0)
		cmd_child(c, cmd);
	setpgid(pid, pid);
	if (launch_child_watch(c->evb, pid, cmd_exited, c) < 0) {
		/* nobody would see it end: take it back now */
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		snprintf(err, errlen, "cannot watch the %s command", cmd_names[st]);
		free(cmd);
		if (errfd >= 0)
			close(errfd);
		return -1;
	}
	log_info("upstream \"%s\": command launcher: %s command, pid %d: %s", c->name, cmd_names[st], (int)pid, cmd);
	free(cmd);
	c->pid = pid;
	c->errfd = errfd;
	c->state = st;
	c->timed_out = 0;
	if (st == C_STOPPING) {
		int64_t ms = (c->grace_ms > 0 ? c->grace_ms : 0) + CMD_STOP_EXTRA_MS;
		struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
		event_add(c->kill_timer, &tv);
	}
	return 0;
}

/* Back to IDLE and tell the replica why: the last thing done with c (it may be freed). */
static void cmd_report(struct cmd_launch *c)
{
	c->state = C_IDLE;
	if (c->base.on_exit)
		c->base.on_exit(LAUNCH_WHY, c->base.arg);
}

static void cmd_later_cb(evutil_socket_t fd, short what, void *arg)
{
	cmd_report(arg);
}

/* Runs the stop command; when it cannot run, the replica hears so on the next loop turn. */
static void cmd_run_stop(struct cmd_launch *c)
{
	char err[256];
	if (cmd_spawn(c, C_STOPPING, err, sizeof(err)) == 0)
		return;
	snprintf(c->base.why, sizeof(c->base.why), "%s", err);
	log_error("upstream \"%s\": command launcher: %s", c->name, err);
	c->state = C_STOPPING;
	struct timeval zero = { 0, 0 };
	event_add(c->later, &zero);
}

/* "exited with status N" or "killed by signal N", plus the first stderr line. */
static void cmd_describe(const struct cmd_launch *c, int status, char *out, size_t outlen)
{
	char line[256], how[64];
	cmd_first_line(c, line, sizeof(line));
	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "ended");
	snprintf(out, outlen, "%s command %s%s%s", cmd_names[c->state], how, *line ? ": " : "", line);
}

/* The start or stop command ended (SIGCHLD, through the exec driver). */
static void cmd_exited(pid_t pid, int status, void *arg)
{
	struct cmd_launch *c = arg;
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	c->pid = 0;
	event_del(c->kill_timer);
	if (c->state == C_STARTING && c->stop_wanted) {
		log_info("upstream \"%s\": command launcher: start command ended before the stop", c->name);
		if (c->errfd >= 0)
			close(c->errfd);
		c->errfd = -1;
		cmd_run_stop(c);
		return;
	}
	if (ok && c->state == C_STARTING) {
		log_info("upstream \"%s\": command launcher: start command done", c->name);
		c->state = C_UP;
	} else if (ok) {
		log_info("upstream \"%s\": command launcher: stop command done", c->name);
		snprintf(c->base.why, sizeof(c->base.why), "stopped by the stop command");
	} else if (c->timed_out) {
		snprintf(c->base.why, sizeof(c->base.why), "stop command timed out after %llds",
			 (long long)(((c->grace_ms > 0 ? c->grace_ms : 0) + CMD_STOP_EXTRA_MS) / 1000));
		log_error("upstream \"%s\": %s", c->name, c->base.why);
	} else {
		cmd_describe(c, status, c->base.why, sizeof(c->base.why));
		log_error("upstream \"%s\": %s", c->name, c->base.why);
	}
	if (c->errfd >= 0)
		close(c->errfd);
	c->errfd = -1;
	if (c->state != C_UP)
		cmd_report(c);
}

/* The stop command ran past stop_grace + 30s. */
static void cmd_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmd_launch *c = arg;
	if (c->pid > 0) {
		c->timed_out = 1;
		kill(-c->pid, SIGKILL);
	}
}

static int cmd_start(struct launch *l, const char *name, int port, char *err, size_t errlen)
{
	struct cmd_launch *c = (struct cmd_launch *)l;
	if (c->state != C_IDLE) {
		snprintf(err, errlen, "the command launcher is busy");
		return -1;
	}
	c->stop_wanted = 0;
	return cmd_spawn(c, C_STARTING, err, errlen);
}

/* While the start command runs it gets SIGTERM, and the stop command follows it. */
static void cmd_stop(struct launch *l, int64_t grace_ms)
{
	struct cmd_launch *c = (struct cmd_launch *)l;
	c->grace_ms = grace_ms;
	if (c->state == C_STARTING && !c->stop_wanted) {
		c->stop_wanted = 1;
		kill(-c->pid, SIGTERM);
	} else if (c->state == C_UP) {
		cmd_run_stop(c);
	}
}

static int cmd_running(const struct launch *l)
{
	return ((const struct cmd_launch *)l)->state != C_IDLE;
}

static const char *cmd_url(const struct launch *l)
{
	return ((const struct cmd_launch *)l)->url;
}

/* A start or stop command still running is killed and reaped; a replica it started is left alone. */
static void cmd_free(struct launch *l)
{
	struct cmd_launch *c = (struct cmd_launch *)l;
	if (c->pid > 0) {
		launch_child_unwatch(c->pid);
		kill(-c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	if (c->state == C_UP)
		log_warn("upstream \"%s\": command launcher let go while the replica may still run", c->name);
	if (c->errfd >= 0)
		close(c->errfd);
	if (c->kill_timer)
		event_free(c->kill_timer);
	if (c->later)
		event_free(c->later);
	free(c->name);
	free(c->url);
	free(c->start_cmd);
	free(c->stop_cmd);
	free(c->prefix);
	free(c);
}

static const struct launch_ops cmd_ops = {
	.kind = "command",
	.start = cmd_start,
	.stop = cmd_stop,
	.running = cmd_running,
	.free = cmd_free,
	.url = cmd_url,
};

struct launch *launch_command_new(struct event_base *base, const struct conf_upstream *cf,
				  const char *prefix, char *err, size_t errlen)
{
	char host[256];
	int port;
	if (launch_url_check(cf->launch_url, err, errlen) < 0 ||
	    url_split(cf->launch_url, host, sizeof(host), &port, NULL) < 0)
		return NULL;
	if (!cf->launch_start || !cf->launch_stop) {
		snprintf(err, errlen, "no start or stop command");
		return NULL;
	}
	struct cmd_launch *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base.ops = &cmd_ops;
	c->evb = base;
	c->errfd = -1;
	c->port = port;
	c->name = strdup(cf->name);
	c->url = strdup(cf->launch_url);
	c->start_cmd = strdup(cf->launch_start);
	c->stop_cmd = strdup(cf->launch_stop);
	c->prefix = prefix ? strdup(prefix) : NULL;
	c->kill_timer = evtimer_new(base, cmd_kill_cb, c);
	c->later = evtimer_new(base, cmd_later_cb, c);
	if (!c->name || !c->url || !c->start_cmd || !c->stop_cmd || (prefix && !c->prefix) ||
	    !c->kill_timer || !c->later) {
		snprintf(err, errlen, "out of memory");
		cmd_free(&c->base);
		return NULL;
	}
	return &c->base;
}
