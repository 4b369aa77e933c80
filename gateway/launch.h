/*
 * launch: how a replica's process (or pod, or VM) is started and stopped.
 * One driver a file behind the same table of functions; upstream.c does not
 * know which one it holds. A driver reports the end of what it started
 * through the exit callback, exactly once per successful start, on the loop.
 */
#ifndef WG_LAUNCH_H
#define WG_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct launch;

/* status: a wait(2) status for exec, or -1 when the driver cannot tell. */
typedef void (*launch_exit_cb)(int status, void *arg);

struct launch_ops {
	const char *kind;
	/* 0, or -1 with a reason in err. vars: $port $name $prefix. */
	int (*start)(struct launch *l, const char *name, int port, char *err, size_t errlen);
	/* Asks what was started to end: SIGTERM, then SIGKILL after grace_ms. */
	void (*stop)(struct launch *l, int64_t grace_ms);
	/* 1 while what was started still runs. */
	int (*running)(const struct launch *l);
	/* Frees the launcher; what still runs is killed first (no exit callback). */
	void (*free)(struct launch *l);
};

struct launch {
	const struct launch_ops *ops;
	launch_exit_cb on_exit;
	void *arg;
};

/*
 * Makes a launcher of the given kind ("exec") for command cmd, run with cwd
 * prefix. Returns NULL with a reason in err for an unknown kind.
 */
struct launch *launch_new(struct event_base *base, const char *kind, const char *cmd,
			  const char *prefix, launch_exit_cb on_exit, void *arg,
			  char *err, size_t errlen);
void launch_free(struct launch *l);

/* exec driver */
struct launch *launch_exec_new(struct event_base *base, const char *cmd, const char *prefix);
/* How many processes the exec driver has started that have not been reaped yet. */
int launch_exec_live(void);
/* Expands $port $name $prefix in cmd; returns malloc'd text for free(). */
char *launch_expand(const char *cmd, const char *name, int port, const char *prefix);

/* Frees the driver's SIGCHLD watcher at exit. */
void launch_exec_cleanup(void);

#endif
