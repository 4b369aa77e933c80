/*
 * fleet: several wakegate processes on one Redis in front of the same
 * workers. Replica slot N of an upstream is run by at most one gateway: the
 * one that holds PREFIX lock:UPSTREAM[:N] (SET NX PX, value "TOKEN STATE
 * URL"). The holder renews it every lock_ttl/3 and rewrites it on every state
 * move, so the lock is also where the others read the replica's state and URL;
 * it releases it when the replica is STOPPED or FAILED. A gateway that finds
 * the slot taken mirrors it (rep->remote): BOOTING while the other one boots
 * and warms it (requests are held), READY with a connection pool to its URL,
 * polled every 200ms; it never launches, warms or stops a remote replica.
 * A holder that dies stops renewing: the lock expires after lock_ttl and the
 * next gateway that needs the replica takes the lock and starts it itself.
 * Without Redis (no "redis" line) every function here is a no-op.
 */
#ifndef WG_FLEET_H
#define WG_FLEET_H

struct replica;

enum { FLEET_LOCK_NONE, FLEET_LOCK_OWNED, FLEET_LOCK_ALONE };

/* Subscribes to replica moves and sets the claim hook (at start, once). */
void fleet_init(void);
/*
 * The claim hook replica_wake() asks before it launches: 1 to go on (this gateway holds
 * the lock, or acts alone), 0 when the lock is being asked for; its answer
 * wakes the replica or makes it a mirror of the holder's.
 */
int fleet_claim(struct replica *rep);
/* Every tick: renews a held lock, polls a remote replica. 1: the replica is remote, skip its local tick. */
int fleet_tick(struct replica *rep, double now);
/* This gateway's random id in lock values and shared fields (16 hex digits, one per process). */
const char *fleet_id(void);
/* Before a replica is freed: cancels its pending calls, releases its lock. */
void fleet_replica_free(struct replica *rep);

#endif
