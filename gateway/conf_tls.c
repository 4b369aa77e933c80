/*
 * conf_tls: the TLS directives (issue 5) and their rows. Server side (main
 * and server blocks): ssl_certificate, ssl_certificate_key, ssl_protocols,
 * ssl_ciphers. Upstream side (the gateway as a client of its replicas):
 * tls, tls_verify, tls_ca. Only syntax is checked here; whether OpenSSL
 * accepts the files and the cipher string is checked by tls_conf_check()
 * (gateway/tls.c) at -t, start and reload.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/conf_int.h"

/* ssl_certificate FILE, ssl_certificate_key FILE  (server): readable now */
static int set_ssl_file(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_server *s = &p->srv->pub;
	int key = cmd->off == offsetof(struct conf_server, ssl_certificate_key);
	char **f = key ? &s->ssl_certificate_key : &s->ssl_certificate;

	free(*f);
	*f = conf_path(p, av[0]);
	conf_where_now(p, key ? &s->ssl_certificate_key_at : &s->ssl_certificate_at);
	if (access(*f, R_OK) < 0)
		return conf_error(p, "cannot read \"%s\" (%s)", *f, strerror(errno));
	return 0;
}

/* ssl_protocols [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3]  (main, server) */
static int set_ssl_protocols(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	static const struct { const char *name; int bit; } protos[] = {
		{ "TLSv1", CONF_TLS_V1 }, { "TLSv1.1", CONF_TLS_V1_1 },
		{ "TLSv1.2", CONF_TLS_V1_2 }, { "TLSv1.3", CONF_TLS_V1_3 },
	};
	int mask = 0;
	for (int i = 0; i < ac; i++) {
		size_t k;
		for (k = 0; k < sizeof(protos) / sizeof(protos[0]); k++)
			if (strcmp(av[i], protos[k].name) == 0)
				break;
		if (k == sizeof(protos) / sizeof(protos[0]))
			return conf_error(p, "invalid value \"%s\" in \"ssl_protocols\" directive "
					  "(TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", av[i]);
		mask |= protos[k].bit;
	}
	if (p->ctx == CONF_SERVER) {
		p->srv->pub.ssl_protocols = mask;
		conf_where_now(p, &p->srv->pub.ssl_protocols_at);
	} else {
		p->c->pub.ssl_protocols = mask;
		conf_where_now(p, &p->c->pub.ssl_protocols_at);
	}
	return 0;
}

/* ssl_ciphers STRING  (main, server): an OpenSSL cipher list, checked by tls.c */
static int set_ssl_ciphers(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (!*av[0])
		return conf_error(p, "empty cipher list in \"ssl_ciphers\" directive");
	const char *v = conf_name_keep(p->c, av[0]);
	if (p->ctx == CONF_SERVER) {
		p->srv->pub.ssl_ciphers = v;
		conf_where_now(p, &p->srv->pub.ssl_ciphers_at);
	} else {
		p->c->pub.ssl_ciphers = v;
		conf_where_now(p, &p->c->pub.ssl_ciphers_at);
	}
	return 0;
}

/* tls on|off, tls_verify on|off  (upstream); cmd->off: 0 tls, 1 tls_verify */
static int set_tls_flag(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	int on;
	if (strcmp(av[0], "on") == 0)
		on = 1;
	else if (strcmp(av[0], "off") == 0)
		on = 0;
	else
		return conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be \"on\" or \"off\"",
				  av[0], cmd->name);
	if (cmd->off == 0)
		p->ups->tls = on;
	else
		p->ups->tls_insecure = !on;
	return 0;
}

/* tls_ca FILE  (upstream): PEM CA certificates that sign the replicas' certificates */
static int set_tls_ca(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	char *f = conf_path(p, av[0]);
	int bad = access(f, R_OK) < 0 ? errno : 0;
	p->ups->tls_ca = conf_name_keep(p->c, f);
	free(f);
	if (bad)
		return conf_error(p, "cannot read \"%s\" (%s)", p->ups->tls_ca, strerror(bad));
	return 0;
}

/*
 * After parsing: a server without its own ssl_protocols or ssl_ciphers
 * takes main's, with where main's was written (file NULL: main's default),
 * so that tls.c reads the server's values alone.
 */
void conf_tls_inherit(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;

	for (struct conf_server *s = c->servers; s; s = s->next) {
		if (!s->ssl_protocols) {
			s->ssl_protocols = c->ssl_protocols;
			s->ssl_protocols_at = c->ssl_protocols_at;
		}
		if (!s->ssl_ciphers) {
			s->ssl_ciphers = c->ssl_ciphers;
			s->ssl_ciphers_at = c->ssl_ciphers_at;
		}
	}
}

#define SRV(f) offsetof(struct conf_server, f)

/* As conf_cmds[]: name, where, flags, min and max arguments, setter, field, default. */
const struct conf_cmd conf_tls_cmds[] = {
	{ "ssl_certificate", CONF_SERVER, 0, 1, 1, set_ssl_file, SRV(ssl_certificate), NULL },
	{ "ssl_certificate_key", CONF_SERVER, 0, 1, 1, set_ssl_file, SRV(ssl_certificate_key), NULL },
	{ "ssl_protocols", CONF_MAIN | CONF_SERVER, 0, 1, 4, set_ssl_protocols, 0, "TLSv1.2 TLSv1.3" },
	{ "ssl_ciphers", CONF_MAIN | CONF_SERVER, 0, 1, 1, set_ssl_ciphers, 0, "HIGH:!aNULL:!MD5" },
	{ "tls", CONF_UPSTREAM, 0, 1, 1, set_tls_flag, 0, "off" },
	{ "tls_verify", CONF_UPSTREAM, 0, 1, 1, set_tls_flag, 1, "on" },
	{ "tls_ca", CONF_UPSTREAM, 0, 1, 1, set_tls_ca, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
