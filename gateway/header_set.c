/* header_set: see header_set.h. */
#include "config.h"
#include "gateway/header_set.h"
#include "gateway/conf.h"
#include "common/vars.h"

#include <ctype.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of one variable (name of len bytes) for req, in buf or static; "" when none. */
static const char *var(const char *name, size_t len, struct evhttp_request *req, const char *replica_url,
		       char *buf, size_t buflen)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	buf[0] = 0;
	if (len == 4 && !strncmp(name, "host", 4)) {
		const char *h = evhttp_request_get_host(req);	/* without the port */
		snprintf(buf, buflen, "%s", h ? h : "");
		for (char *c = buf; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		return buf;
	}
	if (len == 11 && !strncmp(name, "remote_addr", 11)) {
		char *addr = NULL;
		ev_uint16_t port = 0;
		struct evhttp_connection *c = evhttp_request_get_connection(req);
		if (c)
			evhttp_connection_get_peer(c, &addr, &port);
		return addr ? addr : "";
	}
	if (len == 6 && !strncmp(name, "scheme", 6)) {
		struct evhttp_connection *c = evhttp_request_get_connection(req);
		struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
		return bev && bufferevent_openssl_get_ssl(bev) ? "https" : "http";
	}
	if (len == 10 && !strncmp(name, "proxy_host", 10)) {
		const char *h = replica_url ? strstr(replica_url, "://") : NULL;
		snprintf(buf, buflen, "%s", h ? h + 3 : "");
		buf[strcspn(buf, "/")] = 0;
		return buf;
	}
	if (len == 11 && !strncmp(name, "request_uri", 11)) {
		const char *u = evhttp_request_get_uri(req);
		return u ? u : "";
	}
	if (len > 5 && !strncmp(name, "http_", 5)) {	/* $http_x_api_key -> X-Api-Key */
		char hname[128];
		size_t n = len - 5 < sizeof(hname) - 1 ? len - 5 : sizeof(hname) - 1;
		memcpy(hname, name + 5, n);
		hname[n] = 0;
		for (char *c = hname; *c; c++)
			if (*c == '_')
				*c = '-';
		const char *v = evhttp_find_header(in, hname);
		return v ? v : "";
	}
	return "";	/* the conf check refused any other name */
}

struct expand_ctx {
	struct evhttp_request *req;
	const char *replica_url;
	char buf[512];
};

static const char *lookup(const char *name, size_t nlen, size_t *vlen, void *arg)
{
	struct expand_ctx *x = arg;
	const char *v = var(name, nlen, x->req, x->replica_url, x->buf, sizeof(x->buf));
	*vlen = strcspn(v, "\r\n");	/* a value with a line break would split the header: cut there */
	return v;
}

/* value with its variables replaced; malloc'd or NULL. */
static char *expand(const char *value, struct evhttp_request *req, const char *replica_url)
{
	struct expand_ctx x = { .req = req, .replica_url = replica_url };
	return vars_expand(value, 0, lookup, &x);
}

char **header_set_expand(const struct conf_header *h, struct evhttp_request *req, const char *replica_url)
{
	size_t n = 0;
	for (const struct conf_header *x = h; x; x = x->next)
		n++;
	if (!n || !req)
		return NULL;
	char **list = calloc(2 * n + 1, sizeof(*list));
	size_t i = 0;
	for (const struct conf_header *x = h; list && x; x = x->next) {
		list[i] = strdup(x->name);
		list[i + 1] = expand(x->value, req, replica_url);
		if (!list[i] || !list[i + 1]) {
			header_set_free(list);
			return NULL;
		}
		i += 2;
	}
	return list;
}

void header_set_free(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}
