/*
 * fleet_peers: the allowlist of the networks a replica URL read from Redis
 * may point into (see fleet_peers.h). Matching is on address literals only.
 */
#include "config.h"
#include "gateway/fleet_peers.h"
#include "gateway/conf.h"
#include "gateway/log.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The refused urls already logged; a planted value is re-read every poll, logged once. */
#define FLEET_PEERS_LOGGED_MAX 64
static char *logged[FLEET_PEERS_LOGGED_MAX];
static int nlogged;

static int peer_contains(const struct conf_peer *p, int family, const unsigned char *a)
{
	if (p->family != family)
		return 0;
	int full = p->bits / 8, rest = p->bits % 8;
	if (memcmp(p->addr, a, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (p->addr[full] & mask) == (a[full] & mask);
}

int fleet_peers_match(const struct conf_peer *peers, int n, const char *host)
{
	char h[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(h))
		return 0;
	memcpy(h, host, len);
	h[len] = 0;
	unsigned char a[16];
	int family;
	if (inet_pton(AF_INET, h, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, h, a) == 1)
		family = AF_INET6;
	else
		return 0;
	for (int i = 0; i < n; i++)
		if (peer_contains(&peers[i], family, a))
			return 1;
	return 0;
}

/* Whether url was logged before; remembers it when not (the oldest is forgotten beyond the max). */
static int already_logged(const char *url)
{
	for (int i = 0; i < nlogged; i++)
		if (strcmp(logged[i], url) == 0)
			return 1;
	char *copy = strdup(url);
	if (!copy)
		return 0;
	if (nlogged == FLEET_PEERS_LOGGED_MAX) {
		free(logged[0]);
		memmove(logged, logged + 1, (size_t)(nlogged - 1) * sizeof(*logged));
		nlogged--;
	}
	logged[nlogged++] = copy;
	return 0;
}

int fleet_peer_allowed(const struct conf *c, const char *upstream, int id, const char *url, const char *host)
{
	if (!c || !c->fleet_peers)
		return 1;
	if (fleet_peers_match(c->fleet_peers, c->nfleet_peers, host))
		return 1;
	if (!already_logged(url))
		log_error("upstream \"%s\" replica %d: ignoring the URL \"%s\" read from Redis: %s is not in fleet_peers",
			  upstream, id, url, host);
	return 0;
}

void fleet_peers_start(const struct conf *c)
{
	if (c->redis_host && !c->fleet_peers)
		log_warn("redis without fleet_peers in %s: a replica URL read from Redis is used whatever address it names",
			 c->file);
}

void fleet_peers_free(void)
{
	while (nlogged > 0)
		free(logged[--nlogged]);
}
