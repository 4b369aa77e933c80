/*
 * launch_check: the -t check of exec launch commands (see launch_check.h).
 * A conf installed byte for byte used to pass -t while naming a worker and
 * models that were not there; the first request then failed at boot with
 * "exited with status 127". This finds the same thing before the start.
 */
#include "config.h"
#include "gateway/launch_check.h"
#include "gateway/conf.h"
#include "gateway/launch.h"
#include "gateway/launch_proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WORDS 64

/* Characters after which a word means something only a shell can tell. */
static int shell_word(const char *w)
{
	return strpbrk(w, "\"'\\$`*?[](){}|;&<>~") != NULL;
}

static int is_assignment(const char *w)
{
	const char *eq = strchr(w, '=');
	if (!eq || eq == w)
		return 0;
	for (const char *p = w; p < eq; p++)
		if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (p > w && *p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

static int is_builtin(const char *w)
{
	static const char *const b[] = { "cd", ".", ":", "true", "false", "echo", "printf", "test",
		"eval", "set", "export", "ulimit", "umask", "trap", "wait", "command", "if", "for",
		"while", "until", "case", "!", "sleep", "exit", "read", NULL };
	for (int i = 0; b[i]; i++)
		if (strcmp(w, b[i]) == 0)
			return 1;
	return 0;
}

/* A program name as sh would find it: a path (relative ones from the prefix,
 * where launch commands run) or the first match on PATH. 0 when executable. */
static int find_program(const char *prog, const char *prefix, char *found, size_t len)
{
	if (strchr(prog, '/')) {
		if (prog[0] == '/')
			snprintf(found, len, "%s", prog);
		else
			snprintf(found, len, "%s/%s", prefix, prog);
		return access(found, X_OK);
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(found, len, "%.*s/%s", (int)n, n ? path : ".", prog);
		if (access(found, X_OK) == 0)
			return 0;
		path += n;
		if (*path == ':')
			path++;
	}
	snprintf(found, len, "%s", prog);
	errno = ENOENT;
	return -1;
}

static int check_upstream(const struct conf *c, const struct conf_upstream *u, char *err, size_t errlen)
{
	char *cmd = launch_expand(u->launch_cmd, u->name, 0, c->prefix);
	if (!cmd)
		return 0;
	char *words[MAX_WORDS];
	int n = 0;
	for (char *save = NULL, *w = strtok_r(cmd, " \t\n", &save); w && n < MAX_WORDS;
	     w = strtok_r(NULL, " \t\n", &save))
		words[n++] = w;
	int i = 0;
	while (i < n && (strcmp(words[i], "exec") == 0 || is_assignment(words[i])))
		i++;
	int rc = 0;
	char found[4096];
	if (i < n && !shell_word(words[i]) && !is_builtin(words[i]) &&
	    find_program(words[i], c->prefix, found, sizeof(found)) < 0) {
		snprintf(err, errlen, "upstream \"%s\": launch program \"%s\" %s (%s) in %s:%d",
			 u->name, words[i], strchr(words[i], '/') ? found : "on PATH",
			 strerror(errno), u->file, u->line);
		rc = -1;
	}
	/* the bundled worker: its model is the other file a copied conf gets wrong */
	if (rc == 0 && i < n) {
		const char *base = strrchr(words[i], '/');
		base = base ? base + 1 : words[i];
		for (int k = i + 1; strcmp(base, "wakegate-worker") == 0 && k + 1 < n; k++) {
			if (strcmp(words[k], "--model") != 0 || shell_word(words[k + 1]))
				continue;
			if (words[k + 1][0] == '/')
				snprintf(found, sizeof(found), "%s", words[k + 1]);
			else
				snprintf(found, sizeof(found), "%s/%s", c->prefix, words[k + 1]);
			if (access(found, R_OK) < 0) {
				snprintf(err, errlen, "upstream \"%s\": model \"%s\" (%s): %s in %s:%d",
					 u->name, words[k + 1], found, strerror(errno), u->file, u->line);
				rc = -1;
			}
			break;
		}
	}
	free(cmd);
	return rc;
}

int launch_check(const struct conf *c, char *err, size_t errlen)
{
	int execs = 0;
	for (const struct conf_upstream *u = c->upstreams; u; u = u->next)
		execs += u->launch_cmd != NULL;
	if (!execs)
		return 0;
	struct stat st;
	errno = 0;
	if (stat(c->prefix, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "prefix \"%s\": %s (launch commands run there; set another with -p)",
			 c->prefix, errno ? strerror(errno) : "not a directory");
		return -1;
	}
	for (const struct conf_upstream *u = c->upstreams; u; u = u->next)
		if (u->launch_cmd && strcmp(u->launch_kind ? u->launch_kind : CONF_LAUNCH_EXEC, CONF_LAUNCH_EXEC) == 0 &&
		    check_upstream(c, u, err, errlen) < 0)
			return -1;
	return 0;
}
