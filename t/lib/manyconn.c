/*
 * manyconn: opens N connections to HOST:PORT at once, sends one GET PATH on
 * each, reads each answer to the close and counts the status codes. For
 * t/85-many-held.t, which compiles it at test time.
 *   manyconn HOST PORT N PATH TIMEOUT_S
 * Prints "sent N", "connected N", then "status CODE COUNT" lines, and
 * "failed COUNT" (connect error, reset, or no answer before the timeout).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	int state;	/* 0 connecting, 1 reading, 2 done, 3 failed */
	int code;
	char head[16];
	size_t nhead;
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: manyconn HOST PORT N PATH TIMEOUT_S\n");
		return 2;
	}
	int n = atoi(argv[3]);
	double deadline = now() + atof(argv[5]);
	char req[512];
	int reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", argv[4]);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	struct conn *c = calloc((size_t)n, sizeof(*c));
	int ep = epoll_create1(0);
	int left = n, connected = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (c[i].fd < 0) {
			perror("socket");
			c[i].state = 3;
			failed++;
			left--;
			continue;
		}
		if (connect(c[i].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
			c[i].state = 3;
			failed++;
			left--;
			close(c[i].fd);
			continue;
		}
		struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.u32 = (unsigned)i };
		epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
	}
	struct epoll_event evs[256];
	char buf[65536];
	while (left > 0 && now() < deadline) {
		int k = epoll_wait(ep, evs, 256, 200);
		for (int j = 0; j < k; j++) {
			struct conn *x = &c[evs[j].data.u32];
			if (x->state == 0) {
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || write(x->fd, req, (size_t)reqlen) != reqlen) {
					x->state = 3;
					failed++;
					left--;
					close(x->fd);
					continue;
				}
				connected++;
				x->state = 1;
				struct epoll_event ev = { .events = EPOLLIN, .data.u32 = evs[j].data.u32 };
				epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
				continue;
			}
			if (x->state != 1)
				continue;
			ssize_t r;
			while ((r = read(x->fd, buf, sizeof(buf))) > 0) {
				size_t take = (size_t)r < sizeof(x->head) - 1 - x->nhead ? (size_t)r : sizeof(x->head) - 1 - x->nhead;
				memcpy(x->head + x->nhead, buf, take);
				x->nhead += take;
			}
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				x->head[x->nhead] = 0;
				if (sscanf(x->head, "HTTP/1.%*d %d", &x->code) == 1) {
					x->state = 2;
				} else {
					x->state = 3;
					failed++;
				}
				left--;
				close(x->fd);
			}
		}
	}
	for (int i = 0; i < n; i++)
		if (c[i].state < 2) {
			failed++;
			close(c[i].fd);
		}
	int codes[600] = { 0 };
	for (int i = 0; i < n; i++)
		if (c[i].state == 2 && c[i].code > 0 && c[i].code < 600)
			codes[c[i].code]++;
	printf("sent %d\nconnected %d\n", n, connected);
	for (int i = 0; i < 600; i++)
		if (codes[i])
			printf("status %d %d\n", i, codes[i]);
	printf("failed %d\n", failed);
	free(c);
	close(ep);
	return 0;
}
