/*
 * conf_cmds: the directive table and the function behind each row. Adding
 * a directive is adding a row here and, unless a generic setter fits, one
 * function; the parser in conf.c already checks context, block or not,
 * argument count and duplicates from the row, applies the row's default
 * and keeps a restart-only line across a reload. The TLS rows are in
 * conf_tls.c.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/conf_int.h"
#include "gateway/loc_regex.h"

/* Which inheritable value a row sets (the "off" of the row). */
enum { INH_BODY_SIZE, INH_CONNECT_TIMEOUT, INH_READ_TIMEOUT };

static int64_t *inherit_slot(struct conf_parse *p, size_t which)
{
	struct conf *c = &p->c->pub;
	int64_t *v[3];

	if (p->ctx == CONF_LOCATION) {
		struct conf_location *l = &p->loc->pub;
		v[0] = &l->client_max_body_size;
		v[1] = &l->proxy_connect_timeout_ms;
		v[2] = &l->proxy_read_timeout_ms;
	} else if (p->ctx == CONF_SERVER) {
		struct conf_server *s = &p->srv->pub;
		v[0] = &s->client_max_body_size;
		v[1] = &s->proxy_connect_timeout_ms;
		v[2] = &s->proxy_read_timeout_ms;
	} else {
		v[0] = &c->client_max_body_size;
		v[1] = &c->proxy_connect_timeout_ms;
		v[2] = &c->proxy_read_timeout_ms;
	}
	return v[which];
}

static int get_time(struct conf_parse *p, const char *s, int64_t *out)
{
	*out = conf_parse_time(s);
	if (*out < 0)
		return conf_error(p, "invalid time \"%s\"", s);
	return 0;
}

/* A time where 0 would make the feature void (a timeout that fires at once). */
static int get_time_pos(struct conf_parse *p, const char *what, const char *s, int64_t *out)
{
	if (get_time(p, s, out) < 0)
		return -1;
	if (*out == 0)
		return conf_error(p, "\"%s\" must be above 0", what);
	return 0;
}

static void set_str(char **field, char *v)
{
	free(*field);
	*field = v;
}

/* "on" | "off" into an int of struct conf. */
static int set_flag(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	int *f = (int *)((char *)&p->c->pub + cmd->off);

	if (strcmp(av[0], "on") == 0)
		*f = 1;
	else if (strcmp(av[0], "off") == 0)
		*f = 0;
	else
		return conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be \"on\" or \"off\"",
				  av[0], cmd->name);
	return 0;
}

static int set_inherit_time(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	return get_time_pos(p, cmd->name, av[0], inherit_slot(p, cmd->off));
}

static int set_inherit_size(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	int64_t v = conf_parse_size(av[0]);
	if (v < 0)
		return conf_error(p, "invalid size \"%s\"", av[0]);
	*inherit_slot(p, cmd->off) = v;
	return 0;
}

/* A time in the main block (client_header_timeout, client_body_timeout); 0 is refused. */
static int set_main_time(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	int64_t *t = (int64_t *)((char *)&p->c->pub + cmd->off);
	if (get_time(p, av[0], t) < 0)
		return -1;
	if (*t < 1000)
		return conf_error(p, "\"%s\" must be at least 1s", cmd->name);
	return 0;
}

/* "max_clients N|off": a count of at least 1, or no cap (clients.c). */
static int set_max_clients(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	char *end;
	long long n;

	(void)ac;
	if (strcmp(av[0], "off") == 0) {
		p->c->pub.max_clients = 0;
		return 0;
	}
	n = strtoll(av[0], &end, 10);
	if (end == av[0] || *end || n < 1 || n > 10000000)
		return conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be a number of connections "
				  "(1-10000000) or \"off\"", av[0], cmd->name);
	p->c->pub.max_clients = n;
	return 0;
}

/* "replica_ports LOW-HIGH": where replica.c picks the $port of a local worker. */
static int set_replica_ports(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	char *end;
	long lo = strtol(av[0], &end, 10), hi = 0;
	if (end != av[0] && *end == '-')
		hi = strtol(end + 1, &end, 10);
	if (*end || lo < 1 || hi < lo || hi > 65535)
		return conf_error(p, "invalid port range \"%s\" in \"%s\" directive, it must be LOW-HIGH within 1-65535",
				  av[0], cmd->name);
	p->c->pub.replica_port_lo = (int)lo;
	p->c->pub.replica_port_hi = (int)hi;
	return 0;
}

static int set_ups_time(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	return get_time(p, av[0], (int64_t *)((char *)p->ups + cmd->off));
}

/* boot_timeout, idle_timeout: 0 is refused */
static int set_ups_time_pos(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	return get_time_pos(p, cmd->name, av[0], (int64_t *)((char *)p->ups + cmd->off));
}

static int set_ups_num(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	return conf_get_count(p, av[0], (int *)((char *)p->ups + cmd->off));
}

static int set_max_conns(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (set_ups_num(p, cmd, av, ac) < 0)
		return -1;
	if (p->ups->max_conns < 1)
		return conf_error(p, "\"max_conns\" must be at least 1");
	return 0;
}

static int set_include(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	return conf_include(p, av[0]);
}

/* pid FILE | off */
static int set_pid(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	set_str(&p->c->pub.pid_path, strcmp(av[0], "off") == 0 ? NULL : conf_path(p, av[0]));
	return 0;
}

static int parse_level(const char *s, enum log_level *l)
{
	for (int i = LOG_LVL_EMERG; i <= LOG_LVL_DEBUG; i++) {
		if (strcmp(s, log_level_name((enum log_level)i)) == 0) {
			*l = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* error_log FILE|stderr [LEVEL] */
static int set_error_log(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf *c = &p->c->pub;
	enum log_level l = LOG_LVL_ERROR;	/* nginx's default when a file names no level */

	if (ac == 2 && parse_level(av[1], &l) < 0)
		return conf_error(p, "invalid log level \"%s\"", av[1]);
	set_str(&c->error_log_path, strcmp(av[0], "stderr") == 0 ? conf_xstrdup("stderr") : conf_path(p, av[0]));
	c->error_log_level = l;
	return 0;
}

/* access_log FILE|stdout|stderr|off */
static int set_access_log(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	char *v;

	if (strcmp(av[0], "off") == 0)
		v = NULL;
	else if (strcmp(av[0], "stdout") == 0 || strcmp(av[0], "stderr") == 0)
		v = conf_xstrdup(av[0]);
	else
		v = conf_path(p, av[0]);
	set_str(&p->c->pub.access_log_path, v);
	return 0;
}

static int parse_port(const char *s, int *port)
{
	char *end;
	long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

/*
 * "[ADDR:]PORT" as listen takes it: "8080", "127.0.0.1:8080", "*:8080",
 * "[::1]:8080", "localhost:8080". ADDR must be an IP literal. Returns 0 with
 * *addr (new string), or -1 with an nginx-style complaint.
 */
static int parse_listen(struct conf_parse *p, const char *dname, const char *s, const char *dflt,
			char **addr, int *port)
{
	const char *colon, *ps;
	char *a;
	unsigned char bin[16];

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return conf_error(p, "invalid address in \"%s\" of the \"%s\" directive", s, dname);
		a = strndup(s + 1, (size_t)(rb - s - 1));
		ps = rb + 2;
	} else if ((colon = strrchr(s, ':'))) {
		a = strndup(s, (size_t)(colon - s));
		ps = colon + 1;
	} else {
		a = conf_xstrdup(dflt);
		ps = s;
	}
	if (!a)
		abort();
	if (parse_port(ps, port) < 0) {
		free(a);
		return conf_error(p, "invalid port in \"%s\" of the \"%s\" directive", s, dname);
	}
	if (strcmp(a, "*") == 0 || strcmp(a, "") == 0) {
		set_str(&a, conf_xstrdup("0.0.0.0"));
	} else if (strcmp(a, "localhost") == 0) {
		set_str(&a, conf_xstrdup("127.0.0.1"));
	} else if (inet_pton(AF_INET, a, bin) != 1 && inet_pton(AF_INET6, a, bin) != 1) {
		free(a);
		return conf_error(p, "invalid address in \"%s\" of the \"%s\" directive", s, dname);
	}
	*addr = a;
	return 0;
}

/* admin_listen [ADDR:]PORT | off; a bare port means loopback. */
static int set_admin_listen(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf *c = &p->c->pub;
	struct conf_where at;
	char *addr;
	int port;

	conf_where_now(p, &at);
	p->c->admin_file = at.file;
	p->c->admin_line = at.line;
	if (strcmp(av[0], "off") == 0) {
		set_str(&c->admin_addr, NULL);
		c->admin_port = 0;
		return 0;
	}
	if (parse_listen(p, cmd->name, av[0], "127.0.0.1", &addr, &port) < 0)
		return -1;
	set_str(&c->admin_addr, addr);
	c->admin_port = port;
	return 0;
}

/*
 * redis HOST[:PORT] [prefix=P] [password=FILE] [tls [tls_ca=FILE] [tls_name=NAME]
 *	[tls_cert=FILE tls_key=FILE]]
 * | redis off [prefix=P]; HOST may be a name.
 * The parameters' defaults (port 6379, prefix "wakegate:") are here alone;
 * "off" keeps state in memory, and its prefix still names the keys that
 * the memory store mirrors.
 */
static int set_redis(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf *c = &p->c->pub;
	const char *s = av[0], *colon = NULL, *hend;
	int port = 6379;

	set_str(&c->redis_prefix, conf_xstrdup("wakegate:"));
	conf_redis_free_auth(c);	/* a line kept at reload runs again: the password file is read again */
	conf_redis_tls_reset(c);
	for (int i = 1; i < ac; i++)
		if (strcmp(av[i], "tls") == 0)
			c->redis_tls = 1;	/* first: tls_ca= and tls_name= need it, wherever it is */
	for (int i = 1; i < ac; i++) {
		int rc = strncmp(av[i], "prefix=", 7) == 0 ? (set_str(&c->redis_prefix, conf_xstrdup(av[i] + 7)), 0) :
			 conf_redis_param(p, av[i]);
		if (rc < 0)
			return -1;
		if (rc > 0)
			return conf_error(p, "invalid parameter \"%s\"", av[i]);
	}
	if (conf_redis_tls_check(p) < 0)
		return -1;
	if (strcmp(s, "off") == 0) {
		set_str(&c->redis_host, NULL);
		c->redis_port = port;
		return 0;
	}

	if (s[0] == '[') {
		hend = strchr(s, ']');
		if (!hend || (hend[1] != '\0' && hend[1] != ':'))
			return conf_error(p, "invalid address \"%s\" in \"redis\" directive", s);
		colon = hend[1] == ':' ? hend + 1 : NULL;
		s++;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			return conf_error(p, "invalid address \"%s\" in \"redis\" directive (write IPv6 as [ADDR]:PORT)", s);
		hend = colon ? colon : s + strlen(s);
	}
	if (hend == s)
		return conf_error(p, "invalid address \"%s\" in \"redis\" directive", av[0]);
	if (colon && parse_port(colon + 1, &port) < 0)
		return conf_error(p, "invalid port in \"%s\" of the \"redis\" directive", av[0]);
	set_str(&c->redis_host, strndup(s, (size_t)(hend - s)));
	if (!c->redis_host)
		abort();
	c->redis_port = port;
	return 0;
}

/* server { ... } */
static int set_server(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_server_x *sx = conf_xcalloc(1, sizeof(*sx));
	struct conf_server *s = &sx->pub, **tail;
	struct conf_server_x *saved = p->srv;
	int rc;

	sx->file = p->lx->shown;
	sx->line = p->line;
	/* -1: not set here, inherited from main after parsing (conf_check) */
	s->client_max_body_size = -1;
	s->proxy_connect_timeout_ms = -1;
	s->proxy_read_timeout_ms = -1;
	conf_limits_init(&s->limits);
	for (tail = &p->c->pub.servers; *tail; tail = &(*tail)->next)
		;
	*tail = s;
	p->srv = sx;
	rc = conf_parse_sub_block(p, CONF_SERVER);
	p->srv = saved;
	return rc;
}

/* listen [ADDR:]PORT [ssl] */
static int set_listen(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_listen_x *lx;
	struct conf_listen **tail;
	char *addr;
	int port, ssl = 0;

	if (ac == 2) {
		if (strcmp(av[1], "ssl") != 0)
			return conf_error(p, "invalid parameter \"%s\"", av[1]);
		ssl = 1;
	}
	if (parse_listen(p, cmd->name, av[0], "0.0.0.0", &addr, &port) < 0)
		return -1;
	lx = conf_xcalloc(1, sizeof(*lx));
	lx->pub.addr = addr;
	lx->pub.port = port;
	lx->pub.ssl = ssl;
	lx->file = p->lx->shown;
	lx->line = p->line;
	for (tail = &p->srv->pub.listens; *tail; tail = &(*tail)->next)
		;
	*tail = &lx->pub;
	return 0;
}

/* server_name NAME ...: the first name is the one the gateway reports. */
static int set_server_name(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	set_str(&p->srv->pub.server_name, conf_xstrdup(av[0]));
	return 0;
}

/* location [=|^~|~|~*] PATH { ... }: nginx's modifiers (routing: server.c) */
static int set_location(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_location_x *lx, *saved = p->loc;
	struct conf_location **tail;
	struct loc_regex *re = NULL;
	const char *path = av[ac - 1];
	int exact = 0, regex = 0, stop = 0, rc;

	if (ac == 2) {
		if (strcmp(av[0], "=") == 0)
			exact = 1;
		else if (strcmp(av[0], "~") == 0)
			regex = CONF_LOC_REGEX;
		else if (strcmp(av[0], "~*") == 0)
			regex = CONF_LOC_REGEX_CASELESS;
		else if (strcmp(av[0], "^~") == 0)
			stop = 1;
		else
			return conf_error(p, "invalid location modifier \"%s\"", av[0]);
	} else if (path[0] == '=') {
		path++;		/* "location =/x" as nginx also reads it */
		exact = 1;
	}
	if (!regex && path[0] != '/')
		return conf_error(p, "invalid location \"%s\": a path starts with \"/\"", path);
	for (tail = &p->srv->pub.locations; *tail; tail = &(*tail)->next)
		if ((*tail)->exact == exact && (*tail)->regex == regex && strcmp((*tail)->path, path) == 0)
			return conf_error(p, "duplicate location \"%s\"", path);
	if (regex) {	/* compiled now: a bad pattern is the conf's error, never a request's */
		char err[300];
		re = loc_regex_new(path, regex == CONF_LOC_REGEX_CASELESS, err, sizeof(err));
		if (!re)
			return conf_error(p, "invalid regex \"%s\" in \"location\": %s", path, err);
	}
	lx = conf_xcalloc(1, sizeof(*lx));
	lx->pub.path = conf_xstrdup(path);
	lx->pub.exact = exact;
	lx->pub.regex = regex;
	lx->pub.stop_regex = stop;
	lx->pub.re = re;
	lx->pub.file = p->lx->shown;
	lx->pub.line = p->line;
	/* -1: not set here, inherited from the server after parsing (conf_check) */
	lx->pub.client_max_body_size = -1;
	lx->pub.proxy_connect_timeout_ms = -1;
	lx->pub.proxy_read_timeout_ms = -1;
	conf_limits_init(&lx->pub.limits);
	*tail = &lx->pub;
	p->loc = lx;
	rc = conf_parse_sub_block(p, CONF_LOCATION);
	p->loc = saved;
	return rc;
}

/* Upstream names end up in Redis keys, metric labels and $name: keep them plain. */
static int valid_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* proxy_pass NAME | http://NAME[/URI] */
static int set_proxy_pass(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	const char *s = av[0], *uri = NULL;
	size_t len;

	if (strncmp(s, "http://", 7) == 0) {
		s += 7;
		uri = strchr(s, '/');	/* nginx's rule: a URI part, even "/", replaces the location's path */
	} else if (strstr(s, "://")) {
		return conf_error(p, "invalid URL prefix in \"%s\" (only http:// is proxied)", av[0]);
	}
	len = uri ? (size_t)(uri - s) : strlen(s);
	if (uri && p->loc->pub.regex)	/* nginx's rule too: no prefix to replace */
		return conf_error(p, "\"proxy_pass\" cannot have URI part in location given by regular expression");
	if (uri && strpbrk(uri, "?#$ "))
		return conf_error(p, "invalid URI part \"%s\" in \"proxy_pass\" directive (a path only)", uri);
	char *name = strndup(s, len);
	if (!name)
		abort();
	if (!valid_name(name)) {
		free(name);
		return conf_error(p, "invalid upstream \"%s\" in \"proxy_pass\" directive "
				  "(a name, or http://NAME[/URI])", av[0]);
	}
	set_str(&p->loc->pub.proxy_pass, name);
	if (uri)
		set_str(&p->loc->pub.proxy_uri, conf_xstrdup(uri));
	p->loc->pass_file = p->lx->shown;
	p->loc->pass_line = p->line;
	return 0;
}

/* upstream NAME { ... } */
static int set_upstream(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u, **tail, *saved = p->ups;
	int rc;

	if (!valid_name(av[0]))
		return conf_error(p, "invalid upstream name \"%s\" (letters, digits, \"_\", \"-\", \".\")", av[0]);
	if (conf_upstream_find(&p->c->pub, av[0]))
		return conf_error(p, "duplicate upstream \"%s\"", av[0]);
	u = conf_xcalloc(1, sizeof(*u));
	u->name = conf_xstrdup(av[0]);
	u->file = p->lx->shown;
	u->line = p->line;
	u->billing_granularity_ms = -1;	/* not set here: main's, after parsing (conf_check) */
	for (tail = &p->c->pub.upstreams; *tail; tail = &(*tail)->next)
		;
	*tail = u;
	p->ups = u;
	rc = conf_parse_sub_block(p, CONF_UPSTREAM);
	p->ups = saved;
	return rc;
}

/* health PATH */
static int set_health(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (av[0][0] != '/')
		return conf_error(p, "invalid health path \"%s\": a path starts with \"/\"", av[0]);
	set_str(&p->ups->health_path, conf_xstrdup(av[0]));
	return 0;
}

/* warmup off | warmup [model=NAME] [path=P] [body=FILE] [count=N] [until_stable] [timeout=T] */
static int set_warmup(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_warmup *w = &p->ups->warmup;

	if (strcmp(av[0], "off") == 0) {
		if (ac > 1)
			return conf_error(p, "\"warmup off\" takes no other parameter");
		w->off = 1;
		return 0;
	}
	for (int i = 0; i < ac; i++) {
		const char *a = av[i];
		if (strncmp(a, "model=", 6) == 0 && a[6]) {
			set_str(&w->model, conf_xstrdup(a + 6));
		} else if (strncmp(a, "path=", 5) == 0) {
			if (a[5] != '/')
				return conf_error(p, "invalid warmup path \"%s\": a path starts with \"/\"", a + 5);
			set_str(&w->path, conf_xstrdup(a + 5));
		} else if (strncmp(a, "body=", 5) == 0 && a[5]) {
			set_str(&w->body_file, conf_path(p, a + 5));
			if (access(w->body_file, R_OK) < 0)
				return conf_error(p, "cannot read warmup body \"%s\" (%s)", w->body_file,
						  strerror(errno));
		} else if (strncmp(a, "count=", 6) == 0) {
			if (conf_get_count(p, a + 6, &w->count) < 0)
				return -1;
			if (w->count < 1)
				return conf_error(p, "warmup count must be at least 1");
		} else if (strcmp(a, "until_stable") == 0) {
			w->until_stable = 1;
		} else if (strncmp(a, "timeout=", 8) == 0) {
			if (get_time_pos(p, "warmup timeout=", a + 8, &w->timeout_ms) < 0)
				return -1;
		} else {
			return conf_error(p, "invalid parameter \"%s\" in \"warmup\" directive", a);
		}
	}
	return 0;
}

/* hold N [timeout=T] [max_wait=T] */
static int set_hold(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (conf_get_count(p, av[0], &p->ups->hold_max) < 0)
		return -1;
	p->ups->hold_max_wait_ms = 0;	/* not inherited from the row's default line */
	for (int i = 1; i < ac; i++) {
		if (strncmp(av[i], "timeout=", 8) == 0) {
			if (get_time_pos(p, "hold timeout=", av[i] + 8, &p->ups->hold_timeout_ms) < 0)
				return -1;
		} else if (strncmp(av[i], "max_wait=", 9) == 0) {
			if (get_time_pos(p, "hold max_wait=", av[i] + 9, &p->ups->hold_max_wait_ms) < 0)
				return -1;
		} else {
			return conf_error(p, "invalid parameter \"%s\" in \"hold\" directive", av[i]);
		}
	}
	return 0;
}

#define UPS(f) offsetof(struct conf_upstream, f)
#define CNF(f) offsetof(struct conf, f)
#define INH (CONF_MAIN | CONF_SERVER | CONF_LOCATION)
#define RST CONF_RESTART

/*
 * The directives: name, where, flags (block, multi, restart-only), min and
 * max arguments (-1: any), setter, field, default (conf text; NULL: none).
 * man/wakegate.conf.5 states each default as written here (t/32-conf-rows.t).
 */
const struct conf_cmd conf_cmds[] = {
	{ "include", CONF_ANY, CONF_MULTI, 1, 1, set_include, 0, NULL },
	{ "daemon", CONF_MAIN, RST, 1, 1, set_flag, CNF(daemon), "off" },
	/* nginx has a pid file and an access log by default; a bare conf works with -s reload|stop */
	{ "pid", CONF_MAIN, RST, 1, 1, set_pid, 0, "wakegate.pid" },
	{ "error_log", CONF_MAIN, 0, 1, 2, set_error_log, 0, "stderr notice" },
	{ "access_log", CONF_MAIN, 0, 1, 1, set_access_log, 0, "stdout" },	/* beside error_log's stderr */
	{ "redis", CONF_MAIN, RST, 1, 10, set_redis, 0, "off" },
	{ "fleet_peers", CONF_MAIN, CONF_MULTI, 1, -1, conf_set_fleet_peers, 0, NULL },
	{ "admin_listen", CONF_MAIN, 0, 1, 1, set_admin_listen, 0, "127.0.0.1:8081" },	/* metrics and status, loopback */
	{ "client_max_body_size", INH, 0, 1, 1, set_inherit_size, INH_BODY_SIZE, "1m" },
	{ "proxy_connect_timeout", INH, 0, 1, 1, set_inherit_time, INH_CONNECT_TIMEOUT, "5s" },
	{ "proxy_read_timeout", INH, 0, 1, 1, set_inherit_time, INH_READ_TIMEOUT, "60s" },
	{ "client_header_timeout", CONF_MAIN, 0, 1, 1, set_main_time, CNF(client_header_timeout_ms), "60s" },
	{ "client_body_timeout", CONF_MAIN, 0, 1, 1, set_main_time, CNF(client_body_timeout_ms), "60s" },
	{ "max_clients", CONF_MAIN, 0, 1, 1, set_max_clients, 0, "off" },
	{ "replica_ports", CONF_MAIN, 0, 1, 1, set_replica_ports, 0, NULL },	/* below the ephemeral range */
	{ "server", CONF_MAIN, CONF_BLOCK | CONF_MULTI, 0, 0, set_server, 0, NULL },
	{ "upstream", CONF_MAIN, CONF_BLOCK | CONF_MULTI, 1, 1, set_upstream, 0, NULL },

	{ "listen", CONF_SERVER, CONF_MULTI, 1, 2, set_listen, 0, NULL },
	{ "server_name", CONF_SERVER, 0, 1, -1, set_server_name, 0, "\"\"" },
	{ "location", CONF_SERVER, CONF_BLOCK | CONF_MULTI, 1, 2, set_location, 0, NULL },

	{ "proxy_pass", CONF_LOCATION, 0, 1, 1, set_proxy_pass, 0, NULL },
	{ "proxy_set_header", INH, CONF_MULTI, 2, 2, conf_set_proxy_header, 0, NULL },
	{ "degrade", CONF_LOCATION, CONF_MULTI, 3, -1, conf_set_degrade, 0, NULL },

	{ "limit_req_zone", CONF_MAIN, CONF_MULTI, 2, 4, conf_set_limit_zone, 0, NULL },
	{ "limit_conn_zone", CONF_MAIN, CONF_MULTI, 2, 2, conf_set_limit_zone, 1, NULL },
	{ "limit_req", INH, CONF_MULTI, 1, 3, conf_set_limit_req, 0, NULL },
	{ "limit_conn", INH, CONF_MULTI, 2, 2, conf_set_limit_conn, 0, NULL },
	{ "limit_req_status", INH, 0, 1, 1, conf_set_limit_status, 0, "503" },
	{ "limit_conn_status", INH, 0, 1, 1, conf_set_limit_status, 1, "503" },
	{ "limit_req_dry_run", INH, 0, 1, 1, conf_set_limit_dry_run, 0, "off" },
	{ "limit_req_log_level", INH, 0, 1, 1, conf_set_limit_log_level, 0, "error" },

	{ "launch", CONF_UPSTREAM, 0, 2, -1, conf_set_launch, 0, NULL },
	{ "server", CONF_UPSTREAM, CONF_MULTI, 1, 1, conf_set_upstream_server, 0, NULL },
	{ "env", CONF_UPSTREAM, CONF_MULTI, 1, 1, conf_set_env, 0, NULL },
	{ "health", CONF_UPSTREAM, 0, 1, 1, set_health, 0, "/v2/health/ready" },
	{ "boot_timeout", CONF_UPSTREAM, 0, 1, 1, set_ups_time_pos, UPS(boot_timeout_ms), "60s" },
	{ "warmup", CONF_UPSTREAM, 0, 1, 6, set_warmup, 0, "count=3 timeout=60s" },
	{ "idle_timeout", CONF_UPSTREAM, 0, 1, 1, set_ups_time_pos, UPS(idle_timeout_ms), "5m" },
	{ "min_warm", CONF_UPSTREAM, 0, 1, 3, conf_set_min_warm, 0, "0" },
	/* 60s: nginx's proxy_read_timeout, what a client behind nginx already waits */
	{ "hold", CONF_UPSTREAM, 0, 1, 3, set_hold, 0, "1000 timeout=60s" },
	{ "stop_grace", CONF_UPSTREAM, 0, 1, 1, set_ups_time, UPS(stop_grace_ms), "10s" },
	/* 4: llama.cpp's server and Ollama run 4 requests at once on a GPU that has room; more wait here */
	{ "max_conns", CONF_UPSTREAM, 0, 1, 1, set_max_conns, UPS(max_conns), "4" },
	{ "price_per_hour", CONF_UPSTREAM, 0, 1, 2, conf_set_price, 0, "0 USD" },
	{ "billing_granularity", CONF_MAIN | CONF_UPSTREAM, 0, 1, 1, conf_set_billing, 0, "1s" },
	{ "keepalive", CONF_UPSTREAM, 0, 1, 6, conf_set_keepalive, 0, "fixed" },
	{ "prewarm", CONF_UPSTREAM, 0, 1, 1, conf_set_prewarm, 0, "off" },
	{ "replicas", CONF_UPSTREAM, 0, 1, 2, conf_set_replicas, 0, "min=0 max=1" },
	{ "target_concurrency", CONF_UPSTREAM, 0, 1, 1, conf_set_target_concurrency, 0, NULL },	/* max_conns */
	{ "scale_p99", CONF_UPSTREAM, 0, 1, 3, conf_set_scale_p99, 0, NULL },
	{ "lock_ttl", CONF_UPSTREAM, 0, 1, 1, set_ups_time, UPS(lock_ttl_ms), "10s" },
	{ "sleep", CONF_UPSTREAM, CONF_MULTI, 2, 2, conf_set_sleep, 0, NULL },
	{ "sleep_api", CONF_UPSTREAM, 0, 1, 1, conf_set_sleep_api, 0, "vllm" },
	{ NULL, 0, 0, 0, 0, NULL, 0, NULL }
};

/* Every table of rows, in lookup order (conf.c numbers rows across them). */
const struct conf_cmd *const conf_tables[] = { conf_cmds, conf_tls_cmds, conf_gpu_cmds, conf_admin_cmds,
						 conf_split_cmds, conf_scale_cmds, conf_auth_cmds, conf_version_cmds, NULL };
