/*
 * conf_int: what the conf parser's files share and nobody else sees.
 * conf_lex.c turns a file into statements (words ending in ; { or }),
 * conf.c runs the statements against the directive tables (conf_cmds.c,
 * conf_tls.c; defaults and restart-only lines: conf_rows.c) and checks the
 * result. A row of a table is the one place
 * that says a directive's default and whether a reload may change it. The public structs are wrapped where the parser needs
 * to remember where something was written, so that conf.h stays small.
 */
#ifndef WG_CONF_INT_H
#define WG_CONF_INT_H

#include <stdint.h>
#include <stddef.h>

#include "gateway/conf.h"

/* Where a directive may stand. */
#define CONF_MAIN	0x01u
#define CONF_SERVER	0x02u
#define CONF_LOCATION	0x04u
#define CONF_UPSTREAM	0x08u
#define CONF_ANY	(CONF_MAIN | CONF_SERVER | CONF_LOCATION | CONF_UPSTREAM)

/* Row flags. */
#define CONF_BLOCK	0x01u	/* "name args { ... }" rather than "name args;" */
#define CONF_MULTI	0x02u	/* may appear more than once in one block */
#define CONF_RESTART	0x04u	/* takes effect at the next start only: a reload keeps the old line */

#define CONF_MAX_INCLUDE_DEPTH	16

/* One statement: its words (owned) and the line of the first word. */
struct conf_args {
	char **v;
	int n, cap;
	int line;
};

enum conf_lex_end { CONF_LEX_SEMI, CONF_LEX_BLOCK, CONF_LEX_CLOSE, CONF_LEX_EOF, CONF_LEX_ERR };

/* One open file: its whole text, read at open. */
struct conf_lex {
	const char *shown;	/* the name errors use; owned by the conf */
	char *buf;
	size_t len, pos;
	int line;
};

/* The public structs plus where each was written (first member: casts work). */
struct conf_listen_x {
	struct conf_listen pub;
	const char *file;
	int line;
};

struct conf_server_x {
	struct conf_server pub;
	const char *file;
	int line;
};

struct conf_location_x {
	struct conf_location pub;
	const char *pass_file;	/* the proxy_pass directive, for "no upstream" */
	int pass_line;
};

struct conf_name {		/* every file name the conf mentions, owned here */
	struct conf_name *next;
	char name[];
};

/* A restart-only directive as the file wrote it (n == 0: not written, its default applies). */
struct conf_line {
	char **v;		/* the arguments, owned */
	int n;
	const char *file;	/* owned by the conf's names */
	int line;
};

struct conf_x {
	struct conf pub;
	struct conf_name *names;
	const char *admin_file;
	int admin_line;
	struct conf_line *lines;	/* one per row (conf_row_count); only CONF_RESTART rows are filled */
};

/* The parser's state while one conf_load runs. */
struct conf_parse {
	struct conf_x *c;
	char *err;
	size_t errlen;
	struct conf_lex *lx;		/* the file being read */
	int line;			/* of the directive being run */
	unsigned ctx;			/* CONF_MAIN ... of the block being read */
	unsigned char *seen;		/* directives already set in this block: a bit a row (conf_row_count) */
	struct conf_where *where;	/* where each row was first written in this block (sub-blocks; NULL in main) */
	struct conf_server_x *srv;
	struct conf_location_x *loc;
	struct conf_upstream *ups;
	int depth;			/* include nesting */
	char *conf_dir;			/* absolute directory of the main file: includes resolve here */
	char *conf_dir_shown;		/* the same directory as the user wrote it, for messages */
};

struct conf_cmd;
typedef int (*conf_set_fn)(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);

/*
 * One row of a directive table. dflt is the directive's default, written as
 * its arguments would be in a conf file ("60s", "1000 timeout=120s"): when a
 * block opens, the parser runs the row's own setter on it, once, before the
 * block's lines, in the outermost context the row allows (main for a row
 * that main, server and location take; blocks inside inherit from there).
 * NULL: no default (the directive is required, or its absence means "none",
 * or the value is worked out from others; the man page says which). Nothing
 * else in the gateway holds a default of a directive.
 */
struct conf_cmd {
	const char *name;
	unsigned ctx;		/* CONF_MAIN | ... */
	unsigned flags;		/* CONF_BLOCK, CONF_MULTI, CONF_RESTART (main only) */
	int min, max;		/* arguments after the name */
	conf_set_fn set;
	size_t off;		/* for the generic setters: offset of the field */
	const char *dflt;	/* the default, as conf text; NULL: none */
};

/* The tables, in lookup order, each ended by a row with a NULL name (conf_cmds.c). */
extern const struct conf_cmd *const conf_tables[];
extern const struct conf_cmd conf_cmds[];	/* conf_cmds.c: the core directives */
extern const struct conf_cmd conf_tls_cmds[];	/* conf_tls.c: ssl_protocols, ssl_ciphers, tls* */
extern const struct conf_cmd conf_admin_cmds[];	/* conf_admin.c: admin_token */
extern const struct conf_cmd conf_version_cmds[];	/* conf_version.c: model_file, recycle */
extern const struct conf_cmd conf_gpu_cmds[];	/* conf_gpu.c: gpu, gpu_memory, pin, priority, model, route */
int conf_gpu_check(struct conf_parse *p);
extern const struct conf_cmd conf_split_cmds[];	/* conf_split.c: split (issue 16) */
int conf_split_check(struct conf_parse *p);
void conf_split_free(struct conf_location *l);
extern const struct conf_cmd conf_scale_cmds[];	/* conf_scale.c: scale_on, scale_down_cooldown, headroom */
void conf_scale_upstream_free(struct conf_upstream *u);
extern const struct conf_cmd conf_auth_cmds[];	/* conf_auth.c: auth_keys, auth, auth_forward, hold_progress, boot_cancel */
int conf_auth_check(struct conf_parse *p);
void conf_auth_free(struct conf *c);
void conf_gpu_free(struct conf *c);
void conf_gpu_upstream_free(struct conf_upstream *u);

/* conf_rows.c: rows across the tables, numbered from 0 in lookup order; defaults; restart-only lines */
size_t conf_row_count(void);
const struct conf_cmd *conf_row(size_t i);	/* NULL past the last */
/* The row for name in context ctx (a name may have one row per context, as "server"); else its first row. */
const struct conf_cmd *conf_cmd_find(const char *name, unsigned ctx, size_t *row);
void conf_apply_defaults(struct conf_parse *p, unsigned ctx);
void conf_keep_line(struct conf_parse *p, size_t row, char **av, int ac);
void conf_lines_free(struct conf_x *cx);
void conf_where_now(const struct conf_parse *p, struct conf_where *w);

/* conf_lex.c */
int conf_lex_open(struct conf_lex *lx, const char *path, const char *shown);
void conf_lex_string(struct conf_lex *lx, const char *text, const char *shown);
void conf_lex_close(struct conf_lex *lx);
enum conf_lex_end conf_lex_next(struct conf_lex *lx, struct conf_args *a, char *err, size_t errlen);
void conf_args_free(struct conf_args *a);
int conf_lex_eof_line(const struct conf_lex *lx);
int conf_get_count(struct conf_parse *p, const char *s, int *out);

/* conf.c */
int conf_error(struct conf_parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int conf_error_at(struct conf_parse *p, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int conf_parse_block(struct conf_parse *p, unsigned ctx, int is_file);
int conf_parse_sub_block(struct conf_parse *p, unsigned ctx);
/* conf_upstream.c: an upstream block was read (p->where still holds its lines): "server" lines' rules */
int conf_upstream_block_done(struct conf_parse *p);
int conf_set_upstream_server(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_include(struct conf_parse *p, const char *pattern);
const char *conf_name_keep(struct conf_x *c, const char *name);
char *conf_path(const struct conf_parse *p, const char *s);
void *conf_xcalloc(size_t n, size_t size);
char *conf_xstrdup(const char *s);
char *conf_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* conf_limit.c: the limit_* directives */
int conf_set_limit_zone(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_limit_req(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_limit_conn(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_limit_status(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_limit_dry_run(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_limit_log_level(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
void conf_limits_init(struct conf_limits *l);
void conf_limits_free(struct conf_limits *l);
void conf_limit_zones_free(struct conf *c);
int conf_limit_check(struct conf_parse *p);

/* conf_upstream.c: launch drivers, cost, keep-alive, replicas */
int conf_set_launch(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_env(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_proxy_header(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
void conf_headers_free(struct conf_header *h);
int conf_set_price(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_billing(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_keepalive(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_prewarm(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_replicas(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_target_concurrency(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_scale_p99(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_sleep(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_set_sleep_api(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_sleep_check(struct conf_parse *p, struct conf_upstream *u);
int conf_set_min_warm(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);

/* conf_redis.c: the redis line's trust parameters, fleet_peers */
int conf_redis_param(struct conf_parse *p, const char *a);
/* tls_cert= and tls_key= of the redis line: both or neither, and they load together. */
int conf_redis_tls_check(struct conf_parse *p);
int conf_set_fleet_peers(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
void conf_redis_wipe(char *s);
/*
 * A secret's file (redis password=, admin_token): its first line into buf,
 * *path the resolved path (malloc'd); 0, or -1 with the error set naming
 * "what". conf_secret_forget() wipes buf and frees path.
 */
int conf_secret_read(struct conf_parse *p, const char *arg, const char *what, char *buf, size_t buflen,
		     char **path);
void conf_secret_forget(char *buf, size_t buflen, char *path);
/* conf_tls.c: the TLS directives' inheritance, after parsing */
void conf_tls_inherit(struct conf_parse *p);

/* conf_degrade.c: the degrade directive */
int conf_set_degrade(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac);
int conf_degrade_check(struct conf_parse *p);
void conf_degrade_free(struct conf_location *l);

#endif
