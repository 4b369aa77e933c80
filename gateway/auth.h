/*
 * auth: the auth phase (issue 17). A request's API key (Authorization:
 * Bearer KEY, or X-Api-Key: KEY) is looked up among the conf's auth_keys;
 * a known key names the request's tenant ($tenant) and its priority. In a
 * location with "auth required" a request without a known key is answered
 * 401 here. The key's header is taken off the request before it goes
 * upstream unless the location says "auth_forward on". The phase owns
 * nothing past its own call.
 */
#ifndef WG_AUTH_H
#define WG_AUTH_H

/* Registers the auth phase (server_init, at start). */
void auth_init(void);

#endif
