/* port: the loopback port a local worker is started on (see port.h). */
#include "config.h"
#include "gateway/port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The ports a local worker may get: the conf's replica_ports, or else below
 * the kernel's ephemeral range, whose ports any outgoing connection (ours to
 * Redis or a worker, a client's) may take as its source port between our
 * probe and the worker's bind. Above that range when too few are below it. */
static void port_range(int conf_lo, int conf_hi, int *lo, int *hi)
{
	if (conf_lo) {	/* replica_ports LOW-HIGH */
		*lo = conf_lo, *hi = conf_hi;
		return;
	}
	int elo = 32768, ehi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%d %d", &elo, &ehi) != 2 || elo < 1 || ehi < elo || ehi > 65535)
			elo = 32768, ehi = 60999;
		fclose(f);
	}
	*lo = 10000, *hi = elo - 1;
	if (*hi - *lo < 1000)
		*lo = ehi + 1, *hi = 65535;
	if (*hi - *lo < 1000)
		*lo = 1024, *hi = 65535;	/* no room outside it: probe anywhere */
}

/* A loopback port nobody has bound and no other replica of ours was given,
 * from a random start in port_range(), then onwards; -1 when none is
 * found. SO_REUSEADDR stays off, so a port still in TIME_WAIT is passed over. */
int port_pick(int conf_lo, int conf_hi, int (*taken)(int port, void *arg), void *arg)
{
	static unsigned next;
	int lo, hi;
	port_range(conf_lo, conf_hi, &lo, &hi);
	unsigned n = (unsigned)(hi - lo + 1);
	if (!next)
		next = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int port = -1;
	for (unsigned tries = 0; tries < n && tries < 2000 && port < 0; tries++) {
		int p = lo + (int)(next++ % n);
		if (taken(p, arg))
			continue;
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			port = p;
		else if (errno != EADDRINUSE && errno != EACCES)
			break;
	}
	close(fd);	/* never listened: leaves no TIME_WAIT behind */
	return port;
}
