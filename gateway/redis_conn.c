/*
 * redis_conn: connect, AUTH, PING, watchdog and backoff for one Redis
 * connection (see redis_conn.h). Written against hiredis 0.14.1.
 *
 * Safety with hiredis: it calls every pending reply callback with a NULL
 * reply when a context is freed or lost, then the disconnect callback, and
 * frees a context whose connect failed right after the connect callback.
 * ac->data points at the struct redis_conn only while that struct owns the
 * context; every callback checks it (rc_of), and a context the struct lets
 * go of (dropped, or redis_conn_free) gets ac->data = NULL first.
 */
#include "config.h"
#include "gateway/redis_conn.h"
#include "gateway/redis_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#define RC_WATCH_MS 250
#define RC_BACKOFF_MIN_MS 100
#define RC_BACKOFF_MAX_MS 5000

struct redis_conn {
	struct event_base *base;
	char *host;
	int port;
	char *user, *password;
	int tls;
	char *tls_ca, *tls_name, *tls_cert, *tls_key;
	struct redis_tls *relay;	/* with tls: made at the first connect, kept until freed */
	char name[300];
	int backoff_min, backoff_max, backoff;
	struct redis_conn_ops ops;
	void *arg;
	redisAsyncContext *ac;	/* NULL while away */
	int up;			/* PING answered on ac */
	int ever_up;
	int err_seen;		/* an error reply was reported on this connection */
	int inflight;		/* commands sent on ac, not yet answered */
	long long busy_since;	/* monotonic ms: connect start or last progress */
	struct event *retry;	/* reconnect timer */
	struct event *watch;	/* stall watchdog, runs while ac exists */
};

/* A caller's reply callback, while its command is in flight; owned by rc_reply. */
struct rc_cmd {
	redis_conn_reply_fn fn;
	void *priv;
};

static void rc_connect(struct redis_conn *c);

static long long rc_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rc_tv(struct timeval *tv, int ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* The struct that owns ac, or NULL when ac is being let go of. */
static struct redis_conn *rc_of(const redisAsyncContext *ac)
{
	struct redis_conn *c = ac->data;
	return c && c->ac == ac ? c : NULL;
}

/* A reply (or a NULL on teardown) arrived for a command sent on ac. */
static struct redis_conn *rc_progress(const redisAsyncContext *ac)
{
	struct redis_conn *c = rc_of(ac);
	if (c) {
		if (c->inflight > 0)
			c->inflight--;
		c->busy_since = rc_mono_ms();
	}
	return c;
}

static void rc_sent(struct redis_conn *c)
{
	if (c->inflight++ == 0)
		c->busy_since = rc_mono_ms();
}

/* The connection is gone or never came: schedule a retry, tell the owner. */
static void rc_down(struct redis_conn *c, const char *why)
{
	int was_up = c->up;
	c->up = 0;
	c->ac = NULL;
	c->inflight = 0;
	if (c->relay && redis_tls_error(c->relay)[0])
		why = redis_tls_error(c->relay);	/* hiredis saw the relay close its side; the TLS side knows why */
	evtimer_del(c->watch);
	struct timeval tv;
	rc_tv(&tv, c->backoff);
	evtimer_add(c->retry, &tv);
	c->backoff = c->backoff * 2 > c->backoff_max ? c->backoff_max : c->backoff * 2;
	if (c->ops.down)
		c->ops.down(c->arg, why ? why : "connection closed", was_up);
}

/* Lets go of a live context ourselves: stalled, refused, or a bad answer. */
static void rc_drop(struct redis_conn *c, const char *why)
{
	redisAsyncContext *ac = c->ac;
	rc_down(c, why);
	ac->data = NULL;
	redisAsyncFree(ac);	/* deferred by hiredis when inside its callback */
}

static void rc_auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_conn *c = rc_progress(ac);
	redisReply *r = reply;
	if (!c || !r || r->type != REDIS_REPLY_ERROR)
		return;		/* OK: the PING that follows decides; NULL: the disconnect does */
	char why[512];
	snprintf(why, sizeof(why), "AUTH%s%s failed: %s", c->user ? " as user " : "", c->user ? c->user : "",
		 r->str);
	rc_drop(c, why);
}

static void rc_ping_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_conn *c = rc_progress(ac);
	redisReply *r = reply;
	if (!c)
		return;
	if (r && r->type == REDIS_REPLY_STATUS) {
		int again = c->ever_up;
		c->up = 1;
		c->ever_up = 1;
		c->err_seen = 0;
		c->backoff = c->backoff_min;
		if (c->ops.up)
			c->ops.up(c->arg, again);
	} else if (r && r->type == REDIS_REPLY_ERROR) {
		char why[512];
		if (strncmp(r->str, "NOAUTH", 6) == 0)
			snprintf(why, sizeof(why), "the server asks for a password (%s) and the redis line has no password=",
				 r->str);
		else
			snprintf(why, sizeof(why), "%s", r->str);	/* LOADING...: try again later */
		rc_drop(c, why);
	} else {
		rc_drop(c, ac->errstr[0] ? ac->errstr : "connection closed");
	}
}

static void rc_on_connect(const redisAsyncContext *cac, int status)
{
	struct redis_conn *c = rc_of(cac);
	if (!c)
		return;
	if (status != REDIS_OK) {
		rc_down(c, cac->errstr);	/* hiredis frees the context after this */
		return;
	}
	redisAsyncContext *ac = c->ac;
	if (c->password) {
		const char *argv[] = { "AUTH", c->user ? c->user : c->password, c->password };
		if (redisAsyncCommandArgv(ac, rc_auth_cb, NULL, c->user ? 3 : 2, argv, NULL) != REDIS_OK) {
			rc_drop(c, "cannot send AUTH");
			return;
		}
		rc_sent(c);
	}
	if (redisAsyncCommand(ac, rc_ping_cb, NULL, "PING") != REDIS_OK) {
		rc_drop(c, "cannot send PING");
		return;
	}
	rc_sent(c);
}

static void rc_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_conn *c = rc_of(ac);
	if (c)
		rc_down(c, status == REDIS_OK ? "closed by server" : ac->errstr);
}

static void rc_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	rc_connect(arg);
}

static void rc_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis_conn *c = arg;
	if (!c->ac || (c->up && c->inflight == 0))
		return;
	if (rc_mono_ms() - c->busy_since > REDIS_CONN_STALL_MS)
		rc_drop(c, c->up ? "no answer in 2s" : "no answer to connect in 2s");
}

static void rc_connect(struct redis_conn *c)
{
	if (c->ac)
		return;
	if (c->tls && !c->relay) {
		char err[512];
		struct redis_tls_cfg tc = { .host = c->host, .port = c->port, .ca = c->tls_ca, .name = c->tls_name,
					    .cert = c->tls_cert, .key = c->tls_key };
		if (!(c->relay = redis_tls_new(c->base, &tc, err, sizeof(err)))) {
			char why[600];
			snprintf(why, sizeof(why), "TLS relay: %s", err);
			rc_down(c, why);
			return;
		}
	}
	redisAsyncContext *ac = c->relay ? redisAsyncConnectUnix(redis_tls_path(c->relay)) :
					   redisAsyncConnect(c->host, c->port);
	if (!ac) {
		rc_down(c, "out of memory");
		return;
	}
	if (ac->err) {
		char why[128];
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		rc_down(c, why);
		return;
	}
	ac->data = c;
	if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
		ac->data = NULL;
		redisAsyncFree(ac);
		rc_down(c, "cannot attach to the loop");
		return;
	}
	redisAsyncSetConnectCallback(ac, rc_on_connect);
	redisAsyncSetDisconnectCallback(ac, rc_on_disconnect);
	c->ac = ac;
	c->busy_since = rc_mono_ms();
	struct timeval tv;
	rc_tv(&tv, RC_WATCH_MS);
	evtimer_add(c->watch, &tv);
}

/* Frees a secret so that it does not linger in freed memory. */
static void rc_wipe(char *s)
{
	if (!s)
		return;
	volatile char *v = s;
	while (*v)
		*v++ = 0;
	free(s);
}

static int rc_dup(char **dst, const char *src)
{
	*dst = NULL;
	return src && !(*dst = strdup(src)) ? -1 : 0;
}

struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_conn_cfg *cfg,
				  const struct redis_conn_ops *ops, void *arg)
{
	struct redis_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->port = cfg->port;
	c->tls = cfg->tls;
	c->ops = *ops;
	c->arg = arg;
	c->backoff_min = cfg->backoff_min_ms > 0 ? cfg->backoff_min_ms : RC_BACKOFF_MIN_MS;
	c->backoff_max = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : RC_BACKOFF_MAX_MS;
	if (c->backoff_max < c->backoff_min)
		c->backoff_max = c->backoff_min;
	c->backoff = c->backoff_min;
	snprintf(c->name, sizeof(c->name), strchr(cfg->host, ':') ? "[%s]:%d" : "%s:%d", cfg->host, cfg->port);
	c->retry = evtimer_new(base, rc_retry_cb, c);
	c->watch = event_new(base, -1, EV_PERSIST, rc_watch_cb, c);
	if (rc_dup(&c->host, cfg->host) < 0 || rc_dup(&c->user, cfg->user) < 0 ||
	    rc_dup(&c->password, cfg->password) < 0 || rc_dup(&c->tls_ca, cfg->tls_ca) < 0 ||
	    rc_dup(&c->tls_name, cfg->tls_name) < 0 || rc_dup(&c->tls_cert, cfg->tls_cert) < 0 ||
	    rc_dup(&c->tls_key, cfg->tls_key) < 0 || !c->retry || !c->watch) {
		redis_conn_free(c);
		return NULL;
	}
	struct timeval now = { 0, 0 };
	evtimer_add(c->retry, &now);	/* from the loop, so that no op runs before the owner has c */
	return c;
}

void redis_conn_free(struct redis_conn *c)
{
	if (!c)
		return;
	c->up = 0;
	if (c->ac) {
		redisAsyncContext *ac = c->ac;
		c->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	if (c->retry)
		event_free(c->retry);
	if (c->watch)
		event_free(c->watch);
	redis_tls_free(c->relay);	/* after hiredis let go of its socket: removes the directory */
	free(c->tls_ca);
	free(c->tls_name);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->host);
	rc_wipe(c->user);
	rc_wipe(c->password);
	free(c);
}

int redis_conn_up(const struct redis_conn *c)
{
	return c && c->up;
}

const char *redis_conn_name(const struct redis_conn *c)
{
	return c->name;
}

void redis_conn_set_auth(struct redis_conn *c, const char *user, const char *password)
{
	char *u, *p;
	if (rc_dup(&u, user) < 0 || rc_dup(&p, password) < 0) {
		rc_wipe(u);
		return;		/* out of memory: the old ones stay */
	}
	rc_wipe(c->user);
	rc_wipe(c->password);
	c->user = u;
	c->password = p;
	if (!c->ac && !c->up) {
		c->backoff = c->backoff_min;
		evtimer_del(c->retry);
		rc_connect(c);
	}
}

static void rc_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_conn *c = rc_progress(ac);
	struct rc_cmd *cmd = privdata;
	if (!cmd)
		return;
	cmd->fn(c, reply, cmd->priv);
	free(cmd);
}

int redis_conn_send(struct redis_conn *c, redis_conn_reply_fn fn, void *priv, int argc, const char **argv,
		    const size_t *argvlen)
{
	if (!c || !c->up)
		return -1;
	struct rc_cmd *cmd = NULL;
	if (fn) {
		if (!(cmd = malloc(sizeof(*cmd))))
			return -1;
		cmd->fn = fn;
		cmd->priv = priv;
	}
	if (redisAsyncCommandArgv(c->ac, rc_reply, cmd, argc, argv, argvlen) != REDIS_OK) {
		free(cmd);
		return -1;
	}
	rc_sent(c);
	return 0;
}

int redis_conn_first_error(struct redis_conn *c, const struct redisReply *r)
{
	if (!c || !r || r->type != REDIS_REPLY_ERROR || c->err_seen)
		return 0;
	c->err_seen = 1;
	return 1;
}
