/*
 * store_int: what store.c and store_lock.c share, inside the store module
 * only. struct store owns its redis_conn, its in-memory catch-up records
 * and the list of calls in flight (struct store_pend); a store_pend is owned
 * by the reply callback of its command, which hiredis calls exactly once.
 */
#ifndef WG_STORE_INT_H
#define WG_STORE_INT_H

#include "gateway/store.h"

#include <stdint.h>

struct event;
struct redis_conn;
struct redisReply;

#define STORE_ACT_BUCKETS 64

/*
 * One call in flight (store_newest_activity or a lock command); freed by
 * its reply callback (store_pend_free). It is on its store's list (for
 * store_cancel) until then, or until store_free detaches it (s = NULL) when
 * hiredis defers the teardown.
 */
struct store_pend {
	struct store *s;
	struct store_pend *prev, *next;
	store_activity_cb cb;
	store_lock_cb lcb;	/* set instead of cb for the lock calls */
	void *arg;
	int answered;		/* or cancelled */
	struct event *timer;
};

struct store_act;
struct store_rep;
struct store_stat;

struct store {
	struct event_base *base;
	struct redis_conn *conn;	/* NULL: no Redis */
	char *prefix;
	int down_logged;	/* the loss is logged; the return is not yet */
	struct store_act *acts[STORE_ACT_BUCKETS];
	struct store_rep *reps;
	struct store_stat *stats;
	struct store_pend *pends;
};

/* Logs the first command error on a connection (e.g. ZADD GT on Redis < 6.2). */
void store_check_reply(struct redis_conn *c, const struct redisReply *r, const char *what);

/*
 * Sends argv with p as its pending call. On success p is on s's list with
 * its timeout armed and fn (a reply callback) owns it; on failure p is
 * freed here and the caller answers its own cb. s must be up.
 */
typedef void (*store_pend_fn)(struct redis_conn *c, struct redisReply *r, void *p);
int store_pend_send(struct store *s, struct store_pend *p, store_pend_fn fn, int argc, const char **argv);
/* Takes p off its store's list (if still attached) and frees it: for its reply callback only. */
void store_pend_free(struct store_pend *p);

#endif
