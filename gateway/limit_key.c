/* limit_key: key templates of literal text and variables, as nginx's complex values (see limit.h). */
#include "config.h"
#include "gateway/limit_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Key templates: literal runs and variables, as nginx's complex values. */
struct key_part {
	bool is_var;
	enum limit_var var;
	char *text;		/* literal text, or the name passed to the callback */
	size_t len;
};

struct limit_key {
	struct key_part *parts;
	size_t n;
	char *src;
};

static const struct {
	const char *name;
	enum limit_var var;
} key_vars[] = {
	{ "binary_remote_addr", LIMIT_VAR_BINARY_REMOTE_ADDR },
	{ "remote_addr", LIMIT_VAR_REMOTE_ADDR },
	{ "host", LIMIT_VAR_HOST },
	{ "uri", LIMIT_VAR_URI },
	{ "request_uri", LIMIT_VAR_REQUEST_URI },
	{ "server_name", LIMIT_VAR_SERVER_NAME },
	{ "tenant", LIMIT_VAR_TENANT },
};

static int key_add(limit_key *k, bool is_var, enum limit_var var, const char *text, size_t len)
{
	struct key_part *p = realloc(k->parts, (k->n + 1) * sizeof(*p));
	if (!p)
		return -1;
	k->parts = p;
	p = &k->parts[k->n];
	p->is_var = is_var;
	p->var = var;
	p->len = len;
	p->text = malloc(len + 1);
	if (!p->text)
		return -1;
	memcpy(p->text, text, len);
	p->text[len] = '\0';
	k->n++;
	return 0;
}

static bool var_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Resolves a variable name to its kind; for $http_NAME makes "name-with-dashes". */
static int key_add_var(limit_key *k, const char *name, size_t len, char *err, size_t errlen)
{
	char low[256];
	if (len >= sizeof(low)) {
		snprintf(err, errlen, "unknown \"%.*s\" variable", (int)len, name);
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		low[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
	low[len] = '\0';
	if (len > 5 && strncmp(low, "http_", 5) == 0) {
		for (size_t i = 5; i < len; i++)
			if (low[i] == '_')
				low[i] = '-';
		if (key_add(k, true, LIMIT_VAR_HTTP, low + 5, len - 5) < 0)
			goto nomem;
		return 0;
	}
	for (size_t i = 0; i < sizeof(key_vars) / sizeof(key_vars[0]); i++) {
		if (strcmp(low, key_vars[i].name) == 0) {
			if (key_add(k, true, key_vars[i].var, low, len) < 0)
				goto nomem;
			return 0;
		}
	}
	snprintf(err, errlen, "unknown \"%.*s\" variable", (int)len, name);
	return -1;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

limit_key *limit_key_compile(const char *src, char *err, size_t errlen)
{
	limit_key *k = calloc(1, sizeof(*k));
	if (!k || !(k->src = strdup(src))) {
		free(k);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	const char *p = src;
	while (*p) {
		if (*p != '$') {
			const char *q = p;
			while (*q && *q != '$')
				q++;
			if (key_add(k, false, 0, p, (size_t)(q - p)) < 0) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			p = q;
			continue;
		}
		p++;
		const char *name = p;
		size_t len;
		if (*p == '{') {
			name = ++p;
			while (var_char(*p))
				p++;
			len = (size_t)(p - name);
			if (*p != '}') {
				snprintf(err, errlen, "the closing bracket in \"%.*s\" variable is missing",
					(int)len, name);
				goto fail;
			}
			p++;
		} else {
			while (var_char(*p))
				p++;
			len = (size_t)(p - name);
		}
		if (len == 0) {
			snprintf(err, errlen, "invalid variable name in \"%s\"", src);
			goto fail;
		}
		if (key_add_var(k, name, len, err, errlen) < 0)
			goto fail;
	}
	return k;
fail:
	limit_key_free(k);
	return NULL;
}

void limit_key_free(limit_key *key)
{
	if (!key)
		return;
	for (size_t i = 0; i < key->n; i++)
		free(key->parts[i].text);
	free(key->parts);
	free(key->src);
	free(key);
}

const char *limit_key_source(const limit_key *key) { return key->src; }

bool limit_key_is_constant(const limit_key *key)
{
	for (size_t i = 0; i < key->n; i++)
		if (key->parts[i].is_var)
			return false;
	return true;
}

ssize_t limit_key_eval(const limit_key *key, limit_var_fn fn, void *arg, void *buf, size_t bufsize)
{
	unsigned char *out = buf;
	size_t len = 0;
	for (size_t i = 0; i < key->n; i++) {
		const struct key_part *p = &key->parts[i];
		const void *val = p->text;
		size_t vlen = p->len;
		if (p->is_var) {
			val = NULL;
			vlen = 0;
			fn(arg, p->var, p->text, p->len, &val, &vlen);
			if (!val)
				vlen = 0;
		}
		if (vlen > bufsize - len)
			return -1;
		if (vlen)
			memcpy(out + len, val, vlen);
		len += vlen;
	}
	return (ssize_t)len;
}
