/*
 * ratelimit_redis: the Redis side of shared limit_req zones. The script is
 * gateway/limit.c's arithmetic in Lua (integers held in doubles: exact far
 * beyond any rate or burst the conf accepts), run on Redis' clock so that
 * gateways with skewed clocks share one bucket. The connection is a
 * redis_conn of this module's own (AUTH as the redis line says), retried
 * every second while down; a check that finds it down is not sent at all.
 */
#include "config.h"
#include "gateway/ratelimit_redis.h"
#include "gateway/conf.h"
#include "gateway/limit.h"
#include "gateway/log.h"

#include "gateway/redis_conn.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RLR_RETRY_MS 1000

/* KEYS: one a rule; ARGV: rate, burst*1000, delay*1000 (-1: nodelay) a rule.
 * Returns {verdict 0 pass|1 delay|2 reject, rule (1-based), excess, delay_ms, retry_after_s}. */
static const char script[] =
	"local tm = redis.call('TIME')\n"
	"local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
	"local n = #KEYS\n"
	"local ex, el, fresh = {}, {}, {}\n"
	"for i = 1, n do\n"
	"  local rate, burst = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1])\n"
	"  local v = redis.call('HMGET', KEYS[i], 'e', 't')\n"
	"  local e, ms = 0, 0\n"
	"  fresh[i] = not v[1]\n"
	"  if v[1] then\n"
	"    ms = now - tonumber(v[2])\n"
	"    if ms < -60000 then ms = 1 elseif ms < 0 then ms = 0 end\n"
	"    e = tonumber(v[1]) + 1000 - math.floor(rate * ms / 1000)\n"
	"    if e < 0 then e = 0 end\n"
	"    if e > burst then\n"
	"      local total = math.floor(((tonumber(v[1]) + 1000 - burst) * 1000 + rate - 1) / rate)\n"
	"      local wait = total - ms\n"
	"      if wait < 0 then wait = 0 end\n"
	"      local sec = math.floor((wait + 999) / 1000)\n"
	"      if sec < 1 then sec = 1 end\n"
	"      return {2, i, e, 0, sec}\n"
	"    end\n"
	"  end\n"
	"  ex[i], el[i] = e, ms\n"
	"end\n"
	"local verdict, who, dmax, wex = 0, 0, 0, 0\n"
	"for i = n, 1, -1 do\n"
	"  local rate, delay = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i])\n"
	"  redis.call('HSET', KEYS[i], 'e', ex[i])\n"
	"  if fresh[i] or el[i] > 0 then redis.call('HSET', KEYS[i], 't', now) end\n"
	"  redis.call('PEXPIRE', KEYS[i], math.floor(ex[i] * 1000 / rate) + 60000)\n"
	"  if delay >= 0 and ex[i] > delay then\n"
	"    local d = math.floor((ex[i] - delay) * 1000 / rate)\n"
	"    if d > dmax then verdict, who, dmax, wex = 1, i, d, ex[i] end\n"
	"  end\n"
	"end\n"
	"return {verdict, who, wex, dmax, 0}\n";

struct rlr_ticket {
	rlr_cb cb;
	void *arg;
	int cancelled;
};

static struct {
	struct redis_conn *conn;	/* NULL: no zone wants Redis */
	int was_up;		/* for logging the loss once */
	int warned_down;	/* the first connect failed: said so once */
	char *host;
	int port;
	char *prefix;
} R;

/* Says once that Redis is gone (or refuses us), and once that it is back. */
static void on_down(void *arg, const char *why, int was_up)
{
	if (R.was_up || !R.warned_down)
		log_warn("limit_req: Redis at %s is not reachable (%s): zones with \"redis\" use local buckets until it is back",
			 redis_conn_name(R.conn), why);
	R.was_up = 0;
	R.warned_down = 1;
}

static void on_up(void *arg, int again)
{
	if (!R.was_up)
		log_notice("limit_req: Redis at %s %s: zones with \"redis\" are shared", redis_conn_name(R.conn),
			   R.warned_down ? "is back" : "connected");
	R.was_up = 1;
}

static const struct redis_conn_ops rlr_ops = { on_up, on_down };

/* Closes the connection; pending checks get their cb(NULL). */
static void rlr_close(void)
{
	struct redis_conn *c = R.conn;
	free(R.host);
	R.host = NULL;
	R.conn = NULL;
	redis_conn_free(c);
	R.was_up = R.warned_down = 0;
}

void rlr_configure(const struct conf *c, struct event_base *base)
{
	int want = 0;
	for (const struct conf_limit_zone *z = c->limit_zones; z; z = z->next)
		if (z->redis && !z->conn) {
			want = 1;
			if (!c->redis_host)
				log_warn("limit_req_zone \"%s\": \"redis\" without a \"redis\" directive: the local bucket is used in %s:%d",
					 z->name, z->file, z->line);
		}
	if (!want || !c->redis_host) {
		rlr_close();
		return;
	}
	free(R.prefix);
	R.prefix = strdup(c->redis_prefix);
	if (R.conn && strcmp(R.host, c->redis_host) == 0 && R.port == c->redis_port) {
		redis_conn_set_auth(R.conn, c->redis_user, c->redis_password);	/* read again at reload */
		return;
	}
	rlr_close();
	R.host = strdup(c->redis_host);
	R.port = c->redis_port;
	struct redis_conn_cfg rc = { .host = c->redis_host, .port = R.port, .user = c->redis_user,
				     .password = c->redis_password, .tls = c->redis_tls, .tls_ca = c->redis_tls_ca,
				     .tls_name = c->redis_tls_name, .tls_cert = c->redis_tls_cert, .tls_key = c->redis_tls_key,
				     .backoff_min_ms = RLR_RETRY_MS, .backoff_max_ms = RLR_RETRY_MS };
	if (R.host)
		R.conn = redis_conn_new(base, &rc, &rlr_ops, NULL);
	if (!R.conn)
		log_error("limit_req: out of memory connecting to Redis: zones with \"redis\" use local buckets");
}

int rlr_ready(void)
{
	return redis_conn_up(R.conn);
}

static void reply_cb(struct redis_conn *c, redisReply *r, void *priv)
{
	struct rlr_ticket *t = priv;
	redisReply *rep = r;
	struct rlr_answer a, *ap = NULL;
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 5) {
		long long v[5];
		int ok = 1;
		for (int i = 0; i < 5; i++) {
			if (rep->element[i]->type != REDIS_REPLY_INTEGER)
				ok = 0;
			else
				v[i] = rep->element[i]->integer;
		}
		if (ok) {
			a.verdict = v[0] == 2 ? LIMIT_REJECT : v[0] == 1 ? LIMIT_DELAY : LIMIT_PASS;
			a.rule = v[1] > 0 ? (size_t)(v[1] - 1) : 0;
			a.excess = v[2] > 0 ? (uint64_t)v[2] : 0;
			a.delay_ms = v[3] > 0 ? (uint64_t)v[3] : 0;
			a.retry_after_s = v[4] > 0 ? (uint32_t)v[4] : 1;
			ap = &a;
		}
	} else if (rep && rep->type == REDIS_REPLY_ERROR) {
		log_error("limit_req: Redis script failed: %s; the local bucket decides", rep->str);
	}
	if (!t->cancelled)
		t->cb(ap, t->arg);
	free(t);
}

void *rlr_check(const struct rlr_rule *rules, size_t n, rlr_cb cb, void *arg)
{
	if (!rlr_ready() || n == 0 || n > 64)
		return NULL;
	size_t argc = 3 + 4 * n;
	const char **argv = calloc(argc, sizeof(*argv));
	size_t *len = calloc(argc, sizeof(*len));
	char *keys = NULL, (*nums)[24] = calloc(3 * n + 1, sizeof(*nums));
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += strlen(R.prefix) + 6 + strlen(rules[i].zone) + 1 + rules[i].keylen;
	keys = malloc(total + 1);
	struct rlr_ticket *t = calloc(1, sizeof(*t));
	void *ret = NULL;
	if (!argv || !len || !nums || !keys || !t)
		goto out;
	argv[0] = "EVAL";
	len[0] = 4;
	argv[1] = script;
	len[1] = sizeof(script) - 1;
	snprintf(nums[3 * n], sizeof(nums[0]), "%zu", n);
	argv[2] = nums[3 * n];
	len[2] = strlen(argv[2]);
	char *k = keys;
	for (size_t i = 0; i < n; i++) {
		int m = sprintf(k, "%slimit:%s:", R.prefix, rules[i].zone);
		memcpy(k + m, rules[i].key, rules[i].keylen);
		argv[3 + i] = k;
		len[3 + i] = (size_t)m + rules[i].keylen;
		k += len[3 + i];
		const struct rlr_rule *r = &rules[i];
		snprintf(nums[3 * i], sizeof(nums[0]), "%llu", (unsigned long long)r->rate);
		snprintf(nums[3 * i + 1], sizeof(nums[0]), "%llu", (unsigned long long)r->burst * 1000);
		if (r->delay == LIMIT_NODELAY)
			snprintf(nums[3 * i + 2], sizeof(nums[0]), "-1");
		else
			snprintf(nums[3 * i + 2], sizeof(nums[0]), "%llu", (unsigned long long)r->delay * 1000);
		for (int j = 0; j < 3; j++) {
			argv[3 + n + 3 * i + (size_t)j] = nums[3 * i + (size_t)j];
			len[3 + n + 3 * i + (size_t)j] = strlen(nums[3 * i + (size_t)j]);
		}
	}
	t->cb = cb;
	t->arg = arg;
	if (redis_conn_send(R.conn, reply_cb, t, (int)argc, argv, len) == 0) {
		ret = t;
		t = NULL;
	}
out:
	free(t);
	free(argv);
	free(len);
	free(nums);
	free(keys);
	return ret;
}

void rlr_cancel(void *ticket)
{
	struct rlr_ticket *t = ticket;
	if (t)
		t->cancelled = 1;
}

void rlr_free(void)
{
	rlr_close();
	free(R.prefix);
	R.prefix = NULL;
}
