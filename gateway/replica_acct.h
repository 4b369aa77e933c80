/*
 * replica_acct: what a replica's life writes to the metrics and the store:
 * the state gauge and the moves counter at each move, and the GPU and idle
 * seconds on each tick and at exit. Its own file so that replica.c stays one
 * reader's size; it calls nothing of replica.c (the names come as arguments).
 */
#ifndef WG_REPLICA_ACCT_H
#define WG_REPLICA_ACCT_H

struct replica;

/* After a move: wakegate_replica_state (1 for state `to`, 0 for the others in names) and
 * wakegate_replica_moves_total{upstream,from,to,cause}. */
void replica_acct_move(const struct replica *rep, const char *const *names, int nnames,
		       const char *from, const char *to, const char *cause);
/* The GPU and idle seconds since the last call, to the metrics; to the store every 10s or on flush. */
void replica_acct_time(struct replica *rep, double now, int flush);

#endif
