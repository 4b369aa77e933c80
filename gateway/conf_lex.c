/*
 * conf_lex: turns conf text into statements, nginx's way. A statement is a
 * run of words ended by ";" (a directive), "{" (a block opens) or "}" (a
 * block closes). Words are bare or quoted ('..' or ".."; a bare key= may be
 * followed by a quoted value: start="a b"); "#" starts a comment when it
 * starts a word. Also the value parsers: times and sizes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/conf_int.h"

#define CONF_MAX_FILE	(16 * 1024 * 1024)

/*
 * Reads the whole file at path into lx; shown is the name messages use and
 * must outlive lx. Returns 0, or -1 with errno (EISDIR/EFBIG for a directory
 * or a file too large to be a conf).
 */
int conf_lex_open(struct conf_lex *lx, const char *path, const char *shown)
{
	struct stat st;
	int fd, e;
	size_t got = 0;

	memset(lx, 0, sizeof(*lx));
	lx->shown = shown;
	lx->line = 1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if (st.st_size > CONF_MAX_FILE) {
		errno = EFBIG;
		goto fail;
	}
	lx->buf = malloc((size_t)st.st_size + 1);
	if (!lx->buf) {
		errno = ENOMEM;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, lx->buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == (size_t)st.st_size)
			break;
	}
	lx->len = got;
	lx->buf[got] = '\0';
	close(fd);
	return 0;
fail:
	e = errno;
	free(lx->buf);
	lx->buf = NULL;
	close(fd);
	errno = e;
	return -1;
}

/* A lexer over text in memory (a row's default); closed by conf_lex_close(). */
void conf_lex_string(struct conf_lex *lx, const char *text, const char *shown)
{
	memset(lx, 0, sizeof(*lx));
	lx->shown = shown;
	lx->line = 1;
	lx->buf = conf_xstrdup(text);
	lx->len = strlen(text);
}

void conf_lex_close(struct conf_lex *lx)
{
	free(lx->buf);
	lx->buf = NULL;
}

/* The line to blame at end of file: the last line with text, not the empty one after its newline. */
int conf_lex_eof_line(const struct conf_lex *lx)
{
	if (lx->len > 0 && lx->buf[lx->len - 1] == '\n' && lx->line > 1)
		return lx->line - 1;
	return lx->line;
}

void conf_args_free(struct conf_args *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static void args_clear(struct conf_args *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

/* Takes ownership of w. */
static void args_push(struct conf_args *a, char *w)
{
	if (a->n == a->cap) {
		int cap = a->cap ? a->cap * 2 : 8;
		char **v = realloc(a->v, (size_t)cap * sizeof(*v));
		if (!v) {
			fputs("wakegate: out of memory\n", stderr);
			abort();
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = w;
}

static int lex_error(const struct conf_lex *lx, int line, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int lex_error(const struct conf_lex *lx, int line, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || errlen == 0)
		return CONF_LEX_ERR;
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, " in %s:%d", lx->shown, line);
	return CONF_LEX_ERR;
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static int ends_word(char ch)
{
	return is_space(ch) || ch == ';' || ch == '{' || ch == '}';
}

/* The character a backslash escape stands for; 0 when the backslash stays. */
static char unescape(char ch)
{
	switch (ch) {
	case '"': return '"';
	case '\'': return '\'';
	case '\\': return '\\';
	case 't': return '\t';
	case 'r': return '\r';
	case 'n': return '\n';
	default: return 0;
	}
}

/* Appends ch to the growing word w (len, cap). */
static void word_put(char **w, size_t *len, size_t *cap, char ch)
{
	if (*len + 2 > *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		char *nw = realloc(*w, ncap);
		if (!nw) {
			fputs("wakegate: out of memory\n", stderr);
			abort();
		}
		*w = nw;
		*cap = ncap;
	}
	(*w)[(*len)++] = ch;
	(*w)[*len] = '\0';
}

/*
 * Reads one word at lx->pos into a new string (*out, caller frees).
 * Returns 0, or CONF_LEX_ERR with err set.
 */
static int lex_word(struct conf_lex *lx, char **out, char *err, size_t errlen)
{
	char *w = NULL;
	size_t len = 0, cap = 0;
	char q = lx->buf[lx->pos];
	int start_line = lx->line;

	word_put(&w, &len, &cap, 'x');	/* an empty quoted word is still a word */
	len = 0;
	w[0] = '\0';
	if (q == '"' || q == '\'') {
		lx->pos++;
		for (;;) {
			if (lx->pos >= lx->len) {
				free(w);
				return lex_error(lx, start_line, err, errlen,
						 "unexpected end of file, expecting closing quote");
			}
			char ch = lx->buf[lx->pos++];
			if (ch == q)
				break;
			if (ch == '\0') {
				free(w);
				return lex_error(lx, lx->line, err, errlen, "unexpected NUL byte");
			}
			if (ch == '\n')
				lx->line++;
			if (ch == '\\' && lx->pos < lx->len && unescape(lx->buf[lx->pos])) {
				ch = unescape(lx->buf[lx->pos++]);
			}
			word_put(&w, &len, &cap, ch);
		}
		if (lx->pos < lx->len && !ends_word(lx->buf[lx->pos])) {
			free(w);
			return lex_error(lx, lx->line, err, errlen,
					 "unexpected end of parameter, expecting \";\"");
		}
		*out = w;
		return 0;
	}
	while (lx->pos < lx->len && !ends_word(lx->buf[lx->pos])) {
		char ch = lx->buf[lx->pos++];
		if (ch == '\0') {
			free(w);
			return lex_error(lx, lx->line, err, errlen, "unexpected NUL byte");
		}
		if (ch == '\\' && lx->pos < lx->len && lx->buf[lx->pos] != '\0') {
			char next = lx->buf[lx->pos++];
			if (next == '\n')
				lx->line++;
			if (unescape(next)) {
				word_put(&w, &len, &cap, unescape(next));
			} else {
				word_put(&w, &len, &cap, '\\');
				word_put(&w, &len, &cap, next);
			}
			continue;
		}
		word_put(&w, &len, &cap, ch);
		/* key="quoted value": the value is read as a quoted word would be */
		if (ch == '=' && lx->pos < lx->len && (lx->buf[lx->pos] == '"' || lx->buf[lx->pos] == '\'')) {
			char *v;
			if (lex_word(lx, &v, err, errlen) != 0) {
				free(w);
				return CONF_LEX_ERR;
			}
			for (char *c = v; *c; c++)
				word_put(&w, &len, &cap, *c);
			free(v);
			break;
		}
		/* "${name}" may be followed by letters: the braces do not end the word */
		if (ch == '$' && lx->pos < lx->len && lx->buf[lx->pos] == '{') {
			while (lx->pos < lx->len && lx->buf[lx->pos] != '}' &&
			       !is_space(lx->buf[lx->pos]) && lx->buf[lx->pos] != ';' &&
			       lx->buf[lx->pos] != '\0')
				word_put(&w, &len, &cap, lx->buf[lx->pos++]);
			if (lx->pos < lx->len && lx->buf[lx->pos] == '}')
				word_put(&w, &len, &cap, lx->buf[lx->pos++]);
		}
	}
	*out = w;
	return 0;
}

/*
 * Reads the next statement into a (its old words are dropped). Returns how
 * it ended. At CONF_LEX_EOF and CONF_LEX_CLOSE a holds no words; a "}" or
 * end of file in the middle of a statement is an error.
 */
enum conf_lex_end conf_lex_next(struct conf_lex *lx, struct conf_args *a, char *err, size_t errlen)
{
	args_clear(a);
	a->line = lx->line;
	for (;;) {
		while (lx->pos < lx->len && is_space(lx->buf[lx->pos])) {
			if (lx->buf[lx->pos] == '\n')
				lx->line++;
			lx->pos++;
		}
		if (lx->pos >= lx->len) {
			if (a->n > 0)
				return lex_error(lx, conf_lex_eof_line(lx), err, errlen,
						 "unexpected end of file, expecting \";\" or \"}\"");
			return CONF_LEX_EOF;
		}
		char ch = lx->buf[lx->pos];
		switch (ch) {
		case '#':
			while (lx->pos < lx->len && lx->buf[lx->pos] != '\n')
				lx->pos++;
			continue;
		case ';':
		case '{':
			lx->pos++;
			if (a->n == 0)
				return lex_error(lx, lx->line, err, errlen, "unexpected \"%c\"", ch);
			return ch == ';' ? CONF_LEX_SEMI : CONF_LEX_BLOCK;
		case '}':
			lx->pos++;
			if (a->n > 0)
				return lex_error(lx, lx->line, err, errlen, "unexpected \"}\"");
			a->line = lx->line;
			return CONF_LEX_CLOSE;
		case '\0':
			return lex_error(lx, lx->line, err, errlen, "unexpected NUL byte");
		default:
			break;
		}
		if (a->n == 0)
			a->line = lx->line;
		char *w = NULL;
		if (lex_word(lx, &w, err, errlen) != 0)
			return CONF_LEX_ERR;
		args_push(a, w);
	}
}

/*
 * A count as directives take it: digits only, 0 .. INT32_MAX. Stores it in
 * *out and returns 0, or reports the error (naming s) and returns -1.
 */
int conf_get_count(struct conf_parse *p, const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = (s[0] >= '0' && s[0] <= '9') ? strtol(s, &end, 10) : -1;
	if (v < 0 || errno || *end || v > 0x7fffffffL)
		return conf_error(p, "invalid number \"%s\"", s);
	*out = (int)v;
	return 0;
}
