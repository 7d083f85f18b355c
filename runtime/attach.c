/* slate: the operator's stdio, relayed to a command in an instance (see
 * attach.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "attach.h"
#include "slate/util.h"

#define BUF_SIZE 65536
#define PTY_DRAIN_MAX (1 << 20)

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int attach_init(struct attach *a, bool with_stdin, bool tty, slate_error_t *err)
{
	int p[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };

	*a = (struct attach){ .with_stdin = with_stdin,
			      .tty = tty,
			      .cmd = { -1, -1, -1 },
			      .in = -1,
			      .out = -1,
			      .err = -1,
			      .master = -1 };
	if (tty) {
		a->have_ws =
			ioctl(STDIN_FILENO, TIOCGWINSZ, &a->ws) == 0 || ioctl(STDOUT_FILENO, TIOCGWINSZ, &a->ws) == 0;
		return 0;
	}
	for (int i = with_stdin ? 0 : 1; i < 3; i++) {
		if (pipe2(p[i], O_CLOEXEC) < 0) {
			int e = errno;
			for (int k = 0; k < 3; k++) {
				close_fd(&p[k][0]);
				close_fd(&p[k][1]);
			}
			return slate_error_sys(err, e, "pipe");
		}
	}
	/* The command reads p[0][0] and writes p[1][1], p[2][1]. */
	a->cmd[0] = p[0][0];
	a->in = p[0][1];
	a->cmd[1] = p[1][1];
	a->out = p[1][0];
	a->cmd[2] = p[2][1];
	a->err = p[2][0];
	return 0;
}

void attach_close_cmd(struct attach *a)
{
	for (int i = 0; i < 3; i++)
		close_fd(&a->cmd[i]);
}

void attach_close_relay(struct attach *a)
{
	close_fd(&a->in);
	close_fd(&a->out);
	close_fd(&a->err);
	close_fd(&a->master);
}

int attach_set_master(struct attach *a, int master, slate_error_t *err)
{
	struct termios raw;

	a->master = master;
	if (fcntl(master, F_SETFL, O_NONBLOCK) < 0)
		return slate_error_sys(err, errno, "set the pty non-blocking");
	if (!a->with_stdin || !isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &a->saved) < 0)
		return 0;
	raw = a->saved;
	cfmakeraw(&raw);
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
		return slate_error_sys(err, errno, "put the terminal in raw mode");
	a->raw = true;
	return 0;
}

void attach_free(struct attach *a)
{
	if (a->raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &a->saved);
	a->raw = false;
	attach_close_cmd(a);
	attach_close_relay(a);
}

/* All of buf to fd (slate's stdout or stderr, which may be non-blocking:
 * the operator's terminal is shared). -1 when the reader is gone. */
static int write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { fd, POLLOUT, 0 };
			poll(&p, 1, -1);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One read from the command's side to slate's fd `to`; false at the end
 * of that stream (EOF, EIO of a pty whose slave is closed, or nobody
 * reading on slate's side any more). */
static bool copy_out(int from, int to)
{
	char buf[BUF_SIZE];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	return n > 0 && write_all(to, buf, (size_t)n) == 0;
}

/* After the end: what is in the pipe or pty now, at most `budget` bytes. */
static void drain(int from, int to, size_t budget)
{
	char buf[BUF_SIZE];
	ssize_t n;

	if (from < 0 || fcntl(from, F_SETFL, O_NONBLOCK) < 0)
		return;
	while (budget > 0 && (n = read(from, buf, budget < sizeof(buf) ? budget : sizeof(buf))) > 0) {
		if (write_all(to, buf, (size_t)n) < 0)
			return;
		budget -= (size_t)n;
	}
}

static size_t drain_budget(int fd, bool pty)
{
	int n = pty ? -1 : fcntl(fd, F_GETPIPE_SZ);

	return n > 0 ? (size_t)n : PTY_DRAIN_MAX;
}

static volatile sig_atomic_t winch;

static void on_winch(int sig)
{
	(void)sig;
	winch = 1;
}

/* The input side: slate's stdin into the pipe or the pty, through a buffer
 * (the command may not read while it writes: slate never blocks on it). */
struct input {
	int to; /* a->in or a->master, non-blocking */
	char buf[BUF_SIZE];
	size_t len, off;
	bool eof; /* slate's stdin ended: pass it on once the buffer is out */
	bool done;
	bool pty_out; /* the pty's output is still read */
};

static void input_read(struct input *in)
{
	ssize_t n = read(STDIN_FILENO, in->buf, sizeof(in->buf));

	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		in->eof = true;
		return;
	}
	in->len = (size_t)n;
	in->off = 0;
}

/* EOF to the command: the pipe's write end closed, or the pty's EOF
 * character when it is in canonical mode. */
static void input_eof(struct attach *a, struct input *in)
{
	struct termios t;

	if (a->tty) {
		if (tcgetattr(a->master, &t) == 0 && (t.c_lflag & ICANON))
			(void)!write(a->master, &t.c_cc[VEOF], 1);
	} else {
		close_fd(&a->in);
	}
	in->done = true;
}

static void input_write(struct attach *a, struct input *in)
{
	ssize_t w = write(in->to, in->buf + in->off, in->len - in->off);

	if (w < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (w < 0) { /* the command closed its stdin: drop the rest */
		in->len = in->off = 0;
		in->done = true;
		if (!a->tty)
			close_fd(&a->in);
		return;
	}
	in->off += (size_t)w;
	if (in->off == in->len)
		in->len = in->off = 0;
}

enum { P_STDIN, P_INPUT, P_OUT, P_ERR, P_MASTER, P_PID, P_N };

static void poll_set(struct attach *a, struct input *in, int pidfd, struct pollfd *p)
{
	bool reading = a->with_stdin && !in->done && !in->eof && in->len == 0;

	p[P_STDIN] = (struct pollfd){ reading ? STDIN_FILENO : -1, POLLIN, 0 };
	p[P_INPUT] = (struct pollfd){ !in->done && in->len > 0 ? in->to : -1, POLLOUT, 0 };
	p[P_OUT] = (struct pollfd){ a->out, POLLIN, 0 };
	p[P_ERR] = (struct pollfd){ a->err, POLLIN, 0 };
	p[P_MASTER] = (struct pollfd){ in->pty_out ? a->master : -1, POLLIN, 0 };
	p[P_PID] = (struct pollfd){ pidfd, POLLIN, 0 };
}

static void relay_once(struct attach *a, struct input *in, struct pollfd *p)
{
	if (p[P_STDIN].revents)
		input_read(in);
	if (p[P_INPUT].revents & POLLOUT)
		input_write(a, in);
	else if (p[P_INPUT].revents & (POLLERR | POLLHUP))
		input_write(a, in); /* fails: the command closed its stdin */
	if (in->eof && in->len == 0 && !in->done)
		input_eof(a, in);
	if (p[P_OUT].revents && !copy_out(a->out, STDOUT_FILENO))
		close_fd(&a->out);
	if (p[P_ERR].revents && !copy_out(a->err, STDERR_FILENO))
		close_fd(&a->err);
	if (p[P_MASTER].revents && !copy_out(a->master, STDOUT_FILENO))
		in->pty_out = false; /* the master stays, for the input */
}

int attach_relay(struct attach *a, int pidfd, slate_error_t *err)
{
	struct sigaction sa = { .sa_handler = on_winch }, ign = { .sa_handler = SIG_IGN };
	struct input *in = xcalloc(1, sizeof(*in));
	sigset_t block, old, during;
	int r = 0;

	in->to = a->tty ? a->master : a->in;
	in->pty_out = a->master >= 0;
	if (a->in >= 0 && fcntl(a->in, F_SETFL, O_NONBLOCK) < 0) {
		free(in);
		return slate_error_sys(err, errno, "set the stdin pipe non-blocking");
	}
	sigaction(SIGPIPE, &ign, NULL); /* a reader gone is an EPIPE, handled */
	sigemptyset(&block);
	sigaddset(&block, SIGWINCH);
	sigprocmask(SIG_BLOCK, &block, &old);
	during = old;
	sigdelset(&during, SIGWINCH);
	if (a->tty)
		sigaction(SIGWINCH, &sa, NULL);
	for (;;) {
		struct pollfd p[P_N];
		poll_set(a, in, pidfd, p);
		if (ppoll(p, P_N, NULL, &during) < 0) {
			if (errno != EINTR) {
				r = slate_error_sys(err, errno, "poll");
				break;
			}
		} else {
			if (p[P_PID].revents)
				break;
			relay_once(a, in, p);
		}
		if (winch) {
			winch = 0;
			if (ioctl(STDIN_FILENO, TIOCGWINSZ, &a->ws) == 0 ||
			    ioctl(STDOUT_FILENO, TIOCGWINSZ, &a->ws) == 0)
				ioctl(a->master, TIOCSWINSZ, &a->ws);
		}
	}
	drain(a->out, STDOUT_FILENO, drain_budget(a->out, false));
	drain(a->err, STDERR_FILENO, drain_budget(a->err, false));
	if (in->pty_out)
		drain(a->master, STDOUT_FILENO, PTY_DRAIN_MAX);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGWINCH, &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(in);
	return r;
}

int attach_open_null(int flags, slate_error_t *err)
{
	struct stat st;
	int fd = open("/dev/null", flags | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return slate_error_sys(err, errno, "open the instance's /dev/null");
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
		close(fd);
		return slate_error_refuse(err, "the instance's /dev/null is not the null device");
	}
	return fd;
}

/* Unix 98 ptys: major 5, minor 2 is a devpts instance's ptmx. */
int attach_pty_open(const struct winsize *ws, slate_error_t *err)
{
	cleanup_close int master = open("/dev/pts/ptmx", O_RDWR | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	cleanup_close int slave = -1;
	struct stat st;
	int unlock = 0;

	if (master < 0)
		return slate_error_sys(err, errno, "open the instance's /dev/pts/ptmx");
	if (fstat(master, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(5, 2))
		return slate_error_refuse(err, "the instance's /dev/pts/ptmx is not a pty multiplexer");
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		return slate_error_sys(err, errno, "unlock the pty");
	slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return slate_error_sys(err, errno, "open the pty's slave");
	if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
		return slate_error_sys(err, errno, "make the pty the controlling terminal");
	if (ws && ioctl(slave, TIOCSWINSZ, ws) < 0)
		return slate_error_sys(err, errno, "set the pty's window size");
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			return slate_error_sys(err, errno, "dup2");
	return steal_fd(&master);
}

int attach_send_msg_fd(int sock, const void *msg, size_t len, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)msg, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

int attach_send_fd(int sock, int fd, slate_error_t *err)
{
	slate_error_t ok = { 0 };

	if (attach_send_msg_fd(sock, &ok, sizeof(ok), fd) < 0)
		return slate_error_sys(err, errno, "send the pty");
	return 0;
}

void attach_send_error(int sock, const slate_error_t *e)
{
	(void)!send(sock, e, sizeof(*e), MSG_NOSIGNAL);
}

int attach_recv_fd(int sock, slate_error_t *err)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	slate_error_t reply = { 0 };
	struct iovec iov = { &reply, sizeof(reply) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;
	ssize_t n;
	int fd = -1;

	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (fd >= 0)
		return fd;
	if (n == (ssize_t)sizeof(reply) && reply.kind != 0) {
		reply.msg[sizeof(reply.msg) - 1] = '\0';
		*err = reply;
		return -1;
	}
	return slate_error_fail(err, "the command did not start (no pty)");
}
