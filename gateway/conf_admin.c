/*
 * conf_admin: admin_token FILE (main): the bearer token the admin
 * listener's POST endpoints require. The file's first line is the token; it
 * is read at start and at every reload, never logged or dumped.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"

static int set_admin_token(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf *c = &p->c->pub;
	char buf[512], *path;
	if (conf_secret_read(p, av[0], "admin_token", buf, sizeof(buf), &path) < 0)
		return -1;
	int rc = 0;
	if (strlen(buf) < 16 || strspn(buf, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") != strlen(buf))
		rc = conf_error(p, "admin_token file \"%s\": the first line must be a token of at least 16 characters "
				"(letters, digits, -._~+/=)", path);
	else {
		conf_redis_wipe(c->admin_token);
		c->admin_token = conf_xstrdup(buf);
	}
	conf_secret_forget(buf, sizeof(buf), path);
	return rc;
}

const struct conf_cmd conf_admin_cmds[] = {
	{ "admin_token", CONF_MAIN, 0, 1, 1, set_admin_token, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
