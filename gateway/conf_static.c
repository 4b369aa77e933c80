/*
 * conf_static: an upstream of always-on servers, nginx's
 * "upstream NAME { server HOST:PORT; ... }": no launcher, nothing started
 * or stopped; one replica per server line (launch_server.c stands in for
 * the launcher, replica_health.c checks them while READY). The directives
 * that only make sense for a replica the gateway starts and stops are
 * refused here, at the line that wrote them, once the block is read.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/url.h"
#include "gateway/conf_int.h"

/* server HOST:PORT | http://HOST:PORT | https://HOST:PORT (in an upstream) */
int conf_set_upstream_server(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;
	const char *s = av[0];
	char host[256], *url;
	int port;

	if (strstr(s, "://") && strncmp(s, "http://", 7) && strncmp(s, "https://", 8))
		return conf_error(p, "invalid server \"%s\" (HOST:PORT, http://HOST:PORT or https://HOST:PORT)", s);
	url = strstr(s, "://") ? conf_xstrdup(s) : conf_xasprintf("http://%s", s);
	/* a port is required: an inference server on :80 is a guess, not a default */
	const char *hp = strstr(url, "://") + 3, *colon = strrchr(hp, ':'), *bracket = strrchr(hp, ']');
	if (url_split(url, host, sizeof(host), &port, NULL) < 0 || !colon || (bracket && colon < bracket) ||
	    port < 1 || port > 65535) {
		free(url);
		return conf_error(p, "invalid server \"%s\" (HOST:PORT, http://HOST:PORT or https://HOST:PORT)", s);
	}
	size_t n = strlen(url);
	if (url[n - 1] == '/')
		url[n - 1] = '\0';	/* the replica's URL has no path: the request's is appended */
	if (n >= 128) {		/* struct replica's url */
		free(url);
		return conf_error(p, "server \"%s\" is too long", s);
	}
	for (int i = 0; i < u->nservers; i++)
		if (strcmp(u->servers[i], url) == 0) {
			free(url);
			return conf_error(p, "duplicate server \"%s\"", s);
		}
	if (u->nservers == CONF_MAX_SERVERS) {
		free(url);
		return conf_error(p, "more than %d \"server\" lines in upstream \"%s\"", CONF_MAX_SERVERS, u->name);
	}
	char **nv = realloc(u->servers, (size_t)(u->nservers + 1) * sizeof(*nv));
	if (!nv)
		abort();	/* out of memory at load is fatal (conf_xcalloc's rule) */
	u->servers = nv;
	u->servers[u->nservers++] = url;
	return 0;
}

/*
 * The upstream directives that have no meaning for a server the gateway
 * never starts or stops, and why (the error says it). health, warmup,
 * hold, max_conns, the price, tls_verify/tls_ca (https servers), priority
 * and model apply as to any upstream.
 */
static const struct { const char *name, *why; } not_for_servers[] = {
	{ "launch", "a server line is a backend that is already running: there is nothing to launch" },
	{ "env", "nothing is launched to take it" },
	{ "boot_timeout", "a server that is not healthy is polled until it is; held requests wait up to the hold timeout" },
	{ "idle_timeout", "a server is never stopped" },
	{ "stop_grace", "a server is never stopped" },
	{ "min_warm", "every server line is always up" },
	{ "replicas", "one replica per server line" },
	{ "target_concurrency", "one replica per server line: nothing to scale" },
	{ "scale_p99", "one replica per server line: nothing to scale" },
	{ "scale_on", "one replica per server line: nothing to scale" },
	{ "scale_down_cooldown", "one replica per server line: nothing to scale" },
	{ "headroom", "one replica per server line: nothing to scale" },
	{ "keepalive", "a server is never stopped" },
	{ "prewarm", "a server is never stopped" },
	{ "sleep", "a server is never put to sleep" },
	{ "sleep_api", "a server is never put to sleep" },
	{ "gpu_memory", "the gateway does not place or evict a server" },
	{ "pin", "the gateway does not place or evict a server" },
	{ "lock_ttl", "no gateway claims a server: every one sends to it" },
	{ "boot_cancel", "a server is never booted" },
	{ "model_file", "a server is never restarted on a new version" },
	{ "recycle", "a server is never restarted" },
	{ "tls", "write the server as https://HOST:PORT" },
};

int conf_upstream_block_done(struct conf_parse *p)
{
	struct conf_upstream *u = p->ups;
	size_t row;

	if (!u->nservers)
		return 0;
	for (size_t i = 0; i < sizeof(not_for_servers) / sizeof(not_for_servers[0]); i++) {
		const struct conf_cmd *cmd = conf_cmd_find(not_for_servers[i].name, CONF_UPSTREAM, &row);
		if (!cmd || !p->where[row].file)
			continue;
		return conf_error_at(p, p->where[row].file, p->where[row].line,
				     "\"%s\" does not apply to upstream \"%s\" of \"server\" lines (%s)",
				     not_for_servers[i].name, u->name, not_for_servers[i].why);
	}
	free(u->launch_kind);
	u->launch_kind = conf_xstrdup(CONF_LAUNCH_SERVER);
	/* every server is kept up (scale.c's floor), none above: one replica a line */
	u->replicas_min = u->replicas_max = u->nservers;
	u->min_warm = 0;
	/* warmup only when written: the default asks for a model the server may not have */
	if (conf_cmd_find("warmup", CONF_UPSTREAM, &row) && !p->where[row].file)
		u->warmup.off = 1;
	return 0;
}
