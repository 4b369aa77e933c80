/*
 * conf-dump: a test tool. Loads a conf with conf_load() and prints what the
 * gateway would see, one "key value" a line in a stable order, or the error
 * on stderr with exit status 1. Also a fuzzing entry: conf-dump FILE never
 * crashes, whatever FILE holds. With -r it prints the directive rows
 * instead, one a line: name, contexts, flags, default (as conf text, "-"
 * for none), for t/32-conf-rows.t to hold against the man page.
 *
 *   conf-dump [-p PREFIX] FILE
 *   conf-dump -r
 */
#include "config.h"

#include <inttypes.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/conf.h"
#include "gateway/split.h"
#include "gateway/conf_int.h"
#include "gateway/limit.h"

/* Prints s with \ and control characters escaped, so each value stays on its line. */
static void put_str(const char *s)
{
	if (!s) {
		fputs("-", stdout);
		return;
	}
	if (!*s) {
		fputs("\"\"", stdout);
		return;
	}
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '\\')
			fputs("\\\\", stdout);
		else if (ch == '\n')
			fputs("\\n", stdout);
		else if (ch == '\t')
			fputs("\\t", stdout);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
}

static void kv_str(const char *key, const char *v)
{
	fputs(key, stdout);
	putchar(' ');
	put_str(v);
	putchar('\n');
}

static void kv_num(const char *key, int64_t v)
{
	printf("%s %" PRId64 "\n", key, v);
}

/* ssl_protocols bits as the directive writes them. */
static void put_protocols(const char *key, int bits)
{
	static const struct { int bit; const char *name; } names[] = {
		{ CONF_TLS_V1, "TLSv1" }, { CONF_TLS_V1_1, "TLSv1.1" }, { CONF_TLS_V1_2, "TLSv1.2" }, { CONF_TLS_V1_3, "TLSv1.3" },
	};
	printf("%s", key);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (bits & names[i].bit)
			printf(" %s", names[i].name);
	putchar('\n');
}

static void dump_upstream(const struct conf_upstream *u)
{
	char k[256];
	const struct conf_warmup *w = &u->warmup;

#define K(s) (snprintf(k, sizeof(k), "upstream.%s.%s", u->name, s), k)
	printf("upstream %s\n", u->name);
	printf("upstream.%s.defined %s:%d\n", u->name, u->file, u->line);
	kv_str(K("launch_kind"), u->launch_kind);
	kv_str(K("launch_cmd"), u->launch_cmd);
	kv_str(K("health"), u->health_path);
	kv_num(K("boot_timeout_ms"), u->boot_timeout_ms);
	kv_num(K("warmup.off"), w->off);
	kv_str(K("warmup.model"), w->model);
	kv_str(K("warmup.path"), w->path);
	kv_str(K("warmup.body"), w->body_file);
	kv_num(K("warmup.count"), w->count);
	kv_num(K("warmup.until_stable"), w->until_stable);
	kv_num(K("warmup.timeout_ms"), w->timeout_ms);
	kv_num(K("idle_timeout_ms"), u->idle_timeout_ms);
	kv_num(K("min_warm"), u->min_warm);
	kv_num(K("hold_max"), u->hold_max);
	kv_num(K("hold_timeout_ms"), u->hold_timeout_ms);
	kv_num(K("stop_grace_ms"), u->stop_grace_ms);
	kv_num(K("max_conns"), u->max_conns);
	kv_str(K("launch_start"), u->launch_start);
	kv_str(K("launch_stop"), u->launch_stop);
	kv_str(K("launch_url"), u->launch_url);
	kv_str(K("launch_token_file"), u->launch_token_file);
	kv_str(K("launch_namespace"), u->launch_namespace);
	kv_str(K("launch_deployment"), u->launch_deployment);
	kv_str(K("launch_service"), u->launch_service);
	kv_str(K("launch_api"), u->launch_api);
	kv_str(K("launch_ca"), u->launch_ca);
	for (size_t i = 0; i < u->nenv; i++)
		kv_str(K("env"), u->env[i]);
	for (int i = 0; i < u->nservers; i++)
		kv_str(K("server"), u->servers[i]);
	printf("upstream.%s.price_per_hour %g\n", u->name, u->price_per_hour);
	kv_str(K("currency"), u->currency);
	kv_num(K("billing_granularity_ms"), u->billing_granularity_ms);
	kv_str(K("keepalive"), u->keepalive_adaptive ? "adaptive" : "fixed");
	kv_num(K("keepalive_min_ms"), u->keepalive_min_ms);
	kv_num(K("keepalive_max_ms"), u->keepalive_max_ms);
	printf("upstream.%s.keepalive_percentile %g\n", u->name, u->keepalive_percentile);
	printf("upstream.%s.keepalive_budget_pct %g\n", u->name, u->keepalive_budget_pct);
	printf("upstream.%s.keepalive_tod %d\n", u->name, u->keepalive_tod);
	kv_str(K("prewarm"), u->prewarm_schedule ? "schedule" : "off");
	kv_num(K("replicas_min"), u->replicas_min);
	kv_num(K("replicas_max"), u->replicas_max);
	kv_num(K("target_concurrency"), u->target_concurrency);
	kv_num(K("scale_p99_ms"), u->scale_p99_ms);
	kv_num(K("scale_p99_for_ms"), u->scale_p99_for_ms);
	kv_str(K("scale_on"), u->scale_on_gauge ? u->scale_on_gauge : "off");
	printf("upstream.%s.scale_on_above %g\n", u->name, u->scale_on_above);
	kv_num(K("scale_on_for_ms"), u->scale_on_for_ms);
	kv_num(K("scale_on_every_ms"), u->scale_on_every_ms);
	kv_num(K("scale_down_cooldown_ms"), u->scale_down_cooldown_ms);
	kv_num(K("headroom_pct"), u->headroom_pct);
	kv_num(K("sleep_level1_after_ms"), u->sleep_after_ms[1]);
	kv_num(K("sleep_level2_after_ms"), u->sleep_after_ms[2]);
	kv_str(K("sleep_api"), u->sleep_api == CONF_SLEEP_API_TRITON ? "triton" : "vllm");
	kv_num(K("gpu_memory"), u->gpu_memory);
	printf("upstream.%s.gpu_mask %u\n", u->name, u->gpu_mask);
	kv_num(K("pin"), u->pin);
	kv_num(K("priority"), u->priority);
	for (int i = 0; i < u->nmodels; i++)
		kv_str(K("model"), u->models[i]);
	if (u->min_warm_from >= 0)
		printf("upstream.%s.min_warm_at %02d:%02d-%02d:%02d\n", u->name, u->min_warm_from / 60,
		       u->min_warm_from % 60, u->min_warm_to / 60, u->min_warm_to % 60);
	else
		kv_str(K("min_warm_at"), NULL);
	kv_num(K("lock_ttl_ms"), u->lock_ttl_ms);
	kv_str(K("tls"), u->tls ? "on" : "off");
	kv_str(K("tls_verify"), u->tls_insecure ? "off" : "on");
	kv_str(K("tls_ca"), u->tls_ca);
#undef K
}

/* One level's limit_* after inheritance; pre is "", "server.0." or "server.0.location.1.". */
static void dump_limits(const char *pre, const struct conf_limits *l)
{
	for (const struct conf_limit_req *r = l->req; r; r = r->next) {
		printf("%slimit_req zone=%s burst=%u ", pre, r->zone->name, r->burst);
		if (r->delay == LIMIT_NODELAY)
			printf("nodelay\n");
		else
			printf("delay=%u\n", r->delay);
	}
	for (const struct conf_limit_conn *r = l->conn; r; r = r->next)
		printf("%slimit_conn %s %u\n", pre, r->zone->name, r->max);
	printf("%slimit_req_status %d\n", pre, l->req_status);
	printf("%slimit_req_dry_run %s\n", pre, l->req_dry_run ? "on" : "off");
	printf("%slimit_req_log_level %s\n", pre, log_level_name(l->req_log_level));
	printf("%slimit_conn_status %d\n", pre, l->conn_status);
}

/* "queue > 100", "cold": a rule's condition as written (times in ms). */
static void put_cond(const struct degrade_rule *r)
{
	printf("when %s", degrade_cond_name(r->cond));
	if (r->cond == DEGRADE_COND_P99)
		printf(" > %gms", r->threshold);
	else if (r->cond == DEGRADE_COND_ERROR_RATE)
		printf(" > %g%%", r->threshold);
	else if (r->cond != DEGRADE_COND_COLD)
		printf(" > %g", r->threshold);
	printf(" for %" PRId64 "ms", r->for_ms);
}

static void dump_degrade(const char *pre, const struct conf_location *l)
{
	for (size_t i = 0; i < l->ndegrade; i++) {
		const struct degrade_rule *r = &l->degrade[i];
		printf("%sdegrade.%zu ", pre, i);
		if (r->action == DEGRADE_TO)
			printf("to %s ", r->to ? ((const struct conf_upstream *)r->to)->name : "?");
		else
			printf("return %d retry_after=%" PRId64 "ms ", r->code, r->retry_after_ms);
		put_cond(r);
		printf("\n%sdegrade.%zu.defined %s:%d\n", pre, i, r->file, r->line);
	}
}

static void dump_server(const struct conf_server *s, int i)
{
	char k[256];
	int j = 0;

#define K(...) (snprintf(k, sizeof(k), __VA_ARGS__), k)
	printf("server %d\n", i);
	for (const struct conf_listen *l = s->listens; l; l = l->next)
		printf("server.%d.listen %s%s%s:%d%s\n", i, strchr(l->addr, ':') ? "[" : "", l->addr,
		       strchr(l->addr, ':') ? "]" : "", l->port, l->ssl ? " ssl" : "");
	kv_str(K("server.%d.server_name", i), s->server_name);
	kv_str(K("server.%d.ssl_certificate", i), s->ssl_certificate);
	kv_str(K("server.%d.ssl_certificate_key", i), s->ssl_certificate_key);
	kv_num(K("server.%d.client_max_body_size", i), s->client_max_body_size);
	kv_num(K("server.%d.proxy_connect_timeout_ms", i), s->proxy_connect_timeout_ms);
	kv_num(K("server.%d.proxy_read_timeout_ms", i), s->proxy_read_timeout_ms);
	dump_limits(K("server.%d.", i), &s->limits);
	put_protocols(K("server.%d.ssl_protocols", i), s->ssl_protocols);
	kv_str(K("server.%d.ssl_ciphers", i), s->ssl_ciphers);
	for (const struct conf_location *l = s->locations; l; l = l->next, j++) {
		printf("server.%d.location.%d %s", i, j, l->exact ? "= " : l->regex == CONF_LOC_REGEX ? "~ " :
		       l->regex == CONF_LOC_REGEX_CASELESS ? "~* " : l->stop_regex ? "^~ " : "");
		put_str(l->path);
		printf("\nserver.%d.location.%d.defined %s:%d\n", i, j, l->file, l->line);
		kv_str(K("server.%d.location.%d.proxy_pass", i, j), l->proxy_pass);
		if (l->proxy_uri)
			kv_str(K("server.%d.location.%d.proxy_uri", i, j), l->proxy_uri);
		kv_str(K("server.%d.location.%d.upstream", i, j), l->upstream ? l->upstream->name : NULL);
		kv_num(K("server.%d.location.%d.client_max_body_size", i, j), l->client_max_body_size);
		kv_num(K("server.%d.location.%d.proxy_connect_timeout_ms", i, j), l->proxy_connect_timeout_ms);
		kv_num(K("server.%d.location.%d.proxy_read_timeout_ms", i, j), l->proxy_read_timeout_ms);
		dump_limits(K("server.%d.location.%d.", i, j), &l->limits);
		dump_degrade(K("server.%d.location.%d.", i, j), l);
		if (l->split) {
			const struct conf_split *sp = l->split;
			kv_str(K("server.%d.location.%d.split", i, j), sp->key_src);
			for (size_t q = 0; q < sp->n; q++) {
				if (sp->parts[q].percent)
					printf("server.%d.location.%d.split.%zu %u.%02u%% %s\n", i, j, q,
					       sp->parts[q].percent / 100, sp->parts[q].percent % 100, sp->ups[q]->name);
				else
					printf("server.%d.location.%d.split.%zu * %s\n", i, j, q, sp->ups[q]->name);
			}
		}
	}
#undef K
}

static void dump(const struct conf *c)
{
	int i = 0;

	kv_str("file", c->file);
	kv_str("prefix", c->prefix);
	kv_str("daemon", c->daemon ? "on" : "off");
	kv_str("pid", c->pid_path);
	kv_str("error_log", c->error_log_path);
	kv_str("error_log_level", log_level_name(c->error_log_level));
	kv_str("access_log", c->access_log_path ? c->access_log_path : "off");
	if (c->redis_host)
		printf("redis %s:%d\n", c->redis_host, c->redis_port);
	else
		kv_str("redis", "off");
	kv_str("redis_prefix", c->redis_prefix);
	if (c->redis_tls)
		printf("redis_tls ca=%s name=%s\n", c->redis_tls_ca ? c->redis_tls_ca : "system",
		       c->redis_tls_name ? c->redis_tls_name : "host");
	if (c->redis_tls_cert)
		printf("redis_tls_client cert=%s key=%s\n", c->redis_tls_cert, c->redis_tls_key);
	/* who the gateway authenticates as, never the password */
	if (c->redis_password)
		printf("redis_auth %s\n", c->redis_user ? c->redis_user : "password");
	else
		kv_str("redis_auth", "none");
	for (int k = 0; k < c->nfleet_peers; k++) {
		char a[INET6_ADDRSTRLEN];
		const struct conf_peer *pe = &c->fleet_peers[k];
		inet_ntop(pe->family, pe->addr, a, sizeof(a));
		printf("fleet_peer %s/%d\n", a, pe->bits);
	}
	if (c->admin_port)
		printf("admin_listen %s:%d\n", c->admin_addr, c->admin_port);
	else
		kv_str("admin_listen", "off");
	if (c->replica_port_lo)
		printf("replica_ports %d-%d\n", c->replica_port_lo, c->replica_port_hi);
	else
		kv_str("replica_ports", "below-ephemeral");
	kv_num("client_max_body_size", c->client_max_body_size);
	kv_num("proxy_connect_timeout_ms", c->proxy_connect_timeout_ms);
	kv_num("proxy_read_timeout_ms", c->proxy_read_timeout_ms);
	kv_num("billing_granularity_ms", c->billing_granularity_ms);
	kv_num("client_header_timeout_ms", c->client_header_timeout_ms);
	kv_num("client_body_timeout_ms", c->client_body_timeout_ms);
	kv_num("max_clients", c->max_clients);
	put_protocols("ssl_protocols", c->ssl_protocols);
	kv_str("ssl_ciphers", c->ssl_ciphers);
	for (const struct conf_limit_zone *z = c->limit_zones; z; z = z->next) {
		printf("limit_zone %s\n", z->name);
		printf("limit_zone.%s.kind %s\n", z->name, z->conn ? "conn" : "req");
		printf("limit_zone.%s.key ", z->name);
		put_str(limit_key_source(z->key));
		printf("\nlimit_zone.%s.size %" PRId64 "\n", z->name, z->size);
		printf("limit_zone.%s.rate %" PRIu64 "\n", z->name, z->rate);
		printf("limit_zone.%s.redis %d\n", z->name, z->redis);
		printf("limit_zone.%s.defined %s:%d\n", z->name, z->file, z->line);
	}
	dump_limits("", &c->limits);
	for (const struct conf_server *s = c->servers; s; s = s->next)
		dump_server(s, i++);
	for (const struct conf_gpu *g = c->gpus; g; g = g->next)
		printf("gpu %s %lld\n", g->name, (long long)g->bytes);
	for (const struct conf_upstream *u = c->upstreams; u; u = u->next)
		dump_upstream(u);
}

/* NAME<TAB>CONTEXTS<TAB>FLAGS<TAB>DEFAULT for every row, in lookup order. */
static void dump_rows(void)
{
	static const char *const ctxs[] = { "main", "server", "location", "upstream" };
	static const char *const flags[] = { "block", "multi", "restart" };

	for (size_t i = 0; i < conf_row_count(); i++) {
		const struct conf_cmd *c = conf_row(i);
		int n = 0;
		printf("%s\t", c->name);
		for (unsigned b = 0; b < 4; b++)
			if (c->ctx & (1u << b))
				printf("%s%s", n++ ? "," : "", ctxs[b]);
		putchar('\t');
		n = 0;
		for (unsigned b = 0; b < 3; b++)
			if (c->flags & (1u << b))
				printf("%s%s", n++ ? "," : "", flags[b]);
		printf("%s\t%s\n", n ? "" : "-", c->dflt ? c->dflt : "-");
	}
}

int main(int argc, char **argv)
{
	const char *prefix = NULL;
	char err[1024];
	struct conf *c;
	int opt;

	while ((opt = getopt(argc, argv, "p:r")) != -1) {
		if (opt == 'r') {
			dump_rows();
			return 0;
		}
		if (opt != 'p') {
			fprintf(stderr, "usage: conf-dump [-p PREFIX] FILE | conf-dump -r\n");
			return 2;
		}
		prefix = optarg;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: conf-dump [-p PREFIX] FILE\n");
		return 2;
	}
	c = conf_load(argv[optind], prefix, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	dump(c);
	conf_free(c);
	return 0;
}
