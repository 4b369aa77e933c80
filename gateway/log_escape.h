/*
 * log_escape: what a client sent, made safe to put in a log line (nginx's
 * escaping of log variables): bytes below 0x20, from 0x7f up, the double
 * quote and the backslash become \xHH, so that a request cannot forge a log
 * line, close a quoted field or send the terminal escapes. A candidate for
 * the shared lower layer (pgbouncer's src/common) once there is one.
 */
#ifndef WG_LOG_ESCAPE_H
#define WG_LOG_ESCAPE_H

#include <stddef.h>

/* Writes src escaped to dst (len bytes with the NUL; cut short on a whole
 * escape when it does not fit). Returns dst. */
char *log_escape(char *dst, size_t len, const char *src);

/* 1 when s is a request id a client may choose: 1 to max-1 characters of
 * letters, digits, ".", "_", ":" and "-". Anything else is replaced. */
int log_token_ok(const char *s, size_t max);

#endif
