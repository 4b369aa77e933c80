/*
 * log: the error log, nginx style:
 *   2026/11/25 16:40:00 [notice] 1234#0: upstream "digits": STOPPED -> BOOTING
 * Until log_open() succeeds, messages go to stderr. log_reopen() is for
 * SIGUSR1 (log rotation) and reload.
 */
#ifndef WG_LOG_H
#define WG_LOG_H

#include "gateway/conf.h"

/* 0, or -1 with errno when path cannot be opened (the old log stays). */
int log_open(const char *path, enum conf_log_level level);
int log_reopen(void);
void log_close(void);
int log_enabled(enum conf_log_level level);
void log_msg(enum conf_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_emerg(...)  log_msg(LOG_LVL_EMERG, __VA_ARGS__)
#define log_alert(...)  log_msg(LOG_LVL_ALERT, __VA_ARGS__)
#define log_error(...)  log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)  do { if (log_enabled(LOG_LVL_DEBUG)) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
