/*
 * wlog: the worker's log on stderr, in the gateway's (nginx's) format:
 *   2026/11/25 16:40:00 [notice] 1234#0: listening on http://127.0.0.1:9001
 * The worker's convention over common/log.h: four levels, every line
 * written whatever its level. Safe from any thread: each line is one write.
 */
#ifndef WG_WLOG_H
#define WG_WLOG_H

#include "common/log.h"

enum wlog_level {
	WLOG_ERROR = LOG_LVL_ERROR, WLOG_WARN = LOG_LVL_WARN,
	WLOG_NOTICE = LOG_LVL_NOTICE, WLOG_INFO = LOG_LVL_INFO
};

#define wlog(level, ...) log_emit((enum log_level)(level), __VA_ARGS__)

#endif
