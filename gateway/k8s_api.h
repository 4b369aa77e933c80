/*
 * k8s_api: one request to the Kubernetes API server on the gateway's loop
 * (libcurl multi through warmer/curl_loop.c, never blocking), for the
 * EndpointSlice list and watch (k8s_watch.c) and the scale PATCH
 * (k8s_scale.c). The bearer token is re-read from its file at each call
 * (a projected service account token rotates); TLS is verified against ca=.
 *
 * Ownership: a call belongs to its caller until done runs (the call frees
 * itself right after done returns) or k8s_call_cancel (no callback).
 */
#ifndef WG_K8S_API_H
#define WG_K8S_API_H

#include <stddef.h>

struct cloop;
struct k8s_call;

/* The conf's default api=, which in a pod means the env's KUBERNETES_SERVICE_HOST/PORT. */
#define K8S_DEFAULT_API "https://kubernetes.default.svc"

/* The API server's base URL, without a trailing "/". */
void k8s_api_base(const char *conf_api, char *out, size_t outlen);

/*
 * A streamed body's bytes as they come (a watch); return -1 to abort the
 * transfer (done then runs with err set). NULL: the body is kept (up to
 * 4 MiB) and given to done.
 */
typedef int (*k8s_data_fn)(const char *p, size_t n, void *arg);
/*
 * The call ended. code: the HTTP status (0 when none came); err: the
 * transport's error or NULL; body: the kept body ("" when streamed);
 * retry_after: the Retry-After header in seconds, 0 when none.
 */
typedef void (*k8s_done_fn)(int code, const char *err, const char *body, size_t len,
			    double retry_after, void *arg);

struct k8s_call_spec {
	const char *method;		/* "GET", "PATCH" */
	const char *url;
	const char *body;		/* NULL: none */
	const char *content_type;	/* with a body */
	const char *token_file;		/* NULL: no Authorization */
	const char *ca_file;		/* NULL: libcurl's default bundle */
	long timeout_ms;		/* 0: none (a watch ends when the server ends it) */
};

/* Starts the call (copies what it needs); NULL with the reason in err. */
struct k8s_call *k8s_call_start(struct cloop *loop, const struct k8s_call_spec *s, k8s_data_fn data,
				k8s_done_fn done, void *arg, char *err, size_t errlen);
/* Stops a call in flight; neither callback runs after. NULL: nothing. */
void k8s_call_cancel(struct k8s_call *c);

#endif
