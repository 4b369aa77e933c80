/*
 * repo: Triton's model repository extension, so that the worker can be
 * driven as Triton is in explicit model-control mode (and by the gateway's
 * `sleep_api triton`). The repository is the one model this worker serves:
 *
 *   POST /v2/repository/index                 [{"name","version","state"[,"reason"]}]
 *                                             body optional: {"ready": true} lists READY models only
 *   POST /v2/repository/models/NAME/unload    = sleep level 2 (the weights let go of): 200, no body
 *   POST /v2/repository/models/NAME/load      = wake, then reload_weights (the file read again): 200, no body
 *
 * States as Triton names them: READY, LOADING (warming up, waking or
 * loading), UNLOADING (falling asleep), UNAVAILABLE (asleep, unloaded or
 * shutting down; "reason" says which). A NAME this worker does not serve
 * gets 400, as Triton answers for a model its repository lacks. The
 * controls run through sleep.c (sleep_control): on the inference thread
 * between batches, one at a time, inference refused with 503 while
 * unloaded.
 *
 * The loop thread only.
 */
#ifndef WG_REPO_H
#define WG_REPO_H

#include "gpu-worker/api.h"

struct worker;
struct evhttp_request;

/* Answers R_REPO_INDEX, R_REPO_LOAD or R_REPO_UNLOAD; model is the path from NAME on. */
void repo_request(struct worker *w, struct evhttp_request *req, enum api_route r, const char *model);

#endif
