/*
 * conf: the parsed wakegate.conf. conf_load() reads a file (nginx grammar:
 * directives, blocks, comments, quotes, include with globs, sizes, times) into
 * a struct conf that the rest of the gateway only reads. A reload builds a new
 * struct conf and swaps it in; the old one is freed by conf_free() once
 * nothing points into it. Every string and list below is owned by the conf.
 * After conf_load() every field holds its real value, written or default:
 * the defaults are in the directive rows (conf_cmds.c, conf_tls.c) and
 * nowhere else, so the gateway never substitutes one of its own.
 */
#ifndef WG_CONF_H
#define WG_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "common/units.h"
#include "gateway/degrade.h"

struct limit_key;		/* gateway/limit.h */
struct split_part;		/* gateway/split.h */

/* split KEY { P% NAME; ... * NAME; } in a location (conf_split.c): nginx's split_clients over upstreams. */
struct conf_split {
	struct limit_key *key;	/* the key template, as limit_req_zone's */
	char *key_src;
	struct split_part *parts;	/* percentages and hash bounds (split.h) */
	char **names;		/* the upstream of each part, as written */
	struct conf_upstream **ups;	/* ... resolved at load, never NULL */
	size_t n;
	const char *file;	/* owned by the conf's names */
	int line;
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
	int count;		/* count=N */
	int until_stable;	/* until_stable (flag) */
	int64_t timeout_ms;	/* timeout=T, whole warmup */
};

/*
 * limit_req_zone KEY zone=NAME:SIZE rate=R [redis];  (conn == 0)
 * limit_conn_zone KEY zone=NAME:SIZE;                (conn == 1)
 * The conf describes zones; the gateway makes them (limit_zone_new) and
 * may keep one across a reload when its name, kind and size stay.
 */
struct conf_limit_zone {
	char *name;
	int conn;		/* 1: limit_conn_zone */
	char *key_src;		/* the key as written */
	struct limit_key *key;	/* compiled at load (limit_key_compile); owned by the conf */
	int64_t size;		/* bytes, >= 32k */
	uint64_t rate;		/* limit_req: milli-requests per second (limit_parse_rate); 0 for conn */
	int redis;		/* limit_req_zone ... redis: the bucket lives in Redis */
	const char *file;
	int line;
	struct conf_limit_zone *next;
};

/* limit_req zone=NAME [burst=N] [nodelay|delay=N] */
struct conf_limit_req {
	struct conf_limit_zone *zone;	/* resolved at load, never NULL */
	uint32_t burst;		/* default 0 */
	uint32_t delay;		/* default 0; LIMIT_NODELAY (UINT32_MAX) for nodelay */
	const char *file;
	int line;
	struct conf_limit_req *next;
};

/* limit_conn NAME N */
struct conf_limit_conn {
	struct conf_limit_zone *zone;	/* resolved at load, never NULL */
	uint32_t max;
	const char *file;
	int line;
	struct conf_limit_conn *next;
};

/*
 * The limit_* directives of one level (main, server, location), after
 * inheritance: a level with no limit_req line gets a copy of the level
 * around it's list (same for limit_conn); each list is owned by its level.
 */
struct conf_limits {
	struct conf_limit_req *req;	/* in conf order; NULL: none */
	struct conf_limit_conn *conn;
	int req_status;			/* limit_req_status */
	int req_dry_run;		/* limit_req_dry_run */
	enum log_level req_log_level;	/* limit_req_log_level (delays: one lower) */
	int conn_status;		/* limit_conn_status */
};

/* The launcher kinds ("launch KIND ..."). */
#define CONF_LAUNCH_EXEC	"exec"
#define CONF_LAUNCH_COMMAND	"command"
#define CONF_LAUNCH_HTTP	"http"
#define CONF_LAUNCH_KUBERNETES	"kubernetes"
/* Not a "launch" word: the kind an upstream of "server HOST:PORT;" lines gets (launch_server.c). */
#define CONF_LAUNCH_SERVER	"server"
/* "server" lines an upstream may hold: one replica each */
#define CONF_MAX_SERVERS	8

struct conf_upstream {
	char *name;
	const char *file;	/* where it was defined, for messages */
	int line;
	char *launch_kind;	/* "exec"; CONF_LAUNCH_SERVER for an upstream of "server" lines */
	char **servers;		/* "server HOST:PORT;" lines as "http[s]://HOST:PORT", in order: replica i is servers[i] */
	int nservers;		/* 0: launched replicas; else always-on servers (never started or stopped) */
	char *launch_cmd;	/* "CMD with $port" */
	char **env;		/* "env NAME=VALUE;" lines, in order (values may hold $replica ...) */
	size_t nenv;
	char *health_path;
	int64_t boot_timeout_ms;
	struct conf_warmup warmup;
	int64_t idle_timeout_ms;
	int min_warm;
	int hold_max;		/* "hold N timeout=T" */
	int64_t hold_timeout_ms;
	int64_t stop_grace_ms;
	int max_conns;		/* requests in flight per replica */
	struct conf_upstream *next;

	/* launch command|http|kubernetes (launch_cmd stays NULL for these) */
	char *launch_start;	/* command: start="CMD"; http: start=URL */
	char *launch_stop;	/* command: stop="CMD"; http: stop=URL */
	char *launch_url;	/* url=: where the replica answers (command, http, kubernetes) */
	char *launch_token_file;	/* http, kubernetes: token_file= (k8s default: the service account's) */
	char *launch_namespace;	/* kubernetes: deployment=NS/NAME */
	char *launch_deployment;
	char *launch_api;	/* kubernetes: api=, default https://kubernetes.default.svc */
	char *launch_ca;	/* kubernetes: ca=, default the service account's ca.crt */
	char *launch_service;	/* kubernetes: service=: its pods' EndpointSlices are the replicas (k8s_watch.c); NULL: url= */

	/* issue 6: cost and keep-alive policy */
	double price_per_hour;
	char *currency;
	int64_t billing_granularity_ms;	/* 1000, 60000 or 3600000; inherited from main */
	int keepalive_adaptive;	/* 0: fixed at idle_timeout_ms; 1: "keepalive adaptive" */
	int64_t keepalive_min_ms;	/* adaptive min= */
	int64_t keepalive_max_ms;	/* adaptive max= */
	double keepalive_percentile;	/* adaptive percentile= */
	double keepalive_budget_pct;	/* adaptive budget=: the time-of-day plan's GPU time, % of fixed */
	int keepalive_tod;	/* adaptive tod=on|off: the time-of-day plan replaces the fixed fallback */
	int prewarm_schedule;	/* "prewarm schedule": 1; "off": 0 */

	/* issue 5 (parsed, not yet acted on) */
	int replicas_min;	/* replicas min=N max=N */
	int replicas_max;
	int target_concurrency;	/* max_conns where the conf has none */
	int min_warm_from;	/* min_warm N at HH:MM-HH:MM: minutes after local midnight; -1: all day */
	int min_warm_to;	/* end of the window (may be < from: it wraps midnight) */
	int64_t lock_ttl_ms;	/* lock_ttl T: expiry of a replica's lock in Redis (fleet.c: at least 1s) */
	int64_t scale_p99_ms;	/* scale_p99 T [for T]: one more replica while p99 > T (scale.c); 0: off */
	int64_t scale_p99_for_ms;	/* ... once p99 stayed above T this long */
	/* issue 16, scaling like the seed (conf_scale.c, scale.c) */
	char *scale_on_gauge;	/* scale_on GAUGE > V [for T]: the metric read from each replica's /metrics; NULL: off */
	double scale_on_above;	/* ... V as the gauge reads it ("70%" is 0.7) */
	int64_t scale_on_for_ms;	/* ... once the replicas' mean stayed above V this long */
	int64_t scale_on_every_ms;	/* ... every= how often each READY replica's /metrics is read */
	int64_t scale_down_cooldown_ms;	/* no scale-down this long after the last scale-up */
	int headroom_pct;	/* target_concurrency is kept this many % below itself */

	/* issue 5, TLS to replicas (conf_tls.c, tls.c): https:// url= or "tls on" (exec) */
	int tls;		/* "tls on": exec replicas answer https://127.0.0.1:$port */
	int tls_insecure;	/* "tls_verify off"; 0: chain and host name checked */
	const char *tls_ca;	/* "tls_ca FILE" (owned by the conf's names); NULL: the system's CAs */

	/* issue 15: the sleep ladder (conf_sleep.c) */
	int64_t sleep_after_ms[3];	/* [1], [2]: "sleep level=N after=T"; 0: that level is off */
	int sleep_api;		/* CONF_SLEEP_API_* */

	/* issue 14: GPU memory and model names (conf_gpu.c) */
	int64_t gpu_memory;	/* what one replica needs; 0: no budget */
	char *gpu_names;	/* gpu=NAME,NAME as written; NULL: any */
	unsigned gpu_mask;	/* bit i: it may go on the gpu of index i (conf_gpu_check) */
	int pin;		/* never evicted */
	int priority;		/* may evict lower priorities; its held requests go first */
	char **models;		/* "model NAME ...": the names it answers to; none: its own name */
	int nmodels;

	/* issue 17: clients (conf_auth.c, conf_cmds.c's hold) */
	int64_t hold_max_wait_ms;	/* "hold ... max_wait=T": a held request's default deadline; 0: none */
	int boot_cancel;	/* "boot_cancel on": stop a boot every held request left (dispatch.c) */
	/* issue 16: versions and recycling (conf_version.c; rollout.c acts on them) */
	char *model_file;	/* model_file PATH, against the prefix, unresolved; NULL: none */
	int64_t recycle_memory;	/* recycle memory > SIZE (bytes); 0: off */
	int64_t recycle_requests;	/* recycle requests > N; 0: off */
	int64_t recycle_age_ms;	/* recycle age > TIME; 0: off */
};

#define CONF_MAX_GPUS 32

/* "gpu NAME memory=SIZE" (conf_gpu.c) */
struct conf_gpu {
	char *name;
	int64_t bytes;
	int index;		/* 0.. in conf order */
	const char *file;
	int line;
	struct conf_gpu *next;
};

enum { CONF_SLEEP_API_VLLM, CONF_SLEEP_API_TRITON };

/* "proxy_set_header NAME VALUE;" lines of one level, in order (VALUE may hold variables). */
struct conf_header {
	char *name, *value;
	struct conf_header *next;
};

struct loc_regex;
enum { CONF_LOC_REGEX = 1, CONF_LOC_REGEX_CASELESS = 2 };

struct conf_location {
	char *path;
	int exact;		/* "location = /x" */
	int regex;		/* CONF_LOC_REGEX ("~ RE") or CONF_LOC_REGEX_CASELESS ("~* RE"); 0: a path */
	int stop_regex;		/* "location ^~ /x": when it is the longest prefix, no regex is tried */
	struct loc_regex *re;	/* regex locations: compiled at load, owned (loc_regex.h) */
	char *proxy_pass;	/* upstream name */
	char *proxy_uri;	/* "proxy_pass http://NAME/URI": replaces the location's path; NULL: none */
	struct conf_header *own_headers;	/* proxy_set_header lines written here, owned */
	const struct conf_header *proxy_headers;	/* in force: own, else the server's (nginx's inheritance) */
	struct conf_upstream *upstream;	/* resolved at load, never NULL when proxy_pass is set */
	int64_t client_max_body_size;	/* inherited from server, then main */
	int64_t proxy_connect_timeout_ms;
	int64_t proxy_read_timeout_ms;
	const char *file;
	int line;
	struct conf_location *next;
	struct conf_limits limits;	/* inherited from server, then main */
	struct degrade_rule *degrade;	/* "degrade" lines in order; rule.to is the struct conf_upstream * */
	size_t ndegrade;
	int route_models;	/* "route models": the upstream comes from the request's model name */
	struct conf_split *split;	/* "split KEY { ... }" (conf_split.c); NULL: none */
	/* issue 17 (conf_auth.c) */
	int auth_required;	/* "auth required": a request without a known API key gets 401 */
	int auth_forward;	/* "auth_forward on": the key's header goes upstream too */
	int hold_progress;	/* "hold_progress on": held streaming clients get SSE comments */
	int priority;		/* "priority N": its held requests' rank (a tenant's priority= wins when higher) */
};

/* One line of the auth_keys file: the key is kept only as its SHA-256. */
struct conf_auth_key {
	unsigned char hash[32];
	char *tenant;
	int priority;		/* priority=N on the line; 0: none */
};

/* Where a directive was written, for checks made after parsing (tls.c). */
struct conf_where {
	const char *file;	/* owned by the conf; NULL: not written */
	int line;
};

/* ssl_protocols bits (the default is in its row, gateway/conf_tls.c) */
#define CONF_TLS_V1		0x01
#define CONF_TLS_V1_1		0x02
#define CONF_TLS_V1_2		0x04
#define CONF_TLS_V1_3		0x08

struct conf_server {
	struct conf_listen *listens;
	struct conf_header *own_headers;	/* proxy_set_header lines written here, owned */
	const struct conf_header *proxy_headers;	/* in force: own, else main's */
	char *server_name;	/* first name, or "" */
	struct conf_location *locations;	/* in file order; routing: exact, longest prefix (^~ stops), regexes in order, the prefix */
	int64_t client_max_body_size;
	int64_t proxy_connect_timeout_ms;
	int64_t proxy_read_timeout_ms;
	struct conf_server *next;
	char *ssl_certificate;	/* PEM file, resolved against the prefix; set when a listen has ssl */
	char *ssl_certificate_key;
	struct conf_limits limits;	/* inherited from main */
	/* issue 5 (conf_tls.c): as main's where the server has none (filled after parsing) */
	int ssl_protocols;		/* CONF_TLS_* bits */
	const char *ssl_ciphers;	/* owned by the conf's names */
	struct conf_where ssl_certificate_at, ssl_certificate_key_at, ssl_protocols_at, ssl_ciphers_at;
};

/* fleet_peers ADDR[/BITS]: a network a replica URL read from Redis must be in. */
struct conf_peer {
	int family;			/* AF_INET, AF_INET6 */
	unsigned char addr[16];		/* network byte order */
	int bits;
};

struct conf {
	char *file;		/* the main file as given */
	struct conf_header *proxy_headers;	/* main's proxy_set_header lines, owned */
	char **included;	/* the files include read, full paths, in the order read (for -T) */
	int nincluded;
	char *prefix;		/* -p, or the compiled-in WG_PREFIX; relative paths resolve here */
	int daemon;		/* "daemon on|off" */
	char *pid_path;		/* NULL: no pid file */
	char *error_log_path;	/* a path, or "stderr" */
	enum log_level error_log_level;
	char *access_log_path;	/* NULL: off */
	char *redis_host;	/* NULL: no redis */
	int redis_port;
	char *redis_prefix;
	char *redis_user;	/* redis password=FILE holding "USER PASSWORD" (a Redis 6 ACL user); NULL: none */
	char *redis_password;	/* redis password=FILE; NULL: no AUTH. A secret: never logged or dumped */
	int redis_tls;		/* redis ... tls: through the TLS relay (redis_tls.h) */
	char *redis_tls_ca;	/* tls_ca=FILE, a full path; NULL: the system store */
	char *redis_tls_name;	/* tls_name=NAME; NULL: the host is checked */
	char *redis_tls_cert;	/* tls_cert=FILE: a client certificate (Redis's tls-auth-clients); NULL: none */
	char *redis_tls_key;	/* tls_key=FILE: its key; set with redis_tls_cert */
	struct conf_peer *fleet_peers;	/* NULL: every replica URL read from Redis is used */
	int nfleet_peers;
	char *admin_addr;	/* admin_listen; NULL when off */
	int admin_port;		/* 0: none */
	char *admin_token;	/* admin_token FILE's token; NULL: POSTs need none. A secret: never logged */
	int replica_port_lo, replica_port_hi;	/* replica_ports; 0: below the ephemeral range (replica.c) */
	int64_t client_max_body_size;
	int64_t proxy_connect_timeout_ms;
	int64_t proxy_read_timeout_ms;
	int64_t client_header_timeout_ms;	/* a client stalled this long in its header is closed */
	int64_t client_body_timeout_ms;	/* the same, in its body */
	int64_t max_clients;		/* client connections of all server listeners together; 0: no cap */
	struct conf_server *servers;
	struct conf_upstream *upstreams;
	struct conf_gpu *gpus;	/* "gpu" lines, in conf order */
	int ngpus;
	struct conf_limit_zone *limit_zones;	/* limit_req_zone and limit_conn_zone, in conf order */
	struct conf_limits limits;	/* limit_* of the main block */
	int64_t billing_granularity_ms;	/* main's, for upstreams without their own */
	int ssl_protocols;		/* main's ssl_protocols (CONF_TLS_* bits) */
	const char *ssl_ciphers;	/* main's ssl_ciphers */
	struct conf_where ssl_protocols_at, ssl_ciphers_at;
	/* issue 17: auth_keys FILE, read at every load (so a SIGHUP re-reads it) */
	char *auth_keys_file;		/* NULL: no keys */
	struct conf_auth_key *auth_keys;	/* sorted by hash (conf_auth.c) */
	int nauth_keys;
};

/*
 * Reads and checks the conf at path. Relative paths (include, pid, logs,
 * warmup bodies) resolve against prefix. Returns a new conf for conf_free(),
 * or NULL with a one-line message in err such as
 *   unknown directive "foo" in conf/wakegate.conf:12
 */
struct conf *conf_load(const char *path, const char *prefix, char *err, size_t errlen);
void conf_free(struct conf *c);
/* Wipes and frees redis_user and redis_password (the reload keeps the old Redis's). */
void conf_redis_free_auth(struct conf *c);
/* Clears redis_tls and its tls_* parameters (a redis line sets them again). */
void conf_redis_tls_reset(struct conf *c);

/*
 * For a reload, before c replaces old: a directive that takes effect only
 * at a start (its row says so: daemon, pid, redis) and whose line differs
 * in c gets old's value back in c, and say() gets one line for the log:
 *   the "redis" line changed in conf/wakegate.conf:3; it takes effect at the
 *   next start, this gateway stays on no redis line (the default: off)
 * Returns how many directives were kept.
 */
int conf_keep_restart_only(struct conf *c, const struct conf *old, void (*say)(const char *line));

struct conf_upstream *conf_upstream_find(const struct conf *c, const char *name);
struct conf_limit_zone *conf_limit_zone_find(const struct conf *c, const char *name);
/* The auth_keys line whose key is key[0..len), or NULL (conf_auth.c). */
const struct conf_auth_key *conf_auth_find(const struct conf *c, const char *key, size_t len);

/* "250ms" "30s" "5m" "1h" "2d" or bare seconds -> milliseconds; -1 when malformed (common/units.h). */
static inline int64_t conf_parse_time(const char *s) { return units_time_ms(s); }
/* "512" "10k" "10m" "1g" -> bytes; -1 when malformed (common/units.h). */
static inline int64_t conf_parse_size(const char *s) { return units_size(s); }

#endif
