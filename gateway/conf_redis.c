/*
 * conf_redis: the trust parameters of the redis directive (password=FILE,
 * tls, tls_ca=FILE, tls_name=NAME) and the fleet_peers directive. The CA
 * file is checked here (readable, holds a PEM certificate) so that -t and
 * a reload name its line; the relay (redis_tls.c) loads it when it starts. The password file is read
 * here, at load and at every reload, so that a rotated password takes effect
 * at the next SIGHUP; its content never reaches a log line or conf-dump.
 */
#include "config.h"
#include "gateway/conf_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* Frees a secret so that it does not linger in freed memory. */
void conf_redis_wipe(char *s)
{
	if (!s)
		return;
	volatile char *v = s;
	while (*v)
		*v++ = 0;
	free(s);
}

void conf_redis_free_auth(struct conf *c)
{
	conf_redis_wipe(c->redis_user);
	conf_redis_wipe(c->redis_password);
	c->redis_user = c->redis_password = NULL;
}

int conf_secret_read(struct conf_parse *p, const char *arg, const char *what, char *buf, size_t buflen,
		     char **path)
{
	*path = conf_path(p, arg);
	FILE *f = fopen(*path, "r");
	if (!f) {
		int e = errno;
		conf_error(p, "cannot read %s file \"%s\" (%s)", what, *path, strerror(e));
		free(*path);
		*path = NULL;
		return -1;
	}
	size_t n = fread(buf, 1, buflen - 1, f);
	fclose(f);
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	return 0;
}

void conf_secret_forget(char *buf, size_t buflen, char *path)
{
	volatile char *v = buf;
	for (size_t i = 0; i < buflen; i++)
		v[i] = 0;
	free(path);
}

/* password=FILE: "PASSWORD" or "USER PASSWORD" on the file's first line. */
static int conf_redis_password(struct conf_parse *p, const char *arg)
{
	struct conf *c = &p->c->pub;
	char buf[1024], *path;
	if (conf_secret_read(p, arg, "redis password", buf, sizeof(buf), &path) < 0)
		return -1;
	char *w[3] = { NULL, NULL, NULL };
	int nw = 0;
	for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
		w[nw < 3 ? nw++ : 2] = t;
	int rc = 0;
	if (nw == 0 || nw > 2) {
		rc = conf_error(p, "redis password file \"%s\": the first line must be \"PASSWORD\" or \"USER PASSWORD\"",
				path);
	} else {
		conf_redis_free_auth(c);
		c->redis_user = nw == 2 ? conf_xstrdup(w[0]) : NULL;
		c->redis_password = conf_xstrdup(w[nw - 1]);
	}
	conf_secret_forget(buf, sizeof(buf), path);
	return rc;
}

void conf_redis_tls_reset(struct conf *c)
{
	c->redis_tls = 0;
	free(c->redis_tls_ca);
	free(c->redis_tls_name);
	free(c->redis_tls_cert);
	free(c->redis_tls_key);
	c->redis_tls_ca = c->redis_tls_name = c->redis_tls_cert = c->redis_tls_key = NULL;
}

/* tls_cert= and tls_key= together: both load, and the key is the certificate's. */
int conf_redis_tls_check(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;
	if (!c->redis_tls_cert != !c->redis_tls_key)
		return conf_error(p, "\"%s\" in \"redis\" directive without \"%s\"",
				  c->redis_tls_cert ? "tls_cert=" : "tls_key=", c->redis_tls_cert ? "tls_key=" : "tls_cert=");
	if (!c->redis_tls_cert)
		return 0;
	/* libcrypto alone (the conf fuzzer links no libssl); the relay loads them again with libssl */
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	FILE *f = fopen(c->redis_tls_cert, "r");
	if (f) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (x && (f = fopen(c->redis_tls_key, "r"))) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	int e = errno;
	const char *bad = !x ? c->redis_tls_cert : !k ? c->redis_tls_key : X509_check_private_key(x, k) != 1 ? "key" : NULL;
	char es[256] = "";
	unsigned long oe = ERR_peek_last_error();
	if (oe && ERR_GET_LIB(oe) != ERR_LIB_SYS)
		ERR_error_string_n(oe, es, sizeof(es));
	else
		snprintf(es, sizeof(es), "%s", strerror(e));
	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(k);
	if (!bad)
		return 0;
	if (strcmp(bad, "key") == 0)
		return conf_error(p, "redis tls_key file \"%s\" is not the key of tls_cert file \"%s\"", c->redis_tls_key,
				  c->redis_tls_cert);
	return conf_error(p, "cannot load redis %s file \"%s\" (%s)", bad == c->redis_tls_cert ? "tls_cert" : "tls_key",
			  bad, es);
}

/* tls_ca=FILE: readable, and a PEM certificate in it. */
static int conf_redis_ca(struct conf_parse *p, const char *arg)
{
	struct conf *c = &p->c->pub;
	char *path = conf_path(p, arg);
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		conf_error(p, "cannot read redis tls_ca file \"%s\" (%s)", path, strerror(e));
		free(path);
		return -1;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x) {
		conf_error(p, "redis tls_ca file \"%s\" holds no PEM certificate", path);
		free(path);
		return -1;
	}
	X509_free(x);
	free(c->redis_tls_ca);
	c->redis_tls_ca = path;
	return 0;
}

/* One parameter of the redis line after HOST[:PORT]; 1 when it is not one of these. */
int conf_redis_param(struct conf_parse *p, const char *a)
{
	if (strncmp(a, "password=", 9) == 0 && a[9])
		return conf_redis_password(p, a + 9);
	struct conf *c = &p->c->pub;
	if (strcmp(a, "tls") == 0)
		return 0;	/* set_redis saw it first */
	if (strncmp(a, "tls_", 4) == 0 && strchr(a, '=') && !c->redis_tls)
		return conf_error(p, "\"%.*s\" in \"redis\" directive without \"tls\"", (int)(strchr(a, '=') - a + 1), a);
	if (strncmp(a, "tls_ca=", 7) == 0 && a[7])
		return conf_redis_ca(p, a + 7);
	if (strncmp(a, "tls_name=", 9) == 0 && a[9]) {
		free(c->redis_tls_name);
		c->redis_tls_name = conf_xstrdup(a + 9);
		return 0;
	}
	/* read in conf_redis_tls_check, once both are known */
	if (strncmp(a, "tls_cert=", 9) == 0 && a[9]) {
		free(c->redis_tls_cert);
		c->redis_tls_cert = conf_path(p, a + 9);
		return 0;
	}
	if (strncmp(a, "tls_key=", 8) == 0 && a[8]) {
		free(c->redis_tls_key);
		c->redis_tls_key = conf_path(p, a + 8);
		return 0;
	}
	return 1;
}

/* fleet_peers ADDR|ADDR/BITS ...; IPv4 or IPv6; lines add up. */
int conf_set_fleet_peers(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf *c = &p->c->pub;
	for (int i = 0; i < ac; i++) {
		struct conf_peer pe = { 0 };
		char addr[INET6_ADDRSTRLEN + 3];
		const char *slash = strchr(av[i], '/');
		size_t len = slash ? (size_t)(slash - av[i]) : strlen(av[i]);
		if (len == 0 || len >= sizeof(addr))
			return conf_error(p, "invalid address \"%s\" in \"fleet_peers\" directive", av[i]);
		memcpy(addr, av[i], len);
		addr[len] = 0;
		if (inet_pton(AF_INET, addr, pe.addr) == 1)
			pe.family = AF_INET;
		else if (inet_pton(AF_INET6, addr, pe.addr) == 1)
			pe.family = AF_INET6;
		else
			return conf_error(p, "invalid address \"%s\" in \"fleet_peers\" directive (an IPv4 or IPv6 address, or a network ADDR/BITS)",
					  av[i]);
		int max = pe.family == AF_INET ? 32 : 128;
		pe.bits = max;
		if (slash) {
			char *end;
			long b = strtol(slash + 1, &end, 10);
			if (!slash[1] || *end || b < 0 || b > max)
				return conf_error(p, "invalid network \"%s\" in \"fleet_peers\" directive (/0 to /%d)", av[i], max);
			pe.bits = (int)b;
		}
		/* ADDR/BITS with host bits set is what nginx's allow refuses too: it is not the network meant */
		for (int bit = pe.bits; bit < max; bit++)
			if (pe.addr[bit / 8] & (0x80 >> (bit % 8)))
				return conf_error(p, "\"%s\" in \"fleet_peers\" directive has host bits set", av[i]);
		struct conf_peer *n = realloc(c->fleet_peers, (size_t)(c->nfleet_peers + 1) * sizeof(*n));
		if (!n)
			abort();	/* as conf_xcalloc: out of memory at load is fatal */
		c->fleet_peers = n;
		c->fleet_peers[c->nfleet_peers++] = pe;
	}
	return 0;
}
