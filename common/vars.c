/* vars: see vars.h. */
#include "config.h"

#include "common/vars.h"

#include <stdlib.h>
#include <string.h>

static int name_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

enum vars_ref_kind vars_ref(const char *s, int dollar_escape, const char **name, size_t *nlen, size_t *len)
{
	const char *n = s + 1, *e;
	int braced = *n == '{';

	if (dollar_escape && *n == '$') {
		*len = 2;
		return VARS_DOLLAR;
	}
	n += braced;
	for (e = n; name_byte(*e); e++)
		;
	*name = n;
	*nlen = (size_t)(e - n);
	if (!braced) {
		*len = *nlen ? 1 + *nlen : 1;
		return *nlen ? VARS_NAME : VARS_NONE;
	}
	if (*nlen == 0 || *e != '}') {
		*len = (size_t)(e - s) + (*e == '}');
		return VARS_BAD;
	}
	*len = *nlen + 3;
	return VARS_NAME;
}

/* Appends n bytes of p to out (len bytes used of cap); 0, or -1 when out of memory. */
static int put(char **out, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = (*len + n + 1) * 2;
		char *x = realloc(*out, c);
		if (!x)
			return -1;
		*out = x;
		*cap = c;
	}
	memcpy(*out + *len, p, n);
	*len += n;
	(*out)[*len] = 0;
	return 0;
}

char *vars_expand(const char *tmpl, int dollar_escape, vars_lookup_fn *lookup, void *ctx)
{
	size_t len = 0, cap = strlen(tmpl) + 64;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	out[0] = 0;
	for (const char *p = tmpl; *p;) {
		const char *lit = p + strcspn(p, "$");
		if (put(&out, &len, &cap, p, (size_t)(lit - p)) < 0)
			goto oom;
		p = lit;
		if (!*p)
			break;
		const char *name, *v = NULL;
		size_t nlen, rlen, vlen = 0;
		switch (vars_ref(p, dollar_escape, &name, &nlen, &rlen)) {
		case VARS_DOLLAR:
			if (dollar_escape != VARS_ESCAPE_KEEP)
				v = "$", vlen = 1;
			break;
		case VARS_NAME:
			v = lookup(name, nlen, &vlen, ctx);
			break;
		case VARS_NONE:
		case VARS_BAD:
			break;
		}
		if (!v)
			v = p, vlen = rlen;	/* kept as written */
		if (put(&out, &len, &cap, v, vlen) < 0)
			goto oom;
		p += rlen;
	}
	return out;
oom:
	free(out);
	return NULL;
}
