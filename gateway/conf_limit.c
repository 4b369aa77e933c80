/*
 * conf_limit: the rate-limit directives (limit_req_zone, limit_req,
 * limit_req_status, limit_req_dry_run, limit_req_log_level,
 * limit_conn_zone, limit_conn, limit_conn_status) with nginx's rules:
 * zones are declared in the main block, in any order relative to their
 * use; several limit_req lines of one level combine; a level that has no
 * limit_req line inherits the whole list of the level around it (the
 * same for limit_conn). The conf only describes zones: gateway/limit.c
 * makes them.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"
#include "gateway/limit.h"

#define UNSET_LEVEL ((enum log_level)-1)
#define ZONE_MIN_SIZE (32 * 1024)	/* nginx: 8 pages */

/* The list nodes, with the zone name until it is resolved (NULL in inherited copies). */
struct lreq_x {
	struct conf_limit_req pub;
	char *zone_name;
};

struct lconn_x {
	struct conf_limit_conn pub;
	char *zone_name;
};

/* Marks every value of a level unset, so that conf_limit_check() can inherit (main's: the rows' defaults). */
void conf_limits_init(struct conf_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->req_status = -1;
	l->req_dry_run = -1;
	l->req_log_level = UNSET_LEVEL;
	l->conn_status = -1;
}

/* Frees a level's lists (its own or its inherited copies); zones are the conf's. */
void conf_limits_free(struct conf_limits *l)
{
	while (l->req) {
		struct lreq_x *x = (struct lreq_x *)l->req;
		l->req = x->pub.next;
		free(x->zone_name);
		free(x);
	}
	while (l->conn) {
		struct lconn_x *x = (struct lconn_x *)l->conn;
		l->conn = x->pub.next;
		free(x->zone_name);
		free(x);
	}
}

/* Frees the zone descriptions and their compiled keys. */
void conf_limit_zones_free(struct conf *c)
{
	while (c->limit_zones) {
		struct conf_limit_zone *z = c->limit_zones;
		c->limit_zones = z->next;
		free(z->name);
		free(z->key_src);
		limit_key_free(z->key);
		free(z);
	}
}

/* A zone of either kind by name, or NULL; owned by the conf. */
struct conf_limit_zone *conf_limit_zone_find(const struct conf *c, const char *name)
{
	for (struct conf_limit_zone *z = c->limit_zones; z; z = z->next)
		if (strcmp(z->name, name) == 0)
			return z;
	return NULL;
}

/* The limits of the block being read. */
static struct conf_limits *level(struct conf_parse *p)
{
	if (p->ctx == CONF_LOCATION)
		return &p->loc->pub.limits;
	if (p->ctx == CONF_SERVER)
		return &p->srv->pub.limits;
	return &p->c->pub.limits;
}

/* A count for burst=, delay=, limit_conn: digits only, up to 2^31 - 1. */
static int get_u32(struct conf_parse *p, const char *what, const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = (s[0] >= '0' && s[0] <= '9') ? strtoul(s, &end, 10) : 0;
	if (s[0] < '0' || s[0] > '9' || errno || *end || v > 0x7fffffffUL)
		return conf_error(p, "invalid %s \"%s\"", what, s);
	*out = (uint32_t)v;
	return 0;
}

/*
 * limit_req_zone KEY zone=NAME:SIZE rate=R [redis];
 * limit_conn_zone KEY zone=NAME:SIZE;
 * Parameters in any order, as nginx reads them; the key is the one word
 * that is not a parameter. cmd->off is 1 for limit_conn_zone.
 */
int conf_set_limit_zone(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	const char *key = NULL, *zone = NULL, *rate = NULL;
	int conn = (int)cmd->off, redis = 0;
	struct conf_limit_zone *z, **tail;
	char kerr[256];
	const char *colon;
	int64_t size;
	uint64_t r = 0;

	for (int i = 0; i < ac; i++) {
		if (strncmp(av[i], "zone=", 5) == 0)
			zone = av[i] + 5;
		else if (!conn && strncmp(av[i], "rate=", 5) == 0)
			rate = av[i] + 5;
		else if (!conn && strcmp(av[i], "redis") == 0)
			redis = 1;
		else if (!key && av[i][0])
			key = av[i];
		else
			return conf_error(p, "invalid parameter \"%s\"", av[i]);
	}
	if (!zone)
		return conf_error(p, "\"%s\" must have \"zone\" parameter", cmd->name);
	if (!key)
		return conf_error(p, "\"%s\" must have a key", cmd->name);
	colon = strchr(zone, ':');
	if (!colon || colon == zone)
		return conf_error(p, "invalid zone size \"zone=%s\"", zone);
	size = conf_parse_size(colon + 1);
	if (size < 0)
		return conf_error(p, "invalid zone size \"zone=%s\"", zone);
	if (size < ZONE_MIN_SIZE)
		return conf_error(p, "zone \"%.*s\" is too small (at least 32k)", (int)(colon - zone), zone);
	if (!conn) {
		if (!rate)
			return conf_error(p, "\"limit_req_zone\" must have \"rate\" parameter");
		if (limit_parse_rate(rate, strlen(rate), &r) < 0)
			return conf_error(p, "invalid rate \"rate=%s\"", rate);
	}
	for (tail = &p->c->pub.limit_zones; *tail; tail = &(*tail)->next)
		if (strlen((*tail)->name) == (size_t)(colon - zone) &&
		    strncmp((*tail)->name, zone, (size_t)(colon - zone)) == 0)
			return conf_error(p, "duplicate zone \"%s\", first defined at %s:%d",
					  (*tail)->name, (*tail)->file, (*tail)->line);
	struct limit_key *k = limit_key_compile(key, kerr, sizeof(kerr));
	if (!k)
		return conf_error(p, "%s", kerr);
	z = conf_xcalloc(1, sizeof(*z));
	z->name = strndup(zone, (size_t)(colon - zone));
	if (!z->name)
		abort();
	z->conn = conn;
	z->key_src = conf_xstrdup(key);
	z->key = k;
	z->size = size;
	z->rate = r;
	z->redis = redis;
	z->file = p->lx->shown;
	z->line = p->line;
	*tail = z;
	return 0;
}

/* limit_req zone=NAME [burst=N] [nodelay|delay=N] */
int conf_set_limit_req(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_limits *l = level(p);
	const char *zone = NULL;
	uint32_t burst = 0, delay = 0;
	struct conf_limit_req **tail;
	struct lreq_x *x;

	for (int i = 0; i < ac; i++) {
		if (strncmp(av[i], "zone=", 5) == 0 && av[i][5]) {
			zone = av[i] + 5;
		} else if (strncmp(av[i], "burst=", 6) == 0) {
			if (get_u32(p, "burst", av[i] + 6, &burst) < 0)
				return -1;
		} else if (strncmp(av[i], "delay=", 6) == 0) {
			if (get_u32(p, "delay", av[i] + 6, &delay) < 0)
				return -1;
		} else if (strcmp(av[i], "nodelay") == 0) {
			delay = LIMIT_NODELAY;
		} else {
			return conf_error(p, "invalid parameter \"%s\"", av[i]);
		}
	}
	if (!zone)
		return conf_error(p, "\"limit_req\" must have \"zone\" parameter");
	for (tail = &l->req; *tail; tail = &(*tail)->next)
		if (strcmp(((struct lreq_x *)*tail)->zone_name, zone) == 0)
			return conf_error(p, "duplicate limit_req zone \"%s\"", zone);
	x = conf_xcalloc(1, sizeof(*x));
	x->zone_name = conf_xstrdup(zone);
	x->pub.burst = burst;
	x->pub.delay = delay;
	x->pub.file = p->lx->shown;
	x->pub.line = p->line;
	*tail = &x->pub;
	return 0;
}

/* limit_conn NAME N */
int conf_set_limit_conn(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_limits *l = level(p);
	struct conf_limit_conn **tail;
	struct lconn_x *x;
	uint32_t max;

	if (get_u32(p, "number of connections", av[1], &max) < 0)
		return -1;
	if (max == 0)
		return conf_error(p, "invalid number of connections \"%s\"", av[1]);
	for (tail = &l->conn; *tail; tail = &(*tail)->next)
		if (strcmp(((struct lconn_x *)*tail)->zone_name, av[0]) == 0)
			return conf_error(p, "duplicate limit_conn zone \"%s\"", av[0]);
	x = conf_xcalloc(1, sizeof(*x));
	x->zone_name = conf_xstrdup(av[0]);
	x->pub.max = max;
	x->pub.file = p->lx->shown;
	x->pub.line = p->line;
	*tail = &x->pub;
	return 0;
}

/* limit_req_status CODE | limit_conn_status CODE: 400..599 as in nginx. cmd->off: 1 for conn. */
int conf_set_limit_status(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_limits *l = level(p);
	char *end;
	long v;

	errno = 0;
	v = (av[0][0] >= '0' && av[0][0] <= '9') ? strtol(av[0], &end, 10) : -1;
	if (v < 400 || v > 599 || errno || *end)
		return conf_error(p, "invalid status \"%s\" in \"%s\" directive: it must be between 400 and 599",
				  av[0], cmd->name);
	if (cmd->off)
		l->conn_status = (int)v;
	else
		l->req_status = (int)v;
	return 0;
}

int conf_set_limit_dry_run(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (strcmp(av[0], "on") != 0 && strcmp(av[0], "off") != 0)
		return conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be \"on\" or \"off\"",
				  av[0], cmd->name);
	level(p)->req_dry_run = strcmp(av[0], "on") == 0;
	return 0;
}

/* limit_req_log_level info | notice | warn | error */
int conf_set_limit_log_level(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	static const enum log_level ok[] = { LOG_LVL_INFO, LOG_LVL_NOTICE, LOG_LVL_WARN, LOG_LVL_ERROR };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (strcmp(av[0], log_level_name(ok[i])) == 0) {
			level(p)->req_log_level = ok[i];
			return 0;
		}
	}
	return conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be \"info\", \"notice\", "
			  "\"warn\" or \"error\"", av[0], cmd->name);
}

/* Resolves one level's zone names; errors at the limit_req / limit_conn line. */
static int resolve(struct conf_parse *p, struct conf_limits *l)
{
	struct conf *c = &p->c->pub;

	for (struct conf_limit_req *r = l->req; r; r = r->next) {
		struct lreq_x *x = (struct lreq_x *)r;
		if (r->zone || !x->zone_name)
			continue;
		r->zone = conf_limit_zone_find(c, x->zone_name);
		if (!r->zone || r->zone->conn)
			return conf_error_at(p, r->file, r->line, "unknown limit_req_zone \"%s\"", x->zone_name);
	}
	for (struct conf_limit_conn *r = l->conn; r; r = r->next) {
		struct lconn_x *x = (struct lconn_x *)r;
		if (r->zone || !x->zone_name)
			continue;
		r->zone = conf_limit_zone_find(c, x->zone_name);
		if (!r->zone || !r->zone->conn)
			return conf_error_at(p, r->file, r->line, "unknown limit_conn_zone \"%s\"", x->zone_name);
	}
	return 0;
}

/* A copy of a resolved list, owned by the level that inherits it. */
static struct conf_limit_req *copy_req(const struct conf_limit_req *r)
{
	struct conf_limit_req *head = NULL, **tail = &head;

	for (; r; r = r->next) {
		struct lreq_x *x = conf_xcalloc(1, sizeof(*x));
		x->pub = *r;
		x->pub.next = NULL;
		*tail = &x->pub;
		tail = &x->pub.next;
	}
	return head;
}

static struct conf_limit_conn *copy_conn(const struct conf_limit_conn *r)
{
	struct conf_limit_conn *head = NULL, **tail = &head;

	for (; r; r = r->next) {
		struct lconn_x *x = conf_xcalloc(1, sizeof(*x));
		x->pub = *r;
		x->pub.next = NULL;
		*tail = &x->pub;
		tail = &x->pub.next;
	}
	return head;
}

/* nginx's merge: a level keeps what it set and takes the rest from its parent. */
static void merge(struct conf_limits *l, const struct conf_limits *parent)
{
	if (!l->req)
		l->req = copy_req(parent->req);
	if (!l->conn)
		l->conn = copy_conn(parent->conn);
	if (l->req_status < 0)
		l->req_status = parent->req_status;
	if (l->req_dry_run < 0)
		l->req_dry_run = parent->req_dry_run;
	if (l->req_log_level == UNSET_LEVEL)
		l->req_log_level = parent->req_log_level;
	if (l->conn_status < 0)
		l->conn_status = parent->conn_status;
}

/*
 * After parsing: resolve zones at every level and inherit downwards. The
 * main level holds every value by now: the rows' defaults ran there first.
 */
int conf_limit_check(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;

	if (resolve(p, &c->limits) < 0)
		return -1;
	for (struct conf_server *s = c->servers; s; s = s->next) {
		if (resolve(p, &s->limits) < 0)
			return -1;
		merge(&s->limits, &c->limits);
		for (struct conf_location *l = s->locations; l; l = l->next) {
			if (resolve(p, &l->limits) < 0)
				return -1;
			merge(&l->limits, &s->limits);
		}
	}
	return 0;
}
