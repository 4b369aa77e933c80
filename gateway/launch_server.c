/*
 * launch_server: the launcher of an upstream of "server HOST:PORT;" lines
 * (conf_static.c), which launches nothing. It exists so that an always-on
 * server lives through the same replica states as a launched one (BOOTING
 * while its health is polled, WARMING when warmup is written, READY) with
 * no special case in replica.c's life: start is a no-op that succeeds,
 * stop ends "the run" on the next loop turn (the exit callback must come
 * from the loop, never from inside stop), and url is the server line of
 * the replica's index. A stop only happens at shutdown or when a reload
 * removes the upstream: the server itself keeps running.
 */
#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf.h"
#include "gateway/launch.h"

struct server_launch {
	struct launch base;
	char urls[CONF_MAX_SERVERS][LAUNCH_URL_MAX];	/* copies: a reload may free the conf */
	int nurls;
	int up;				/* between start and the reported end */
	struct event *later;		/* reports the end of a stop on the next loop turn */
};

static int srv_start(struct launch *l, const char *name, int port, char *err, size_t errlen)
{
	struct server_launch *s = (struct server_launch *)l;
	(void)name;
	(void)port;
	if (l->replica < 0 || l->replica >= s->nurls) {
		snprintf(err, errlen, "replica %d has no server line", l->replica);
		return -1;
	}
	s->up = 1;
	return 0;
}

static void srv_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_launch *s = arg;
	(void)fd;
	(void)what;
	s->up = 0;
	snprintf(s->base.why, sizeof(s->base.why), "let go (a server line: it keeps running)");
	if (s->base.on_exit)
		s->base.on_exit(LAUNCH_WHY, s->base.arg);	/* the last thing done with s: it may be freed */
}

static void srv_stop(struct launch *l, int64_t grace_ms)
{
	struct server_launch *s = (struct server_launch *)l;
	static const struct timeval now = { 0, 0 };
	(void)grace_ms;
	if (s->up)
		event_add(s->later, &now);
}

static int srv_running(const struct launch *l)
{
	return ((const struct server_launch *)l)->up;
}

static const char *srv_url(const struct launch *l)
{
	const struct server_launch *s = (const struct server_launch *)l;
	return l->replica >= 0 && l->replica < s->nurls ? s->urls[l->replica] : "";
}

static void srv_free(struct launch *l)
{
	struct server_launch *s = (struct server_launch *)l;
	if (s->later)
		event_free(s->later);
	free(s);
}

static const struct launch_ops srv_ops = {
	.kind = CONF_LAUNCH_SERVER,
	.start = srv_start,
	.stop = srv_stop,
	.running = srv_running,
	.free = srv_free,
	.url = srv_url,
};

struct launch *launch_server_new(struct event_base *base, const struct conf_upstream *cf, char *err, size_t errlen)
{
	struct server_launch *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base.ops = &srv_ops;
	for (int i = 0; i < cf->nservers && i < CONF_MAX_SERVERS; i++)
		snprintf(s->urls[s->nurls++], LAUNCH_URL_MAX, "%s", cf->servers[i]);	/* conf_static.c: < 128 */
	s->later = evtimer_new(base, srv_later_cb, s);
	if (!s->later || !s->nurls) {
		snprintf(err, errlen, s->later ? "no server line" : "out of memory");
		srv_free(&s->base);
		return NULL;
	}
	return &s->base;
}
