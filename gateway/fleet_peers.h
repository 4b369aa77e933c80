/*
 * fleet_peers: the trust edge between the fleet's Redis and this gateway's
 * requests. A replica URL read from Redis (another gateway's lock value,
 * fleet.c) names where requests go, with their Authorization headers; it is
 * used only when its host is an address inside the conf's fleet_peers
 * networks. Without a fleet_peers line every URL is used, as before it
 * existed (a warning at start says so when redis is set). The caller passes
 * the conf in force (gw.conf), so a reload's list applies from the next poll;
 * this file knows nothing of the daemon's globals.
 */
#ifndef WG_FLEET_PEERS_H
#define WG_FLEET_PEERS_H

struct conf;
struct conf_peer;

/* 1 when host (an address literal; IPv6 with or without brackets) is inside one of the n peers.
 * A host name is never inside: it would be resolved later, to an address nobody checked. */
int fleet_peers_match(const struct conf_peer *peers, int n, const char *host);

/* fleet.c's check of url (whose host part is host), read from Redis for upstream's replica
 * id, against c's fleet_peers: 1 to use it; 0 to ignore it, logged once per distinct url. */
int fleet_peer_allowed(const struct conf *c, const char *upstream, int id, const char *url, const char *host);

/* The warning at start when redis is set without fleet_peers; at exit, the logged urls are freed. */
void fleet_peers_start(const struct conf *c);
void fleet_peers_free(void);

#endif
