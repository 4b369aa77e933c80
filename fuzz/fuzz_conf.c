/*
 * fuzz_conf: feeds arbitrary bytes to conf_load() as the main conf file.
 * The bytes are written to fuzz.conf in a private directory that is also
 * the prefix, next to a few files a conf may name (upstreams.d/ for
 * include globs, a warmup body, a certificate and key, a token), so that
 * include, body=, ssl_certificate and token_file= reach their success
 * paths too. A conf that
 * loads is walked whole (every string read) so that ASan sees any pointer
 * the parser left dangling. The first line also goes to the size and time
 * parsers on its own.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Files next to fuzz.conf; names relative to the directory. */
static const struct {
	const char *name, *text;
} fz_files[] = {
	{ "upstreams.d/10-digits.conf",
	  "upstream digits {\n\tlaunch exec \"worker --listen 127.0.0.1:$port\";\n"
	  "\twarmup count=3;\n\tidle_timeout 5m;\n}\n" },
	{ "upstreams.d/20-small.conf",
	  "upstream digits-small {\n\tlaunch exec \"worker --port $port\";\n\twarmup off;\n}\n" },
	{ "body.json", "{\"input\":[0]}\n" },
	{ "cert.pem", "" },
	{ "token", "secret\n" },
	{ "key.pem", "" },
	{ "fuzz.conf", "" },
};

static char fz_dir[256];

/* Removes the directory made by fz_setup(); runs at exit. */
static void fz_cleanup(void)
{
	char p[512];

	if (!fz_dir[0])
		return;
	for (size_t i = 0; i < sizeof(fz_files) / sizeof(fz_files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", fz_dir, fz_files[i].name);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/upstreams.d", fz_dir);
	rmdir(p);
	rmdir(fz_dir);
}

static void fz_write(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	if (!fp || (len && fwrite(data, 1, len, fp) != len) || fclose(fp) != 0) {
		perror(path);
		abort();
	}
}

/* Makes the private prefix once per process. */
static void fz_setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char p[512];

	if (fz_dir[0])
		return;
	snprintf(fz_dir, sizeof(fz_dir), "%s/wg-fuzz-conf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fz_dir)) {
		perror(fz_dir);
		abort();
	}
	atexit(fz_cleanup);
	snprintf(p, sizeof(p), "%s/upstreams.d", fz_dir);
	if (mkdir(p, 0700) < 0) {
		perror(p);
		abort();
	}
	for (size_t i = 0; i < sizeof(fz_files) / sizeof(fz_files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", fz_dir, fz_files[i].name);
		fz_write(p, fz_files[i].text, strlen(fz_files[i].text));
	}
}

/* Reads a string to its end, so that ASan checks it is still owned. */
static size_t fz_str(const char *s)
{
	return s ? strlen(s) : 0;
}

/* A level's limit lists; every zone was resolved at load. */
static size_t fz_limits(const struct conf_limits *l)
{
	size_t n = 0;

	for (const struct conf_limit_req *r = l->req; r; r = r->next) {
		if (!r->zone)
			abort();	/* conf.h: resolved at load, never NULL */
		n += fz_str(r->zone->name) + fz_str(r->file);
	}
	for (const struct conf_limit_conn *k = l->conn; k; k = k->next) {
		if (!k->zone)
			abort();
		n += fz_str(k->zone->name) + fz_str(k->file);
	}
	return n;
}

/* Touches every field a loaded conf hands to the gateway. */
static void fz_walk(const struct conf *c)
{
	size_t n = 0;

	n += fz_str(c->file) + fz_str(c->prefix) + fz_str(c->pid_path);
	n += fz_str(c->error_log_path) + fz_str(c->access_log_path);
	n += fz_str(c->redis_host) + fz_str(c->redis_prefix) + fz_str(c->admin_addr);
	n += fz_str(log_level_name(c->error_log_level)) + fz_limits(&c->limits);
	for (const struct conf_upstream *u = c->upstreams; u; u = u->next) {
		n += fz_str(u->name) + fz_str(u->file) + fz_str(u->launch_kind);
		n += fz_str(u->launch_cmd) + fz_str(u->health_path);
		n += fz_str(u->warmup.model) + fz_str(u->warmup.path) + fz_str(u->warmup.body_file);
		n += fz_str(u->launch_start) + fz_str(u->launch_stop) + fz_str(u->launch_url);
		n += fz_str(u->launch_token_file) + fz_str(u->launch_namespace);
		n += fz_str(u->launch_deployment) + fz_str(u->launch_api) + fz_str(u->launch_ca);
		n += fz_str(u->currency);
		if (conf_upstream_find(c, u->name) == NULL)
			abort();	/* every upstream is found by its own name */
	}
	for (const struct conf_limit_zone *z = c->limit_zones; z; z = z->next)
		n += fz_str(z->name) + fz_str(z->key_src) + fz_str(z->file);
	for (const struct conf_server *s = c->servers; s; s = s->next) {
		n += fz_str(s->server_name) + fz_str(s->ssl_certificate) + fz_str(s->ssl_certificate_key);
		n += fz_limits(&s->limits);
		for (const struct conf_listen *l = s->listens; l; l = l->next)
			n += fz_str(l->addr) + (size_t)l->port;
		for (const struct conf_location *l = s->locations; l; l = l->next) {
			n += fz_str(l->path) + fz_str(l->proxy_pass) + fz_str(l->file);
			if (l->proxy_pass && !l->upstream)
				abort();	/* conf.h: resolved at load, never NULL */
			if (l->upstream)
				n += fz_str(l->upstream->name);
			n += fz_limits(&l->limits) + l->ndegrade;
		}
	}
	(void)n;
}

/* The first line (up to 63 bytes) through the size and time parsers. */
static void fz_units(const uint8_t *data, size_t size)
{
	char s[64];
	size_t n = 0;

	while (n < size && n < sizeof(s) - 1 && data[n] != '\n' && data[n] != '\0') {
		s[n] = (char)data[n];
		n++;
	}
	s[n] = '\0';
	(void)conf_parse_time(s);
	(void)conf_parse_size(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512], err[1024];
	struct conf *c;

	fz_setup();
	snprintf(path, sizeof(path), "%s/fuzz.conf", fz_dir);
	fz_write(path, data, size);
	fz_units(data, size);
	/* Relative to the prefix, as `wakegate -p DIR -c fuzz.conf` gives it. */
	c = conf_load("fuzz.conf", fz_dir, err, sizeof(err));
	if (c) {
		fz_walk(c);
		conf_free(c);
	} else if (!err[0]) {
		abort();	/* a refused conf always says why */
	}
	return 0;
}
