/*
 * accesslog: the access log file, owned here; one write(2) per line.
 */
#include "config.h"
#include "common/http.h"
#include "gateway/accesslog.h"
#include "gateway/log_escape.h"
#include "gateway/request.h"

#include <event2/http.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int al_fd = -1;
static char *al_path;

/* "stderr" and "stdout" are duplicated so that close() never closes them. */
static int al_open_fd(const char *path)
{
	if (!path || strcmp(path, "off") == 0)
		return -1;
	if (strcmp(path, "stderr") == 0)
		return fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (strcmp(path, "stdout") == 0)
		return fcntl(1, F_DUPFD_CLOEXEC, 3);
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int accesslog_open(const char *path)
{
	int fd = -1;
	if (path && strcmp(path, "off") != 0) {
		fd = al_open_fd(path);
		if (fd < 0)
			return -1;
	}
	if (al_fd >= 0)
		close(al_fd);
	al_fd = fd;
	free(al_path);
	al_path = path ? strdup(path) : NULL;
	return 0;
}

int accesslog_reopen(void)
{
	if (!al_path)
		return 0;
	char *p = strdup(al_path);
	int rc = p ? accesslog_open(p) : -1;
	free(p);
	return rc;
}

void accesslog_close(void)
{
	if (al_fd >= 0)
		close(al_fd);
	al_fd = -1;
	free(al_path);
	al_path = NULL;
}

int accesslog_enabled(void)
{
	return al_fd >= 0;
}

void accesslog_time(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, len, "%d/%b/%Y:%H:%M:%S %z", &tm);
}

void accesslog_write(const struct wg_request *r, const char *upstream, const char *replica_url,
		     int status, uint64_t bytes, double upstream_ms)
{
	if (al_fd < 0)
		return;
	char line[2048], req_line[4 * sizeof(r->line)], rid[4 * sizeof(r->id)];
	/* what the client sent, escaped as nginx does (log_escape.h) */
	int n = snprintf(line, sizeof(line),
			 "%s - - [%s] \"%s\" %d %" PRIu64 " upstream=%s replica=%s hold_ms=%.0f upstream_ms=%.1f rid=%s%s%s\n",
			 r->remote, r->time_local, log_escape(req_line, sizeof(req_line), r->line), status, bytes,
			 upstream && *upstream ? upstream : "-",
			 replica_url && *replica_url ? replica_url : "-",
			 r->hold_ms, upstream_ms, log_escape(rid, sizeof(rid), r->id),
			 r->tenant[0] ? " tenant=" : "", r->tenant);	/* only with a key: old lines stay as they were */
	if (n < 0)
		return;
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	ssize_t w = write(al_fd, line, (size_t)n);
	(void)w;
}

void accesslog_refused(struct evhttp_request *req, int status, const char *upstream, uint64_t bytes)
{
	if (al_fd < 0 || !req)
		return;
	struct wg_request r;
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	const char *id = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-Id");

	memset(&r, 0, sizeof(r));
	if (c)
		evhttp_connection_get_peer(c, &addr, &port);
	snprintf(r.remote, sizeof(r.remote), "%s", addr ? addr : "-");
	snprintf(r.line, sizeof(r.line), "%s %.400s HTTP/1.1", http_method_name(evhttp_request_get_command(req)),
		 evhttp_request_get_uri(req));
	accesslog_time(r.time_local, sizeof(r.time_local));
	snprintf(r.id, sizeof(r.id), "%s", log_token_ok(id, sizeof(r.id)) ? id : "-");
	accesslog_write(&r, upstream, NULL, status, bytes, 0);
}
