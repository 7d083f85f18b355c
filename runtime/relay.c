/* slate: the monitor's TCP relay (see relay.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "slate/util.h"

#define RELAY_ROUNDS 32 /* splices per direction per wakeup, so that one fast connection cannot starve the others */
#define RELAY_EVENTS 64

enum { CLIENT = 0, UPSTREAM = 1 };

/* One direction: fd[s] -> pipe -> fd[!s]. */
struct relay_dir {
	int pipe[2];
	size_t queued; /* bytes in the pipe */
	bool done; /* EOF read and passed on as shutdown(SHUT_WR) */
};

struct relay_pair {
	int fd[2]; /* CLIENT, UPSTREAM */
	uint32_t armed[2]; /* epoll interest registered for fd[s]; 0: not in the set */
	struct relay_dir dir[2]; /* dir[s] reads fd[s] */
	bool connecting;
	unsigned char *prefix; /* still to send upstream, before any client byte */
	size_t prefix_len, prefix_off;
	int tag, group;
	struct sockaddr_storage addr; /* the client's address, port 0; family 0 when not counted */
	uint32_t slot, gen;
	long long last_ms; /* the last event */
	struct relay_pair *prev, *next; /* in its timeout list, oldest event first */
	int list;
};

enum { LIST_OPEN = 0, LIST_HALF = 1 }; /* both sides open; one side's EOF passed on */

struct relay {
	int epfd;
	struct relay_pair **slots;
	size_t nslots, open, hint;
	struct relay_limits lim;
	struct relay_pair *head[2], *tail[2];
	struct relay_stats stats;
	uint32_t gen;
};

/* ---- sockets ---- */

static int parse_addr(const char *ip, int port, int min_port, struct sockaddr_storage *ss, socklen_t *len,
		      slate_error_t *err)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (port < min_port || port > 65535)
		return slate_error_usage(err, "relay: port %d out of range", port);
	if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	return slate_error_usage(err, "relay: `%s` is not an IP address", ip);
}

/* Small fixed buffers bound what one connection can pin in kernel memory
 * (autotuned TCP buffers grow to megabytes each, charged to no app's
 * cgroup): a peer that never reads fills these and then waits. Set before
 * connect and listen, so that the window scale agrees; accepted sockets
 * inherit the listener's. */
static int socket_small(int fd, slate_error_t *err)
{
	int size = RELAY_SOCK_BUF;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0)
		return slate_error_sys(err, errno, "relay: set socket buffer sizes");
	return 0;
}

/* Rationale: a socket belongs to the network namespace it was created in for
 * its whole life, so the only thing done inside the instance's namespace is
 * socket() itself; nothing there is read or parsed. Threat: staying in the
 * instance's namespace afterwards. Every later "host" socket of the monitor
 * would then be the instance's (a granted database connection would reach
 * whatever the instance listens on, a published port would listen inside
 * it), so failing to go back is fatal, like running out of memory. */
static int socket_in(int netns_fd, int host_netns_fd, int family, slate_error_t *err)
{
	int fd, saved;

	if (netns_fd < 0)
		fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	else {
		if (host_netns_fd < 0)
			return slate_error_usage(err, "relay: no host network namespace to come back to");
		if (setns(netns_fd, CLONE_NEWNET) < 0)
			return slate_error_sys(err, errno, "relay: enter the instance's network namespace");
		fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		saved = errno;
		if (setns(host_netns_fd, CLONE_NEWNET) < 0) {
			fputs("slate: relay: cannot return to the host network namespace\n", stderr);
			abort();
		}
		errno = saved;
	}
	if (fd < 0)
		return slate_error_sys(err, errno, "relay: create a socket");
	if (socket_small(fd, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int relay_connect_in(int netns_fd, int host_netns_fd, const char *ip, int port, slate_error_t *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	cleanup_close int fd = -1;

	if (parse_addr(ip, port, 1, &ss, &len, err) < 0)
		return -1;
	fd = socket_in(netns_fd, host_netns_fd, ss.ss_family, err);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
		return slate_error_sys(err, errno, "relay: connect to %s port %d", ip, port);
	return steal_fd(&fd);
}

static int bind_listen(int fd, const struct sockaddr_storage *ss, socklen_t len, const char *ip, int port,
		       slate_error_t *err)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return slate_error_sys(err, errno, "relay: SO_REUSEADDR");
	/* `::` means IPv6 only: the operator names each address that is published. */
	if (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		return slate_error_sys(err, errno, "relay: IPV6_V6ONLY");
	if (bind(fd, (const struct sockaddr *)ss, len) < 0)
		return slate_error_sys(err, errno, "relay: bind %s port %d", ip, port);
	if (listen(fd, SOMAXCONN) < 0)
		return slate_error_sys(err, errno, "relay: listen on %s port %d", ip, port);
	return 0;
}

static int listen_in(int netns_fd, int host_netns_fd, const char *ip, int port, slate_error_t *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	cleanup_close int fd = -1;

	if (parse_addr(ip, port, 0, &ss, &len, err) < 0)
		return -1;
	fd = socket_in(netns_fd, host_netns_fd, ss.ss_family, err);
	if (fd < 0 || bind_listen(fd, &ss, len, ip, port, err) < 0)
		return -1;
	return steal_fd(&fd);
}

int relay_listen_in(int netns_fd, int host_netns_fd, const char *ip, int port, slate_error_t *err)
{
	if (netns_fd < 0)
		return slate_error_usage(err, "relay: no network namespace to listen in");
	return listen_in(netns_fd, host_netns_fd, ip, port, err);
}

int relay_listen_host(const char *ip, int port, slate_error_t *err)
{
	return listen_in(-1, -1, ip, port, err);
}

/* ---- PROXY protocol v1 ---- */

/* The text form of an address; *v is 4 or 6 (IPv4-mapped IPv6 counts as 4), 0 if neither. */
static void addr_text(const struct sockaddr_storage *ss, char *ip, size_t len, unsigned *port, int *v)
{
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

	*v = 0;
	if (ss->ss_family == AF_INET) {
		*v = inet_ntop(AF_INET, &in4->sin_addr, ip, (socklen_t)len) ? 4 : 0;
		*port = ntohs(in4->sin_port);
	} else if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		*v = inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, (socklen_t)len) ? 4 : 0;
		*port = ntohs(in6->sin6_port);
	} else if (ss->ss_family == AF_INET6) {
		*v = inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)len) ? 6 : 0;
		*port = ntohs(in6->sin6_port);
	}
}

int relay_proxy_v1(int accepted_fd, char *buf, size_t len, slate_error_t *err)
{
	struct sockaddr_storage peer, local;
	socklen_t plen = sizeof(peer), llen = sizeof(local);
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	unsigned sport = 0, dport = 0;
	int sv, dv, n;

	if (getpeername(accepted_fd, (struct sockaddr *)&peer, &plen) < 0)
		return slate_error_sys(err, errno, "relay: the client's address");
	if (getsockname(accepted_fd, (struct sockaddr *)&local, &llen) < 0)
		return slate_error_sys(err, errno, "relay: the local address of a connection");
	addr_text(&peer, src, sizeof(src), &sport, &sv);
	addr_text(&local, dst, sizeof(dst), &dport, &dv);
	if (sv == 0 || sv != dv)
		n = snprintf(buf, len, "PROXY UNKNOWN\r\n");
	else
		n = snprintf(buf, len, "PROXY TCP%d %s %s %u %u\r\n", sv, src, dst, sport, dport);
	if (n < 0 || (size_t)n >= len)
		return slate_error_fail(err, "relay: no room for the PROXY line (%zu bytes)", len);
	return n;
}

/* ---- pairs ---- */

static void pair_free(struct relay_pair *p)
{
	for (int s = 0; s < 2; s++) {
		slate_cleanup_closep(&p->fd[s]);
		slate_cleanup_closep(&p->dir[s].pipe[0]);
		slate_cleanup_closep(&p->dir[s].pipe[1]);
	}
	free(p->prefix);
	free(p);
}

static void pair_freep(struct relay_pair **p)
{
	if (*p != NULL)
		pair_free(*p);
}

/* Smaller than the default (64 KiB): pipe pages are what a connection that
 * is not read pins, besides its sockets. When the kernel refuses the size
 * the default will do. */
static int pipe_open(int fds[2], slate_error_t *err)
{
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return slate_error_sys(err, errno, "relay: create a pipe");
	(void)fcntl(fds[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE);
	return 0;
}

/* Non-blocking; no Nagle delay (the relay forwards what it got at once,
 * and Nagle against the peer's delayed ACK would stall small exchanges);
 * TCP urgent data inline, so that it is relayed like any byte (see
 * pump_read). */
static int socket_prepare(int fd, slate_error_t *err)
{
	int fl = fcntl(fd, F_GETFL), one = 1;

	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return slate_error_sys(err, errno, "relay: make a socket non-blocking");
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 && errno != EOPNOTSUPP &&
	    errno != ENOPROTOOPT)
		return slate_error_sys(err, errno, "relay: TCP_NODELAY");
	if (setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one)) < 0 && errno != EOPNOTSUPP &&
	    errno != ENOPROTOOPT)
		return slate_error_sys(err, errno, "relay: SO_OOBINLINE");
	return socket_small(fd, err);
}

static struct relay_pair *pair_new(int *client, int *upstream, const void *prefix, size_t prefix_len, int tag,
				   slate_error_t *err)
{
	__attribute__((cleanup(pair_freep))) struct relay_pair *p = xcalloc(1, sizeof(*p));

	p->fd[CLIENT] = steal_fd(client);
	p->fd[UPSTREAM] = steal_fd(upstream);
	p->dir[0].pipe[0] = p->dir[0].pipe[1] = p->dir[1].pipe[0] = p->dir[1].pipe[1] = -1;
	p->connecting = true;
	p->tag = tag;
	if (socket_prepare(p->fd[CLIENT], err) < 0 || socket_prepare(p->fd[UPSTREAM], err) < 0 ||
	    pipe_open(p->dir[0].pipe, err) < 0 || pipe_open(p->dir[1].pipe, err) < 0)
		return NULL;
	if (prefix_len > 0) {
		p->prefix = xmalloc(prefix_len);
		memcpy(p->prefix, prefix, prefix_len);
		p->prefix_len = prefix_len;
	}
	return steal_pointer(&p);
}

/* ---- the relay ---- */

static void sigpipe_noop(int sig)
{
	(void)sig;
}

/* splice() into a socket the peer reset raises SIGPIPE (there is no
 * MSG_NOSIGNAL for splice); a client could otherwise kill the monitor. */
static int sigpipe_handle(slate_error_t *err)
{
	struct sigaction old, sa = { .sa_handler = sigpipe_noop, .sa_flags = SA_RESTART };

	if (sigaction(SIGPIPE, NULL, &old) < 0)
		return slate_error_sys(err, errno, "relay: read the SIGPIPE disposition");
	if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
		return 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return slate_error_sys(err, errno, "relay: handle SIGPIPE");
	return 0;
}

struct relay *relay_new(slate_error_t *err)
{
	struct relay *r;
	int epfd;

	if (sigpipe_handle(err) < 0)
		return NULL;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		slate_error_sys(err, errno, "relay: epoll_create1");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->epfd = epfd;
	r->lim = (struct relay_limits){ .total = RELAY_MAX_PAIRS,
					.per_group = RELAY_MAX_PAIRS,
					.per_addr = RELAY_MAX_PAIRS,
					.idle_ms = RELAY_IDLE_MS,
					.half_close_ms = RELAY_HALF_CLOSE_MS };
	return r;
}

int relay_epoll_fd(const struct relay *r)
{
	return r->epfd;
}

void relay_set_limit(struct relay *r, size_t max)
{
	r->lim.total = max;
}

/* Six fds per connection (two sockets, two pipes); the control socket, the
 * logs and a starting generation live in the reserve, so that a flood of
 * connections cannot take them (EMFILE). Halves per group, so that one
 * published port or granted service cannot shut out the others; a quarter
 * of a group per client address (behind a reverse proxy on the same host,
 * raise RLIMIT_NOFILE). */
void relay_limits_for_nofile(struct relay_limits *l, unsigned long nofile, unsigned long reserve)
{
	size_t total = nofile > reserve + 6 ? (nofile - reserve) / 6 : 1;

	if (total > RELAY_MAX_PAIRS)
		total = RELAY_MAX_PAIRS;
	l->total = total;
	l->per_group = total / 2 > 0 ? total / 2 : 1;
	l->per_addr = l->per_group / 4 > 0 ? l->per_group / 4 : 1;
	l->idle_ms = RELAY_IDLE_MS;
	l->half_close_ms = RELAY_HALF_CLOSE_MS;
}

void relay_set_limits(struct relay *r, const struct relay_limits *l)
{
	r->lim = *l;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- timeouts: two lists, oldest event first, so that expiry only looks
 * at what expires ---- */

static void list_unlink(struct relay *r, struct relay_pair *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		r->head[p->list] = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		r->tail[p->list] = p->prev;
	p->prev = p->next = NULL;
}

static void list_append(struct relay *r, struct relay_pair *p, long long now)
{
	p->list = p->dir[0].done || p->dir[1].done ? LIST_HALF : LIST_OPEN;
	p->last_ms = now;
	p->prev = r->tail[p->list];
	p->next = NULL;
	if (p->prev)
		p->prev->next = p;
	else
		r->head[p->list] = p;
	r->tail[p->list] = p;
}

/* Out of the epoll set before the close: a copy of the fd in a child that
 * has not exec'd yet would keep it registered. */
static void pair_drop(struct relay *r, struct relay_pair *p)
{
	for (int s = 0; s < 2; s++)
		if (p->armed[s] != 0)
			(void)epoll_ctl(r->epfd, EPOLL_CTL_DEL, p->fd[s], NULL);
	list_unlink(r, p);
	r->slots[p->slot] = NULL;
	r->open--;
	pair_free(p);
}

void relay_expire(struct relay *r)
{
	long long now = mono_ms();
	const unsigned timeout[2] = { r->lim.idle_ms, r->lim.half_close_ms };

	for (int l = 0; l < 2; l++)
		while (r->head[l] != NULL && now - r->head[l]->last_ms >= (long long)timeout[l]) {
			pair_drop(r, r->head[l]);
			r->stats.expired++;
		}
}

void relay_stats(const struct relay *r, struct relay_stats *st)
{
	*st = r->stats;
}

/* What fd[s] waits for: input when its direction's pipe is empty, output
 * while the other direction has bytes queued for it. Both 0 only when both
 * directions are done, so a live pair always waits for something, and an
 * fd never waits for what cannot make progress (no busy loop). */
static uint32_t pair_want(const struct relay_pair *p, int s)
{
	uint32_t ev = 0;

	if (p->connecting)
		return s == UPSTREAM ? EPOLLOUT : 0;
	if (!p->dir[s].done && p->dir[s].queued == 0 && !(s == CLIENT && p->prefix != NULL))
		ev |= EPOLLIN;
	if (p->dir[!s].queued > 0 || (s == UPSTREAM && p->prefix != NULL))
		ev |= EPOLLOUT;
	return ev;
}

static int pair_arm(struct relay *r, struct relay_pair *p)
{
	for (int s = 0; s < 2; s++) {
		uint32_t want = pair_want(p, s);
		struct epoll_event ev = { .events = want,
					  .data.u64 = (uint64_t)p->gen << 32 | p->slot << 1 | (uint32_t)s };
		int op = p->armed[s] == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;

		if (want == p->armed[s])
			continue;
		if (epoll_ctl(r->epfd, op, p->fd[s], &ev) < 0)
			return -1;
		p->armed[s] = want;
	}
	return 0;
}

/* The client's address without its port (family 0: not counted). */
static void client_addr(int fd, int by_addr, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);

	memset(ss, 0, sizeof(*ss));
	if (!by_addr || getpeername(fd, (struct sockaddr *)ss, &len) < 0) {
		memset(ss, 0, sizeof(*ss));
		return;
	}
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = 0;
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = 0, ((struct sockaddr_in6 *)ss)->sin6_flowinfo = 0;
	else
		memset(ss, 0, sizeof(*ss));
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family || a->ss_family == 0)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
		      sizeof(struct in6_addr)) == 0;
}

size_t relay_group_count(const struct relay *r, int group)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nslots; i++)
		n += r->slots[i] != NULL && r->slots[i]->group == group;
	return n;
}

/* One pass over the open pairs: a few thousand at most (the limits), and
 * only when a connection arrives. */
static int admit(struct relay *r, const struct sockaddr_storage *addr, int group, slate_error_t *err)
{
	size_t in_group = 0, from_addr = 0;

	if (r->open >= r->lim.total)
		return slate_error_refuse(err, "relay: %zu connections open, refusing another", r->open);
	for (size_t i = 0; group >= 0 && i < r->nslots; i++) {
		const struct relay_pair *p = r->slots[i];
		if (p == NULL || p->group != group)
			continue;
		in_group++;
		from_addr += same_addr(&p->addr, addr);
	}
	if (group >= 0 && in_group >= r->lim.per_group)
		return slate_error_refuse(err, "relay: %zu connections open on this port or service, refusing another",
					  in_group);
	if (group >= 0 && addr->ss_family != 0 && from_addr >= r->lim.per_addr)
		return slate_error_refuse(err, "relay: %zu connections open from this address, refusing another",
					  from_addr);
	return 0;
}

int relay_admit(struct relay *r, int client, int group, int by_addr, slate_error_t *err)
{
	struct sockaddr_storage addr;

	client_addr(client, by_addr, &addr);
	if (admit(r, &addr, group, err) < 0) {
		r->stats.refused++;
		return -1;
	}
	return 0;
}

static int slot_take(struct relay *r, slate_error_t *err)
{
	if (r->open >= r->lim.total)
		return slate_error_refuse(err, "relay: %zu connections open, refusing another", r->open);
	if (r->open == r->nslots) {
		size_t n = r->nslots ? r->nslots * 2 : 16;
		r->slots = xrealloc(r->slots, n * sizeof(*r->slots));
		memset(r->slots + r->nslots, 0, (n - r->nslots) * sizeof(*r->slots));
		r->nslots = n;
	}
	while (r->slots[r->hint % r->nslots] != NULL)
		r->hint++;
	return (int)(r->hint++ % r->nslots);
}

int relay_add_group(struct relay *r, int client, int upstream, const void *prefix, size_t prefix_len, int tag,
		    int group, int by_addr, slate_error_t *err)
{
	cleanup_close int c = client;
	cleanup_close int u = upstream;
	struct sockaddr_storage addr;
	struct relay_pair *p;
	int slot;

	client_addr(c, by_addr, &addr);
	if (admit(r, &addr, group, err) < 0) {
		r->stats.refused++;
		return -1;
	}
	slot = slot_take(r, err);
	if (slot < 0)
		return -1;
	p = pair_new(&c, &u, prefix, prefix_len, tag, err);
	if (p == NULL)
		return -1;
	p->group = group;
	p->addr = addr;
	p->slot = (uint32_t)slot;
	p->gen = ++r->gen;
	r->slots[slot] = p;
	r->open++;
	list_append(r, p, mono_ms());
	if (pair_arm(r, p) < 0) {
		slate_error_sys(err, errno, "relay: epoll_ctl");
		pair_drop(r, p);
		return -1;
	}
	return 0;
}

int relay_add(struct relay *r, int client, int upstream, const void *prefix, size_t prefix_len, int tag,
	      slate_error_t *err)
{
	return relay_add_group(r, client, upstream, prefix, prefix_len, tag, -1, 0, err);
}

/* ---- pumping ---- */

static bool transient(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* 1 when the PROXY line is out, 0 when upstream is full, -1 on error. */
static int prefix_flush(struct relay_pair *p)
{
	while (p->prefix_off < p->prefix_len) {
		ssize_t n = send(p->fd[UPSTREAM], p->prefix + p->prefix_off, p->prefix_len - p->prefix_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return transient() ? 0 : -1;
		p->prefix_off += (size_t)n;
	}
	free(p->prefix);
	p->prefix = NULL;
	return 1;
}

/* EOF from fd[s]: pass it on; the peer may still be sending the other way. */
static void dir_finish(struct relay_pair *p, int s)
{
	(void)shutdown(p->fd[!s], SHUT_WR); /* fails only when fd[!s] is already gone: its own direction says so */
	p->dir[s].done = true;
}

/* fd[s] -> the (empty) pipe. splice stops at TCP urgent data: it answers
 * EAGAIN although the socket is readable, or 0 (EOF) once the peer's FIN
 * is in, so one MSG_OOB byte would wedge a connection or cut its data
 * short. recv takes that byte inline (and what follows, up to PIPE_BUF,
 * which a write to the empty pipe takes whole) and tells a real EOF from
 * the mark; then splice goes on. On a dry socket or at EOF it is one more
 * system call. */
static ssize_t pump_read(int src, int pipe_w)
{
	char buf[PIPE_BUF];
	ssize_t n = splice(src, NULL, pipe_w, NULL, RELAY_PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	if (n > 0 || (n < 0 && errno != EAGAIN))
		return n;
	n = recv(src, buf, sizeof(buf), MSG_DONTWAIT);
	if (n > 0 && write(pipe_w, buf, (size_t)n) != n)
		return -1;
	return n;
}

/* Move what is ready from fd[s] to fd[!s] until one side would block or the
 * round budget is spent (level-triggered epoll brings us back). The pipe is
 * filled only when empty, so EAGAIN from a read always means the socket is
 * dry, never that the pipe is full. 0, or -1 to drop the pair. */
static int pump(struct relay_pair *p, int s)
{
	struct relay_dir *d = &p->dir[s];
	int src = p->fd[s], dst = p->fd[!s];
	ssize_t n;

	if (s == CLIENT && p->prefix != NULL) {
		int rc = prefix_flush(p);
		if (rc <= 0)
			return rc;
	}
	for (int round = 0; round < RELAY_ROUNDS && !d->done; round++) {
		if (d->queued > 0) {
			n = splice(d->pipe[0], NULL, dst, NULL, d->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n <= 0)
				return n < 0 && transient() ? 0 : -1;
			d->queued -= (size_t)n;
			continue;
		}
		n = pump_read(src, d->pipe[1]);
		if (n < 0)
			return transient() ? 0 : -1;
		if (n == 0)
			dir_finish(p, s);
		d->queued += (size_t)n;
	}
	return 0;
}

/* The upstream connect finished: 0 and connected, or -1 (refused, unreachable). */
static int connect_done(struct relay_pair *p)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(p->fd[UPSTREAM], SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0)
		return -1;
	p->connecting = false;
	return 0;
}

static int pair_event(struct relay_pair *p, int s, uint32_t ev)
{
	uint32_t armed = p->armed[s];

	if (p->connecting)
		return connect_done(p) < 0 || pump(p, CLIENT) < 0 || pump(p, UPSTREAM) < 0 ? -1 : 0;
	if ((armed & EPOLLIN) && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && pump(p, s) < 0)
		return -1;
	if ((armed & EPOLLOUT) && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && pump(p, !s) < 0)
		return -1;
	return 0;
}

int relay_dispatch(struct relay *r, int timeout_ms)
{
	struct epoll_event evs[RELAY_EVENTS];
	int n = epoll_wait(r->epfd, evs, RELAY_EVENTS, timeout_ms);
	long long now = mono_ms();

	if (n < 0)
		return errno == EINTR ? 0 : -1;
	for (int i = 0; i < n; i++) {
		uint64_t data = evs[i].data.u64;
		uint32_t slot = (uint32_t)data >> 1, gen = (uint32_t)(data >> 32);
		int s = (int)(data & 1);
		struct relay_pair *p = slot < r->nslots ? r->slots[slot] : NULL;

		if (p == NULL || p->gen != gen) /* dropped earlier in this batch */
			continue;
		if (pair_event(p, s, evs[i].events) < 0 || (p->dir[0].done && p->dir[1].done) || pair_arm(r, p) < 0) {
			pair_drop(r, p);
			continue;
		}
		/* An event is activity: bytes moved, or room for them. */
		list_unlink(r, p);
		list_append(r, p, now);
	}
	relay_expire(r);
	return n;
}

size_t relay_open_count(const struct relay *r, int tag)
{
	size_t n = 0;

	if (tag == -1)
		return r->open;
	for (size_t i = 0; i < r->nslots; i++)
		if (r->slots[i] != NULL && r->slots[i]->tag == tag)
			n++;
	return n;
}

void relay_close_tag(struct relay *r, int tag)
{
	for (size_t i = 0; i < r->nslots; i++)
		if (r->slots[i] != NULL && (tag == -1 || r->slots[i]->tag == tag))
			pair_drop(r, r->slots[i]);
}

void relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	relay_close_tag(r, -1);
	slate_cleanup_closep(&r->epfd);
	free(r->slots);
	free(r);
}

void relay_freep(struct relay **r)
{
	relay_free(*r);
}
