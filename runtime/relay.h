/* slate: the monitor's TCP relay: published ports and granted services.
 *
 * An instance has only `lo` in its own network namespace; the app's monitor
 * (root, on the host, single-threaded) makes every path in or out of it.
 * A published port: the monitor listens on the host (relay_listen_host) and,
 * per connection, opens a socket inside the instance's namespace and
 * connects it to the instance's port (relay_connect_in). A granted service:
 * the monitor listens inside the instance's namespace (relay_listen_in) and
 * connects each accepted connection to the host service (relay_connect_in
 * with netns_fd -1). A socket stays for life in the namespace it was created
 * in, so only socket() runs inside the instance's namespace; bind, connect,
 * accept and all the byte pumping happen from the host.
 *
 * The pumps (struct relay) move bytes with splice(2) through one pipe per
 * direction: pages go socket -> pipe -> socket by reference, never through
 * user space. One epoll set holds every connection; the monitor polls its
 * fd and calls relay_dispatch. Nothing here blocks.
 *
 * The relay installs a no-op SIGPIPE handler when SIGPIPE is at its default
 * (splice into a reset socket raises SIGPIPE; a handler, unlike SIG_IGN, is
 * not inherited across execve by the instance's processes). The caller
 * needs RLIMIT_NOFILE above 6 fds per connection (two sockets, two pipes).
 *
 * Threat: a client (on a published port, or the app itself through a
 * granted service) that holds connections open, idle or half-closed, or
 * that never reads, would hold the monitor's fds and the host's socket
 * memory without end: the app unreachable, `slate status` unanswered, the
 * host's TCP memory pinned outside any cgroup. So every connection is
 * bounded in time (an idle timeout, and a shorter one once a side has
 * closed: then the whole connection goes), in number (in all, per group:
 * a published port or a granted service, per client address within a
 * group; see relay_limits_for_nofile), and in memory (small socket
 * buffers and pipes, RELAY_SOCK_BUF and RELAY_PIPE_SIZE). */
#ifndef SLATE_RUNTIME_RELAY_H
#define SLATE_RUNTIME_RELAY_H

#include <stddef.h>

#include "slate/error.h"

#define RELAY_MAX_PAIRS 4096 /* open connections per relay unless relay_set_limits says otherwise */
#define RELAY_IDLE_MS (300 * 1000) /* no byte either way for this long: the connection is closed */
#define RELAY_HALF_CLOSE_MS (30 * 1000) /* the same once one side has sent its EOF */
#define RELAY_SOCK_BUF (64 * 1024) /* SO_RCVBUF and SO_SNDBUF of every relay socket (the kernel doubles it) */
#define RELAY_PIPE_SIZE (64 * 1024) /* per direction */
#define RELAY_PROXY_V1_MAX 108 /* longest PROXY v1 line (107) + NUL */

/* Open a TCP socket inside network namespace netns_fd (setns there, socket(),
 * setns back to the caller's own namespace, which the caller passes as
 * host_netns_fd); netns_fd -1 means the caller's namespace. Single-threaded
 * callers only (setns affects the calling thread). ip is an IPv4 or IPv6
 * literal. Returned fds are non-blocking and close-on-exec. */
int relay_connect_in(int netns_fd, int host_netns_fd, const char *ip, int port,
		     slate_error_t *err); /* connect started */
int relay_listen_in(int netns_fd, int host_netns_fd, const char *ip, int port,
		    slate_error_t *err); /* bound + listening; port 0: any */
int relay_listen_host(const char *ip, int port, slate_error_t *err); /* caller's namespace, SO_REUSEADDR */

/* The PROXY protocol v1 line for a connection (client = peer of the accepted
 * socket, server = its local address): "PROXY TCP4 src dst sport dport\r\n",
 * TCP6 for IPv6, IPv4-mapped IPv6 addresses as TCP4, "PROXY UNKNOWN\r\n" for
 * anything else. NUL-terminated in buf (RELAY_PROXY_V1_MAX is always enough);
 * returns its length without the NUL. */
int relay_proxy_v1(int accepted_fd, char *buf, size_t len, slate_error_t *err);

struct relay; /* the byte pumps of all open connections of one monitor */

struct relay *relay_new(slate_error_t *err);
/* Poll it for POLLIN from the monitor's main loop, then call relay_dispatch. */
int relay_epoll_fd(const struct relay *r);
/* Refuse connections beyond max (default RELAY_MAX_PAIRS). */
void relay_set_limit(struct relay *r, size_t max);

struct relay_limits {
	size_t total; /* open connections in all */
	size_t per_group; /* per group (a published port, a granted service) */
	size_t per_addr; /* per client address within a group that counts addresses */
	unsigned idle_ms, half_close_ms; /* see RELAY_IDLE_MS, RELAY_HALF_CLOSE_MS */
};
/* The limits for a process allowed nofile fds, reserve of them kept for
 * everything but the relay (the control socket, a new generation, logs):
 * total (nofile - reserve) / 6, per group half of that, per address a
 * quarter of a group, at least 1 each; the default timeouts. */
void relay_limits_for_nofile(struct relay_limits *l, unsigned long nofile, unsigned long reserve);
void relay_set_limits(struct relay *r, const struct relay_limits *l);
/* Would a connection on client (an accepted socket) in group (-1: none) be
 * taken? Refused (SLATE_EXIT_REFUSED) beyond a limit; by_addr counts the
 * client's address (its peer address, without the port). Ask before
 * opening the upstream socket. */
int relay_admit(struct relay *r, int client, int group, int by_addr, slate_error_t *err);
/* relay_add for a group, limits checked again (see relay_admit). */
int relay_add_group(struct relay *r, int client, int upstream, const void *prefix, size_t prefix_len, int tag,
		    int group, int by_addr, slate_error_t *err);
/* Close the connections idle past their timeout; relay_dispatch does it
 * too, but call it at least every second or so when the relay is quiet. */
void relay_expire(struct relay *r);

struct relay_stats {
	unsigned long long refused; /* connections refused by a limit */
	unsigned long long expired; /* connections closed by a timeout */
};
void relay_stats(const struct relay *r, struct relay_stats *st);
size_t relay_group_count(const struct relay *r, int group);
/* Take ownership of a client socket and an upstream socket (its connect may
 * still be in progress; a failed connect drops the pair), also on failure.
 * The optional prefix (the PROXY line) is sent upstream before any client
 * byte. Both directions flow with splice through a pipe each; EOF on one
 * side becomes shutdown(SHUT_WR) on the other; the pair is closed when both
 * directions are done or on the first error. tag groups pairs (e.g. the
 * instance generation they go to). Refused beyond the limit: both sockets
 * are closed. */
int relay_add(struct relay *r, int client, int upstream, const void *prefix, size_t prefix_len, int tag,
	      slate_error_t *err);
/* Handle what is ready, waiting up to timeout_ms (0: do not wait, -1: until
 * something is). Returns the number of events handled, or -1 (errno set). */
int relay_dispatch(struct relay *r, int timeout_ms);
size_t relay_open_count(const struct relay *r, int tag); /* tag -1: all */
/* Drop every pair of a tag (-1: all), e.g. when a drain timeout expires. */
void relay_close_tag(struct relay *r, int tag);
void relay_free(struct relay *r);

void relay_freep(struct relay **r);
#define cleanup_relay __attribute__((cleanup(relay_freep)))

#endif
