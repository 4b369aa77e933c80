/*
 * replica_health: the health of an always-on server (an upstream of
 * "server" lines) while it is READY. A launched replica's health is polled
 * only while it boots; a server the gateway never starts can go away at
 * any time, so it is checked every REPLICA_HEALTH_EVERY_S while READY: a
 * check is the boot probe (probe.c), which polls the health path again
 * and again; when none of its polls got a 200 within REPLICA_HEALTH_WINDOW_S
 * (or it cannot succeed, an untrusted certificate), the replica goes back to
 * BOOTING with cause health (replica_health_lost), where requests are held.
 *
 * Ownership: the check in flight (rep->hprobe) is this file's; it is freed
 * when it answers, when the replica leaves READY, and by replica_health_free.
 */
#ifndef WG_REPLICA_HEALTH_H
#define WG_REPLICA_HEALTH_H

struct upstream;
struct replica;

#define REPLICA_HEALTH_EVERY_S	1.0	/* between the end of one check and the next */
#define REPLICA_HEALTH_WINDOW_S	2.0	/* no 200 in this long: unhealthy */

/* Starts and judges the checks of u's READY server replicas; every tick (upstream.c). */
void replica_health_tick(struct upstream *u, double now);
/* Frees a check in flight (the upstream goes). */
void replica_health_free(struct replica *rep);

#endif
