/*
 * launch_output: a launched worker's stdout and stderr, line by line, into
 * the error log with the launcher's tag ("upstream "digits" replica 0: ...")
 * as prefix, and its last lines kept in launch.tail for the failure's log
 * line and /status.
 *
 * Bounded and never blocking: the pipe's read end is non-blocking and read
 * at most LO_READS_MAX chunks per wakeup; a line longer than LO_LINE_MAX is
 * cut (the rest is dropped up to its newline); at most LO_RATE lines a
 * second reach the log, the others only the tail, and the count of those left
 * out is logged once the second is over. A worker that writes faster than
 * that fills the pipe and waits in its own write(): its problem, not the
 * loop's.
 *
 * Owner: the exec launcher that made it (launch_exec.c), which frees it with
 * itself; the fd is closed here.
 */
#include "config.h"
#include "gateway/launch.h"
#include "gateway/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LO_LINE_MAX 512		/* longest line logged, bytes */
#define LO_READS_MAX 16		/* 4 KiB reads per wakeup */
#define LO_RATE 100		/* lines a second into the log */
#define LO_TAIL_LINES 4		/* lines kept for the failure's reason */
#define LO_TAIL_LINE 120	/* bytes of each kept line */

struct launch_output {
	struct event *ev;
	struct event *flush;	/* one second after lines were dropped: log their count */
	int fd;
	struct launch *l;	/* tag in, tail out */
	char line[LO_LINE_MAX + 1];
	size_t len;
	int cut;		/* this line passed LO_LINE_MAX: skip to its newline */
	char ring[LO_TAIL_LINES][LO_TAIL_LINE + 1];
	int nring;		/* lines in the ring, the newest at (nring-1) % LO_TAIL_LINES */
	time_t win;		/* the second LO_RATE counts in */
	int win_lines;
	long dropped;		/* lines left out of the log in that second */
};

static time_t lo_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* launch.tail = the ring's lines, oldest first, joined by " | " */
static void lo_tail(struct launch_output *o)
{
	char *t = o->l->tail;
	size_t cap = sizeof(o->l->tail), n = 0;
	int first = o->nring > LO_TAIL_LINES ? o->nring - LO_TAIL_LINES : 0;
	t[0] = 0;
	for (int i = first; i < o->nring && n + 1 < cap; i++) {
		int w = snprintf(t + n, cap - n, "%s%s", i > first ? " | " : "", o->ring[i % LO_TAIL_LINES]);
		if (w < 0)
			break;
		n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
	}
}

static void lo_dropped(struct launch_output *o)
{
	if (o->dropped)
		log_notice("%s: %ld lines of output not logged (more than %d a second)",
			   o->l->tag, o->dropped, LO_RATE);
	o->dropped = 0;
	evtimer_del(o->flush);
}

static void lo_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lo_dropped(arg);
}

static void lo_line(struct launch_output *o)
{
	o->line[o->len] = 0;
	/* a \r from a progress bar or CRLF output is not part of the text */
	while (o->len > 0 && (o->line[o->len - 1] == '\r' || o->line[o->len - 1] == ' '))
		o->line[--o->len] = 0;
	if (o->len == 0)
		return;
	for (size_t i = 0; i < o->len; i++)	/* one log line per line: no control characters */
		if ((unsigned char)o->line[i] < 0x20 && o->line[i] != '\t')
			o->line[i] = '?';
	size_t keep = o->len < LO_TAIL_LINE ? o->len : LO_TAIL_LINE;
	memcpy(o->ring[o->nring % LO_TAIL_LINES], o->line, keep);
	o->ring[o->nring % LO_TAIL_LINES][keep] = 0;
	o->nring++;
	if (o->nring >= 2 * LO_TAIL_LINES)	/* keep the index small; the order stays */
		o->nring -= LO_TAIL_LINES;
	lo_tail(o);
	time_t now = lo_now();
	if (now != o->win) {
		lo_dropped(o);
		o->win = now;
		o->win_lines = 0;
	}
	if (o->win_lines++ < LO_RATE) {
		log_notice("%s: %s%s", o->l->tag, o->line, o->cut ? " [...]" : "");
	} else if (o->dropped++ == 0) {
		/* said even when the worker goes quiet after its flood */
		struct timeval sec = { 1, 0 };
		evtimer_add(o->flush, &sec);
	}
}

static void lo_bytes(struct launch_output *o, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\n') {
			lo_line(o);
			o->len = 0;
			o->cut = 0;
		} else if (o->len < LO_LINE_MAX) {
			o->line[o->len++] = b[i];
		} else {
			o->cut = 1;
		}
	}
}

/* Reads what is there, at most LO_READS_MAX chunks; 1 at EOF or error. */
static int lo_read(struct launch_output *o)
{
	char buf[4096];
	for (int i = 0; i < LO_READS_MAX; i++) {
		ssize_t n = read(o->fd, buf, sizeof(buf));
		if (n > 0) {
			lo_bytes(o, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EINTR))
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (o->len)	/* a last line without its newline */
			lo_line(o);
		o->len = 0;
		return 1;
	}
	return 0;
}

static void lo_cb(evutil_socket_t fd, short what, void *arg)
{
	struct launch_output *o = arg;
	(void)fd;
	(void)what;
	if (lo_read(o))
		event_del(o->ev);	/* EOF: every writer is gone; freed with the launcher */
}

struct launch_output *launch_output_new(struct event_base *base, int fd, struct launch *l)
{
	struct launch_output *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->fd = fd;
	o->l = l;
	l->tail[0] = 0;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    !(o->flush = evtimer_new(base, lo_flush_cb, o)) ||
	    !(o->ev = event_new(base, fd, EV_READ | EV_PERSIST, lo_cb, o)) || event_add(o->ev, NULL) < 0) {
		if (o->ev)
			event_free(o->ev);
		if (o->flush)
			event_free(o->flush);
		free(o);
		return NULL;
	}
	return o;
}

void launch_output_drain(struct launch_output *o)
{
	if (o && event_pending(o->ev, EV_READ, NULL) && lo_read(o))
		event_del(o->ev);
}

void launch_output_free(struct launch_output *o)
{
	if (!o)
		return;
	launch_output_drain(o);
	lo_dropped(o);
	event_free(o->flush);
	event_free(o->ev);
	close(o->fd);
	free(o);
}
