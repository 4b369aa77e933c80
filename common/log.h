/*
 * log: the one error log of every wakegate program, in nginx's format:
 *   2026/11/25 16:40:00 [notice] 1234#0: upstream "digits": STOPPED -> BOOTING
 * Each line is one write(2), so lines from threads or forked children never
 * interleave mid-line. Until log_open() succeeds, lines go to stderr.
 *
 * The programs keep their conventions on top: the gateway filters by the
 * conf's error_log level (log_msg and the log_error... macros); the worker
 * writes every line it makes to stderr (gpu-worker/wlog.h maps onto
 * log_emit). The fd and the path are owned here; log_close() frees them.
 */
#ifndef WG_COMMON_LOG_H
#define WG_COMMON_LOG_H

/* syslog's order: a lower number is more severe. */
enum log_level {
	LOG_LVL_EMERG, LOG_LVL_ALERT, LOG_LVL_CRIT, LOG_LVL_ERROR,
	LOG_LVL_WARN, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG
};

/* "emerg" ... "debug"; "?" for a number out of range. */
const char *log_level_name(enum log_level level);

/*
 * Sends lines to path ("stderr" or NULL: fd 2; else appended to) and keeps
 * those at level or more severe. 0, or -1 with errno when path cannot be
 * opened (the old destination and level stay).
 */
int log_open(const char *path, enum log_level level);
/* Opens the same path again (SIGUSR1: log rotation). 0, or -1 with errno. */
int log_reopen(void);
void log_close(void);
int log_enabled(enum log_level level);
/* One line at level, when log_enabled(level). errno is kept. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* One line at level, whatever the level in force. errno is kept. */
void log_emit(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_emerg(...)  log_msg(LOG_LVL_EMERG, __VA_ARGS__)
#define log_alert(...)  log_msg(LOG_LVL_ALERT, __VA_ARGS__)
#define log_error(...)  log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)  do { if (log_enabled(LOG_LVL_DEBUG)) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
