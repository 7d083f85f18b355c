/* Unit tests for runtime/attach.c, the relay of a command's stdio.
 *
 * - attach_open_null refuses a /dev/null that is not the null device
 *   (/dev/zero bound over it in a mount namespace made here), and
 *   attach_pty_open a /dev/pts/ptmx that is not a pty multiplexer; on the
 *   real ones both work, the pty becoming stdio and controlling terminal
 *   of a new session with the window size given.
 * - attach_relay: 1 MiB of random bytes through stdin and back on stdout
 *   intact, stdin's EOF passed on, stderr apart, the command's exit status;
 *   a process that keeps writing into the command's stdout for 3 s after
 *   the command exited does not hold the relay (it returns within 2.5 s:
 *   a drain that waited for EOF fails here).
 * - attach_send_fd / attach_send_error / attach_recv_fd.
 *
 * Everything that changes namespaces, sessions or fds 0-2 runs in a forked
 * child, which reports by its exit status (0: as expected; else the number
 * of the check that failed). Needs root. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "attach.h"
#include "testutil.h"

/* Runs fn in a child; its exit status must be 0. */
static void in_child(int (*fn)(void *), void *arg)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("child check failed: status 0x%x (exit %d)", status, WEXITSTATUS(status));
}

/* A private mount namespace with src bound onto dst. */
static int bind_over(const char *src, const char *dst)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	return mount(src, dst, NULL, MS_BIND, NULL);
}

static int null_checked(void *arg)
{
	slate_error_t err = { 0 };
	int fd = attach_open_null(O_RDONLY, &err);

	(void)arg;
	if (fd < 0)
		return 1;
	close(fd);
	if (bind_over("/dev/zero", "/dev/null") < 0)
		return 2;
	if (attach_open_null(O_RDONLY, &err) >= 0)
		return 3;
	if (err.kind != SLATE_EXIT_REFUSED || strstr(err.msg, "not the null device") == NULL)
		return 4;
	return 0;
}

static void test_null_is_checked(void **state)
{
	(void)state;
	in_child(null_checked, NULL);
}

static int ptmx_checked(void *arg)
{
	slate_error_t err = { 0 };

	(void)arg;
	if (bind_over("/dev/null", "/dev/pts/ptmx") < 0)
		return 1;
	if (attach_pty_open(NULL, &err) >= 0)
		return 2;
	if (err.kind != SLATE_EXIT_REFUSED || strstr(err.msg, "not a pty multiplexer") == NULL)
		return 3;
	return 0;
}

static void test_ptmx_is_checked(void **state)
{
	(void)state;
	in_child(ptmx_checked, NULL);
}

static int pty_opened(void *arg)
{
	struct winsize ws = { .ws_row = 24, .ws_col = 81 }, got = { 0 };
	slate_error_t err = { 0 };
	int master;

	(void)arg;
	master = attach_pty_open(&ws, &err);
	if (master < 0)
		return 1;
	for (int i = 0; i < 3; i++)
		if (!isatty(i))
			return 2;
	if (getsid(0) != getpid() || tcgetpgrp(0) != getpgrp())
		return 3;
	if (ioctl(0, TIOCGWINSZ, &got) < 0 || got.ws_row != 24 || got.ws_col != 81)
		return 4;
	if ((fcntl(master, F_GETFD) & FD_CLOEXEC) == 0)
		return 5;
	return 0;
}

static void test_pty_open(void **state)
{
	(void)state;
	in_child(pty_opened, NULL);
}

/* The command: stdin to stdout until EOF, "err" on stderr, exit 7; with
 * keep_writing, a grandchild goes on writing into stdout for 3 s. */
static void command(bool keep_writing)
{
	char buf[8192];
	ssize_t n;

	while ((n = read(0, buf, sizeof(buf))) > 0)
		if (write(1, buf, (size_t)n) != n)
			_exit(20);
	if (write(2, "err", 3) != 3)
		_exit(21);
	if (keep_writing && fork() == 0) {
		memset(buf, 'g', sizeof(buf));
		alarm(3);
		for (;;)
			if (write(1, buf, sizeof(buf)) < 0)
				_exit(0);
	}
	_exit(7);
}

struct relay_case {
	const char *in, *out, *err;
	bool keep_writing;
	double seconds; /* how long attach_relay took */
};

static int relay_run(void *arg)
{
	struct relay_case *c = arg;
	struct attach a;
	slate_error_t err = { 0 };
	struct timespec t0, t1;
	int status = 0, pidfd;
	pid_t pid;

	if (dup2(open(c->in, O_RDONLY), 0) < 0 || dup2(open(c->out, O_WRONLY | O_TRUNC), 1) < 0 ||
	    dup2(open(c->err, O_WRONLY | O_TRUNC), 2) < 0)
		return 1;
	if (attach_init(&a, true, false, &err) < 0)
		return 2;
	pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 3; i++)
			dup2(a.cmd[i], i);
		attach_close_relay(&a);
		attach_close_cmd(&a);
		command(c->keep_writing);
	}
	attach_close_cmd(&a);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pidfd < 0 || attach_relay(&a, pidfd, &err) < 0)
		return 3;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	attach_free(&a);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 7)
		return 4;
	/* What the grandchild wrote during the 3 s it may live, at most. */
	if (c->keep_writing && (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > 2500)
		return 5;
	return 0;
}

static void relay_case(const char *dir, bool keep_writing, size_t *out_size)
{
	cleanup_free char *in = path_join(dir, "in"), *out = path_join(dir, "out"), *errp = path_join(dir, "err");
	struct relay_case c = { in, out, errp, keep_writing, 0 };
	cleanup_free char *got = NULL, *gerr = NULL;
	char *data = xmalloc(1 << 20);
	struct stat st;
	FILE *f;

	for (size_t i = 0; i < (1 << 20); i++)
		data[i] = (char)(rand() & 0xff);
	f = fopen(in, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, 1 << 20, f), 1 << 20);
	fclose(f);
	write_text(out, "");
	write_text(errp, "");
	in_child(relay_run, &c);
	assert_int_equal(stat(out, &st), 0);
	*out_size = (size_t)st.st_size;
	f = fopen(out, "r");
	assert_non_null(f);
	got = xmalloc(1 << 20);
	assert_int_equal(fread(got, 1, 1 << 20, f), 1 << 20);
	fclose(f);
	assert_memory_equal(got, data, 1 << 20);
	gerr = read_text(errp);
	assert_string_equal(gerr, "err");
	free(data);
}

static void test_relay_bytes_eof_status(void **state)
{
	size_t size = 0;

	relay_case(*state, false, &size);
	assert_int_equal(size, 1 << 20);
}

static void test_relay_not_held_by_a_writer(void **state)
{
	size_t size = 0;

	/* The time check is in relay_run; what the writer got through while the
	 * command lived is not bounded (it shares the command's stdout). */
	relay_case(*state, true, &size);
	assert_true(size >= 1 << 20);
}

static void test_send_recv(void **state)
{
	slate_error_t err = { 0 }, why = { 0 };
	int sv[2], fd;
	struct stat a, b;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(attach_send_fd(sv[0], 0, &err), 0);
	fd = attach_recv_fd(sv[1], &err);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(fstat(0, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	close(fd);
	slate_error_refuse(&why, "no pty here");
	attach_send_error(sv[0], &why);
	assert_int_equal(attach_recv_fd(sv[1], &err), -1);
	assert_refused(&err, "no pty here");
	close(sv[0]);
	err = (slate_error_t){ 0 };
	assert_int_equal(attach_recv_fd(sv[1], &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "did not start");
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_is_checked),
		cmocka_unit_test(test_ptmx_is_checked),
		cmocka_unit_test(test_pty_open),
		cmocka_unit_test_setup_teardown(test_relay_bytes_eof_status, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_relay_not_held_by_a_writer, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test(test_send_recv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
