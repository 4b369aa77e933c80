/*
 * version: a replica's version, as version.h says. The key hashes every
 * launch field a reload may change, so that a changed command is a new
 * version even with no model_file.
 */
#include "config.h"
#include "gateway/version.h"
#include "gateway/conf.h"
#include "common/vars.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	h ^= 0xff;	/* a separator: ("ab","c") and ("a","bc") differ */
	h *= 1099511628211ull;
	return h;
}

int version_resolve(const struct conf_upstream *cf, struct version_id *v, char *err, size_t errlen)
{
	memset(v, 0, sizeof(*v));
	if (cf->model_file) {
		char real[PATH_MAX];
		if (!realpath(cf->model_file, real)) {
			snprintf(err, errlen, "model_file %s: %s", cf->model_file, strerror(errno));
			return -1;
		}
		if (strlen(real) >= sizeof(v->model_file)) {
			snprintf(err, errlen, "model_file %s: resolved path longer than %d", cf->model_file,
				 VERSION_PATH_MAX - 1);
			return -1;
		}
		strcpy(v->model_file, real);
	}
	uint64_t h = 14695981039346656037ull;
	const char *f[] = { cf->launch_kind, cf->launch_cmd, cf->launch_start, cf->launch_stop, cf->launch_url,
			    cf->launch_namespace, cf->launch_deployment, cf->launch_api, v->model_file };
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		h = fnv(h, f[i]);
	v->key = h ? h : 1;
	if (v->model_file[0]) {
		const char *base = strrchr(v->model_file, '/');
		base = base ? base + 1 : v->model_file;
		size_t n = strlen(base);
		if (n >= sizeof(v->label))
			n = sizeof(v->label) - 1;	/* a long name is cut: the key still tells versions apart */
		memcpy(v->label, base, n);
		v->label[n] = '\0';
		char *dot = strrchr(v->label, '.');
		if (dot && dot != v->label)
			*dot = '\0';
	} else {
		snprintf(v->label, sizeof(v->label), "conf-%08x", (unsigned)(v->key >> 32));
	}
	return 0;
}

static const char *lookup(const char *name, size_t nlen, size_t *vlen, void *arg)
{
	const struct version_id *v = arg;
	const char *val = NULL;
	if (nlen == 10 && strncmp(name, "model_file", 10) == 0)
		val = v->model_file;
	else if (nlen == 13 && strncmp(name, "model_version", 13) == 0)
		val = v->label;
	if (val)
		*vlen = strlen(val);
	return val;
}

/*
 * s with every $model_file and $model_version (or ${...}) put in; malloc'd,
 * NULL for a NULL s. The launcher fills in the other names later, so "$$"
 * stays for it (else "$$port" would become a $port it fills in).
 */
static char *expand(const char *s, const struct version_id *v, int *oom)
{
	if (!s)
		return NULL;
	char *out = vars_expand(s, VARS_ESCAPE_KEEP, lookup, (void *)v);
	if (!out)
		*oom = 1;
	return out;
}

const struct conf_upstream *version_launch_conf(const struct conf_upstream *cf, const struct version_id *v,
						struct conf_upstream *tmp, char *owned[2])
{
	owned[0] = owned[1] = NULL;
	int oom = 0;
	*tmp = *cf;
	tmp->launch_cmd = owned[0] = expand(cf->launch_cmd, v, &oom);
	tmp->launch_start = owned[1] = expand(cf->launch_start, v, &oom);
	if (oom) {
		version_launch_free(owned);
		return NULL;
	}
	return tmp;
}

void version_launch_free(char *owned[2])
{
	free(owned[0]);
	free(owned[1]);
	owned[0] = owned[1] = NULL;
}
