/* Unit tests for runtime/relay.c, the monitor's TCP relay.
 *
 * - A network namespace made here stands in for an instance: a child
 *   process unshares CLONE_NEWNET, brings `lo` up and runs an echo server
 *   on 127.0.0.1 inside it; it also connects, on request, from inside the
 *   namespace (a control socket carries the requests). relay_connect_in
 *   reaches its server while the same port on the host's 127.0.0.1 does
 *   not answer; relay_listen_in makes a listener that the namespace can
 *   reach and the host cannot, and its connections relay to a host service
 *   (the `--connect` path).
 * - The published-port path in full: host listener, accept, connect into
 *   the namespace, relay_add with the PROXY line: a small echo, 10 MiB both
 *   ways intact (SHA-256 of what was sent against what came back),
 *   half-close, 200 concurrent connections, the pair limit, a failed
 *   upstream connect, a stalled reader (the relay then sleeps: no busy
 *   loop), relay_open_count back to 0, relay_close_tag.
 * - relay_proxy_v1: IPv4, IPv6, IPv4-mapped, a unix socket, a short buffer.
 * - Throughput: 100 MiB through the relay against a direct loopback
 *   connection, both ways, medians of 7 printed ("# relay throughput ...");
 *   skipped under valgrind.
 *
 * The relay runs in the test's main thread (it is single-threaded, like
 * the monitor); clients run in a thread with their own deadline, servers in
 * child processes that die with the test (PR_SET_PDEATHSIG) or after
 * 300 s (alarm). Every loop is bounded in count and time. Needs root. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "relay.h"
#include "slate/hash.h"
#include "slate/util.h"

#define PATTERN_LEN 65536
#define BENCH_BYTES (100u << 20)
#define BENCH_ROUNDS 7

static unsigned char pattern[PATTERN_LEN]; /* the bytes clients send, from a fixed xorshift */
static bool valgrind;

/* ---- small helpers ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Deadlines stretch under valgrind, which runs everything ~50x slower. */
static int budget_ms(int ms)
{
	return valgrind ? ms * 10 : ms;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A blocking TCP listener on 127.0.0.1, any port; the port in *port. */
static int listen_any(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 512) < 0)
		return -1;
	*port = local_port(fd);
	return fd;
}

/* A blocking connect to 127.0.0.1:port in the calling thread's namespace; -1 and errno on failure. */
static int connect_local(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), saved;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Read until EOF or error, at most len bytes, within ms; returns the count. */
static ssize_t read_until_eof(int fd, char *buf, size_t len, int ms)
{
	long long end = now_ms() + ms;
	size_t got = 0;

	while (got < len && now_ms() < end) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 && got == 0 ? -1 : (ssize_t)got;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static ino_t netns_inode(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static ino_t fd_inode(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static void die_with_parent(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(300);
}

static void reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}

/* ---- servers (in child processes) ---- */

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write_all(fd, buf, (size_t)n) < 0)
			break;
	}
	shutdown(fd, SHUT_WR);
	close(fd);
	return NULL;
}

/* Echo every connection back, a thread each; half-closes after the client's EOF. */
static void *echo_serve(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		pthread_t t;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0)
			_exit(3);
		if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)fd) != 0)
			_exit(3);
		pthread_detach(t);
	}
	return NULL;
}

static pid_t spawn_echo(int *port)
{
	int lfd = listen_any(port);
	pid_t pid;

	if (lfd < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		die_with_parent();
		echo_serve((void *)(intptr_t)lfd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

/* The stand-in instance: its own network namespace with only `lo`. */
struct ns_request {
	int port; /* connect to 127.0.0.1:port inside the namespace, send "ping", half-close, read the reply */
};
struct ns_reply {
	int err; /* errno of the connect, 0 if it connected */
	char data[64];
};

static struct {
	pid_t pid;
	int ctl; /* control socket to the child */
	int netns; /* /proc/<child>/ns/net */
	int host; /* the test's own namespace */
	int echo_port; /* the echo server inside */
} ns = { -1, -1, -1, -1, 0 };

static int lo_up(void)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (rc == 0)
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	close(fd);
	return rc;
}

static void ns_answer(int ctl, const struct ns_request *req)
{
	struct ns_reply rep = { 0 };
	int fd = connect_local(req->port);

	if (fd < 0)
		rep.err = errno;
	else {
		if (write_all(fd, "ping", 4) == 0 && shutdown(fd, SHUT_WR) == 0)
			read_until_eof(fd, rep.data, sizeof(rep.data) - 1, 5000);
		close(fd);
	}
	if (write_all(ctl, &rep, sizeof(rep)) < 0)
		_exit(3);
}

static void ns_child(int ctl)
{
	pthread_t t;
	int port = 0, lfd = -1;
	struct ns_request req;

	die_with_parent();
	if (unshare(CLONE_NEWNET) < 0 || lo_up() < 0 || (lfd = listen_any(&port)) < 0)
		port = -errno;
	if (write_all(ctl, &port, sizeof(port)) < 0 || port < 0)
		_exit(3);
	if (pthread_create(&t, NULL, echo_serve, (void *)(intptr_t)lfd) != 0)
		_exit(3);
	while (read(ctl, &req, sizeof(req)) == (ssize_t)sizeof(req))
		ns_answer(ctl, &req);
	_exit(0);
}

/* From the main thread: ask the namespace to connect to port while the relay runs. */
struct harness;
static void harness_step(struct harness *h, int timeout_ms);

static int ns_ping(int port, struct harness *h, struct ns_reply *rep)
{
	struct ns_request req = { .port = port };
	long long end = now_ms() + budget_ms(10000);

	if (write_all(ns.ctl, &req, sizeof(req)) < 0)
		return -1;
	while (now_ms() < end) {
		struct pollfd pfd = { .fd = ns.ctl, .events = POLLIN };
		if (h != NULL)
			harness_step(h, 20);
		if (poll(&pfd, 1, h ? 0 : 20) == 1)
			return read(ns.ctl, rep, sizeof(*rep)) == (ssize_t)sizeof(*rep) ? 0 : -1;
	}
	return -1;
}

/* ---- the relay harness: what the monitor's loop does for one listener ---- */

struct harness {
	struct relay *r;
	int lfd; /* where clients arrive */
	int lport;
	int up_netns; /* where upstream is: a namespace, or -1 for the host */
	int up_port;
	bool proxy; /* send the PROXY line upstream */
	int tag;
	bool grouped; /* relay_admit + relay_add_group with group, by_addr (the monitor's way) */
	int group, by_addr;
	int accepted, refused;
	slate_error_t err; /* the last refusal */
};

static void harness_accept(struct harness *h)
{
	for (int i = 0; i < 256; i++) {
		char line[RELAY_PROXY_V1_MAX] = "";
		int len = 0, up, fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		h->accepted++;
		if (h->grouped && relay_admit(h->r, fd, h->group, h->by_addr, &h->err) < 0) {
			close(fd);
			h->refused++;
			continue;
		}
		if (h->proxy && (len = relay_proxy_v1(fd, line, sizeof(line), &h->err)) < 0)
			fail_msg("relay_proxy_v1: %s", h->err.msg);
		up = relay_connect_in(h->up_netns, ns.host, "127.0.0.1", h->up_port, &h->err);
		if (up < 0 || (h->grouped ? relay_add_group(h->r, fd, up, line, (size_t)len, h->tag, h->group,
							    h->by_addr, &h->err)
					  : relay_add(h->r, fd, up, line, (size_t)len, h->tag, &h->err)) < 0) {
			if (up < 0)
				close(fd);
			h->refused++;
		}
	}
}

static void harness_step(struct harness *h, int timeout_ms)
{
	struct pollfd pfd[2] = { { .fd = h->lfd, .events = POLLIN }, { .fd = relay_epoll_fd(h->r), .events = POLLIN } };

	relay_expire(h->r); /* what the monitor's loop does on every round */
	if (poll(pfd, 2, timeout_ms) <= 0)
		return;
	if (pfd[0].revents & POLLIN)
		harness_accept(h);
	if ((pfd[1].revents & POLLIN) && relay_dispatch(h->r, 0) < 0)
		fail_msg("relay_dispatch: %s", strerror(errno));
}

/* Run the relay until *done or the deadline. */
static void harness_run(struct harness *h, atomic_int *done, int ms)
{
	long long end = now_ms() + ms;

	while (!atomic_load(done) && now_ms() < end)
		harness_step(h, 20);
}

static void harness_until_count(struct harness *h, int tag, size_t want, int ms)
{
	long long end = now_ms() + ms;

	while (relay_open_count(h->r, tag) != want && now_ms() < end)
		harness_step(h, 20);
	assert_int_equal(relay_open_count(h->r, tag), want);
}

/* A published port: host listener -> the namespace's echo server. */
static void harness_open(struct harness *h, bool proxy)
{
	slate_error_t err = { 0 };

	memset(h, 0, sizeof(*h));
	h->r = relay_new(&err);
	if (h->r == NULL)
		fail_msg("relay_new: %s", err.msg);
	h->lfd = relay_listen_host("127.0.0.1", 0, &err);
	if (h->lfd < 0)
		fail_msg("relay_listen_host: %s", err.msg);
	h->lport = local_port(h->lfd);
	h->up_netns = ns.netns;
	h->up_port = ns.echo_port;
	h->proxy = proxy;
}

static void harness_close(struct harness *h)
{
	relay_free(h->r);
	h->r = NULL;
	slate_cleanup_closep(&h->lfd);
	h->lfd = -1;
}

/* ---- the load: clients that send a stream, half-close, and check the echo ---- */

struct flow {
	int fd;
	size_t sent, rcvd;
	bool shut;
	char line[RELAY_PROXY_V1_MAX]; /* the PROXY line that came back first */
	size_t line_len;
	bool line_done;
	slate_sha256_t hs, hr;
};

struct load {
	int port; /* the relay's listener */
	int nconn;
	size_t bytes; /* per connection, each way */
	bool proxy; /* the echo starts with the PROXY line */
	int pause_ms; /* after the half-close, before reading what is left */
	int timeout_ms;
	atomic_int done;
	int intact; /* connections whose echo matched */
	char msg[256]; /* the first failure */
};

static void flow_fail(struct load *l, int i, const char *what)
{
	if (l->msg[0] == '\0')
		snprintf(l->msg, sizeof(l->msg), "connection %d: %s (%s)", i, what, strerror(errno));
}

static int flow_send(struct flow *f, int i, const struct load *l)
{
	size_t off = (f->sent + (size_t)i * 131) % PATTERN_LEN;
	size_t n = l->bytes - f->sent < PATTERN_LEN - off ? l->bytes - f->sent : PATTERN_LEN - off;
	ssize_t w = send(f->fd, pattern + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (w < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (slate_sha256_update(&f->hs, pattern + off, (size_t)w, NULL) < 0)
		return -1;
	f->sent += (size_t)w;
	if (f->sent == l->bytes) {
		if (l->pause_ms > 0)
			sleep_ms((unsigned)l->pause_ms); /* let the upstream see the EOF first */
		if (shutdown(f->fd, SHUT_WR) < 0)
			return -1;
		f->shut = true;
		if (l->pause_ms > 0)
			sleep_ms((unsigned)l->pause_ms); /* ... and close its side: what is left must still come */
	}
	return 0;
}

/* The PROXY line first (when expected), then the echo; 1 at EOF. */
static int flow_recv(struct flow *f, const struct load *l, char *buf, size_t len)
{
	ssize_t n = recv(f->fd, buf, len, MSG_DONTWAIT);
	char *p = buf;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return 1;
	while (l->proxy && !f->line_done && n > 0) {
		if (f->line_len + 1 >= sizeof(f->line))
			return -1;
		f->line[f->line_len++] = *p++;
		n--;
		f->line_done = f->line_len >= 2 && memcmp(f->line + f->line_len - 2, "\r\n", 2) == 0;
	}
	f->rcvd += (size_t)n;
	return slate_sha256_update(&f->hr, p, (size_t)n, NULL) < 0 ? -1 : 0;
}

static bool flow_intact(struct flow *f, const struct load *l)
{
	unsigned char a[SLATE_SHA256_LEN], b[SLATE_SHA256_LEN];
	char want[RELAY_PROXY_V1_MAX];

	if (slate_sha256_final(&f->hs, a, NULL) < 0 || slate_sha256_final(&f->hr, b, NULL) < 0)
		return false;
	snprintf(want, sizeof(want), "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n", local_port(f->fd), l->port);
	if (l->proxy && strcmp(f->line, want) != 0)
		return false;
	return f->sent == l->bytes && f->rcvd == l->bytes && memcmp(a, b, sizeof(a)) == 0;
}

static int flows_open(struct load *l, struct flow *fl)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)l->port) };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < l->nconn; i++) {
		fl[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fl[i].fd < 0 || slate_sha256_init(&fl[i].hs, NULL) < 0 || slate_sha256_init(&fl[i].hr, NULL) < 0)
			return -1;
		if (connect(fl[i].fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno != EINPROGRESS)
			return -1;
	}
	return 0;
}

/* One poll loop over every connection: send when writable, read when readable. */
static void flows_pump(struct load *l, struct flow *fl, struct pollfd *pfd, bool *eof)
{
	long long end = now_ms() + l->timeout_ms;
	char *buf = xmalloc(65536);
	int left = l->nconn;

	while (left > 0 && now_ms() < end) {
		for (int i = 0; i < l->nconn; i++) {
			pfd[i].fd = eof[i] ? -1 : fl[i].fd;
			pfd[i].events = POLLIN | (fl[i].shut ? 0 : POLLOUT);
		}
		if (poll(pfd, (nfds_t)l->nconn, 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < l->nconn; i++) {
			int rc = 0;
			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			if ((pfd[i].revents & POLLOUT) && !fl[i].shut && flow_send(&fl[i], i, l) < 0)
				rc = -1;
			if (rc == 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				rc = flow_recv(&fl[i], l, buf, 65536);
			if (rc < 0)
				flow_fail(l, i, "i/o");
			if (rc != 0) {
				eof[i] = true;
				left--;
			}
		}
	}
	if (left > 0)
		flow_fail(l, -1, "timed out");
	free(buf);
}

static void *load_run(void *arg)
{
	struct load *l = arg;
	struct flow *fl = xcalloc((size_t)l->nconn, sizeof(*fl));
	struct pollfd *pfd = xcalloc((size_t)l->nconn, sizeof(*pfd));
	bool *eof = xcalloc((size_t)l->nconn, sizeof(*eof));

	for (int i = 0; i < l->nconn; i++)
		fl[i].fd = -1;
	if (flows_open(l, fl) < 0)
		flow_fail(l, -1, "connect");
	else
		flows_pump(l, fl, pfd, eof);
	for (int i = 0; i < l->nconn; i++) {
		if (l->msg[0] == '\0' && flow_intact(&fl[i], l))
			l->intact++;
		else if (l->msg[0] == '\0')
			flow_fail(l, i, "echo differs from what was sent");
		slate_sha256_free(&fl[i].hs);
		slate_sha256_free(&fl[i].hr);
		slate_cleanup_closep(&fl[i].fd);
	}
	free(eof);
	free(pfd);
	free(fl);
	atomic_store(&l->done, 1);
	return NULL;
}

/* Run a load against the harness, the relay in this thread. */
static void run_load(struct harness *h, struct load *l)
{
	pthread_t t;

	l->port = h->lport;
	l->proxy = h->proxy;
	l->timeout_ms = budget_ms(60000);
	atomic_store(&l->done, 0);
	assert_int_equal(pthread_create(&t, NULL, load_run, l), 0);
	harness_run(h, &l->done, l->timeout_ms + 5000);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (l->msg[0] != '\0')
		fail_msg("%s", l->msg);
	assert_int_equal(l->intact, l->nconn);
}

/* ---- fixtures ---- */

static int group_setup(void **state)
{
	struct rlimit rl = { 65536, 65536 };
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	int sv[2];

	(void)state;
	valgrind = getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"), "vgpreload");
	for (size_t i = 0; i < PATTERN_LEN; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		pattern[i] = (unsigned char)x;
	}
	if (geteuid() != 0)
		return 0;
	(void)setrlimit(RLIMIT_NOFILE, &rl); /* 6 fds per relayed connection, 200 at once */
	ns.host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (ns.host < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	ns.pid = fork();
	if (ns.pid == 0) {
		close(sv[0]);
		ns_child(sv[1]);
	}
	close(sv[1]);
	ns.ctl = sv[0];
	if (ns.pid < 0 || read(ns.ctl, &ns.echo_port, sizeof(ns.echo_port)) != (ssize_t)sizeof(ns.echo_port))
		return -1;
	if (ns.echo_port <= 0) { /* no network namespace here: the tests that need one skip */
		reap(&ns.pid);
		return 0;
	}
	{
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)ns.pid);
		ns.netns = open(path, O_RDONLY | O_CLOEXEC);
	}
	return ns.netns < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	reap(&ns.pid);
	slate_cleanup_closep(&ns.ctl);
	slate_cleanup_closep(&ns.netns);
	slate_cleanup_closep(&ns.host);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0 || ns.netns < 0)
		skip();
}

/* ---- tests: namespaces ---- */

static void test_connect_in_reaches_namespace_only(void **state)
{
	slate_error_t err = { 0 };
	struct pollfd pfd;
	char buf[16] = { 0 };
	int fd, soerr = -1;
	socklen_t len = sizeof(soerr);
	ino_t before = netns_inode("/proc/thread-self/ns/net");

	(void)state;
	need_root();
	fd = relay_connect_in(ns.netns, ns.host, "127.0.0.1", ns.echo_port, &err);
	if (fd < 0)
		fail_msg("relay_connect_in: %s", err.msg);
	assert_int_equal(netns_inode("/proc/thread-self/ns/net"), before); /* back home */
	assert_int_equal(before, fd_inode(ns.host));
	assert_true(fd_inode(ns.netns) != before);
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len), 0);
	assert_int_equal(soerr, 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_int_equal(write_all(fd, "hello", 5), 0);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	assert_int_equal(read_until_eof(fd, buf, sizeof(buf) - 1, 5000), 5);
	assert_string_equal(buf, "hello");
	close(fd);
	/* the same port on the host's loopback: nobody there */
	assert_int_equal(connect_local(ns.echo_port), -1);
	assert_int_equal(errno, ECONNREFUSED);
}

static void test_connect_in_refusals(void **state)
{
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(relay_connect_in(-1, -1, "localhost", 80, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, "not an IP address");
	memset(&err, 0, sizeof(err));
	assert_int_equal(relay_connect_in(-1, -1, "127.0.0.1", 0, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, "port 0");
	memset(&err, 0, sizeof(err));
	assert_int_equal(relay_listen_host("127.0.0.1", 65536, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, "port 65536");
	memset(&err, 0, sizeof(err));
	assert_int_equal(relay_listen_in(-1, -1, "127.0.0.1", 0, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, "no network namespace");
	if (ns.netns < 0)
		return;
	memset(&err, 0, sizeof(err));
	assert_int_equal(relay_connect_in(ns.netns, -1, "127.0.0.1", 80, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, "no host network namespace");
	/* not a namespace fd: setns refuses, and the thread stays home */
	memset(&err, 0, sizeof(err));
	assert_int_equal(relay_connect_in(ns.ctl, ns.host, "127.0.0.1", 80, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "enter the instance's network namespace");
	assert_int_equal(netns_inode("/proc/thread-self/ns/net"), fd_inode(ns.host)); /* still home */
}

/* The --connect path: a listener in the namespace, relayed to a host service. */
static void test_listen_in_granted_service(void **state)
{
	struct harness h;
	slate_error_t err = { 0 };
	struct ns_reply rep;
	int host_port = 0;
	pid_t echo = -1;

	(void)state;
	need_root();
	harness_open(&h, false);
	slate_cleanup_closep(&h.lfd);
	h.lfd = relay_listen_in(ns.netns, ns.host, "127.0.0.1", 0, &err);
	if (h.lfd < 0)
		fail_msg("relay_listen_in: %s", err.msg);
	h.lport = local_port(h.lfd);
	echo = spawn_echo(&host_port);
	assert_true(echo > 0);
	h.up_netns = -1; /* the granted service is on the host */
	h.up_port = host_port;
	/* the host cannot reach the listener... */
	assert_int_equal(connect_local(h.lport), -1);
	assert_int_equal(errno, ECONNREFUSED);
	/* ...the namespace can, and through it the host service */
	assert_int_equal(ns_ping(h.lport, &h, &rep), 0);
	assert_int_equal(rep.err, 0);
	assert_string_equal(rep.data, "ping");
	/* while the host service's port itself is not there for it */
	assert_int_equal(ns_ping(host_port, NULL, &rep), 0);
	assert_int_equal(rep.err, ECONNREFUSED);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
	reap(&echo);
}

/* ---- tests: the relay ---- */

static void test_relay_echo_with_proxy_line(void **state)
{
	struct harness h;
	struct load l = { .nconn = 1, .bytes = 5 };

	(void)state;
	need_root();
	harness_open(&h, true);
	run_load(&h, &l);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	assert_int_equal(h.accepted, 1);
	assert_int_equal(h.refused, 0);
	harness_close(&h);
}

static void test_relay_10mib_both_ways(void **state)
{
	struct harness h;
	struct load l = { .nconn = 1, .bytes = 10u << 20 };

	(void)state;
	need_root();
	harness_open(&h, true);
	run_load(&h, &l);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
}

/* The client half-closes, the upstream sees EOF and finishes; what it sent
 * after the client's EOF still reaches the client. */
static void test_relay_half_close(void **state)
{
	struct harness h;
	struct load l = { .nconn = 1, .bytes = 300000, .pause_ms = 200 };

	(void)state;
	need_root();
	harness_open(&h, false);
	run_load(&h, &l);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
}

static void test_relay_200_concurrent(void **state)
{
	struct harness h;
	struct load l = { .nconn = 200, .bytes = 64 * 1024 };

	(void)state;
	need_root();
	harness_open(&h, true);
	run_load(&h, &l);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	assert_int_equal(h.accepted, 200);
	assert_int_equal(h.refused, 0);
	harness_close(&h);
}

/* One roundtrip on a blocking client socket, the relay running meanwhile. */
static bool roundtrip(struct harness *h, int fd, const char *msg)
{
	char buf[32] = { 0 };
	size_t got = 0, len = strlen(msg);
	long long end = now_ms() + budget_ms(5000);

	if (write_all(fd, msg, len) < 0)
		return false;
	while (got < len && now_ms() < end) {
		ssize_t n;
		harness_step(h, 20);
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			return false;
		got += n > 0 ? (size_t)n : 0;
	}
	return got == len && memcmp(buf, msg, len) == 0;
}

/* Read from a client whose pair the relay dropped: EOF or a reset, soon. */
static bool dropped(int fd)
{
	char c;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, budget_ms(5000)) != 1)
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

static void test_relay_close_tag(void **state)
{
	struct harness h;
	int fd[5];

	(void)state;
	need_root();
	harness_open(&h, false);
	h.tag = 1;
	for (int i = 0; i < 5; i++) {
		if (i == 3) {
			harness_until_count(&h, 1, 3, budget_ms(5000));
			h.tag = 2;
		}
		fd[i] = connect_local(h.lport);
		assert_true(fd[i] >= 0);
		assert_true(roundtrip(&h, fd[i], "x"));
	}
	assert_int_equal(relay_open_count(h.r, 1), 3);
	assert_int_equal(relay_open_count(h.r, 2), 2);
	assert_int_equal(relay_open_count(h.r, -1), 5);
	relay_close_tag(h.r, 1);
	assert_int_equal(relay_open_count(h.r, 1), 0);
	assert_int_equal(relay_open_count(h.r, 2), 2);
	for (int i = 0; i < 3; i++)
		assert_true(dropped(fd[i]));
	for (int i = 3; i < 5; i++)
		assert_true(roundtrip(&h, fd[i], "still here"));
	for (int i = 0; i < 5; i++)
		close(fd[i]);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
}

static void test_relay_limit(void **state)
{
	struct harness h;
	int fd[3];

	(void)state;
	need_root();
	harness_open(&h, false);
	relay_set_limit(h.r, 2);
	for (int i = 0; i < 3; i++) {
		fd[i] = connect_local(h.lport);
		assert_true(fd[i] >= 0);
	}
	for (long long end = now_ms() + budget_ms(5000); h.accepted < 3 && now_ms() < end;)
		harness_step(&h, 20);
	assert_int_equal(h.refused, 1);
	assert_error(&h.err, SLATE_EXIT_REFUSED, "2 connections open");
	assert_int_equal(relay_open_count(h.r, -1), 2);
	assert_true(roundtrip(&h, fd[0], "a"));
	assert_true(roundtrip(&h, fd[1], "b"));
	assert_true(dropped(fd[2]));
	for (int i = 0; i < 3; i++)
		close(fd[i]);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
}

/* A client that stops reading: every buffer on the way fills up, and then
 * the relay waits without waking (no busy loop); once the client reads
 * again, everything arrives. */
static void test_relay_stalled_reader_idles(void **state)
{
	struct harness h;
	size_t sent = 0, got = 0;
	long long last, end;
	int fd, events = 0;
	char *buf = xmalloc(65536);

	(void)state;
	need_root();
	harness_open(&h, false);
	fd = connect_local(h.lport);
	assert_true(fd >= 0);
	end = now_ms() + budget_ms(20000);
	for (last = now_ms(); now_ms() - last < 300 && now_ms() < end;) {
		ssize_t n = send(fd, pattern, PATTERN_LEN, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			sent += (size_t)n;
			last = now_ms();
		}
		harness_step(&h, 5);
	}
	assert_true(now_ms() < end); /* it did stall */
	for (long long stop = now_ms() + 500; now_ms() < stop;)
		events += relay_dispatch(h.r, 20);
	if (events > 2)
		fail_msg("%d relay events in 500 ms while nothing could move", events);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	for (end = now_ms() + budget_ms(20000); now_ms() < end;) {
		ssize_t n = recv(fd, buf, 65536, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
		got += n > 0 ? (size_t)n : 0;
		harness_step(&h, n > 0 ? 0 : 5);
	}
	assert_int_equal(got, sent);
	print_message("# stalled with %zu KiB in flight, then all of it came back\n", sent >> 10);
	close(fd);
	free(buf);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
}

/* Read exactly want's length from fd within 5 s, the relay running; then, if eof, expect EOF. */
static void expect_bytes(struct harness *h, int fd, const char *want, bool eof, int *events)
{
	char buf[32] = { 0 };
	size_t got = 0, len = strlen(want);
	long long end = now_ms() + budget_ms(5000);

	while ((got < len || eof) && now_ms() < end) {
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
					 { .fd = relay_epoll_fd(h->r), .events = POLLIN } };
		ssize_t n;
		if (poll(pfd, 2, 20) <= 0)
			continue;
		if (pfd[1].revents)
			*events += relay_dispatch(h->r, 0);
		if (!pfd[0].revents)
			continue;
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
		if (n == 0 && eof)
			eof = false; /* seen */
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	assert_string_equal(buf, want);
	assert_false(eof);
}

/* TCP urgent data: splice stops at the urgent mark (EAGAIN while epoll
 * says readable; 0 once the FIN is in). The relay must neither spin, nor
 * stall, nor take the mark for EOF: the byte goes through inline, in order. */
static void test_relay_urgent_data(void **state)
{
	struct harness h;
	int fd, events = 0;

	(void)state;
	need_root();
	harness_open(&h, false);
	fd = connect_local(h.lport);
	assert_true(fd >= 0);
	assert_true(roundtrip(&h, fd, "a"));
	assert_int_equal(send(fd, "b", 1, MSG_OOB), 1);
	assert_int_equal(send(fd, "cd", 2, 0), 2);
	expect_bytes(&h, fd, "bcd", false, &events);
	assert_int_equal(send(fd, "e", 1, MSG_OOB), 1); /* and with the FIN right behind */
	assert_int_equal(send(fd, "fg", 2, 0), 2);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	expect_bytes(&h, fd, "efg", true, &events);
	if (events > 50)
		fail_msg("%d relay events for 6 bytes: the relay spins on urgent data", events);
	close(fd);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
}

/* Upstream refuses: the pair goes, the client sees its connection end. */
static void test_relay_upstream_refused(void **state)
{
	struct harness h;
	int fd;

	(void)state;
	need_root();
	harness_open(&h, true);
	h.up_port = h.lport; /* nothing listens there inside the namespace */
	fd = connect_local(h.lport);
	assert_true(fd >= 0);
	for (long long end = now_ms() + budget_ms(5000); h.accepted < 1 && now_ms() < end;)
		harness_step(&h, 20);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	assert_true(dropped(fd));
	close(fd);
	harness_close(&h);
}

/* ---- tests: bounds (attack review items 11 and 12) ---- */

static void harness_limits(struct harness *h, size_t total, size_t per_group, size_t per_addr, unsigned idle_ms,
			   unsigned half_ms)
{
	struct relay_limits l = { total, per_group, per_addr, idle_ms, half_ms };

	relay_set_limits(h->r, &l);
}

/* A connection from 127.0.0.x to 127.0.0.1:port. */
static int connect_from(const char *src, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in me = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	inet_pton(AF_INET, src, &me.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* An idle connection is closed after the idle timeout; one that keeps
 * talking stays. */
static void test_relay_idle_timeout(void **state)
{
	struct harness h;
	struct relay_stats st;
	int idle, busy;

	(void)state;
	need_root();
	harness_open(&h, false);
	harness_limits(&h, 100, 100, 100, 400, 400);
	idle = connect_local(h.lport);
	busy = connect_local(h.lport);
	assert_true(idle >= 0 && busy >= 0);
	assert_true(roundtrip(&h, idle, "a"));
	for (int i = 0; i < 8; i++) {
		assert_true(roundtrip(&h, busy, "b"));
		for (long long end = now_ms() + 100; now_ms() < end;)
			harness_step(&h, 20);
	}
	assert_true(dropped(idle));
	assert_int_equal(relay_open_count(h.r, -1), 1);
	assert_true(roundtrip(&h, busy, "still here"));
	relay_stats(h.r, &st);
	assert_int_equal(st.expired, 1);
	close(idle);
	close(busy);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
}

/* The upstream closed, the client never does (nor sends): the whole
 * connection goes after the half-close timeout, long before the idle one. */
static void test_relay_half_close_timeout(void **state)
{
	struct harness h;
	int lfd, port, up, fd;
	long long start;

	(void)state;
	need_root();
	harness_open(&h, false);
	harness_limits(&h, 100, 100, 100, 60000, 300);
	lfd = listen_any(&port);
	assert_true(lfd >= 0);
	h.up_netns = -1; /* the host: this test is the upstream */
	h.up_port = port;
	fd = connect_local(h.lport);
	assert_true(fd >= 0);
	for (long long end = now_ms() + budget_ms(5000); h.accepted < 1 && now_ms() < end;)
		harness_step(&h, 20);
	up = accept(lfd, NULL, NULL);
	assert_true(up >= 0);
	close(up);
	start = now_ms();
	harness_until_count(&h, -1, 0, budget_ms(5000));
	assert_true(now_ms() - start >= 250);
	assert_true(dropped(fd));
	close(fd);
	close(lfd);
	harness_close(&h);
}

/* One address at its cap is refused, another address is still served,
 * and a group at its cap refuses every address. */
static void test_relay_caps_per_addr_and_group(void **state)
{
	struct harness h;
	struct relay_stats st;
	int a[3], b[2];

	(void)state;
	need_root();
	harness_open(&h, false);
	harness_limits(&h, 100, 4, 2, 60000, 60000);
	h.grouped = true;
	h.group = 0;
	h.by_addr = 1;
	for (int i = 0; i < 3; i++)
		assert_true((a[i] = connect_from("127.0.0.1", h.lport)) >= 0);
	for (long long end = now_ms() + budget_ms(5000); h.accepted < 3 && now_ms() < end;)
		harness_step(&h, 20);
	assert_int_equal(h.refused, 1);
	assert_error(&h.err, SLATE_EXIT_REFUSED, "from this address");
	assert_true(dropped(a[2]));
	for (int i = 0; i < 2; i++) {
		assert_true((b[i] = connect_from("127.0.0.2", h.lport)) >= 0);
		assert_true(roundtrip(&h, b[i], "other address"));
	}
	assert_int_equal(relay_group_count(h.r, 0), 4);
	close(a[2]);
	assert_true((a[2] = connect_from("127.0.0.3", h.lport)) >= 0);
	for (long long end = now_ms() + budget_ms(5000); h.accepted < 6 && now_ms() < end;)
		harness_step(&h, 20);
	assert_int_equal(h.refused, 2);
	assert_error(&h.err, SLATE_EXIT_REFUSED, "on this port or service");
	assert_true(dropped(a[2]));
	assert_true(roundtrip(&h, a[0], "a0"));
	relay_stats(h.r, &st);
	assert_int_equal(st.refused, 2);
	for (int i = 0; i < 3; i++)
		close(a[i]);
	for (int i = 0; i < 2; i++)
		close(b[i]);
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
}

static void test_relay_limits_for_nofile(void **state)
{
	struct relay_limits l;

	(void)state;
	relay_limits_for_nofile(&l, 1024, 256);
	assert_int_equal(l.total, 128);
	assert_int_equal(l.per_group, 64);
	assert_int_equal(l.per_addr, 16);
	assert_int_equal(l.idle_ms, RELAY_IDLE_MS);
	assert_int_equal(l.half_close_ms, RELAY_HALF_CLOSE_MS);
	relay_limits_for_nofile(&l, 1u << 20, 256);
	assert_int_equal(l.total, RELAY_MAX_PAIRS);
	relay_limits_for_nofile(&l, 100, 256);
	assert_int_equal(l.total, 1);
	assert_int_equal(l.per_group, 1);
	assert_int_equal(l.per_addr, 1);
}

static int sockbuf(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0 ? -1 : v;
}

/* Relay sockets have small fixed buffers (the kernel reports twice the
 * size set), also the accepted ones (inherited from the listener). */
static void test_relay_small_buffers(void **state)
{
	slate_error_t err = { 0 };
	int lfd, up, c, acc;

	(void)state;
	need_root();
	lfd = relay_listen_host("127.0.0.1", 0, &err);
	assert_true(lfd >= 0);
	up = relay_connect_in(ns.netns, ns.host, "127.0.0.1", ns.echo_port, &err);
	assert_true(up >= 0);
	c = connect_local(local_port(lfd));
	assert_true(c >= 0);
	acc = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(acc >= 0);
	for (int i = 0; i < 2; i++) {
		int opt = i ? SO_SNDBUF : SO_RCVBUF;
		assert_int_equal(sockbuf(up, opt), 2 * RELAY_SOCK_BUF);
		assert_int_equal(sockbuf(acc, opt), 2 * RELAY_SOCK_BUF);
	}
	close(acc);
	close(c);
	close(up);
	close(lfd);
}

/* ---- tests: PROXY v1 ---- */

static void proxy_case(int family, const char *listen_ip, const char *connect_ip, bool dual, const char *want_fmt)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	slate_error_t err = { 0 };
	char line[RELAY_PROXY_V1_MAX], want[RELAY_PROXY_V1_MAX], small[20];
	int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), cfd, afd, v6only = dual ? 0 : 1, lport;

	assert_true(lfd >= 0);
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		assert_int_equal(setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)), 0);
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, listen_ip, &s6->sin6_addr), 1);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, listen_ip, &s4->sin_addr), 1);
		len = sizeof(*s4);
	}
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 4) < 0) {
		close(lfd);
		skip(); /* no IPv6 on this host */
	}
	lport = local_port(lfd);
	{
		struct sockaddr_storage cs = { 0 };
		socklen_t clen;
		if (strchr(connect_ip, ':')) {
			struct sockaddr_in6 *c6 = (struct sockaddr_in6 *)&cs;
			c6->sin6_family = AF_INET6, c6->sin6_port = htons((uint16_t)lport), clen = sizeof(*c6);
			assert_int_equal(inet_pton(AF_INET6, connect_ip, &c6->sin6_addr), 1);
		} else {
			struct sockaddr_in *c4 = (struct sockaddr_in *)&cs;
			c4->sin_family = AF_INET, c4->sin_port = htons((uint16_t)lport), clen = sizeof(*c4);
			assert_int_equal(inet_pton(AF_INET, connect_ip, &c4->sin_addr), 1);
		}
		cfd = socket(cs.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(cfd, (struct sockaddr *)&cs, clen), 0);
	}
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	snprintf(want, sizeof(want), want_fmt, local_port(cfd), lport);
	assert_int_equal(relay_proxy_v1(afd, line, sizeof(line), &err), (int)strlen(want));
	assert_string_equal(line, want);
	assert_int_equal(relay_proxy_v1(afd, small, sizeof(small), &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "no room for the PROXY line");
	close(afd);
	close(cfd);
	close(lfd);
}

static void test_proxy_v1_ipv4(void **state)
{
	(void)state;
	proxy_case(AF_INET, "127.0.0.1", "127.0.0.1", false, "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n");
}

static void test_proxy_v1_ipv6(void **state)
{
	(void)state;
	proxy_case(AF_INET6, "::1", "::1", false, "PROXY TCP6 ::1 ::1 %d %d\r\n");
}

/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: still TCP4. */
static void test_proxy_v1_v4_mapped(void **state)
{
	(void)state;
	proxy_case(AF_INET6, "::", "127.0.0.1", true, "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n");
}

static void test_proxy_v1_unknown(void **state)
{
	slate_error_t err = { 0 };
	char line[RELAY_PROXY_V1_MAX];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(relay_proxy_v1(sv[0], line, sizeof(line), &err), 15);
	assert_string_equal(line, "PROXY UNKNOWN\r\n");
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(relay_proxy_v1(sv[0], line, sizeof(line), &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "the client's address");
}

/* ---- throughput: 100 MiB through the relay against direct loopback ---- */

/* Host child: a source (sends `bytes`, closes) and a sink (reads to EOF, answers the count). */
static void bulk_serve(int src, int sink, size_t bytes)
{
	char *buf = xmalloc(1 << 20);

	memset(buf, 'x', 1 << 20);
	for (;;) {
		struct pollfd pfd[2] = { { .fd = src, .events = POLLIN }, { .fd = sink, .events = POLLIN } };
		uint64_t count = 0;
		ssize_t n;
		int fd;
		if (poll(pfd, 2, -1) < 0)
			continue;
		fd = accept4(pfd[0].revents ? src : sink, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (pfd[0].revents)
			for (size_t left = bytes;
			     left > 0 && write_all(fd, buf, left < (1u << 20) ? left : 1u << 20) == 0;)
				left -= left < (1u << 20) ? left : 1u << 20;
		else {
			while ((n = read(fd, buf, 1 << 20)) > 0)
				count += (uint64_t)n;
			(void)write_all(fd, &count, sizeof(count));
		}
		close(fd);
	}
}

struct bulk {
	int port;
	bool upload;
	size_t bytes;
	double secs;
	atomic_int done;
	char msg[128];
};

static void *bulk_run(void *arg)
{
	struct bulk *b = arg;
	char *buf = xmalloc(1 << 20);
	double t0 = now_s();
	int fd = connect_local(b->port);
	uint64_t count = 0;
	ssize_t n;

	memset(buf, 'y', 1 << 20);
	if (fd < 0)
		snprintf(b->msg, sizeof(b->msg), "connect: %s", strerror(errno));
	else if (b->upload) {
		for (size_t left = b->bytes; left > 0 && write_all(fd, buf, left < (1u << 20) ? left : 1u << 20) == 0;)
			left -= left < (1u << 20) ? left : 1u << 20;
		shutdown(fd, SHUT_WR);
		if (read_until_eof(fd, (char *)&count, sizeof(count), budget_ms(60000)) != (ssize_t)sizeof(count))
			snprintf(b->msg, sizeof(b->msg), "no count from the sink");
	} else {
		while ((n = read(fd, buf, 1 << 20)) > 0)
			count += (uint64_t)n;
	}
	b->secs = now_s() - t0;
	if (b->msg[0] == '\0' && count != b->bytes)
		snprintf(b->msg, sizeof(b->msg), "moved %llu bytes, want %zu", (unsigned long long)count, b->bytes);
	slate_cleanup_closep(&fd);
	free(buf);
	atomic_store(&b->done, 1);
	return NULL;
}

/* One transfer; through the harness when h is given. Returns MiB/s. */
static double bulk_once(struct harness *h, int port, bool upload)
{
	struct bulk b = { .port = h ? h->lport : port, .upload = upload, .bytes = BENCH_BYTES };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, bulk_run, &b), 0);
	if (h != NULL)
		harness_run(h, &b.done, budget_ms(120000));
	assert_int_equal(pthread_join(t, NULL), 0);
	if (b.msg[0] != '\0')
		fail_msg("%s transfer: %s", upload ? "upload" : "download", b.msg);
	return (double)BENCH_BYTES / (1 << 20) / b.secs;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench_direction(int port, bool upload)
{
	struct harness h;
	double direct[BENCH_ROUNDS], relayed[BENCH_ROUNDS];
	const char *way = upload ? "upload" : "download";

	harness_open(&h, false);
	h.up_netns = -1;
	h.up_port = port;
	for (int i = 0; i < BENCH_ROUNDS; i++) { /* alternating, so that both see the same machine */
		direct[i] = bulk_once(NULL, port, upload);
		relayed[i] = bulk_once(&h, port, upload);
	}
	harness_until_count(&h, -1, 0, budget_ms(5000));
	harness_close(&h);
	qsort(direct, BENCH_ROUNDS, sizeof(double), cmp_double);
	qsort(relayed, BENCH_ROUNDS, sizeof(double), cmp_double);
	print_message(
		"# relay throughput %s, 100 MiB x %d: direct median %.0f MiB/s (best %.0f), "
		"relay median %.0f MiB/s (best %.0f): %.0f%% of direct\n",
		way, BENCH_ROUNDS, direct[BENCH_ROUNDS / 2], direct[BENCH_ROUNDS - 1], relayed[BENCH_ROUNDS / 2],
		relayed[BENCH_ROUNDS - 1], 100.0 * relayed[BENCH_ROUNDS / 2] / direct[BENCH_ROUNDS / 2]);
}

static void test_relay_throughput(void **state)
{
	int src_port = 0, sink_port = 0, src, sink;
	pid_t pid;

	(void)state;
	if (valgrind || geteuid() != 0)
		skip();
	src = listen_any(&src_port);
	sink = listen_any(&sink_port);
	assert_true(src >= 0 && sink >= 0);
	pid = fork();
	if (pid == 0) {
		die_with_parent();
		bulk_serve(src, sink, BENCH_BYTES);
		_exit(0);
	}
	close(src);
	close(sink);
	assert_true(pid > 0);
	bench_direction(src_port, false);
	bench_direction(sink_port, true);
	reap(&pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_in_reaches_namespace_only),
		cmocka_unit_test(test_connect_in_refusals),
		cmocka_unit_test(test_listen_in_granted_service),
		cmocka_unit_test(test_relay_echo_with_proxy_line),
		cmocka_unit_test(test_relay_10mib_both_ways),
		cmocka_unit_test(test_relay_half_close),
		cmocka_unit_test(test_relay_200_concurrent),
		cmocka_unit_test(test_relay_close_tag),
		cmocka_unit_test(test_relay_limit),
		cmocka_unit_test(test_relay_stalled_reader_idles),
		cmocka_unit_test(test_relay_urgent_data),
		cmocka_unit_test(test_relay_upstream_refused),
		cmocka_unit_test(test_relay_idle_timeout),
		cmocka_unit_test(test_relay_half_close_timeout),
		cmocka_unit_test(test_relay_caps_per_addr_and_group),
		cmocka_unit_test(test_relay_limits_for_nofile),
		cmocka_unit_test(test_relay_small_buffers),
		cmocka_unit_test(test_proxy_v1_ipv4),
		cmocka_unit_test(test_proxy_v1_ipv6),
		cmocka_unit_test(test_proxy_v1_v4_mapped),
		cmocka_unit_test(test_proxy_v1_unknown),
		cmocka_unit_test(test_relay_throughput),
	};

	return cmocka_run_group_tests_name("relay", tests, group_setup, group_teardown);
}
