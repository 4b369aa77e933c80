/*
 * log: the error log every program writes, nginx format (see log.h).
 * The fd is owned here; log_reopen() reopens the same path (SIGUSR1).
 */
#include "config.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;		/* -1: stderr */
static char *log_path;
static enum log_level log_level = LOG_LVL_NOTICE;

static const char *const log_names[] = {
	"emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"
};

/* "stderr" (or NULL) means fd 2; otherwise a file opened for append. */
static int log_open_fd(const char *path)
{
	if (!path || strcmp(path, "stderr") == 0)
		return -1;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	return fd < 0 ? -2 : fd;
}

/* Lines go to path from now on; the old fd stays when path cannot be opened. */
static int log_swap_fd(const char *path)
{
	int fd = log_open_fd(path);
	if (fd == -2)
		return -1;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	return 0;
}

int log_open(const char *path, enum log_level level)
{
	if (log_swap_fd(path) < 0)
		return -1;
	free(log_path);
	log_path = path ? strdup(path) : NULL;
	log_level = level;
	return 0;
}

int log_reopen(void)
{
	return log_swap_fd(log_path);
}

void log_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	free(log_path);
	log_path = NULL;
}

int log_enabled(enum log_level level)
{
	return level <= log_level;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(log_names) / sizeof(log_names[0]))
		return "?";
	return log_names[level];
}

/* One write(2) per line, so lines from a forked child never interleave mid-line. */
static void log_vemit(enum log_level level, const char *fmt, va_list ap)
{
	int saved = errno;
	char line[4096];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm);
	if ((unsigned)level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	n += snprintf(line + n, sizeof(line) - (size_t)n, " [%s] %d#0: ", log_names[level], (int)getpid());
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	/* a client's bytes in the message (a URI, a header) forge no line and
	 * send no terminal escape: control bytes become \xHH, as nginx's */
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
			char esc[sizeof(line)];
			int o = 0;
			for (int j = 0; j < n && o < (int)sizeof(esc) - 6; j++) {
				unsigned char c = (unsigned char)line[j];
				if (c < 0x20 || c == 0x7f)
					o += snprintf(esc + o, sizeof(esc) - (size_t)o, "\\x%02X", c);
				else
					esc[o++] = (char)c;
			}
			memcpy(line, esc, (size_t)o);
			n = o;
			break;
		}
	line[n++] = '\n';
	ssize_t w = write(log_fd >= 0 ? log_fd : 2, line, (size_t)n);
	/*
	 * emerg is a start (or reload) that fails: the person who typed the
	 * command watches the terminal, not the log file (a daemon's fd 2 is
	 * /dev/null by then).
	 */
	if (level == LOG_LVL_EMERG && log_fd >= 0 && log_fd != 2)
		w = write(2, line, (size_t)n);
	(void)w;
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vemit(level, fmt, ap);
	va_end(ap);
}

void log_emit(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(level, fmt, ap);
	va_end(ap);
}
