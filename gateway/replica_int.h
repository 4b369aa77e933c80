/*
 * replica_int: what replica.c shares with replica_remote.c, and nobody else.
 */
#ifndef WG_REPLICA_INT_H
#define WG_REPLICA_INT_H

struct replica;

/* Frees the replica's connection pool (in-flight requests get 502; their done callbacks run). */
void replica_pool_free(struct replica *rep);

#endif
