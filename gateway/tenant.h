/*
 * tenant: what each tenant (auth_keys) used, for /metrics and /status:
 * requests, hold time, and GPU-seconds. A replica's run (launch to exit) is
 * shared among the requests it served by their time in flight: at the
 * run's end each tenant gets run seconds x its in-flight seconds / all
 * in-flight seconds; a run that served nothing goes to tenant "-". So the
 * tenants' GPU-seconds sum to the replicas' run time. tenant.c owns the
 * per-run tables (freed at the run's end or at exit); it learns of runs by
 * subscribing to the replicas' process events.
 */
#ifndef WG_TENANT_H
#define WG_TENANT_H

struct metrics;
struct wg_request;
struct json_t;

/* Declares the tenant metrics and subscribes to replica process events (at start, once). */
void tenant_init(struct metrics *m);
/* A request ended with status (dispatch.c's accounting): counts it, its hold time, its in-flight share. */
void tenant_request_done(const struct wg_request *r, int status);
/* The auth phase refused a request ("missing_key", "invalid_key"). */
void tenant_refused(const char *reason);
/* Every tenant's figures for /status, as a new JSON object (the caller owns it). */
struct json_t *tenant_status_json(void);
/* Frees the per-run tables (at exit). */
void tenant_free_all(void);

#endif
