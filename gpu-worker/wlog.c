/* wlog: timestamped log lines on stderr (see wlog.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "gpu-worker/wlog.h"

static const char *const wlog_names[] = { "error", "warn", "notice", "info" };

/* Formats the whole line first so that lines from two threads never interleave. */
void
wlog(enum wlog_level level, const char *fmt, ...)
{
	char msg[1024], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y/%m/%d %H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s [%s] %ld#0: %s\n", stamp, wlog_names[level], (long)getpid(), msg);
}
