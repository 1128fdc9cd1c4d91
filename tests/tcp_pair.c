/*
 * tcp_pair.c - a connected TCP pair on an ephemeral port (tcp_pair.h).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tcp_pair.h"

socklen_t
tcp_addr(int family, const char *text, in_port_t port,
    struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)family;
	if (family == AF_INET) {
		inet_pton(AF_INET, text, &s4->sin_addr);
		s4->sin_port = port;
		return sizeof(*s4);
	}
	inet_pton(AF_INET6, text, &s6->sin6_addr);
	s6->sin6_port = port;
	return sizeof(*s6);
}

static in_port_t
addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_port;
	return ((const struct sockaddr_in6 *)ss)->sin6_port;
}

int
tcp_pair_open(int listen_family, const char *listen_addr, int client_family,
    const char *connect_addr, int fds[2])
{
	struct sockaddr_storage ss;
	socklen_t len;
	int lfd, e;

	fds[0] = fds[1] = -1;
	if ((lfd = socket(listen_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	len = tcp_addr(listen_family, listen_addr, 0, &ss);
	if (bind(lfd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(lfd, 1) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &len) == -1)
		goto err;
	len = tcp_addr(client_family, connect_addr, addr_port(&ss), &ss);
	if ((fds[0] = socket(client_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) ==
		-1 ||
	    connect(fds[0], (struct sockaddr *)&ss, len) == -1 ||
	    (fds[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
		goto err;
	close(lfd);
	return 0;
err:
	e = errno;
	if (fds[0] != -1)
		close(fds[0]);
	close(lfd);
	fds[0] = fds[1] = -1;
	errno = e;
	return -1;
}

void
tcp_pair_close(int fds[2])
{
	close(fds[0]);
	close(fds[1]);
}
