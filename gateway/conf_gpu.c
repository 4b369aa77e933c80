/*
 * conf_gpu: many models on one GPU (issue 14).
 *   gpu NAME memory=SIZE;               main, repeatable: a device and its memory
 *   gpu_memory SIZE [gpu=NAME[,NAME]];  upstream: what one replica needs, and where it may go
 *   pin;                                upstream: never evicted
 *   priority N;                         upstream: may evict lower priorities; its held requests go first
 *   model NAME [NAME ...];              upstream: the model names it answers to (default: its name)
 *   route models;                       location: pick the upstream by the request's model name
 * conf_gpu_check() (from conf_check) resolves the names and refuses a
 * replica that fits no device it may go on.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf_int.h"

static int set_gpu(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf *c = &p->c->pub;
	if (strncmp(av[1], "memory=", 7) != 0)
		return conf_error(p, "invalid parameter \"%s\" in \"gpu\" directive (gpu NAME memory=SIZE)", av[1]);
	int64_t bytes = conf_parse_size(av[1] + 7);
	if (bytes <= 0)
		return conf_error(p, "invalid size \"%s\" in \"gpu\" directive (such as 24g)", av[1] + 7);
	for (struct conf_gpu *g = c->gpus; g; g = g->next)
		if (strcmp(g->name, av[0]) == 0)
			return conf_error(p, "gpu \"%s\" is declared twice", av[0]);
	if (c->ngpus >= CONF_MAX_GPUS)
		return conf_error(p, "more than %d \"gpu\" devices", CONF_MAX_GPUS);
	struct conf_gpu *g = conf_xcalloc(1, sizeof(*g)), **tail = &c->gpus;
	g->name = conf_xstrdup(av[0]);
	g->bytes = bytes;
	g->index = c->ngpus++;
	struct conf_where w;
	conf_where_now(p, &w);
	g->file = w.file;
	g->line = w.line;
	while (*tail)
		tail = &(*tail)->next;
	*tail = g;
	return 0;
}

static int set_gpu_memory(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;
	u->gpu_memory = conf_parse_size(av[0]);
	if (u->gpu_memory <= 0)
		return conf_error(p, "invalid size \"%s\" in \"gpu_memory\" directive (such as 8g)", av[0]);
	if (ac == 2) {
		if (strncmp(av[1], "gpu=", 4) != 0 || !av[1][4])
			return conf_error(p, "invalid parameter \"%s\" in \"gpu_memory\" directive "
					  "(gpu_memory SIZE [gpu=NAME[,NAME]])", av[1]);
		free(u->gpu_names);
		u->gpu_names = conf_xstrdup(av[1] + 4);
	}
	return 0;
}

static int set_pin(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	p->ups->pin = 1;
	return 0;
}

/* priority N: an upstream's (eviction, its held requests first) or a location's (its held requests' rank) */
static int set_priority(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (p->ctx == CONF_LOCATION)
		return conf_get_count(p, av[0], &p->loc->pub.priority);
	return conf_get_count(p, av[0], &p->ups->priority);
}

static int set_model(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;
	for (int i = 0; i < ac; i++) {
		if (!*av[i] || strchr(av[i], '/'))
			return conf_error(p, "invalid model name \"%s\" in \"model\" directive", av[i]);
		u->models = realloc(u->models, (size_t)(u->nmodels + 1) * sizeof(*u->models));
		if (!u->models)
			abort();
		u->models[u->nmodels++] = conf_xstrdup(av[i]);
	}
	return 0;
}

static int set_route(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (strcmp(av[0], "models") != 0)
		return conf_error(p, "invalid value \"%s\" in \"route\" directive (route models)", av[0]);
	p->loc->pub.route_models = 1;
	return 0;
}

const struct conf_cmd conf_gpu_cmds[] = {
	{ "gpu", CONF_MAIN, CONF_MULTI, 2, 2, set_gpu, 0, NULL },
	{ "gpu_memory", CONF_UPSTREAM, 0, 1, 2, set_gpu_memory, 0, NULL },
	{ "pin", CONF_UPSTREAM, 0, 0, 0, set_pin, 0, NULL },
	{ "priority", CONF_UPSTREAM | CONF_LOCATION, 0, 1, 1, set_priority, 0, "0" },
	{ "model", CONF_UPSTREAM, CONF_MULTI, 1, -1, set_model, 0, NULL },
	{ "route", CONF_LOCATION, 0, 1, 1, set_route, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL, 0, NULL }
};

/* The upstream (other than self) that answers to model name, or NULL. */
static const struct conf_upstream *model_owner(const struct conf *c, const char *name,
					      const struct conf_upstream *self)
{
	for (const struct conf_upstream *u = c->upstreams; u; u = u->next) {
		if (u == self)
			continue;
		if (!u->nmodels && strcmp(u->name, name) == 0)
			return u;
		for (int i = 0; i < u->nmodels; i++)
			if (strcmp(u->models[i], name) == 0)
				return u;
	}
	return NULL;
}

int conf_gpu_check(struct conf_parse *p)
{
	struct conf *c = &p->c->pub;
	for (struct conf_upstream *u = c->upstreams; u; u = u->next) {
		for (int i = 0; i < u->nmodels; i++) {
			const struct conf_upstream *o = model_owner(c, u->models[i], u);
			if (o)
				return conf_error_at(p, u->file, u->line, "model \"%s\" of upstream \"%s\" is also "
						     "upstream \"%s\"'s", u->models[i], u->name, o->name);
		}
		if (!u->gpu_memory)
			continue;
		if (!c->gpus)
			return conf_error_at(p, u->file, u->line, "upstream \"%s\": \"gpu_memory\" needs a \"gpu "
					     "NAME memory=SIZE\" line in the main context", u->name);
		u->gpu_mask = 0;
		if (u->gpu_names) {
			char *names = conf_xstrdup(u->gpu_names), *save = NULL;
			for (char *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
				const struct conf_gpu *g = c->gpus;
				while (g && strcmp(g->name, n) != 0)
					g = g->next;
				if (!g) {
					int rc = conf_error_at(p, u->file, u->line, "upstream \"%s\": no gpu \"%s\" in "
							       "\"gpu_memory\" directive", u->name, n);
					free(names);
					return rc;
				}
				u->gpu_mask |= 1u << g->index;
			}
			free(names);
		} else {
			u->gpu_mask = (1u << c->ngpus) - 1;
		}
		int fits = 0;
		for (const struct conf_gpu *g = c->gpus; g; g = g->next)
			fits |= (u->gpu_mask & (1u << g->index)) && g->bytes >= u->gpu_memory;
		if (!fits)
			return conf_error_at(p, u->file, u->line, "upstream \"%s\": gpu_memory %lld bytes is more "
					     "than any gpu it may go on has", u->name, (long long)u->gpu_memory);
	}
	return 0;
}

void conf_gpu_free(struct conf *c)
{
	while (c->gpus) {
		struct conf_gpu *g = c->gpus;
		c->gpus = g->next;
		free(g->name);
		free(g);
	}
}

void conf_gpu_upstream_free(struct conf_upstream *u)
{
	free(u->gpu_names);
	for (int i = 0; i < u->nmodels; i++)
		free(u->models[i]);
	free(u->models);
}
