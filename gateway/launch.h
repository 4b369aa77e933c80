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
#include <sys/types.h>

struct event_base;
struct launch;
struct conf_upstream;

/*
 * status: a wait(2) status for exec; LAUNCH_WHY for the other drivers, and
 * then launch.why says what ended it ("stopped by the stop command",
 * "start command exited with status 1: no such container").
 */
#define LAUNCH_WHY (-1)
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
	/*
	 * Where the replica answers, "http://HOST:PORT", owned by the launcher;
	 * NULL op (exec): http://127.0.0.1:$port on the port given to start.
	 */
	const char *(*url)(const struct launch *l);
	/*
	 * The process group it started, whose members' RSS is the replica's
	 * memory (recycle memory, when the backend does not report its own);
	 * 0 when nothing runs. NULL op: not a local process (command, http, k8s).
	 */
	pid_t (*pid)(const struct launch *l);
};

struct launch {
	const struct launch_ops *ops;
	launch_exit_cb on_exit;
	void *arg;
	char why[300];		/* set before on_exit(LAUNCH_WHY) */
	/* exec: the prefix of the worker's output lines in the error log, set by the replica */
	char tag[96];
	/* exec: the worker's last lines of output, " | " between them ("" when none) */
	char tail[400];
	/* $replica, $gpu, $gpu_index: set by the replica before start (gpu "" and -1: not placed) */
	int replica;
	char gpu[64];
	int gpu_index;
	/* exec: the upstream's "env NAME=VALUE" lines, copied from the conf (values not expanded yet) */
	char **env;
	size_t nenv;
};

/*
 * Makes the launcher the upstream's conf asks for (launch exec|command|http|
 * kubernetes); it copies what it needs from cf, so a reload may free cf.
 * Commands run with cwd prefix. Returns NULL with a reason in err.
 */
struct launch *launch_new(struct event_base *base, const struct conf_upstream *cf,
			  const char *prefix, launch_exit_cb on_exit, void *arg,
			  char *err, size_t errlen);
void launch_free(struct launch *l);

/* command, http and kubernetes drivers (launch_command.c, launch_http.c, launch_k8s.c) */
struct launch *launch_command_new(struct event_base *base, const struct conf_upstream *cf,
				  const char *prefix, char *err, size_t errlen);
struct launch *launch_http_new(struct event_base *base, const struct conf_upstream *cf,
			       char *err, size_t errlen);
struct launch *launch_k8s_new(struct event_base *base, const struct conf_upstream *cf,
			      char *err, size_t errlen);

/* an upstream of "server" lines: launches nothing (launch_server.c) */
struct launch *launch_server_new(struct event_base *base, const struct conf_upstream *cf, char *err, size_t errlen);

/* exec driver */
struct launch *launch_exec_new(struct event_base *base, const char *cmd, const char *prefix);

/* The longest url= a replica keeps (struct replica's url), with its NUL. */
#define LAUNCH_URL_MAX 128

/*
 * The exec driver's output capture (launch_output.c): reads fd (the read
 * end of the child's stdout/stderr pipe, owned from here on) into the error
 * log as "l->tag: line", keeping the last lines in l->tail. drain reads what
 * is already in the pipe (the child just ended); free drains, closes fd.
 */
struct launch_output;
struct launch_output *launch_output_new(struct event_base *base, int fd, struct launch *l);
void launch_output_drain(struct launch_output *o);
void launch_output_free(struct launch_output *o);

#endif
