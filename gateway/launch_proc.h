/*
 * launch_proc: the helpers the launch drivers share, below them (see
 * launch_proc.c): fork, $var expansion, SIGCHLD, the url= check.
 */
#ifndef WG_LAUNCH_PROC_H
#define WG_LAUNCH_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;

/*
 * 0 when url= can be a replica's URL: common/url.h's url_split() takes it
 * and it is shorter than LAUNCH_URL_MAX. Else -1 with the reason in err.
 */
int launch_url_check(const char *url, char *err, size_t errlen);

/*
 * The children of every driver (exec replicas, the command driver's start
 * and stop commands): one SIGCHLD event reaps them all and hands each wait
 * status to its fn, once, on the loop. launch_child_unwatch() forgets pid
 * without a call. launch_proc_init() makes the SIGCHLD event (0, or -1);
 * launch_proc_cleanup() frees it and the watches at exit.
 */
typedef void (*launch_child_fn)(pid_t pid, int status, void *arg);
int launch_child_watch(struct event_base *base, pid_t pid, launch_child_fn fn, void *arg);
void launch_child_unwatch(pid_t pid);
int launch_proc_init(struct event_base *base);
void launch_proc_cleanup(void);

/*
 * fork() for the launchers. The child keeps only 0, 1 and 2 (stdin from
 * /dev/null; errfd >= 0 becomes its 2), leads its own process group, and has
 * no blocked signals and SIGPIPE at its default; the parent returns only once
 * the child has let go of every other descriptor. The wait matters: libevent (with the changelist)
 * takes a socket out of epoll after closing it, and a child still holding
 * the socket then keeps it in the gateway's epoll set, under a number the
 * next accepted client gets: that client sees the dead one's EOF. Returns
 * 0 in the child, the pid in the parent, -1 (errno set) on failure.
 */
pid_t launch_fork(int errfd);

/* Expands $port $name $prefix in cmd; returns malloc'd text for free(). */
char *launch_expand(const char *cmd, const char *name, int port, const char *prefix);

#endif
