/*
 * ktls_route: which network interface the routing table sends a connected
 * socket's traffic out of.
 *
 * Library-like: never prints, never exits.
 */
#ifndef KTLS_ROUTE_H
#define KTLS_ROUTE_H

#include <stddef.h>

/*
 * Set *ifindex to the egress interface of connected IPv4 or IPv6 socket fd
 * (v4-mapped peers count as IPv4): the routing table's answer for the
 * socket's addresses, bound device and mark, asked like `ip route get`
 * through rtnetlink RTM_GETROUTE. Waits at most about a second for the
 * kernel. Needs no privilege. Returns 0, or -1 with errno set and a
 * one-line message in err.
 */
int ktls_route_oif(int fd, unsigned *ifindex, char *err, size_t errlen);

#endif /* KTLS_ROUTE_H */
