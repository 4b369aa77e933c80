/*
 * sd_notify: systemd's readiness protocol (sd_notify(3)), the part the gateway
 * uses: a datagram to $NOTIFY_SOCKET, a path or an abstract name ("@...").
 */
#include "config.h"
#include "gateway/sd_notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char *sock_path;

void sdnotify_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	if (e && (e[0] == '/' || e[0] == '@') && strlen(e) < sizeof(((struct sockaddr_un *)0)->sun_path))
		sock_path = strdup(e);
	unsetenv("NOTIFY_SOCKET");
}

void sdnotify(const char *msg)
{
	if (!sock_path)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(sock_path);
	memcpy(sa.sun_path, sock_path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0;	/* abstract namespace */
	(void)!sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	close(fd);
}

void sdnotify_free(void)
{
	free(sock_path);
	sock_path = NULL;
}
