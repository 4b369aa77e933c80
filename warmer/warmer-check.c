/*
 * warmer-check: runs many warmers at once on one loop against the given
 * base URLs and cancels them at awkward moments (before the loop ran, from a
 * timer, from a warmer's own progress hook, from another warmer's done
 * callback). It checks that each warmer ends exactly once, that nothing
 * happens after a cancel, and that no event is left on the loop. t/25 runs
 * it; run it under valgrind to see that nothing leaks.
 *
 * usage: warmer-check N URL... (the model is "digits"). Exit 0 when all
 * checks hold; it prints what it saw either way.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "warmer/warmer.h"
#include "warmer/warmer_progress.h"

enum slot_state { RUNNING, DONE, CANCELLED };

struct slot {
	struct warmer *w;
	struct event *timer;	/* cancels w when it fires, if still running */
	enum slot_state state;
	int cancel_in_progress;	/* cancel from the progress hook, at request 2 */
	struct slot *victim;	/* cancel this one from our done callback */
};

static struct event_base *base;
static struct event *guard;
static int n_slots, n_resolved, n_ok, n_failed, n_cancelled, n_errors;

static void resolved(struct slot *s);

static void error(const char *what)
{
	fprintf(stderr, "warmer-check: %s\n", what);
	n_errors++;
}

static void cancel(struct slot *s)
{
	if (s->state != RUNNING)
		return;
	warmer_cancel(s->w);
	s->w = NULL;
	s->state = CANCELLED;
	n_cancelled++;
	resolved(s);
}

static void on_done(int ok, const char *reason, const struct warmer_result *res, void *arg)
{
	struct slot *s = arg;

	if (s->state != RUNNING) {
		error("done callback after the warmer ended");
		return;
	}
	if (!reason || (!ok && !reason[0]))
		error("a failure without a reason");
	s->state = DONE;
	s->w = NULL;
	if (ok)
		n_ok++;
	else
		n_failed++;
	if (s->victim)
		cancel(s->victim);
	resolved(s);
}

static void on_progress(int n, const char *what, long status, double ms, void *arg)
{
	struct slot *s = arg;

	if (s->state != RUNNING)
		error("progress after the warmer ended");
	if (s->cancel_in_progress && n == 2)
		cancel(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	cancel(arg);
}

/* All warmers ended: nothing of theirs may still be on the loop. */
static void on_leak_check(evutil_socket_t fd, short what, void *arg)
{
	int left = event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
	if (left > 0) {
		fprintf(stderr, "warmer-check: %d events left on the loop after every warmer ended\n", left);
		n_errors++;
		event_base_loopbreak(base);
	}
}

/* One warmer ended; its own timer goes, so that the loop can run dry. */
static void resolved(struct slot *s)
{
	if (s->timer)
		evtimer_del(s->timer);
	if (++n_resolved < n_slots)
		return;
	struct timeval now = { 0, 0 };
	evtimer_del(guard);
	event_base_once(base, -1, EV_TIMEOUT, on_leak_check, NULL, &now);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
	fprintf(stderr, "warmer-check: warmers still running after 60s\n");
	n_errors++;
	event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: warmer-check N URL...\n");
		return 2;
	}
	n_slots = atoi(argv[1]);
	if (n_slots < 2)
		n_slots = 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	base = event_base_new();
	guard = evtimer_new(base, on_guard, NULL);
	struct timeval limit = { 60, 0 };
	evtimer_add(guard, &limit);
	struct slot *slots = calloc((size_t)n_slots, sizeof(*slots));
	srand(42);
	for (int i = 0; i < n_slots; i++) {
		struct slot *s = &slots[i];
		struct warmer_opts o = {
			.base_url = argv[2 + (i / 3) % (argc - 2)], .model = "digits",
			.count = 3, .until_stable = i % 4 == 0, .timeout_ms = 2000,
		};
		s->w = warmer_start(base, &o, on_done, s);
		if (!s->w) {
			fprintf(stderr, "warmer-check: warmer_start failed\n");
			return 1;
		}
		warmer_set_progress(s->w, on_progress, s);
		s->cancel_in_progress = i % 7 == 3;
		if (i % 5 == 1)
			s->victim = &slots[i - 1];
		if (i % 2 == 0) {
			struct timeval tv = { 0, rand() % 40000 };
			s->timer = evtimer_new(base, on_timer, s);
			evtimer_add(s->timer, &tv);
		}
	}
	cancel(&slots[n_slots - 1]);	/* before the loop ever ran */
	event_base_dispatch(base);

	for (int i = 0; i < n_slots; i++) {
		if (slots[i].state == RUNNING) {
			fprintf(stderr, "warmer-check: slot %d never ended\n", i);
			warmer_cancel(slots[i].w);
			n_errors++;
		}
		if (slots[i].timer)
			event_free(slots[i].timer);
	}
	printf("warmers: %d started, %d ok, %d failed, %d cancelled, %d errors\n",
	       n_slots, n_ok, n_failed, n_cancelled, n_errors);
	free(slots);
	event_free(guard);
	event_base_free(base);
	curl_global_cleanup();
	libevent_global_shutdown();
	return n_errors ? 1 : 0;
}
