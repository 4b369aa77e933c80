/*
 * port: picks the loopback port a local worker binds ($port): free now,
 * not given to another replica (the caller's taken() says), inside the
 * conf's replica_ports or else below the kernel's ephemeral range. Its own
 * file so that replica.c stays one reader's size; it knows no replica.
 */
#ifndef WG_PORT_H
#define WG_PORT_H

/* A port, or -1 when none is free. conf_lo 0: no replica_ports line. */
int port_pick(int conf_lo, int conf_hi, int (*taken)(int port, void *arg), void *arg);

#endif
