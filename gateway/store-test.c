/*
 * store-test: drives gateway/store.c on its own event loop for t/36-store.t.
 *   store-test HOST PORT PREFIX [COMMAND]...      (HOST "-": no Redis)
 * Commands come from the arguments (one an argument) or, without any, one a
 * line from stdin; they run in order, each finishing before the next:
 *   activity UPSTREAM MS           store_activity
 *   newest UPSTREAM                store_newest_activity; waits for the answer:
 *                                  "newest UPSTREAM MS ELAPSED_MS"
 *   newest-nowait UPSTREAM         the same without waiting (answers print later)
 *   newest-cancel UPSTREAM         the same, then store_cancel(): "cancelled"; an
 *                                  answer after that prints "CALLED AFTER CANCEL"
 *   state UPSTREAM ID STATE [URL]  store_replica_state
 *   add UPSTREAM FIELD V           store_add
 *   connected                      "connected 0|1"
 *   wait-connected [MS]            waits (default 30s) until connected: "connected 0|1"
 *   wait-disconnected [MS]         the reverse
 *   sleep MS                       runs the loop MS milliseconds
 *   bench N                        times N store_activity calls: "bench NS_PER_CALL"
 *   quit                           store_free (pending answers print) and exit
 * The environment's STORE_TEST_PASSWORD (and STORE_TEST_USER) are the
 * credentials, as the redis line's password=FILE gives them.
 * STORE_TEST_TLS_CA=FILE connects through the TLS relay, as "redis ... tls
 * tls_ca=FILE" does.
 * Every command prints one line ("ok" for the synchronous ones). Log lines go
 * to stderr. A callback answered twice prints "DOUBLE ANSWER".
 */
#include "config.h"
#include "gateway/store.h"
#include "gateway/redis_conn.h"
#include "gateway/log.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

struct call {
	char upstream[128];
	int64_t start;
	int answers;
	int wait;		/* the command queue waits on this one */
	int cancelled;
	struct call *next;	/* cancelled calls, kept to catch a late answer */
};

static struct event_base *base;
static struct store *store;
static struct event *next_ev, *stdin_ev, *tick_ev;
static char **queue;		/* commands not yet run */
static size_t nqueue, qhead;
static int busy, input_done, quitting;
static char inbuf[65536];
static size_t inlen;
static struct call *cancelled;
static int64_t wait_until_ms;
static int wait_for;		/* 1: connected, 0: disconnected, -1: plain sleep */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void schedule_next(void)
{
	event_active(next_ev, EV_TIMEOUT, 0);
}

static void answered(int64_t ms, void *arg)
{
	struct call *c = arg;
	if (c->cancelled) {
		out("CALLED AFTER CANCEL %s", c->upstream);
		return;
	}
	if (++c->answers > 1) {
		out("DOUBLE ANSWER %s", c->upstream);
		return;		/* leaked on purpose: the test fails anyway */
	}
	out("newest %s %lld %lld", c->upstream, (long long)ms, (long long)(mono_ms() - c->start));
	int wait = c->wait;
	free(c);
	if (wait) {
		busy = 0;
		schedule_next();
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = mono_ms();
	int done = wait_for < 0 ? now >= wait_until_ms :
		(store_connected(store) == wait_for || now >= wait_until_ms);
	if (!done)
		return;
	event_del(tick_ev);
	if (wait_for < 0)
		out("slept");
	else
		out("connected %d", store_connected(store));
	busy = 0;
	schedule_next();
}

static void start_wait(int what, int64_t ms)
{
	struct timeval tv = { 0, 10000 };
	wait_for = what;
	wait_until_ms = mono_ms() + ms;
	busy = 1;
	event_add(tick_ev, &tv);
}

/* Runs one command line; sets busy when it finishes later. */
static void run(char *line)
{
	char *argv[8];
	int argc = 0;
	for (char *tok = strtok(line, " \t"); tok && argc < 8; tok = strtok(NULL, " \t"))
		argv[argc++] = tok;
	if (argc == 0)
		return;
	const char *cmd = argv[0];
	if (strcmp(cmd, "activity") == 0 && argc == 3) {
		store_activity(store, argv[1], strtoll(argv[2], NULL, 10));
		out("ok");
	} else if ((strcmp(cmd, "newest") == 0 || strcmp(cmd, "newest-nowait") == 0) && argc == 2) {
		struct call *c = calloc(1, sizeof(*c));
		snprintf(c->upstream, sizeof(c->upstream), "%s", argv[1]);
		c->start = mono_ms();
		c->wait = strcmp(cmd, "newest") == 0;
		if (c->wait)
			busy = 1;
		store_newest_activity(store, argv[1], answered, c);
		if (strcmp(cmd, "newest-nowait") == 0)
			out("sent");
	} else if (strcmp(cmd, "newest-cancel") == 0 && argc == 2) {
		struct call *c = calloc(1, sizeof(*c));
		snprintf(c->upstream, sizeof(c->upstream), "%s", argv[1]);
		c->start = mono_ms();
		if (!store_connected(store)) {
			free(c);	/* it would be answered at once: nothing to cancel */
			out("not connected");
		} else {
			store_newest_activity(store, argv[1], answered, c);
			store_cancel(store, c);
			c->cancelled = 1;
			c->next = cancelled;
			cancelled = c;
			out("cancelled");
		}
	} else if (strcmp(cmd, "state") == 0 && (argc == 4 || argc == 5)) {
		store_replica_state(store, argv[1], atoi(argv[2]), argv[3], argc == 5 ? argv[4] : NULL);
		out("ok");
	} else if (strcmp(cmd, "add") == 0 && argc == 4) {
		store_add(store, argv[1], argv[2], strtod(argv[3], NULL));
		out("ok");
	} else if (strcmp(cmd, "connected") == 0) {
		out("connected %d", store_connected(store));
	} else if (strcmp(cmd, "wait-connected") == 0 || strcmp(cmd, "wait-disconnected") == 0) {
		start_wait(strcmp(cmd, "wait-connected") == 0, argc > 1 ? atoll(argv[1]) : 30000);
	} else if (strcmp(cmd, "sleep") == 0 && argc == 2) {
		start_wait(-1, atoll(argv[1]));
	} else if (strcmp(cmd, "bench") == 0 && argc == 2) {
		long n = atol(argv[1]);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (long i = 1; i <= n; i++)
			store_activity(store, "bench", 1700000000000 + i);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		out("bench %.1f", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (n > 0 ? n : 1));
	} else if (strcmp(cmd, "quit") == 0) {
		quitting = 1;
	} else {
		out("error: bad command \"%s\"", cmd);
	}
}

static void finish(void)
{
	store_free(store);
	store = NULL;
	event_base_loopbreak(base);
}

static void next_cb(evutil_socket_t fd, short what, void *arg)
{
	while (!busy && !quitting && qhead < nqueue) {
		char *line = queue[qhead++];
		run(line);
		free(line);
	}
	if (quitting || (!busy && input_done && qhead == nqueue))
		finish();
}

static void push(const char *line, size_t len)
{
	char **nq = realloc(queue, sizeof(*queue) * (nqueue + 1));
	if (!nq)
		abort();
	queue = nq;
	queue[nqueue++] = strndup(line, len);
}

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	ssize_t n = read(0, inbuf + inlen, sizeof(inbuf) - 1 - inlen);
	if (n > 0)
		inlen += n;
	char *nl;
	while ((nl = memchr(inbuf, '\n', inlen))) {
		push(inbuf, nl - inbuf);
		inlen -= nl + 1 - inbuf;
		memmove(inbuf, nl + 1, inlen);
	}
	if (n <= 0 || inlen == sizeof(inbuf) - 1) {
		if (inlen)
			push(inbuf, inlen);
		inlen = 0;
		input_done = 1;
		event_del(stdin_ev);
	}
	schedule_next();
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: store-test HOST PORT PREFIX [COMMAND]...\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);	/* as the daemon: a dead Redis must not kill us */
	log_open(NULL, getenv("STORE_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	base = event_base_new();
	next_ev = event_new(base, -1, 0, next_cb, NULL);
	tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	struct redis_conn_cfg rc = { .host = strcmp(argv[1], "-") == 0 ? NULL : argv[1], .port = atoi(argv[2]),
				     .user = getenv("STORE_TEST_USER"), .password = getenv("STORE_TEST_PASSWORD"),
				     .tls = getenv("STORE_TEST_TLS_CA") != NULL, .tls_ca = getenv("STORE_TEST_TLS_CA") };
	store = store_new(base, &rc, argv[3]);
	if (!store)
		return 1;
	if (argc > 4) {
		for (int i = 4; i < argc; i++)
			push(argv[i], strlen(argv[i]));
		input_done = 1;
		schedule_next();
	} else {
		stdin_ev = event_new(base, 0, EV_READ | EV_PERSIST, stdin_cb, NULL);
		event_add(stdin_ev, NULL);
	}
	event_base_dispatch(base);
	if (store)
		store_free(store);
	while (qhead < nqueue)
		free(queue[qhead++]);
	while (cancelled) {
		struct call *c = cancelled;
		cancelled = c->next;
		free(c);
	}
	free(queue);
	if (stdin_ev)
		event_free(stdin_ev);
	event_free(tick_ev);
	event_free(next_ev);
	event_base_free(base);
	return 0;
}
