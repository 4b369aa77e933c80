/*
 * wlog: the worker's log on stderr, in the gateway's (nginx's) format:
 *   2026/11/25 16:40:00 [notice] 1234#0: listening on http://127.0.0.1:9001
 * Safe from any thread: each line is one stdio call.
 */
#ifndef WG_WLOG_H
#define WG_WLOG_H

enum wlog_level { WLOG_ERROR, WLOG_WARN, WLOG_NOTICE, WLOG_INFO };

void wlog(enum wlog_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
