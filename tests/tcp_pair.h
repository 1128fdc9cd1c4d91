/*
 * tcp_pair.h - a connected TCP pair through a listener on an ephemeral
 * port, for the probe tests (tests/diag_probe.c, tests/nic_probe.c).
 */
#ifndef HK_TCP_PAIR_H
#define HK_TCP_PAIR_H

#include <netinet/in.h>
#include <sys/socket.h>

/* Address text and port (network order) of family as a sockaddr; its length. */
socklen_t tcp_addr(int family, const char *text, in_port_t port,
    struct sockaddr_storage *ss);

/*
 * Listen on listen_addr (of listen_family), connect to connect_addr (of
 * client_family) on that port, accept. fds[0] is the client, fds[1] the
 * accepted end. Returns 0, or -1 with errno and both set to -1.
 */
int tcp_pair_open(int listen_family, const char *listen_addr, int client_family,
    const char *connect_addr, int fds[2]);

void tcp_pair_close(int fds[2]);

#endif
