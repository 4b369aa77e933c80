/*
 * conf: the parsed wakegate.conf. conf_load() reads a file (nginx grammar:
 * directives, blocks, comments, quotes, include with globs, sizes, times) into
 * a struct conf that the rest of the gateway only reads. A reload builds a new
 * struct conf and swaps it in; the old one is freed by conf_free() once
 * nothing points into it. Every string and list below is owned by the conf.
 */
#ifndef WG_CONF_H
#define WG_CONF_H

#include <stddef.h>
#include <stdint.h>

/* error_log levels, as nginx orders them */
enum conf_log_level {
	LOG_LVL_EMERG, LOG_LVL_ALERT, LOG_LVL_CRIT, LOG_LVL_ERROR,
	LOG_LVL_WARN, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG
};

struct conf_listen {
	char *addr;		/* "127.0.0.1", "0.0.0.0" (default), "::" */
	int port;
	int ssl;		/* "listen 8443 ssl" */
	struct conf_listen *next;
};

/* warmup: what the warmer sends after health passes, before READY. */
struct conf_warmup {
	int off;		/* "warmup off;" */
	char *model;		/* model= (default: the upstream's name) */
	char *path;		/* path= (default: /v2/models/MODEL/infer with zeros) */
	char *body_file;	/* body=FILE, resolved against the prefix; NULL: zeros from metadata */
	int count;		/* count=N (default 3) */
	int until_stable;	/* until_stable (flag) */
	int64_t timeout_ms;	/* timeout=T, whole warmup (default 60s) */
};

struct conf_upstream {
	char *name;
	const char *file;	/* where it was defined, for messages */
	int line;
	char *launch_kind;	/* "exec" */
	char *launch_cmd;	/* "CMD with $port" */
	char *health_path;	/* default /v2/health/ready */
	int64_t boot_timeout_ms;	/* default 60s */
	struct conf_warmup warmup;
	int64_t idle_timeout_ms;	/* default 5m */
	int min_warm;		/* default 0 */
	int hold_max;		/* "hold N timeout=T": default 1000 */
	int64_t hold_timeout_ms;	/* default 120s */
	int64_t stop_grace_ms;	/* default 10s */
	int max_conns;		/* requests in flight per replica, default 16 */
	struct conf_upstream *next;
};

struct conf_location {
	char *path;
	int exact;		/* "location = /x" */
	char *proxy_pass;	/* upstream name */
	struct conf_upstream *upstream;	/* resolved at load, never NULL when proxy_pass is set */
	int64_t client_max_body_size;	/* inherited from server, then main */
	int64_t proxy_connect_timeout_ms;
	int64_t proxy_read_timeout_ms;
	const char *file;
	int line;
	struct conf_location *next;
};

struct conf_server {
	struct conf_listen *listens;
	char *server_name;	/* first name, or "" */
	struct conf_location *locations;	/* in file order; routing picks exact, then longest prefix */
	int64_t client_max_body_size;
	int64_t proxy_connect_timeout_ms;
	int64_t proxy_read_timeout_ms;
	struct conf_server *next;
	char *ssl_certificate;	/* PEM file, resolved against the prefix; set when a listen has ssl */
	char *ssl_certificate_key;
};

struct conf {
	char *file;		/* the main file as given */
	char *prefix;		/* -p, or the directory the quick start runs in; relative paths resolve here */
	int daemon;		/* "daemon on|off", default off */
	char *pid_path;		/* NULL: no pid file */
	char *error_log_path;	/* "stderr" by default */
	enum conf_log_level error_log_level;	/* default notice... nginx: error */
	char *access_log_path;	/* NULL: off */
	char *redis_host;	/* NULL: no redis */
	int redis_port;
	char *redis_prefix;	/* default "wakegate:" */
	char *admin_addr;	/* admin_listen, default 127.0.0.1 */
	int admin_port;		/* 0: none */
	int64_t client_max_body_size;	/* default 1m */
	int64_t proxy_connect_timeout_ms;	/* default 5s */
	int64_t proxy_read_timeout_ms;	/* default 60s */
	struct conf_server *servers;
	struct conf_upstream *upstreams;
};

/*
 * Reads and checks the conf at path. Relative paths (include, pid, logs,
 * warmup bodies) resolve against prefix. Returns a new conf for conf_free(),
 * or NULL with a one-line message in err such as
 *   unknown directive "foo" in conf/wakegate.conf:12
 */
struct conf *conf_load(const char *path, const char *prefix, char *err, size_t errlen);
void conf_free(struct conf *c);

struct conf_upstream *conf_upstream_find(const struct conf *c, const char *name);

/* "250ms" "30s" "5m" "1h" "2d" or bare seconds -> milliseconds; -1 when malformed. */
int64_t conf_parse_time(const char *s);
/* "512" "10k" "10m" "1g" -> bytes; -1 when malformed. */
int64_t conf_parse_size(const char *s);
const char *conf_log_level_name(enum conf_log_level l);

#endif
