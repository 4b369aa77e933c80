/*
 * proxy: forwards one client request (evhttp server side) to one replica
 * (evhttp client side) and streams the answer back as it arrives.
 *
 * A proxy_pool is one replica's keep-alive connection pool; the upstream
 * module makes one when a replica turns READY (or WARMING, for warmup) and
 * frees it when the replica stops. The pool does not limit concurrency: the
 * caller (hold/upstream) only forwards when the replica has a free slot.
 *
 * Headers: passes method, path+query, headers (minus hop-by-hop ones), body;
 * adds X-Forwarded-For, X-Forwarded-Proto, X-Request-Id (kept when the client
 * sent one). Response: status, headers and body chunks are relayed as they
 * come (chunked to the client when the backend streams). Errors: 502 when
 * the backend fails or closes mid-request, 504 when connect or a read times
 * out, each with a one-line reason in the body. A client that goes away
 * cancels the upstream request.
 */
#ifndef WG_PROXY_H
#define WG_PROXY_H

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct evhttp_request;
struct proxy_pool;

/* Required by proxy_forward; the timeouts above 0 (the conf's, whose rows refuse 0). */
struct proxy_opts {
	int64_t connect_timeout_ms;
	int64_t read_timeout_ms;	/* between reads */
	const char *request_id;		/* NULL: make one */
	const char *extra_header_name;	/* e.g. "X-Wakegate-Cold", or NULL */
	const char *extra_header_value;
	/*
	 * 1: a request that never reached the backend (its connection failed
	 * to come up, e.g. refused by a worker that just died) is not answered:
	 * done gets res->unsent and the caller owns creq again, to forward it
	 * elsewhere or answer it. 0: such a request gets the 502.
	 */
	int unsent_back;
	/*
	 * 1: the gateway started the client's reply already (an event stream
	 * with progress while held, dispatch.c): the backend's status line and
	 * headers are not sent, its body follows on the same reply, and an
	 * error before the body ends the stream with an "event: error".
	 */
	int client_started;
	/* the request target to send instead of the client's (proxy_pass with a URI part); NULL: the client's */
	const char *uri;
	/*
	 * proxy_set_header: name, value, name, value, ..., NULL (values expanded);
	 * each replaces the header the proxy would send, an empty value removes it.
	 */
	const char *const *set_headers;
};

/* Why a forward ended, for the access log and metrics. */
struct proxy_result {
	int status;		/* status sent to the client (502/504 on failure); 0 if the client left first */
	int client_gone;	/* the client closed before the end */
	double upstream_ms;	/* from sending to the last byte */
	uint64_t bytes_out;	/* body bytes relayed to the client */
	int unsent;		/* with unsent_back: nothing reached the backend, creq is the caller's again */
};

/*
 * done: called exactly once per proxy_forward, on the loop, after the client
 * got its last byte or left. progress: called (may be NULL) whenever body
 * bytes flow, so a long stream counts as activity.
 */
typedef void (*proxy_done_cb)(const struct proxy_result *res, void *arg);
typedef void (*proxy_progress_cb)(void *arg);

struct proxy_pool *proxy_pool_new(struct event_base *base, const char *host, int port);

/* The resolver for host names of every pool's connections and of
 * tls_http_connection_new(); NULL (the default): libevent resolves with a
 * blocking getaddrinfo(). The caller keeps owning dns. */
struct evdns_base;
void proxy_set_dns(struct evdns_base *dns);
struct evdns_base *proxy_dns(void);
/*
 * A pool whose connections are not plain TCP (TLS: tls.c). bev_new makes the
 * unconnected bufferevent of each new connection (NULL on error); why, when
 * set, says why a connection failed (NULL: nothing to add); free_arg frees
 * arg with the pool. Set once, right after proxy_pool_new.
 */
struct proxy_transport {
	struct bufferevent *(*bev_new)(struct event_base *base, void *arg);
	const char *(*why)(struct bufferevent *bev, char *buf, size_t len);
	void (*free_arg)(void *arg);
	void *arg;
};
void proxy_pool_set_transport(struct proxy_pool *p, const struct proxy_transport *t);

/* Frees the pool; requests still in flight are failed with 502 first (their done cb runs). */
void proxy_pool_free(struct proxy_pool *p);

void proxy_forward(struct proxy_pool *p, struct evhttp_request *req, const struct proxy_opts *o,
		   proxy_done_cb done, proxy_progress_cb progress, void *arg);

/* The end of an event stream whose headers are out (hold_progress): "event: error" with
 * data {"error": reason, "code": code}, then the reply's end. */
void proxy_sse_error(struct evhttp_request *req, int code, const char *reason);
/* Sends a small error reply: {"error": reason} with status code and, if > 0, Retry-After. */
void proxy_send_error(struct evhttp_request *req, int code, const char *reason, int retry_after_s);
/* The body bytes proxy_send_error writes for reason (for the access log, written before the answer). */
size_t proxy_error_size(const char *reason);

#endif
