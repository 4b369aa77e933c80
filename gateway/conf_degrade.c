/*
 * conf_degrade: the "degrade" directive of a location.
 *
 *   degrade to UPSTREAM when CONDITION [for TIME];
 *   degrade return CODE [retry_after=TIME] when CONDITION [for TIME];
 *
 * CONDITION is one of: cold | queue > N | rps > N | p99 > TIME |
 * error_rate > X%. The rules are kept in conf order (first match wins);
 * target upstreams are resolved once the whole conf is read.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"

/* A plain decimal: digits with at most one ".", no sign, no exponent. */
static int get_decimal(const char *s, size_t len, double *out)
{
	int dots = 0, digits = 0;
	char buf[32];

	if (len == 0 || len >= sizeof(buf))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.')
			dots++;
		else if (s[i] >= '0' && s[i] <= '9')
			digits++;
		else
			return -1;
	}
	if (dots > 1 || digits == 0)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	*out = strtod(buf, NULL);
	return isfinite(*out) ? 0 : -1;
}

/* Parses "when CONDITION [for TIME]" from av[i..ac) into r. */
static int parse_when(struct conf_parse *p, struct degrade_rule *r, char **av, int i, int ac)
{
	static const struct { const char *name; enum degrade_cond c; } conds[] = {
		{ "cold", DEGRADE_COND_COLD }, { "queue", DEGRADE_COND_QUEUE },
		{ "p99", DEGRADE_COND_P99 }, { "rps", DEGRADE_COND_RPS },
		{ "error_rate", DEGRADE_COND_ERROR_RATE },
	};
	const char *name, *v;
	size_t k, n = sizeof(conds) / sizeof(conds[0]);

	if (i >= ac || strcmp(av[i], "when") != 0)
		return conf_error(p, "expected \"when\" instead of \"%s\" in \"degrade\" directive",
				  i < ac ? av[i] : ";");
	if (++i >= ac)
		return conf_error(p, "no condition after \"when\" in \"degrade\" directive");
	name = av[i++];
	for (k = 0; k < n; k++)
		if (strcmp(name, conds[k].name) == 0)
			break;
	if (k == n)
		return conf_error(p, "unknown degrade condition \"%s\" (known: cold, queue, p99, rps, error_rate)",
				  name);
	r->cond = conds[k].c;
	if (r->cond != DEGRADE_COND_COLD) {
		if (i >= ac || strcmp(av[i], ">") != 0)
			return conf_error(p, "expected \">\" after \"%s\" in \"degrade\" directive", name);
		if (++i >= ac)
			return conf_error(p, "no value after \"%s >\" in \"degrade\" directive", name);
		v = av[i++];
		switch (r->cond) {
		case DEGRADE_COND_QUEUE: {
			char *end;
			long q;
			errno = 0;
			q = (v[0] >= '0' && v[0] <= '9') ? strtol(v, &end, 10) : -1;
			if (q < 0 || errno || *end || q > 0x7fffffffL)
				return conf_error(p, "invalid queue length \"%s\" in \"degrade\" directive", v);
			r->threshold = (double)q;
			break;
		}
		case DEGRADE_COND_RPS:
			if (get_decimal(v, strlen(v), &r->threshold) < 0)
				return conf_error(p, "invalid rate \"%s\" in \"degrade\" directive", v);
			break;
		case DEGRADE_COND_P99: {
			int64_t ms = conf_parse_time(v);
			if (ms < 0)
				return conf_error(p, "invalid time \"%s\"", v);
			r->threshold = (double)ms;
			break;
		}
		case DEGRADE_COND_ERROR_RATE: {
			size_t len = strlen(v);
			if (len < 2 || v[len - 1] != '%' || get_decimal(v, len - 1, &r->threshold) < 0 ||
			    r->threshold >= 100)
				return conf_error(p, "invalid error rate \"%s\" in \"degrade\" directive "
						  "(a percent below 100, such as 5%%)", v);
			break;
		}
		case DEGRADE_COND_COLD:
			break;
		}
	}
	if (i < ac && strcmp(av[i], "for") == 0) {
		if (++i >= ac)
			return conf_error(p, "no time after \"for\" in \"degrade\" directive");
		r->for_ms = conf_parse_time(av[i]);
		if (r->for_ms < 0)
			return conf_error(p, "invalid time \"%s\"", av[i]);
		i++;
	}
	if (i < ac && strncmp(av[i], "retry_after=", 12) == 0)	/* the order users try first */
		return conf_error(p, "\"%s\" must come before \"when\" in \"degrade\" directive "
				  "(degrade return CODE retry_after=TIME when ...)", av[i]);
	if (i < ac)
		return conf_error(p, "invalid parameter \"%s\" in \"degrade\" directive", av[i]);
	return 0;
}

/* degrade to UPSTREAM when ... | degrade return CODE [retry_after=T] when ... */
int conf_set_degrade(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_location *l = &p->loc->pub;
	struct degrade_rule r = { .retry_after_ms = -1 };
	int i = 2;

	if (strcmp(av[0], "to") == 0) {
		r.action = DEGRADE_TO;
	} else if (strcmp(av[0], "return") == 0) {
		char *end;
		long code;
		r.action = DEGRADE_RETURN;
		errno = 0;
		code = (av[1][0] >= '0' && av[1][0] <= '9') ? strtol(av[1], &end, 10) : -1;
		if (code < 200 || code > 599 || errno || *end)
			return conf_error(p, "invalid status \"%s\" in \"degrade\" directive: it must be "
					  "between 200 and 599", av[1]);
		r.code = (int)code;
		if (i < ac && strncmp(av[i], "retry_after=", 12) == 0) {
			r.retry_after_ms = conf_parse_time(av[i] + 12);
			if (r.retry_after_ms < 0)
				return conf_error(p, "invalid time \"%s\"", av[i] + 12);
			i++;
		}
	} else {
		return conf_error(p, "invalid action \"%s\" in \"degrade\" directive (\"to\" or \"return\")",
				  av[0]);
	}
	if (parse_when(p, &r, av, i, ac) < 0)
		return -1;
	if (r.action == DEGRADE_TO)
		r.to_name = conf_xstrdup(av[1]);
	r.file = p->lx->shown;
	r.line = p->line;
	l->degrade = realloc(l->degrade, (l->ndegrade + 1) * sizeof(*l->degrade));
	if (!l->degrade)
		abort();
	l->degrade[l->ndegrade++] = r;
	return 0;
}

/* After parsing: every "degrade to" names an upstream other than the location's own. */
int conf_degrade_check(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;

	for (struct conf_server *s = c->servers; s; s = s->next) {
		for (struct conf_location *l = s->locations; l; l = l->next) {
			for (size_t i = 0; i < l->ndegrade; i++) {
				struct degrade_rule *r = &l->degrade[i];
				struct conf_upstream *u;
				if (r->action != DEGRADE_TO)
					continue;
				u = conf_upstream_find(c, r->to_name);
				if (!u)
					return conf_error_at(p, r->file, r->line, "no upstream \"%s\" for degrade",
							     r->to_name);
				if (u == l->upstream)
					return conf_error_at(p, r->file, r->line, "degrade to \"%s\" is the "
							     "location's own upstream", r->to_name);
				r->to = u;
			}
		}
	}
	return 0;
}

/* Frees a location's rules and their target names. */
void conf_degrade_free(struct conf_location *l)
{
	for (size_t i = 0; i < l->ndegrade; i++)
		free(l->degrade[i].to_name);
	free(l->degrade);
	l->degrade = NULL;
	l->ndegrade = 0;
}
