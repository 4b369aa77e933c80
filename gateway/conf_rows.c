/*
 * conf_rows: what the parser does with a row beyond running its setter on a
 * written line. Numbers the rows across the tables (conf_tables[]) for the
 * seen bitmap; applies each row's default, the conf text in its dflt
 * column, through the row's own setter when a block opens; and, for rows
 * flagged CONF_RESTART, remembers the line as written so that a reload can
 * give the running value back (conf_keep_restart_only).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"

size_t conf_row_count(void)
{
	static size_t n;

	if (!n)
		for (size_t t = 0; conf_tables[t]; t++)
			for (const struct conf_cmd *c = conf_tables[t]; c->name; c++)
				n++;
	return n;
}

const struct conf_cmd *conf_row(size_t i)
{
	for (size_t t = 0; conf_tables[t]; t++)
		for (const struct conf_cmd *c = conf_tables[t]; c->name; c++)
			if (i-- == 0)
				return c;
	return NULL;
}

/*
 * The row of a directive and its number (for the seen bitmap), or NULL: the
 * one whose context takes ctx ("server" is a block in main and a line in
 * an upstream), else the first of that name (for "not allowed here").
 */
const struct conf_cmd *conf_cmd_find(const char *name, unsigned ctx, size_t *row)
{
	const struct conf_cmd *first = NULL;
	size_t i = 0, first_row = 0;

	for (size_t t = 0; conf_tables[t]; t++)
		for (const struct conf_cmd *c = conf_tables[t]; c->name; c++, i++)
			if (strcmp(c->name, name) == 0) {
				if (c->ctx & ctx) {
					*row = i;
					return c;
				}
				if (!first) {
					first = c;
					first_row = i;
				}
			}
	*row = first_row;
	return first;
}

/* Where the directive being run was written; file NULL while a default runs. */
void conf_where_now(const struct conf_parse *p, struct conf_where *w)
{
	w->file = p->lx ? p->lx->shown : NULL;
	w->line = p->lx ? p->line : 0;
}

/* The outermost context a row allows: where its default is applied. */
static unsigned home_ctx(const struct conf_cmd *cmd)
{
	return cmd->ctx & -cmd->ctx;
}

/* A row's default as the words a conf line would give its setter (a.v[0] is the name). */
static void default_args(const struct conf_cmd *cmd, struct conf_args *a)
{
	struct conf_lex lx;
	char *text = conf_xasprintf("%s %s;", cmd->name, cmd->dflt);
	char err[256];

	conf_lex_string(&lx, text, "(default)");
	if (conf_lex_next(&lx, a, err, sizeof(err)) != CONF_LEX_SEMI) {
		fprintf(stderr, "wakegate: the default of \"%s\" in its row does not parse: %s\n", cmd->name, err);
		abort();
	}
	conf_lex_close(&lx);
	free(text);
}

/*
 * Runs a setter on words that no file wrote (a default, or the old line a
 * reload keeps). Failing is a bug of the table, and every conf load runs
 * every default, so any test that loads a conf finds it: abort.
 */
static void run_unwritten(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac, unsigned ctx)
{
	struct conf_lex *saved_lx = p->lx;
	int saved_line = p->line;
	unsigned saved_ctx = p->ctx;

	p->lx = NULL;
	p->line = 0;
	p->ctx = ctx;
	if (cmd->set(p, cmd, av, ac) < 0) {
		fprintf(stderr, "wakegate: \"%s\" from its row does not apply: %s\n", cmd->name, p->err ? p->err : "");
		abort();
	}
	p->lx = saved_lx;
	p->line = saved_line;
	p->ctx = saved_ctx;
}

/* The defaults of every row whose home is ctx, before the block's own lines. */
void conf_apply_defaults(struct conf_parse *p, unsigned ctx)
{
	for (size_t t = 0; conf_tables[t]; t++) {
		for (const struct conf_cmd *cmd = conf_tables[t]; cmd->name; cmd++) {
			struct conf_args a = { 0 };
			if (!cmd->dflt || home_ctx(cmd) != ctx)
				continue;
			default_args(cmd, &a);
			run_unwritten(p, cmd, a.v + 1, a.n - 1, ctx);
			conf_args_free(&a);
		}
	}
}

/* A restart-only line as written, for conf_keep_restart_only(). */
void conf_keep_line(struct conf_parse *p, size_t row, char **av, int ac)
{
	struct conf_line *l = &p->c->lines[row];

	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = conf_xcalloc((size_t)ac, sizeof(*l->v));
	for (int i = 0; i < ac; i++)
		l->v[i] = conf_xstrdup(av[i]);
	l->n = ac;
	l->file = p->lx->shown;
	l->line = p->line;
}

/* Two argument lists with the same words. */
static int same_args(char **a, int na, char **b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

/* "redis 127.0.0.1:6379" into buf, quoting a word with a space. */
static const char *line_text(char *buf, size_t len, const char *name, char **v, int n)
{
	size_t off = (size_t)snprintf(buf, len, "%s", name);

	for (int i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, strpbrk(v[i], " \t;{}#") ? " \"%s\"" : " %s", v[i]);
	return buf;
}

/*
 * For a reload: the rows flagged CONF_RESTART (their line takes effect at
 * a start only) whose words differ between old, the running conf, and c,
 * the new one, get old's words again in c, through the row's setter; c
 * then remembers old's line, so that the next reload compares against what
 * runs. say() gets a line for each, naming where the new line is and what
 * stays. Returns how many were kept.
 */
int conf_keep_restart_only(struct conf *c, const struct conf *old, void (*say)(const char *line))
{
	struct conf_x *cx = (struct conf_x *)c;
	const struct conf_x *ox = (const struct conf_x *)old;
	struct conf_parse p = { .c = cx };
	int kept = 0;

	for (size_t i = 0; i < conf_row_count(); i++) {
		const struct conf_cmd *cmd = conf_row(i);
		const struct conf_line *nl = &cx->lines[i], *ol = &ox->lines[i];
		struct conf_args dn = { 0 }, dold = { 0 };
		char **nv, **ov;
		int nn, on;
		char err[256], now[512], txt[400], was[512], msg[1200];

		if (!(cmd->flags & CONF_RESTART))
			continue;
		if (cmd->dflt)
			default_args(cmd, &dn);
		if (cmd->dflt)
			default_args(cmd, &dold);
		nv = nl->n ? nl->v : dn.n ? dn.v + 1 : NULL;
		nn = nl->n ? nl->n : dn.n ? dn.n - 1 : 0;
		ov = ol->n ? ol->v : dold.n ? dold.v + 1 : NULL;
		on = ol->n ? ol->n : dold.n ? dold.n - 1 : 0;
		if (!same_args(nv, nn, ov, on)) {
			p.err = err;
			p.errlen = sizeof(err);
			run_unwritten(&p, cmd, ov, on, CONF_MAIN);
			if (nl->n)
				snprintf(now, sizeof(now), "%s:%d", nl->file, nl->line);
			else
				snprintf(now, sizeof(now), "%s (removed)", c->file);
			if (ol->n)
				snprintf(was, sizeof(was), "\"%s\" (%s:%d)",
					 line_text(txt, sizeof(txt), cmd->name, ol->v, ol->n), ol->file, ol->line);
			else
				snprintf(was, sizeof(was), "no %s line (the default: %s)", cmd->name, cmd->dflt);
			snprintf(msg, sizeof(msg), "the \"%s\" line changed in %s; it takes effect at the next start, "
				 "this gateway stays on %s", cmd->name, now, was);
			say(msg);
			for (int j = 0; j < cx->lines[i].n; j++)
				free(cx->lines[i].v[j]);
			free(cx->lines[i].v);
			memset(&cx->lines[i], 0, sizeof(cx->lines[i]));
			if (ol->n) {
				cx->lines[i].v = conf_xcalloc((size_t)ol->n, sizeof(char *));
				for (int j = 0; j < ol->n; j++)
					cx->lines[i].v[j] = conf_xstrdup(ol->v[j]);
				cx->lines[i].n = ol->n;
				cx->lines[i].file = conf_name_keep(cx, ol->file);
				cx->lines[i].line = ol->line;
			}
			kept++;
		}
		conf_args_free(&dn);
		conf_args_free(&dold);
	}
	return kept;
}

/* Frees the restart-only lines of a conf (conf_free). */
void conf_lines_free(struct conf_x *cx)
{
	for (size_t i = 0; cx->lines && i < conf_row_count(); i++) {
		for (int j = 0; j < cx->lines[i].n; j++)
			free(cx->lines[i].v[j]);
		free(cx->lines[i].v);
	}
	free(cx->lines);
	cx->lines = NULL;
}
