/*
 * conf_auth: the clients' directives (issue 17).
 *   auth_keys FILE;              main: API keys, one a line: KEY TENANT [priority=N]
 *   auth required | off;         location: 401 without a known key
 *   auth_forward on | off;       location: the key's header goes upstream too
 *   hold_progress on | off;      location: SSE comments to held streaming clients
 *   boot_cancel on | off;        upstream: stop a boot that every held request left
 * The key file is read by the conf load itself, so "wakegate -t" checks it,
 * a bad line fails the load with FILE:LINE, and a SIGHUP (a new load)
 * re-reads it. Keys are kept only as SHA-256 digests, sorted, so that a
 * lookup is a binary search and a dump or a core shows no key.
 */
#include "config.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"

static int hash_cmp(const void *a, const void *b)
{
	return memcmp(((const struct conf_auth_key *)a)->hash, ((const struct conf_auth_key *)b)->hash, 32);
}

/* A tenant name goes into metric labels and the access log: keep it plain. */
static int tenant_ok(const char *s)
{
	if (!*s || strlen(s) > 63)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* Reads the key file into c; errors name FILE:LINE and never echo a key. */
static int auth_read(struct conf_parse *p, const char *path)
{
	struct conf *c = &p->c->pub;
	FILE *f = fopen(path, "r");
	if (!f)
		return conf_error(p, "cannot open auth_keys file \"%s\" (%s)", path, strerror(errno));
	char buf[1024];
	int line = 0, rc = 0;
	while (fgets(buf, sizeof(buf), f)) {
		line++;
		char *save = NULL, *w[4];
		int n = 0;
		for (char *t = strtok_r(buf, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
			if (*t == '#')
				break;
			if (n == 4) {
				n = 5;
				break;
			}
			w[n++] = t;
		}
		if (n == 0)
			continue;
		int prio = 0;
		const char *bad = NULL;
		if (n < 2 || n > 3)
			bad = "a line is KEY TENANT [priority=N]";
		else if (strlen(w[0]) < 8)
			bad = "the key is shorter than 8 characters";
		else if (!tenant_ok(w[1]))
			bad = "the tenant name must be letters, digits, \"_\", \"-\", \".\" (63 at most)";
		else if (n == 3) {
			char *end;
			long v = strncmp(w[2], "priority=", 9) == 0 ? strtol(w[2] + 9, &end, 10) : -1;
			if (v < 0 || v > 1000000 || end == w[2] + 9 || *end)
				bad = "the only setting is priority=N (0 or more)";
			prio = (int)v;
		}
		if (bad) {
			rc = conf_error(p, "invalid line in auth_keys file %s:%d: %s", path, line, bad);
			break;
		}
		struct conf_auth_key *k = realloc(c->auth_keys, (size_t)(c->nauth_keys + 1) * sizeof(*k));
		if (!k)
			abort();
		c->auth_keys = k;
		k = &k[c->nauth_keys++];
		SHA256((const unsigned char *)w[0], strlen(w[0]), k->hash);
		OPENSSL_cleanse(w[0], strlen(w[0]));
		k->tenant = conf_xstrdup(w[1]);
		k->priority = prio;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	fclose(f);
	if (rc < 0)
		return rc;
	qsort(c->auth_keys, (size_t)c->nauth_keys, sizeof(*c->auth_keys), hash_cmp);
	for (int i = 1; i < c->nauth_keys; i++)
		if (memcmp(c->auth_keys[i - 1].hash, c->auth_keys[i].hash, 32) == 0)
			return conf_error(p, "a key is listed twice in auth_keys file %s", path);
	return 0;
}

static int set_auth_keys(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf *c = &p->c->pub;
	free(c->auth_keys_file);
	c->auth_keys_file = conf_path(p, av[0]);
	return auth_read(p, c->auth_keys_file);
}

/* "on" | "off" (and "required" for auth) into an int of the location. */
static int set_loc_flag(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	int *f = (int *)((char *)&p->loc->pub + cmd->off);
	const char *on = strcmp(cmd->name, "auth") == 0 ? "required" : "on";
	if (strcmp(av[0], on) == 0)
		*f = 1;
	else if (strcmp(av[0], "off") == 0)
		*f = 0;
	else
		return conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be \"%s\" or \"off\"",
				  av[0], cmd->name, on);
	return 0;
}

static int set_boot_cancel(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (strcmp(av[0], "on") == 0)
		p->ups->boot_cancel = 1;
	else if (strcmp(av[0], "off") == 0)
		p->ups->boot_cancel = 0;
	else
		return conf_error(p, "invalid value \"%s\" in \"boot_cancel\" directive, it must be \"on\" or \"off\"",
				  av[0]);
	return 0;
}

/* After parsing: "auth required" with no key file can only answer 401. */
int conf_auth_check(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;
	for (struct conf_server *s = c->servers; s; s = s->next)
		for (struct conf_location *l = s->locations; l; l = l->next)
			if (l->auth_required && !c->auth_keys_file)
				return conf_error_at(p, l->file, l->line,
						     "\"auth required\" in location \"%s\" needs an \"auth_keys\" file", l->path);
	return 0;
}

void conf_auth_free(struct conf *c)
{
	for (int i = 0; i < c->nauth_keys; i++)
		free(c->auth_keys[i].tenant);
	if (c->auth_keys)
		OPENSSL_cleanse(c->auth_keys, (size_t)c->nauth_keys * sizeof(*c->auth_keys));
	free(c->auth_keys);
	free(c->auth_keys_file);
	c->auth_keys = NULL;
	c->nauth_keys = 0;
	c->auth_keys_file = NULL;
}

const struct conf_auth_key *conf_auth_find(const struct conf *c, const char *key, size_t len)
{
	struct conf_auth_key probe;
	if (!c->nauth_keys)
		return NULL;
	SHA256((const unsigned char *)key, len, probe.hash);
	return bsearch(&probe, c->auth_keys, (size_t)c->nauth_keys, sizeof(probe), hash_cmp);
}

#define LOC(f) offsetof(struct conf_location, f)

const struct conf_cmd conf_auth_cmds[] = {
	{ "auth_keys", CONF_MAIN, 0, 1, 1, set_auth_keys, 0, NULL },
	{ "auth", CONF_LOCATION, 0, 1, 1, set_loc_flag, LOC(auth_required), "off" },
	{ "auth_forward", CONF_LOCATION, 0, 1, 1, set_loc_flag, LOC(auth_forward), "off" },
	{ "hold_progress", CONF_LOCATION, 0, 1, 1, set_loc_flag, LOC(hold_progress), "on" },
	{ "boot_cancel", CONF_UPSTREAM, 0, 1, 1, set_boot_cancel, 0, "off" },
	{ NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
