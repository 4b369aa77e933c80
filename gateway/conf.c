/*
 * conf: loads wakegate.conf. Reads statements from conf_lex, runs each
 * against the directive tables (conf_cmds.c, conf_tls.c; their defaults
 * through conf_rows.c), follows includes, then checks
 * what only the whole file can tell: every proxy_pass names an upstream,
 * every upstream can be launched, listeners do not collide. Values that a
 * server or location does not set are inherited from the block around it.
 */
#include "config.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/conf_int.h"
#include "gateway/loc_regex.h"

static void oom(void) __attribute__((noreturn));

static void oom(void)
{
	fputs("wakegate: out of memory\n", stderr);
	abort();
}

/* Allocation for the conf: out of memory at load is fatal, as in redis. */
void *conf_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

char *conf_xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		oom();
	return d;
}

char *conf_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	va_end(ap);
	return s;
}

/* Formats "MSG in FILE:LINE" into the caller's buffer; returns -1 so handlers can return it. */
static int conf_verror_at(struct conf_parse *p, const char *file, int line, const char *fmt, va_list ap)
{
	int n;

	if (!p->err || p->errlen == 0)
		return -1;
	n = vsnprintf(p->err, p->errlen, fmt, ap);
	if (n >= 0 && (size_t)n < p->errlen && file)
		snprintf(p->err + n, p->errlen - (size_t)n, " in %s:%d", file, line);
	return -1;
}

/*
 * A handler's error that does not name its directive ("invalid number
 * \"timeout=15s\"") gets ' in "NAME" directive' before its place, so that
 * the user knows which of the line's words to look up.
 */
static void conf_error_name(struct conf_parse *p, const char *name)
{
	char quoted[128], place[PATH_MAX + 32];
	if (!p->err || !p->lx)
		return;
	snprintf(quoted, sizeof(quoted), "\"%s\"", name);
	/* named already, quoted or as a word ("warmup count must be ...") */
	size_t nl = strlen(name);
	for (const char *w = strstr(p->err, name); w; w = strstr(w + 1, name))
		if ((w == p->err || w[-1] == ' ' || w[-1] == '"') && (w[nl] == ' ' || w[nl] == '"'))
			return;
	snprintf(place, sizeof(place), " in %s:%d", p->lx->shown, p->line);
	size_t el = strlen(p->err), pl = strlen(place);
	if (el < pl || strcmp(p->err + el - pl, place) != 0)
		return;
	char *msg = conf_xasprintf("%.*s in %s directive%s", (int)(el - pl), p->err, quoted, place);
	snprintf(p->err, p->errlen, "%s", msg);
	free(msg);
}

/* An error about a place other than the directive being run. */
int conf_error_at(struct conf_parse *p, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conf_verror_at(p, file, line, fmt, ap);
	va_end(ap);
	return -1;
}

/* An error about the directive being run. */
int conf_error(struct conf_parse *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conf_verror_at(p, p->lx ? p->lx->shown : p->c->pub.file, p->line, fmt, ap);
	va_end(ap);
	return -1;
}

/* Keeps a file name for the conf's lifetime (struct members point at it). */
const char *conf_name_keep(struct conf_x *c, const char *name)
{
	size_t len = strlen(name);
	struct conf_name *n;

	for (n = c->names; n; n = n->next)
		if (strcmp(n->name, name) == 0)
			return n->name;
	n = malloc(sizeof(*n) + len + 1);
	if (!n)
		oom();
	memcpy(n->name, name, len + 1);
	n->next = c->names;
	c->names = n;
	return n->name;
}

/* dir + "/" + name, without doubling a slash; a new string. */
static char *path_join(const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	if (dl > 0 && dir[dl - 1] == '/')
		return conf_xasprintf("%s%s", dir, name);
	return conf_xasprintf("%s/%s", dir, name);
}

/* The directory part of path ("." when there is none); a new string. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return conf_xstrdup(".");
	if (slash == path)
		return conf_xstrdup("/");
	return strndup(path, (size_t)(slash - path)) ?: (oom(), NULL);
}

/* A path from the conf, resolved against the prefix; a new string. */
char *conf_path(const struct conf_parse *p, const char *s)
{
	if (s[0] == '/')
		return conf_xstrdup(s);
	return path_join(p->c->pub.prefix, s);
}

/* Reads one file's statements into the current block. */
static int include_file(struct conf_parse *p, const char *full, const char *shown)
{
	struct conf_lex lx, *saved = p->lx;
	int saved_line = p->line, rc;
	const char *name = conf_name_keep(p->c, shown);

	if (conf_lex_open(&lx, full, name) < 0)
		return conf_error(p, "open() \"%s\" failed (%s)", full, strerror(errno));
	char **inc = realloc(p->c->pub.included, (size_t)(p->c->pub.nincluded + 1) * sizeof(*inc));
	if (!inc)
		oom();
	inc[p->c->pub.nincluded++] = conf_xstrdup(full);
	p->c->pub.included = inc;
	p->lx = &lx;
	p->depth++;
	rc = conf_parse_block(p, p->ctx, 1);
	p->depth--;
	p->lx = saved;
	p->line = saved_line;
	conf_lex_close(&lx);
	return rc;
}

/*
 * include GLOB: relative patterns resolve against the main file's directory
 * (nginx's rule). Matches are read in sorted order; a pattern with no match
 * is fine, a plain path that does not exist is an error.
 */
int conf_include(struct conf_parse *p, const char *pattern)
{
	char *full, *shown;
	int rc = 0;
	size_t dl = strlen(p->conf_dir);

	if (p->depth >= CONF_MAX_INCLUDE_DEPTH)
		return conf_error(p, "include nesting deeper than %d (does a file include itself?)",
				  CONF_MAX_INCLUDE_DEPTH);
	full = pattern[0] == '/' ? conf_xstrdup(pattern) : path_join(p->conf_dir, pattern);
	if (!strpbrk(pattern, "*?[")) {
		shown = pattern[0] == '/' || strcmp(p->conf_dir_shown, ".") == 0 ?
			conf_xstrdup(pattern) : path_join(p->conf_dir_shown, pattern);
		rc = include_file(p, full, shown);
		free(shown);
		free(full);
		return rc;
	}
	glob_t g;
	int grc = glob(full, 0, NULL, &g);
	if (grc == GLOB_NOMATCH) {
		globfree(&g);
		free(full);
		return 0;
	}
	if (grc != 0) {
		globfree(&g);
		rc = conf_error(p, "glob() \"%s\" failed", full);
		free(full);
		return rc;
	}
	for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) {
		const char *m = g.gl_pathv[i];
		struct stat st;
		if (stat(m, &st) == 0 && S_ISDIR(st.st_mode))
			continue;
		if (pattern[0] != '/' && strncmp(m, p->conf_dir, dl) == 0) {
			const char *rel = m + dl + (m[dl] == '/');
			shown = strcmp(p->conf_dir_shown, ".") == 0 ?
				conf_xstrdup(rel) : path_join(p->conf_dir_shown, rel);
		} else {
			shown = conf_xstrdup(m);
		}
		rc = include_file(p, m, shown);
		free(shown);
	}
	globfree(&g);
	free(full);
	return rc;
}

/*
 * A block inside the one being read (server, location, upstream): its own
 * seen bitmap, its context's defaults, then its lines. The caller has set
 * p->srv, p->loc or p->ups to the new block.
 */
int conf_parse_sub_block(struct conf_parse *p, unsigned ctx)
{
	unsigned char *saved = p->seen;
	struct conf_where *saved_where = p->where;
	int rc;

	p->seen = conf_xcalloc((conf_row_count() + 7) / 8, 1);
	p->where = conf_xcalloc(conf_row_count(), sizeof(*p->where));
	conf_apply_defaults(p, ctx);
	rc = conf_parse_block(p, ctx, 0);
	if (rc == 0 && ctx == CONF_UPSTREAM)	/* what only the whole block tells, with its lines */
		rc = conf_upstream_block_done(p);
	free(p->seen);
	free(p->where);
	p->seen = saved;
	p->where = saved_where;
	return rc;
}

/*
 * Runs statements until the block's "}" (is_file: until end of file) in
 * context ctx. Returns 0, or -1 with the error set.
 */
int conf_parse_block(struct conf_parse *p, unsigned ctx, int is_file)
{
	struct conf_args a = { 0 };
	unsigned saved_ctx = p->ctx;
	int rc = -1;

	for (;;) {
		enum conf_lex_end e = conf_lex_next(p->lx, &a, p->err, p->errlen);
		if (e == CONF_LEX_ERR)
			break;
		if (e == CONF_LEX_EOF) {
			if (is_file)
				rc = 0;
			else
				conf_error_at(p, p->lx->shown, conf_lex_eof_line(p->lx),
					      "unexpected end of file, expecting \"}\"");
			break;
		}
		if (e == CONF_LEX_CLOSE) {
			if (!is_file)
				rc = 0;
			else
				conf_error_at(p, p->lx->shown, a.line, "unexpected \"}\"");
			break;
		}
		p->line = a.line;
		p->ctx = ctx;
		const char *name = a.v[0];
		size_t row = 0;
		const struct conf_cmd *cmd = conf_cmd_find(name, ctx, &row);
		int nargs = a.n - 1;
		if (!cmd) {
			conf_error(p, "unknown directive \"%s\"", name);
			break;
		}
		if (!(cmd->ctx & ctx)) {
			conf_error(p, "\"%s\" directive is not allowed here", name);
			break;
		}
		if ((cmd->flags & CONF_BLOCK) && e != CONF_LEX_BLOCK) {
			conf_error(p, "directive \"%s\" has no opening \"{\"", name);
			break;
		}
		if (!(cmd->flags & CONF_BLOCK) && e == CONF_LEX_BLOCK) {
			conf_error(p, "directive \"%s\" is not terminated by \";\"", name);
			break;
		}
		if (nargs < cmd->min || (cmd->max >= 0 && nargs > cmd->max)) {
			conf_error(p, "invalid number of arguments in \"%s\" directive", name);
			break;
		}
		if (!(cmd->flags & CONF_MULTI)) {
			unsigned char bit = (unsigned char)(1u << (row % 8));
			if (p->seen[row / 8] & bit) {
				conf_error(p, "\"%s\" directive is duplicate", name);
				break;
			}
			p->seen[row / 8] |= bit;
		}
		if (p->where && !p->where[row].file)
			p->where[row] = (struct conf_where){ p->lx->shown, p->line };
		if (cmd->set(p, cmd, a.v + 1, nargs) < 0) {
			if (!(cmd->flags & CONF_BLOCK))	/* a block's error is about a line inside */
				conf_error_name(p, name);
			break;
		}
		if (cmd->flags & CONF_RESTART)
			conf_keep_line(p, row, a.v + 1, nargs);
	}
	conf_args_free(&a);
	p->ctx = saved_ctx;
	return rc;
}

static int is_wildcard(const char *addr)
{
	return strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0;
}

/* Two sockets that could not both be bound. */
static int listens_collide(const char *a1, int p1, const char *a2, int p2)
{
	return p1 == p2 && (strcmp(a1, a2) == 0 || is_wildcard(a1) || is_wildcard(a2));
}

/* "127.0.0.1:8080" or "[::1]:8080" into buf. */
static const char *addr_str(char *buf, size_t len, const char *addr, int port)
{
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
	return buf;
}

static int check_listens(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;
	char b1[128], b2[128];

	for (struct conf_server *s = c->servers; s; s = s->next) {
		for (struct conf_listen *l = s->listens; l; l = l->next) {
			struct conf_listen_x *lx = (struct conf_listen_x *)l;
			/* every earlier listen, in any server */
			for (struct conf_server *s2 = c->servers; s2; s2 = s2->next) {
				for (struct conf_listen *l2 = s2->listens; l2; l2 = l2->next) {
					struct conf_listen_x *lx2 = (struct conf_listen_x *)l2;
					if (l2 == l)
						goto next;
					if (!listens_collide(l->addr, l->port, l2->addr, l2->port))
						continue;
					/* name-based servers share a port (Host and SNI choose), if it is TLS for all or none */
					if (strcmp(l->addr, l2->addr) == 0 && s2 != s && l->ssl == l2->ssl)
						continue;
					if (strcmp(l->addr, l2->addr) == 0 && s2 != s)
						return conf_error_at(p, lx->file, lx->line,
								     "listen %s%s conflicts with listen %s%s at %s:%d: "
								     "a port speaks TLS for every server on it or for none",
								     addr_str(b1, sizeof(b1), l->addr, l->port), l->ssl ? " ssl" : "",
								     addr_str(b2, sizeof(b2), l2->addr, l2->port), l2->ssl ? " ssl" : "",
								     lx2->file, lx2->line);
					if (strcmp(l->addr, l2->addr) == 0)
						return conf_error_at(p, lx->file, lx->line, "a duplicate listen %s",
								     addr_str(b1, sizeof(b1), l->addr, l->port));
					return conf_error_at(p, lx->file, lx->line,
							     "listen %s conflicts with listen %s at %s:%d",
							     addr_str(b1, sizeof(b1), l->addr, l->port),
							     addr_str(b2, sizeof(b2), l2->addr, l2->port),
							     lx2->file, lx2->line);
				}
			}
next:
			if (c->admin_port && listens_collide(l->addr, l->port, c->admin_addr, c->admin_port)) {
				if (!p->c->admin_file)	/* the row's default: the listen line is what was written */
					return conf_error_at(p, lx->file, lx->line,
							     "listen %s conflicts with the default admin_listen %s: "
							     "set \"admin_listen\" to another port, or off",
							     addr_str(b2, sizeof(b2), l->addr, l->port),
							     addr_str(b1, sizeof(b1), c->admin_addr, c->admin_port));
				return conf_error_at(p, p->c->admin_file, p->c->admin_line,
						     "admin_listen %s conflicts with listen %s at %s:%d",
						     addr_str(b1, sizeof(b1), c->admin_addr, c->admin_port),
						     addr_str(b2, sizeof(b2), l->addr, l->port),
						     lx->file, lx->line);
			}
		}
	}
	return 0;
}

static void inherit(int64_t *v, int64_t from)
{
	if (*v < 0)
		*v = from;
}

/* What only the whole conf can tell; also fills inherited values and defaults. */
static int conf_check(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;

	if (!c->servers)
		return conf_error_at(p, NULL, 0, "no \"server\" block in %s", c->file);
	for (struct conf_upstream *u = c->upstreams; u; u = u->next) {
		if (!u->launch_kind)
			return conf_error_at(p, u->file, u->line, "upstream \"%s\" has no launch directive",
					     u->name);
		if (!u->warmup.model)
			u->warmup.model = conf_xstrdup(u->name);
		if (u->billing_granularity_ms < 0)
			u->billing_granularity_ms = c->billing_granularity_ms;
		if (!u->target_concurrency)	/* the row's "none": as max_conns */
			u->target_concurrency = u->max_conns;
		if (u->keepalive_adaptive && u->keepalive_min_ms > u->keepalive_max_ms)
			return conf_error_at(p, u->file, u->line, "upstream \"%s\": keepalive min= is above max=",
					     u->name);
		if (conf_sleep_check(p, u) < 0)
			return -1;
	}
	for (struct conf_server *s = c->servers; s; s = s->next) {
		struct conf_server_x *sx = (struct conf_server_x *)s;
		if (!s->listens)
			return conf_error_at(p, sx->file, sx->line, "server has no \"listen\" directive");
		for (struct conf_listen *l = s->listens; l; l = l->next) {
			struct conf_listen_x *lx = (struct conf_listen_x *)l;
			if (l->ssl && !s->ssl_certificate)
				return conf_error_at(p, lx->file, lx->line,
						     "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive");
			if (l->ssl && !s->ssl_certificate_key)
				return conf_error_at(p, lx->file, lx->line,
						     "no \"ssl_certificate_key\" is defined for the \"listen ... ssl\" directive");
		}
		s->proxy_headers = s->own_headers ? s->own_headers : c->proxy_headers;
		inherit(&s->client_max_body_size, c->client_max_body_size);
		inherit(&s->proxy_connect_timeout_ms, c->proxy_connect_timeout_ms);
		inherit(&s->proxy_read_timeout_ms, c->proxy_read_timeout_ms);
		for (struct conf_location *l = s->locations; l; l = l->next) {
			struct conf_location_x *lx = (struct conf_location_x *)l;
			l->proxy_headers = l->own_headers ? l->own_headers : s->proxy_headers;
			inherit(&l->client_max_body_size, s->client_max_body_size);
			inherit(&l->proxy_connect_timeout_ms, s->proxy_connect_timeout_ms);
			inherit(&l->proxy_read_timeout_ms, s->proxy_read_timeout_ms);
			if (!l->proxy_pass && (l->route_models || l->split))
				continue;	/* every upstream comes from the request's model name or the split */
			if (!l->proxy_pass)
				return conf_error_at(p, l->file, l->line,
						     "location \"%s\" has no \"proxy_pass\" directive", l->path);
			l->upstream = conf_upstream_find(c, l->proxy_pass);
			if (!l->upstream)
				return conf_error_at(p, lx->pass_file, lx->pass_line,
						     "no upstream \"%s\" for proxy_pass", l->proxy_pass);
		}
	}
	conf_tls_inherit(p);
	if (conf_limit_check(p) < 0 || conf_degrade_check(p) < 0 || conf_gpu_check(p) < 0 ||
	    conf_split_check(p) < 0 || conf_auth_check(p) < 0)
		return -1;
	return check_listens(p);
}

/* The prefix as an absolute path without a trailing slash; a new string. */
static char *prefix_abs(const char *prefix)
{
	char cwd[4096];
	char *s;
	size_t len;

	if (prefix && prefix[0] == '/') {
		s = conf_xstrdup(prefix);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return NULL;
		s = prefix && *prefix && strcmp(prefix, ".") != 0 ? path_join(cwd, prefix) : conf_xstrdup(cwd);
	}
	len = strlen(s);
	while (len > 1 && s[len - 1] == '/')
		s[--len] = '\0';
	return s;
}

struct conf *conf_load(const char *path, const char *prefix, char *err, size_t errlen)
{
	struct conf_parse p = { .err = err, .errlen = errlen };
	struct conf_x *cx = conf_xcalloc(1, sizeof(*cx));
	struct conf *c = &cx->pub;
	struct conf_lex lx;
	char *full = NULL;
	int rc = -1;

	if (err && errlen)
		err[0] = '\0';
	p.c = cx;
	c->file = conf_xstrdup(path);
	cx->lines = conf_xcalloc(conf_row_count(), sizeof(*cx->lines));
	conf_limits_init(&c->limits);
	c->prefix = prefix_abs(prefix);
	if (!c->prefix) {
		conf_error_at(&p, NULL, 0, "getcwd() failed (%s)", strerror(errno));
		goto out;
	}
	if (!*path) {
		conf_error_at(&p, NULL, 0, "no conf file given");
		goto out;
	}
	full = path[0] == '/' ? conf_xstrdup(path) : path_join(c->prefix, path);
	p.conf_dir = dir_of(full);
	p.conf_dir_shown = dir_of(path);
	if (conf_lex_open(&lx, full, conf_name_keep(cx, path)) < 0) {
		conf_error_at(&p, NULL, 0, "open() \"%s\" failed (%s)", full, strerror(errno));
		goto out;
	}
	p.seen = conf_xcalloc((conf_row_count() + 7) / 8, 1);
	p.ctx = CONF_MAIN;
	conf_apply_defaults(&p, CONF_MAIN);
	p.lx = &lx;
	rc = conf_parse_block(&p, CONF_MAIN, 1);
	conf_lex_close(&lx);
	p.lx = NULL;
	free(p.seen);
	if (rc == 0)
		rc = conf_check(&p);
out:
	free(full);
	free(p.conf_dir);
	free(p.conf_dir_shown);
	if (rc < 0) {
		if (err && errlen && !err[0])
			snprintf(err, errlen, "invalid conf %s", path);
		conf_free(c);
		return NULL;
	}
	return c;
}

static void upstream_free(struct conf_upstream *u)
{
	free(u->name);
	free(u->launch_kind);
	for (int i = 0; i < u->nservers; i++)
		free(u->servers[i]);
	free(u->servers);
	free(u->launch_cmd);
	for (size_t i = 0; i < u->nenv; i++)
		free(u->env[i]);
	free(u->env);
	free(u->health_path);
	free(u->warmup.model);
	free(u->warmup.path);
	free(u->warmup.body_file);
	free(u->launch_start);
	free(u->launch_stop);
	free(u->launch_url);
	free(u->launch_token_file);
	free(u->launch_namespace);
	free(u->launch_deployment);
	free(u->launch_service);
	free(u->launch_api);
	free(u->launch_ca);
	free(u->currency);
	free(u->model_file);
	conf_gpu_upstream_free(u);
	conf_scale_upstream_free(u);
	free(u);
}

static void server_free(struct conf_server *s)
{
	while (s->listens) {
		struct conf_listen *l = s->listens;
		s->listens = l->next;
		free(l->addr);
		free(l);
	}
	while (s->locations) {
		struct conf_location *l = s->locations;
		s->locations = l->next;
		free(l->path);
		loc_regex_free(l->re);
		free(l->proxy_pass);
		free(l->proxy_uri);
		conf_headers_free(l->own_headers);
		conf_limits_free(&l->limits);
		conf_degrade_free(l);
		conf_split_free(l);
		free(l);
	}
	conf_headers_free(s->own_headers);
	free(s->server_name);
	free(s->ssl_certificate);
	free(s->ssl_certificate_key);
	conf_limits_free(&s->limits);
	free(s);
}

/* Frees a conf from conf_load, also a half-built one on its error path. */
void conf_free(struct conf *c)
{
	struct conf_x *cx = (struct conf_x *)c;

	if (!c)
		return;
	while (c->upstreams) {
		struct conf_upstream *u = c->upstreams;
		c->upstreams = u->next;
		upstream_free(u);
	}
	while (c->servers) {
		struct conf_server *s = c->servers;
		c->servers = s->next;
		server_free(s);
	}
	conf_headers_free(c->proxy_headers);
	conf_limits_free(&c->limits);
	conf_limit_zones_free(c);
	conf_gpu_free(c);
	conf_redis_wipe(c->admin_token);
	conf_auth_free(c);
	for (int i = 0; i < c->nincluded; i++)
		free(c->included[i]);
	free(c->included);
	conf_lines_free(cx);
	while (cx->names) {
		struct conf_name *n = cx->names;
		cx->names = n->next;
		free(n);
	}
	free(c->file);
	free(c->prefix);
	free(c->pid_path);
	free(c->error_log_path);
	free(c->access_log_path);
	free(c->redis_host);
	free(c->redis_prefix);
	free(c->redis_tls_ca);
	free(c->redis_tls_name);
	free(c->redis_tls_cert);
	free(c->redis_tls_key);
	conf_redis_free_auth(c);
	free(c->fleet_peers);
	free(c->admin_addr);
	free(cx);
}

struct conf_upstream *conf_upstream_find(const struct conf *c, const char *name)
{
	for (struct conf_upstream *u = c->upstreams; u; u = u->next)
		if (strcmp(u->name, name) == 0)
			return u;
	return NULL;
}
