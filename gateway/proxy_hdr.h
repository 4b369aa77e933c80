/*
 * proxy_hdr: the header work of the proxy (private to proxy*.c): which
 * headers pass, what gets added, the request id, the outgoing request.
 */
#ifndef WG_PROXY_HDR_H
#define WG_PROXY_HDR_H

#include <event2/http.h>

#define PROXY_REQID_MAX 65	/* 64 characters and the NUL */

/* The request id for creq: given, else the client's sane X-Request-Id, else 32 random hex. */
void proxy_hdr_request_id(struct evhttp_request *creq, const char *given, char out[PROXY_REQID_MAX]);

/*
 * A new upstream request (the caller hands it to evhttp_make_request, which
 * owns it from then on) carrying creq's headers minus hop-by-hop ones, Host
 * set to hostport, X-Forwarded-For/-Proto, X-Request-Id and a copy of the
 * body (creq's body is left in place, so a retry can copy it again).
 */
struct evhttp_request *proxy_hdr_request(struct evhttp_request *creq, const char *hostport,
					 const char *reqid,
					 void (*cb)(struct evhttp_request *, void *), void *arg);

/* The path and query to send upstream: creq's URI, or the path+query of an absolute one. */
const char *proxy_hdr_uri(struct evhttp_request *creq, char *buf, size_t len);

/* Copies the backend's response headers (minus hop-by-hop ones) to creq's output. */
void proxy_hdr_response(struct evhttp_request *creq, struct evhttp_request *ureq,
			const char *reqid, const char *extra_name, const char *extra_value);

/* 1 when ureq's answer has Content-Length headers that differ or are not
 * plain numbers (evhttp would frame its body by the first one). */
int proxy_hdr_response_framing_bad(struct evhttp_request *ureq);

#endif
