/*
 * conf_header: "proxy_set_header NAME VALUE;" (main, server, location), as
 * nginx's: the lines of the innermost level that has any are in force
 * (conf.c inherits them after parsing); an empty VALUE removes the header.
 * VALUE may hold the variables proxy_hdr_expand() knows.
 */
#include "config.h"
#include "gateway/conf_int.h"
#include "common/vars.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The variables a proxy_set_header value may name (see proxy_hdr_expand). */
static const char *const known[] = { "host", "http_host", "remote_addr", "scheme", "proxy_host", "request_uri" };

static int is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", *s)))
			return 0;
	return 1;
}

static int check_value(struct conf_parse *p, const char *v)
{
	for (const char *s = strchr(v, '$'); s; s = strchr(s, '$')) {
		const char *n;
		size_t len, rlen;
		enum vars_ref_kind k = vars_ref(s, 0, &n, &len, &rlen);
		if (k == VARS_BAD)
			return conf_error(p, "invalid variable \"%.*s\" in \"proxy_set_header\" directive",
					  rlen > 32 ? 32 : (int)rlen, s);
		/* a "$" that starts no name is refused too, as nginx does */
		int ok = k == VARS_NAME && len > 5 && strncmp(n, "http_", 5) == 0;	/* $http_NAME: a client header */
		for (size_t i = 0; !ok && i < sizeof(known) / sizeof(known[0]); i++)
			ok = strlen(known[i]) == len && strncmp(n, known[i], len) == 0;
		if (!ok)
			return conf_error(p, "unknown variable \"$%.*s\" in \"proxy_set_header\" directive "
					  "(known: $host, $http_host, $http_NAME, $remote_addr, $scheme, $proxy_host, $request_uri)",
					  (int)len, n);
		s += rlen;
	}
	if (strpbrk(v, "\r\n"))
		return conf_error(p, "a line break in \"proxy_set_header\" directive");
	return 0;
}

int conf_set_proxy_header(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	(void)cmd;
	(void)ac;
	if (!is_token(av[0]))
		return conf_error(p, "invalid header name \"%s\" in \"proxy_set_header\" directive", av[0]);
	if (!strcasecmp(av[0], "Content-Length") || !strcasecmp(av[0], "Transfer-Encoding") ||
	    !strcasecmp(av[0], "Connection"))
		return conf_error(p, "\"%s\" frames the request: the gateway sets it, not \"proxy_set_header\"", av[0]);
	if (check_value(p, av[1]) < 0)
		return -1;
	struct conf_header **tail;
	if (p->ctx == CONF_LOCATION)
		tail = &p->loc->pub.own_headers;
	else if (p->ctx == CONF_SERVER)
		tail = &p->srv->pub.own_headers;
	else
		tail = &p->c->pub.proxy_headers;
	while (*tail)
		tail = &(*tail)->next;
	struct conf_header *h = conf_xcalloc(1, sizeof(*h));
	h->name = conf_xstrdup(av[0]);
	h->value = conf_xstrdup(av[1]);
	*tail = h;
	return 0;
}

void conf_headers_free(struct conf_header *h)
{
	while (h) {
		struct conf_header *n = h->next;
		free(h->name);
		free(h->value);
		free(h);
		h = n;
	}
}
