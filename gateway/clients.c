/*
 * clients: the max_clients count. See clients.h.
 */
#include "config.h"

#include "gateway/clients.h"
#include "common/clock.h"
#include "common/evtricks.h"
#include "gateway/accesslog.h"
#include "gateway/client_conn.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#define CLIENTS_LOG_EVERY_S 1.0	/* "max_clients N reached" at most this often */

static int64_t max_clients;	/* 0: no cap */
static int64_t connected;	/* client connections open now (counted ones) */
static int64_t over_open;	/* of them, accepted past the cap and not answered yet */
static uint64_t refused_total;
static uint64_t refused_unlogged;	/* refused since the last log line */
static double last_log;

/* accepted this loop turn, waiting for their record (see clients.h) */
struct pend {
	struct bufferevent *bev;
	int over;
};
static struct pend *pend;
static int npend, cappend;
static struct event *pend_ev;

static void gauge(void)
{
	if (gw.metrics)
		metrics_set(gw.metrics, "wakegate_clients_connected", NULL, (double)connected);
}

/* See clients.h. */
void clients_set_max(int64_t n)
{
	max_clients = n > 0 ? n : 0;
}

/* client_conn's close callback of a counted connection: arg is 1 while it
 * came past the cap and was not answered yet. */
static void closed(struct evhttp_connection *c, void *arg)
{
	(void)c;
	connected--;
	if (arg)
		over_open--;
	gauge();
}

/* End of the accept's loop turn: evhttp has made each connection by now. */
static void pend_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	for (int i = 0; i < npend; i++) {
		struct evhttp_connection *c = evtricks_bev_conn(pend[i].bev);
		if (!c || client_track(c, closed, (void *)(intptr_t)pend[i].over) != 0) {
			/* evhttp dropped it already (or no memory for the record: then
			 * it is not counted, rather than counted for ever) */
			connected--;
			if (pend[i].over)
				over_open--;
		}
		bufferevent_decref(pend[i].bev);	/* may free it, if evhttp let it go */
	}
	npend = 0;
	gauge();
}

/* See clients.h. */
void clients_accepted(struct event_base *base, struct bufferevent *bev)
{
	int over = max_clients > 0 && connected >= max_clients;

	if (!bev)
		return;
	if (!pend_ev && !(pend_ev = event_new(base, -1, 0, pend_cb, NULL)))
		return;
	if (npend == cappend) {
		int n = cappend ? cappend * 2 : 16;
		struct pend *p = realloc(pend, (size_t)n * sizeof(*p));
		if (!p)
			return;
		pend = p;
		cappend = n;
	}
	bufferevent_incref(bev);
	pend[npend].bev = bev;
	pend[npend].over = over;
	npend++;
	connected++;
	if (over)
		over_open++;
	if (npend == 1)
		event_active(pend_ev, EV_TIMEOUT, 1);
}

/* See clients.h. Costs nothing per request unless a connection past the
 * cap is open. */
int clients_refused(struct evhttp_request *req)
{
	struct evhttp_connection *c;
	void **arg;
	char msg[96];
	double now;

	if (over_open <= 0)
		return 0;
	c = evhttp_request_get_connection(req);
	arg = c ? client_track_arg(c) : NULL;
	if (!arg || !*arg)
		return 0;
	*arg = NULL;	/* answered: from now on it is an ordinary connection that closes */
	over_open--;
	refused_total++;
	refused_unlogged++;
	now = gw_now();
	if (now - last_log >= CLIENTS_LOG_EVERY_S) {
		log_warn("max_clients %lld reached: a new client connection was answered 503 and closed "
			 "(%llu since the last such line)", (long long)max_clients, (unsigned long long)refused_unlogged);
		last_log = now;
		refused_unlogged = 0;
	}
	if (gw.metrics)
		metrics_add(gw.metrics, "wakegate_clients_refused_total", NULL, 1);
	snprintf(msg, sizeof(msg), "max_clients %lld reached", (long long)max_clients);
	evhttp_remove_header(evhttp_request_get_output_headers(req), "Connection");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	accesslog_refused(req, 503, NULL, proxy_error_size(msg));
	proxy_send_error(req, 503, msg, 1);
	return 1;
}

void clients_metrics_declare(struct metrics *m)
{
	metrics_declare(m, "wakegate_clients_connected", METRICS_GAUGE,
			"Client connections open now, all server listeners together (max_clients counts these).", NULL, 0);
	metrics_declare(m, "wakegate_clients_refused_total", METRICS_COUNTER,
			"Client connections answered 503 because max_clients were open.", NULL, 0);
	metrics_set(m, "wakegate_clients_connected", NULL, (double)connected);
	metrics_add(m, "wakegate_clients_refused_total", NULL, 0);
}

/* See clients.h. */
void clients_free_all(void)
{
	for (int i = 0; i < npend; i++)
		bufferevent_decref(pend[i].bev);
	npend = 0;
	free(pend);
	pend = NULL;
	cappend = 0;
	if (pend_ev)
		event_free(pend_ev);
	pend_ev = NULL;
}
