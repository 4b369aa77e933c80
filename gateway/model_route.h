/*
 * model_route: the model phase ("route models" in a location): the upstream
 * from the model name a request carries, and the model lists the gateway
 * answers itself (see model_route.c).
 */
#ifndef WG_MODEL_ROUTE_H
#define WG_MODEL_ROUTE_H

/* Registers the model phase (at start, once). */
void model_route_init(void);

#endif
