/*
 * conf_upstream: the upstream directives that say how a replica is
 * launched (launch exec|command|http|kubernetes), what it costs
 * (price_per_hour, billing_granularity), when it stops and wakes
 * (keepalive, prewarm, min_warm) and how many there may be (replicas,
 * target_concurrency). The plain ones (health, hold, ...) are in
 * conf_cmds.c.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/conf_int.h"
#include "common/vars.h"

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = v ? conf_xstrdup(v) : NULL;
}

/* A count (conf_get_count), under the name this file's parsers use. */
static int get_int(struct conf_parse *p, const char *s, int *out)
{
	return conf_get_count(p, s, out);
}

/* A plain decimal "12", "0.75": no sign, no exponent. */
static int get_amount(const char *s, double *out)
{
	int dots = 0, digits = 0;

	for (const char *c = s; *c; c++) {
		if (*c == '.')
			dots++;
		else if (*c >= '0' && *c <= '9')
			digits++;
		else
			return -1;
	}
	if (dots > 1 || digits == 0 || strlen(s) > 20)
		return -1;
	*out = strtod(s, NULL);
	return isfinite(*out) ? 0 : -1;
}

/*
 * Checks the $variables of a launch command: the launcher fills in $port,
 * $name and $prefix (also written ${port}) when it starts a replica, so any
 * other name is a mistake better caught at load. A "$" followed by no name
 * stays as written. Returns 0, or -1 with the error set.
 */
static int launch_check_vars(struct conf_parse *p, const char *cmd, const char *dir)
{
	static const char *const known[] = { "port", "name", "prefix", "replica", "gpu", "gpu_index",
					     "model_file", "model_version" };

	for (const char *s = strchr(cmd, '$'); s; s = strchr(s, '$')) {
		const char *name;
		size_t nlen, len;
		int ok = 0;
		switch (vars_ref(s, VARS_ESCAPE, &name, &nlen, &len)) {
		case VARS_BAD:
			return conf_error(p, "invalid variable \"%.*s\" in \"%s\" directive",
					  len > 32 ? 32 : (int)len, s, dir);
		case VARS_NAME:
			for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
				if (strlen(known[i]) == nlen && strncmp(name, known[i], nlen) == 0)
					ok = 1;
			if (!ok)
				return conf_error(p, "unknown variable \"$%.*s\" in \"%s\" directive "
						  "(known: $port, $name, $prefix, $replica, $gpu, $gpu_index, $model_file, $model_version; "
						  "write $$ for a $ the shell should see)", (int)nlen, name, dir);
			break;
		case VARS_NONE:
		case VARS_DOLLAR:
			break;
		}
		s += len;
	}
	return 0;
}

/*
 * env NAME=VALUE: one variable more in the environment of an exec replica's
 * command; VALUE takes the launch command's variables ($replica, $gpu, ...).
 */
int conf_set_env(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	const char *eq = strchr(av[0], '=');
	if (!eq || eq == av[0])
		return conf_error(p, "invalid \"%s\" in \"env\" directive (env NAME=VALUE)", av[0]);
	for (const char *c = av[0]; c < eq; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
		      (c > av[0] && *c >= '0' && *c <= '9')))
			return conf_error(p, "invalid variable name \"%.*s\" in \"env\" directive", (int)(eq - av[0]), av[0]);
	if (launch_check_vars(p, eq + 1, "env") < 0)
		return -1;
	struct conf_upstream *u = p->ups;
	char **n = realloc(u->env, (u->nenv + 1) * sizeof(*n));
	if (!n)
		abort();
	u->env = n;
	u->env[u->nenv++] = conf_xstrdup(av[0]);
	return 0;
}

/*
 * An http:// or https:// URL with a host; need_port: "http[s]://HOST:PORT"
 * with nothing after the port but an optional "/".
 */
static int url_ok(const char *s, int need_port)
{
	const char *h, *end, *colon;

	if (strncmp(s, "http://", 7) == 0)
		h = s + 7;
	else if (strncmp(s, "https://", 8) == 0)
		h = s + 8;
	else
		return 0;
	end = h + strcspn(h, "/?#");
	if (end == h || *h == ':')
		return 0;
	if (!need_port)
		return 1;
	if (*end && strcmp(end, "/") != 0)
		return 0;
	colon = NULL;
	for (const char *c = h; c < end; c++)
		if (*c == ':')
			colon = c;
	if (!colon || colon + 1 == end || (h[0] == '[' && colon < strchr(h, ']')))
		return 0;
	for (const char *c = colon + 1; c < end; c++)
		if (*c < '0' || *c > '9')
			return 0;
	return atoi(colon + 1) >= 1 && atoi(colon + 1) <= 65535;
}

/* A file named in a launch parameter: resolved against the prefix and readable now. */
static int launch_file(struct conf_parse *p, char **field, const char *v)
{
	char *f = conf_path(p, v);

	free(*field);
	*field = f;
	if (access(f, R_OK) < 0)
		return conf_error(p, "cannot read \"%s\" (%s)", f, strerror(errno));
	return 0;
}

/* The key=value parameters of launch command|http|kubernetes. */
static int launch_params(struct conf_parse *p, struct conf_upstream *u, const char *kind, char **av, int ac)
{
	int command = strcmp(kind, CONF_LAUNCH_COMMAND) == 0;
	int http = strcmp(kind, CONF_LAUNCH_HTTP) == 0;
	int k8s = !command && !http;

	for (int i = 1; i < ac; i++) {
		const char *a = av[i], *eq = strchr(a, '=');
		const char *v = eq ? eq + 1 : "";
		size_t klen = eq ? (size_t)(eq - a) : strlen(a);
#define IS(k) (klen == strlen(k) && strncmp(a, k, klen) == 0)
		if (!eq || !*v) {
			return conf_error(p, "invalid parameter \"%s\" in \"launch\" directive", a);
		} else if (IS("url")) {
			/* the replica's base URL: struct replica keeps 128 bytes of it, and no path */
			const char *h = strstr(v, "://") ? strstr(v, "://") + 3 : v;
			const char *rest = h + strcspn(h, "/?#");
			if (strlen(v) >= 128 || (*rest && strcmp(rest, "/") != 0))
				return conf_error(p, "invalid url \"%s\" in \"launch\" directive "
						  "(http://HOST[:PORT], no path, at most 127 characters)", v);
			if (!url_ok(v, command))
				return conf_error(p, "invalid url \"%s\" in \"launch\" directive (%s)", v,
						  command ? "http://HOST:PORT" : "http:// or https://");
			set_str(&u->launch_url, v);
		} else if ((command || http) && (IS("start") || IS("stop"))) {
			if (command && launch_check_vars(p, v, "launch") < 0)
				return -1;
			if (http && !url_ok(v, 0))
				return conf_error(p, "invalid url \"%s\" in \"launch\" directive (http:// or https://)", v);
			set_str(IS("start") ? &u->launch_start : &u->launch_stop, v);
		} else if ((http || k8s) && IS("token_file")) {
			if (launch_file(p, &u->launch_token_file, v) < 0)
				return -1;
		} else if (k8s && IS("ca")) {
			if (launch_file(p, &u->launch_ca, v) < 0)
				return -1;
		} else if (k8s && IS("api")) {
			if (!url_ok(v, 0))
				return conf_error(p, "invalid url \"%s\" in \"launch\" directive (http:// or https://)", v);
			set_str(&u->launch_api, v);
		} else if (k8s && IS("service")) {
			/* a DNS-1035 label: it goes into the labelSelector of the EndpointSlice URL as is */
			if (strlen(v) > 63 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v) ||
			    v[0] == '-' || v[strlen(v) - 1] == '-')
				return conf_error(p, "invalid service \"%s\" in \"launch\" directive "
						  "(a Service name: lower-case letters, digits, \"-\")", v);
			set_str(&u->launch_service, v);
		} else if (k8s && IS("deployment")) {
			const char *slash = strchr(v, '/');
			if (!slash || slash == v || !slash[1] || strchr(slash + 1, '/'))
				return conf_error(p, "invalid deployment \"%s\" in \"launch\" directive "
						  "(NAMESPACE/NAME)", v);
			free(u->launch_namespace);
			u->launch_namespace = strndup(v, (size_t)(slash - v));
			if (!u->launch_namespace)
				abort();
			set_str(&u->launch_deployment, slash + 1);
		} else {
			return conf_error(p, "invalid parameter \"%s\" in \"launch\" directive", a);
		}
#undef IS
	}
	if ((command || http) && !u->launch_start)
		return conf_error(p, "\"launch %s\" must have \"start\" parameter", kind);
	if ((command || http) && !u->launch_stop)
		return conf_error(p, "\"launch %s\" must have \"stop\" parameter", kind);
	if (k8s && !u->launch_deployment)
		return conf_error(p, "\"launch %s\" must have \"deployment\" parameter", kind);
	if (!u->launch_url && !(k8s && u->launch_service))
		return conf_error(p, "\"launch %s\" must have \"url\" parameter", kind);
	if (k8s && u->launch_service && u->launch_url)
		return conf_error(p, "\"launch %s\" takes \"url\" or \"service\", not both "
				  "(with service= the gateway routes to the pods themselves)", kind);
	if (k8s) {
		if (!u->launch_api)
			set_str(&u->launch_api, "https://kubernetes.default.svc");
		if (!u->launch_token_file)
			set_str(&u->launch_token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
		if (!u->launch_ca)
			set_str(&u->launch_ca, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
	}
	return 0;
}

/*
 * launch exec "CMD" | launch command start="CMD" stop="CMD" url=http://HOST:PORT
 * | launch http start=URL stop=URL url=URL [token_file=F]
 * | launch kubernetes deployment=NS/NAME (url=URL | service=NAME) [api=URL] [token_file=F] [ca=F]
 */
int conf_set_launch(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;

	if (strcmp(av[0], CONF_LAUNCH_EXEC) == 0) {
		if (ac != 2)
			return conf_error(p, "invalid number of arguments in \"launch\" directive");
		if (!av[1][0])
			return conf_error(p, "empty command in \"launch\" directive");
		if (launch_check_vars(p, av[1], "launch") < 0)
			return -1;
		set_str(&u->launch_cmd, av[1]);
	} else if (strcmp(av[0], CONF_LAUNCH_COMMAND) == 0 || strcmp(av[0], CONF_LAUNCH_HTTP) == 0 ||
		   strcmp(av[0], CONF_LAUNCH_KUBERNETES) == 0) {
		if (launch_params(p, u, av[0], av, ac) < 0)
			return -1;
	} else {
		return conf_error(p, "unknown launcher \"%s\" in \"launch\" directive "
				  "(known: exec, command, http, kubernetes)", av[0]);
	}
	set_str(&u->launch_kind, av[0]);
	return 0;
}

/* price_per_hour AMOUNT [CURRENCY] */
int conf_set_price(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;

	if (get_amount(av[0], &u->price_per_hour) < 0)
		return conf_error(p, "invalid price \"%s\" in \"price_per_hour\" directive", av[0]);
	if (ac == 2) {
		const char *c = av[1];
		if (strlen(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c[2] < 'A' || c[2] > 'Z')
			return conf_error(p, "invalid currency \"%s\" in \"price_per_hour\" directive "
					  "(a three-letter code such as USD, EUR, CNY)", c);
		set_str(&u->currency, c);
	}
	return 0;
}

/* billing_granularity 1s | 1m | 1h, in the main block or an upstream. */
int conf_set_billing(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	int64_t ms = units_granularity_ms(av[0]);	/* the rule wakegate-replay's --granularity reads too */

	if (ms < 0)
		return conf_error(p, "invalid value \"%s\" in \"billing_granularity\" directive, "
				  "it must be \"1s\", \"1m\" or \"1h\"", av[0]);
	if (p->ctx == CONF_UPSTREAM)
		p->ups->billing_granularity_ms = ms;
	else
		p->c->pub.billing_granularity_ms = ms;
	return 0;
}

/* An amount with an optional trailing "%" ("150", "150%"). */
static int get_percent(const char *s, double *out)
{
	char num[32];
	size_t n = strlen(s);

	if (n > 0 && s[n - 1] == '%')
		n--;
	if (n >= sizeof(num))
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	return get_amount(num, out);
}

/* The parameters of keepalive adaptive; 0, or -1 with the error set. */
static int keepalive_params(struct conf_parse *p, struct conf_upstream *u, char **av, int ac)
{
	for (int i = 0; i < ac; i++) {
		const char *a = av[i];
		if (strncmp(a, "min=", 4) == 0 || strncmp(a, "max=", 4) == 0) {
			int64_t ms = conf_parse_time(a + 4);
			if (ms <= 0)
				return conf_error(p, "invalid time \"%s\"", a + 4);
			*(a[1] == 'i' ? &u->keepalive_min_ms : &u->keepalive_max_ms) = ms;
		} else if (strncmp(a, "percentile=", 11) == 0) {
			double v;
			if (get_amount(a + 11, &v) < 0 || v <= 0 || v > 100)
				return conf_error(p, "invalid percentile \"%s\" in \"keepalive\" directive "
						  "(above 0, at most 100)", a + 11);
			u->keepalive_percentile = v;
		} else if (strncmp(a, "budget=", 7) == 0) {
			double v;
			if (get_percent(a + 7, &v) < 0 || v < 1 || v > 1000)
				return conf_error(p, "invalid budget \"%s\" in \"keepalive\" directive "
						  "(a percentage from 1 to 1000)", a + 7);
			u->keepalive_budget_pct = v;
		} else if (strncmp(a, "tod=", 4) == 0) {
			if (strcmp(a + 4, "on") != 0 && strcmp(a + 4, "off") != 0)
				return conf_error(p, "invalid value \"%s\" of tod= in \"keepalive\" directive, "
						  "it must be \"on\" or \"off\"", a + 4);
			u->keepalive_tod = strcmp(a + 4, "on") == 0;
		} else {
			return conf_error(p, "invalid parameter \"%s\" in \"keepalive\" directive", a);
		}
	}
	return 0;
}

/*
 * keepalive fixed TIME | keepalive adaptive [min=T] [max=T] [percentile=P]
 * [budget=PERCENT] [tod=on|off]. The row's default is "fixed" alone: fixed
 * at idle_timeout, whatever that is; a file must write the time (p->lx is
 * NULL only while a row's default runs). The adaptive parameters a line
 * leaves out take the defaults below, also under "fixed", so that conf-dump
 * shows what "adaptive" would use.
 */
int conf_set_keepalive(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	static char *param_defaults[] = { "min=1m", "max=1h", "percentile=99", "budget=100", "tod=on" };
	struct conf_upstream *u = p->ups;

	if (keepalive_params(p, u, param_defaults, sizeof(param_defaults) / sizeof(param_defaults[0])) < 0)
		return -1;
	if (strcmp(av[0], "fixed") == 0) {
		int64_t ms;
		if (ac > 2 || (ac == 1 && p->lx))
			return conf_error(p, "\"keepalive fixed\" takes one time");
		u->keepalive_adaptive = 0;
		if (ac == 1)
			return 0;
		ms = conf_parse_time(av[1]);
		if (ms < 0)
			return conf_error(p, "invalid time \"%s\"", av[1]);
		if (ms == 0)
			return conf_error(p, "\"keepalive fixed\" must be above 0");
		u->idle_timeout_ms = ms;
		return 0;
	}
	if (strcmp(av[0], "adaptive") != 0)
		return conf_error(p, "invalid value \"%s\" in \"keepalive\" directive, "
				  "it must be \"fixed\" or \"adaptive\"", av[0]);
	u->keepalive_adaptive = 1;
	if (keepalive_params(p, u, av + 1, ac - 1) < 0)
		return -1;
	if (u->keepalive_min_ms > u->keepalive_max_ms)
		return conf_error(p, "keepalive min= is above max=");
	return 0;
}

/* prewarm off | schedule */
int conf_set_prewarm(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (strcmp(av[0], "off") == 0)
		p->ups->prewarm_schedule = 0;
	else if (strcmp(av[0], "schedule") == 0)
		p->ups->prewarm_schedule = 1;
	else
		return conf_error(p, "invalid value \"%s\" in \"prewarm\" directive, "
				  "it must be \"off\" or \"schedule\"", av[0]);
	return 0;
}

/* replicas [min=N] [max=N] */
int conf_set_replicas(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;

	for (int i = 0; i < ac; i++) {
		if (strncmp(av[i], "min=", 4) == 0) {
			if (get_int(p, av[i] + 4, &u->replicas_min) < 0)
				return -1;
		} else if (strncmp(av[i], "max=", 4) == 0) {
			if (get_int(p, av[i] + 4, &u->replicas_max) < 0)
				return -1;
		} else {
			return conf_error(p, "invalid parameter \"%s\" in \"replicas\" directive", av[i]);
		}
	}
	if (u->replicas_max < 1)
		return conf_error(p, "replicas max= must be at least 1");
	if (u->replicas_min > u->replicas_max)
		return conf_error(p, "replicas min=%d is above max=%d", u->replicas_min, u->replicas_max);
	return 0;
}

/* target_concurrency N */
int conf_set_target_concurrency(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	if (get_int(p, av[0], &p->ups->target_concurrency) < 0)
		return -1;
	if (p->ups->target_concurrency < 1)
		return conf_error(p, "\"target_concurrency\" must be at least 1");
	return 0;
}

/* scale_p99 TIME [for TIME]: "for" defaults to 10s, the length of the p99 window */
int conf_set_scale_p99(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;

	u->scale_p99_ms = conf_parse_time(av[0]);
	if (u->scale_p99_ms <= 0)
		return conf_error(p, "invalid time \"%s\" in \"scale_p99\" directive (above 0, such as 500ms)", av[0]);
	u->scale_p99_for_ms = 10000;
	if (ac == 1)
		return 0;
	if (strcmp(av[1], "for") != 0)
		return conf_error(p, "invalid parameter \"%s\" in \"scale_p99\" directive (scale_p99 TIME [for TIME])",
				  av[1]);
	if (ac != 3)
		return conf_error(p, "no time after \"for\" in \"scale_p99\" directive");
	u->scale_p99_for_ms = conf_parse_time(av[2]);
	if (u->scale_p99_for_ms < 0)
		return conf_error(p, "invalid time \"%s\" in \"scale_p99\" directive", av[2]);
	return 0;
}

/* "HH:MM" into minutes after midnight; -1 when malformed. */
static int hhmm(const char *s, size_t len)
{
	int h, m;

	if (len != 5 || s[2] != ':')
		return -1;
	for (size_t i = 0; i < 5; i++)
		if (i != 2 && (s[i] < '0' || s[i] > '9'))
			return -1;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 24 || m > 59 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

/* min_warm N [at HH:MM-HH:MM] */
int conf_set_min_warm(struct conf_parse *p, const struct conf_cmd *cmd, char **av, int ac)
{
	struct conf_upstream *u = p->ups;
	const char *dash;

	if (get_int(p, av[0], &u->min_warm) < 0)
		return -1;
	u->min_warm_from = u->min_warm_to = -1;	/* all day */
	if (ac == 1)
		return 0;
	if (ac != 3 || strcmp(av[1], "at") != 0)
		return conf_error(p, "invalid parameter \"%s\" in \"min_warm\" directive (min_warm N [at HH:MM-HH:MM])",
				  av[1]);
	dash = strchr(av[2], '-');
	u->min_warm_from = dash ? hhmm(av[2], (size_t)(dash - av[2])) : -1;
	u->min_warm_to = dash ? hhmm(dash + 1, strlen(dash + 1)) : -1;
	if (u->min_warm_from < 0 || u->min_warm_to < 0 || u->min_warm_from >= 24 * 60)
		return conf_error(p, "invalid time window \"%s\" in \"min_warm\" directive (HH:MM-HH:MM)", av[2]);
	if (u->min_warm_to % (24 * 60) == u->min_warm_from)
		return conf_error(p, "empty time window \"%s\" in \"min_warm\" directive", av[2]);
	return 0;
}
