/*
 * conf_split: the split block of a location (issue 16), nginx's
 * split_clients over upstreams:
 *   split KEY {
 *       90%  digits-v1;
 *       10%  digits-v2;
 *       *    digits-v1;     # optional: whatever is left
 *   }
 * KEY is a template of the variables limit_req_zone takes (limit_key.c).
 * The lines are read here, not through the directive tables: each is a
 * percentage and a name, as in nginx. The percentages are checked and
 * turned into hash bounds at once (split.c); the names are resolved to
 * upstreams by conf_split_check() once the whole file is read, since an
 * upstream may stand below the server that names it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"
#include "gateway/limit.h"
#include "gateway/split.h"

#define SPLIT_MAX_PARTS 64

void conf_split_free(struct conf_location *l)
{
	struct conf_split *sp = l->split;
	if (!sp)
		return;
	limit_key_free(sp->key);
	free(sp->key_src);
	for (size_t i = 0; i < sp->n; i++)
		free(sp->names[i]);
	free(sp->names);
	free(sp->ups);
	free(sp->parts);
	free(sp);
	l->split = NULL;
}

/* One "P% NAME;" line into sp; -1 with the error set. */
static int split_line(struct conf_parse *p, struct conf_split *sp, const struct conf_args *a, enum conf_lex_end e)
{
	if (e != CONF_LEX_SEMI)
		return conf_error(p, "unexpected \"%s\" in \"split\" block (expecting \"P%% UPSTREAM;\")",
				  e == CONF_LEX_BLOCK ? "{" : a->v[0]);
	if (a->n != 2)
		return conf_error(p, "invalid number of arguments in \"split\" block (expecting \"P%% UPSTREAM;\")");
	if (sp->n == SPLIT_MAX_PARTS)
		return conf_error(p, "more than %d lines in \"split\" block", SPLIT_MAX_PARTS);
	uint32_t pct;
	if (split_parse_percent(a->v[0], &pct) < 0)
		return conf_error(p, "invalid percent value \"%s\" in \"split\" block", a->v[0]);
	sp->parts = realloc(sp->parts, (sp->n + 1) * sizeof(*sp->parts));
	sp->names = realloc(sp->names, (sp->n + 1) * sizeof(*sp->names));
	if (!sp->parts || !sp->names)
		abort();
	sp->parts[sp->n].percent = pct;
	sp->parts[sp->n].bound = 0;
	sp->names[sp->n] = conf_xstrdup(a->v[1]);
	sp->n++;
	return 0;
}

/* split KEY { ... } */
static int set_split(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	char kerr[256];
	struct limit_key *k = limit_key_compile(av[0], kerr, sizeof(kerr));
	if (!k)
		return conf_error(p, "%s in \"split\" directive", kerr);
	struct conf_split *sp = conf_xcalloc(1, sizeof(*sp));
	struct conf_where w;
	conf_where_now(p, &w);
	sp->key = k;
	sp->key_src = conf_xstrdup(av[0]);
	sp->file = w.file;
	sp->line = w.line;
	p->loc->pub.split = sp;	/* the location frees it, also after an error below */

	struct conf_args a = { 0 };
	int rc = -1;
	for (;;) {
		enum conf_lex_end e = conf_lex_next(p->lx, &a, p->err, p->errlen);
		if (e == CONF_LEX_ERR)
			break;
		if (e == CONF_LEX_EOF) {
			conf_error_at(p, p->lx->shown, conf_lex_eof_line(p->lx), "unexpected end of file, expecting \"}\"");
			break;
		}
		if (e == CONF_LEX_CLOSE) {
			rc = 0;
			break;
		}
		p->line = a.line;
		if (split_line(p, sp, &a, e) < 0)
			break;
	}
	conf_args_free(&a);
	if (rc < 0)
		return -1;
	p->line = sp->line;
	if (sp->n == 0)
		return conf_error(p, "empty \"split\" block");
	if (split_prepare(sp->parts, sp->n) < 0)
		return conf_error(p, "percent total is greater than 100%% in \"split\" block");
	return 0;
}

int conf_split_check(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;
	for (struct conf_server *s = c->servers; s; s = s->next) {
		for (struct conf_location *l = s->locations; l; l = l->next) {
			struct conf_split *sp = l->split;
			if (!sp)
				continue;
			sp->ups = conf_xcalloc(sp->n, sizeof(*sp->ups));
			int all = 0;	/* a "*" line, or 100% in all: every key has a bucket */
			uint32_t sum = 0;
			for (size_t i = 0; i < sp->n; i++) {
				sp->ups[i] = conf_upstream_find(c, sp->names[i]);
				if (!sp->ups[i])
					return conf_error_at(p, sp->file, sp->line, "no upstream \"%s\" for split",
							     sp->names[i]);
				sum += sp->parts[i].percent;
				all |= sp->parts[i].percent == 0;
			}
			if (!all && sum < 10000 && !l->proxy_pass)
				return conf_error_at(p, sp->file, sp->line, "the \"split\" block covers %u.%02u%% of keys: "
						     "add a \"*\" line or a \"proxy_pass\" for the rest",
						     sum / 100, sum % 100);
		}
	}
	return 0;
}

const struct conf_cmd conf_split_cmds[] = {
	{ "split", CONF_LOCATION, CONF_BLOCK, 1, 1, set_split, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
