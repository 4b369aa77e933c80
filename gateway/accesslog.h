/*
 * accesslog: one line per finished request, nginx combined-like plus the
 * gateway's own fields:
 *   127.0.0.1 - - [25/Nov/2026:16:40:00 +0000] "POST /predict HTTP/1.1" 200 123
 *   upstream=digits replica=http://127.0.0.1:9001 hold_ms=1840 upstream_ms=12.3 rid=...
 */
#ifndef WG_ACCESSLOG_H
#define WG_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct wg_request;
struct evhttp_request;

/* path NULL or "off": no access log. 0, or -1 with errno (the old one stays). */
int accesslog_open(const char *path);
int accesslog_reopen(void);
void accesslog_close(void);
/* 1 when an access log is open: callers skip formatting what only it reads. */
int accesslog_enabled(void);
/* nginx's $time_local for now, into buf. */
void accesslog_time(char *buf, size_t len);
void accesslog_write(const struct wg_request *r, const char *upstream, const char *replica_url,
		     int status, uint64_t bytes, double upstream_ms);

/* A line for a request the gateway answers itself, before it is forwarded
 * or held (404, 413, a limit's 503/429, a degrade rule's return): call it
 * before the answer is sent, while req is still there. upstream may be NULL. */
void accesslog_refused(struct evhttp_request *req, int status, const char *upstream, uint64_t bytes);

#endif
