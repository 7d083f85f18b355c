/* Unit tests for runtime/seccomp.c: profile compilation and its refusals,
 * the BPF cache, and the default filter really loaded into the kernel.
 *
 * Method (bubblewrap's try-syscall): a forked child sets no_new_privs,
 * installs the filter and calls syscalls with bad pointers or arguments, so
 * that an allowed call fails with EFAULT/EBADF/EINVAL and a filtered one
 * with EPERM. The same probes run in an unfiltered child too: as root, the
 * kernel itself answers none of them with EPERM, so every EPERM seen under
 * the filter comes from the filter. Results travel back through a pipe. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "seccomp.h"
#include "slate/json.h"
#include "slate/util.h"

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#define NETLINK_ROUTE 0
#define NETLINK_NETFILTER 12

/* ---- a child that runs probes, with or without a filter ---- */

#define MAX_RESULTS 1024

struct results {
	int n;
	int installed; /* 1 if the filter was installed, -1 if install failed */
	char msg[SLATE_ERROR_MSG_MAX];
	long ret[MAX_RESULTS];
	int err[MAX_RESULTS];
};

typedef void (*probe_fn)(struct results *r, void *arg);

static void rec(struct results *r, long ret, int e)
{
	if (r->n < MAX_RESULTS) {
		r->ret[r->n] = ret;
		r->err[r->n] = ret == -1 ? e : 0;
	}
	r->n++;
}

/* syscall(2), recording its result and errno. */
#define PROBE(r, ...)                                                                                                  \
	do {                                                                                                           \
		errno = 0;                                                                                             \
		long probe_ret_ = syscall(__VA_ARGS__);                                                                \
		rec((r), probe_ret_, errno);                                                                           \
	} while (0)

/* Leave the child without running exit hooks: a sanitizer's leak check at
 * _exit would make syscalls that a minimal filter refuses. */
static void child_exit(int code)
{
	syscall(SYS_exit_group, code);
	abort();
}

/* Fork a child that (if s) sets no_new_privs (if nnp) and installs s, runs
 * fn, and sends back what it saw. After the install it needs only write
 * and exit_group (and, under ASan, sigaltstack before a noreturn call), so
 * a minimal allowlist works too. */
static void run_child(const struct slate_seccomp *s, bool nnp, probe_fn fn, void *arg, struct results *out)
{
	static struct results r; /* the child's copy: no large stack frame */
	int fds[2], status = 0;
	pid_t pid;
	ssize_t got = 0, n;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		slate_error_t err = { 0 };
		memset(&r, 0, sizeof(r));
		close(fds[0]);
		if (s && nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
			child_exit(90);
		if (s) {
			r.installed = slate_seccomp_install(s, &err) == 0 ? 1 : -1;
			memcpy(r.msg, err.msg, sizeof(r.msg));
		}
		if (r.installed >= 0)
			fn(&r, arg);
		if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
			child_exit(91);
		child_exit(0);
	}
	close(fds[1]);
	memset(out, 0, sizeof(*out));
	while ((n = read(fds[0], (char *)out + got, sizeof(*out) - (size_t)got)) > 0)
		got += n;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("probe child ended with status 0x%x", status);
	assert_int_equal(got, sizeof(*out));
	assert_true(out->n <= MAX_RESULTS);
}

/* valgrind does not pass seccomp(2) to the kernel (nor x32 syscalls, nor
 * int $0x80): tests that load a filter skip under it, before they
 * allocate anything. */
static void skip_under_valgrind(void)
{
	if (RUNNING_ON_VALGRIND)
		skip();
}

static void prepare_default(struct slate_seccomp *s)
{
	slate_error_t err = { 0 };

	if (slate_seccomp_prepare(NULL, NULL, s, &err) != 0)
		fail_msg("prepare the default profile: %s", err.msg);
}

/* ---- the probes ---- */

struct sysprobe {
	const char *name;
	long nr;
	long a[6];
};

/* Each refused syscall of the default profile, with arguments under which
 * the kernel itself would fail harmlessly (bad pointer, bad fd, bad flags)
 * if the filter let the call through. */
static const struct sysprobe refused[] = {
	{ "mount", SYS_mount, { 0, 0, 0, 0, 0 } },
	{ "umount2", SYS_umount2, { 0, 0 } },
	{ "pivot_root", SYS_pivot_root, { 0, 0 } },
	{ "unshare", SYS_unshare, { 0 } },
	{ "setns", SYS_setns, { -1, 0 } },
	{ "keyctl", SYS_keyctl, { 9999, 0, 0, 0, 0 } },
	{ "add_key", SYS_add_key, { 0, 0, 0, 0, 0 } },
	{ "request_key", SYS_request_key, { 0, 0, 0, 0 } },
	{ "bpf", SYS_bpf, { 0, 0, 0 } },
	{ "perf_event_open", SYS_perf_event_open, { 0, 0, -1, -1, 0 } },
	{ "userfaultfd", SYS_userfaultfd, { -1 } },
	{ "kexec_load", SYS_kexec_load, { 0, 0, 0, 0xdead0000 } },
	{ "kexec_file_load", SYS_kexec_file_load, { -1, -1, 0, 0, 0xdead0000 } },
	{ "init_module", SYS_init_module, { 0, 0, 0 } },
	{ "finit_module", SYS_finit_module, { -1, 0, 0 } },
	{ "delete_module", SYS_delete_module, { 0, 0 } },
	{ "open_by_handle_at", SYS_open_by_handle_at, { -1, 0, 0 } },
	{ "acct", SYS_acct, { 1 } },
	{ "iopl", SYS_iopl, { 4 } },
	{ "ioperm", SYS_ioperm, { 0x7fffffff, 1, 0 } },
	{ "modify_ldt", SYS_modify_ldt, { 0, 0, 0 } },
	{ "swapon", SYS_swapon, { 0, 0 } },
	{ "swapoff", SYS_swapoff, { 0 } },
	{ "reboot", SYS_reboot, { 0, 0, 0, 0 } },
	{ "io_uring_setup", SYS_io_uring_setup, { 0, 0 } },
	{ "io_uring_enter", SYS_io_uring_enter, { -1, 0, 0, 0, 0, 0 } },
	{ "io_uring_register", SYS_io_uring_register, { -1, 0, 0, 0 } },
	{ "clone3", SYS_clone3, { 0, 0 } },
};
#define N_REFUSED (sizeof(refused) / sizeof(refused[0]))

static void probe_refused(struct results *r, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < N_REFUSED; i++) {
		const long *a = refused[i].a;
		PROBE(r, refused[i].nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	}
}

static void test_default_refuses(void **state)
{
	struct slate_seccomp s = { 0 };
	struct results got, control;

	(void)state;
	skip_under_valgrind();
	prepare_default(&s);
	run_child(&s, true, probe_refused, NULL, &got);
	assert_int_equal(got.installed, 1);
	assert_int_equal(got.n, N_REFUSED);
	for (size_t i = 0; i < N_REFUSED; i++) {
		int want = strcmp(refused[i].name, "clone3") == 0 ? ENOSYS : EPERM;
		if (got.ret[i] != -1 || got.err[i] != want)
			fail_msg("%s under the filter: returned %ld, errno %d (%s), want %s", refused[i].name,
				 got.ret[i], got.err[i], strerror(got.err[i]), strerror(want));
	}
	if (geteuid() == 0) {
		run_child(NULL, false, probe_refused, NULL, &control);
		for (size_t i = 0; i < N_REFUSED; i++)
			if (control.ret[i] == -1 && control.err[i] == got.err[i])
				fail_msg("%s without a filter also fails with %s: the probe proves nothing",
					 refused[i].name, strerror(control.err[i]));
	}
	slate_seccomp_free(&s);
}

static void probe_allowed(struct results *r, void *arg)
{
	int status = 0;
	pid_t pid;

	(void)arg;
	PROBE(r, SYS_getpid);
	PROBE(r, SYS_uname, 0);
	PROBE(r, SYS_close, -1);
	PROBE(r, SYS_personality, 0xffffffffL);
	PROBE(r, SYS_personality, 0x0006L); /* PER_BSD: not in the list */
	pid = fork();
	if (pid == 0)
		child_exit(7);
	rec(r, pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1, errno);
}

static void test_default_allows(void **state)
{
	struct slate_seccomp s = { 0 };
	struct results got;

	(void)state;
	skip_under_valgrind();
	prepare_default(&s);
	run_child(&s, true, probe_allowed, NULL, &got);
	assert_int_equal(got.installed, 1);
	assert_true(got.ret[0] > 0); /* getpid */
	assert_int_equal(got.err[1], EFAULT);
	assert_int_equal(got.err[2], EBADF);
	assert_true(got.ret[3] >= 0); /* personality query */
	assert_int_equal(got.err[4], EPERM);
	assert_int_equal(got.ret[5], 7); /* fork, and the child's exit status */
	slate_seccomp_free(&s);
}

static const unsigned long ns_flags[] = { CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
					  CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET };
#define N_NS (sizeof(ns_flags) / sizeof(ns_flags[0]))

/* A raw clone that behaves like fork: the child leaves at once. */
static void probe_clone(struct results *r, unsigned long flags)
{
	int status = 0;
	long pid;

	errno = 0;
	pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		child_exit(0);
	rec(r, pid > 0 ? 0 : -1, errno);
	if (pid > 0)
		waitpid((pid_t)pid, &status, 0);
}

static void probe_namespaces(struct results *r, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < N_NS; i++)
		probe_clone(r, ns_flags[i]);
	probe_clone(r, CLONE_NEWUSER | (1UL << 32));
	probe_clone(r, 0);
	probe_clone(r, 1UL << 32); /* high bits that the kernel ignores */
	PROBE(r, SYS_unshare, 0);
	PROBE(r, SYS_unshare, CLONE_NEWUSER);
	PROBE(r, SYS_setns, -1, 0);
	PROBE(r, SYS_clone3, 0, 0);
}

static void test_default_namespaces(void **state)
{
	struct slate_seccomp s = { 0 };
	struct results got;
	size_t i;

	(void)state;
	skip_under_valgrind();
	prepare_default(&s);
	run_child(&s, true, probe_namespaces, NULL, &got);
	assert_int_equal(got.installed, 1);
	for (i = 0; i < N_NS; i++)
		if (got.ret[i] != -1 || got.err[i] != EPERM)
			fail_msg("clone with flag 0x%lx: errno %d, want EPERM", ns_flags[i], got.err[i]);
	assert_int_equal(got.err[i++], EPERM); /* CLONE_NEWUSER | high bit */
	assert_int_equal(got.ret[i++], 0); /* clone without namespace flags */
	assert_int_equal(got.ret[i++], 0); /* ... with high bits */
	assert_int_equal(got.err[i++], EPERM); /* unshare(0) */
	assert_int_equal(got.err[i++], EPERM); /* unshare(CLONE_NEWUSER) */
	assert_int_equal(got.err[i++], EPERM); /* setns */
	assert_int_equal(got.err[i++], ENOSYS); /* clone3 */
	assert_int_equal(got.n, i);
	slate_seccomp_free(&s);
}

/* ---- ioctl: TIOCSTI and TIOCLINUX refused on their low 32 bits ---- */

static const unsigned long ioctl_highs[] = { 0, 1, 0x80000000UL, 0xffffffffUL };
#define N_HIGHS (sizeof(ioctl_highs) / sizeof(ioctl_highs[0]))
static const unsigned long excluded[] = { TIOCSTI, TIOCLINUX };

/* Requests near the excluded ones, and each excluded one with a single
 * bit flipped (which lands in every cube of the complement that slate
 * compiles), each with several high halves. */
static size_t ioctl_cmds(unsigned long *out)
{
	size_t n = 0;

	for (size_t e = 0; e < 2; e++)
		for (size_t h = 0; h < N_HIGHS; h++) {
			for (long d = -24; d <= 24; d++)
				out[n++] = ioctl_highs[h] << 32 | (unsigned long)((long)excluded[e] + d);
			for (int b = 0; b < 32; b++)
				out[n++] = ioctl_highs[h] << 32 | (excluded[e] ^ (1UL << b));
		}
	return n;
}

static void probe_ioctl(struct results *r, void *arg)
{
	unsigned long cmds[2 * N_HIGHS * (49 + 32)];
	size_t n = ioctl_cmds(cmds);
	int fds[2], avail = -1;

	(void)arg;
	if (pipe(fds) != 0 || write(fds[1], "abc", 3) != 3)
		child_exit(92);
	PROBE(r, SYS_ioctl, fds[0], FIONREAD, &avail);
	rec(r, avail, 0);
	PROBE(r, SYS_ioctl, fds[0], TCGETS, 0);
	for (size_t i = 0; i < n; i++)
		PROBE(r, SYS_ioctl, fds[0], cmds[i], 0);
}

static void test_default_ioctl(void **state)
{
	unsigned long cmds[2 * N_HIGHS * (49 + 32)];
	size_t n = ioctl_cmds(cmds), eperm = 0;
	struct slate_seccomp s = { 0 };
	struct results got, control;

	(void)state;
	skip_under_valgrind();
	prepare_default(&s);
	run_child(&s, true, probe_ioctl, NULL, &got);
	assert_int_equal(got.installed, 1);
	assert_int_equal(got.n, n + 3);
	assert_int_equal(got.ret[0], 0); /* FIONREAD works ... */
	assert_int_equal(got.ret[1], 3); /* ... and sees the 3 bytes */
	assert_int_equal(got.err[2], ENOTTY);
	for (size_t i = 0; i < n; i++) {
		unsigned long low = cmds[i] & 0xffffffffUL;
		bool want_eperm = low == TIOCSTI || low == TIOCLINUX;
		if ((got.err[i + 3] == EPERM) != want_eperm)
			fail_msg("ioctl 0x%lx: errno %d (%s), want %s", cmds[i], got.err[i + 3],
				 strerror(got.err[i + 3]), want_eperm ? "EPERM" : "not EPERM");
		eperm += want_eperm;
	}
	assert_int_equal(eperm, 4 * N_HIGHS); /* each is also within 24 of the other */
	if (geteuid() == 0) { /* the kernel alone answers none of them with EPERM */
		run_child(NULL, false, probe_ioctl, NULL, &control);
		for (size_t i = 0; i < n; i++)
			if (control.err[i + 3] == EPERM)
				fail_msg("ioctl 0x%lx fails with EPERM without a filter", cmds[i]);
	}
	slate_seccomp_free(&s);
}

/* ---- sockets: families AF_UNIX, AF_INET, AF_INET6, netlink route ---- */

static void probe_socket(struct results *r, long family, long type, long proto)
{
	long fd;

	errno = 0;
	fd = syscall(SYS_socket, family, type | SOCK_CLOEXEC, proto);
	rec(r, fd >= 0 ? 0 : -1, errno);
	if (fd >= 0)
		close((int)fd);
}

static void probe_sockets(struct results *r, void *arg)
{
	(void)arg;
	probe_socket(r, AF_UNIX, SOCK_STREAM, 0);
	probe_socket(r, AF_INET, SOCK_STREAM, 0);
	probe_socket(r, AF_INET6, SOCK_DGRAM, 0);
	probe_socket(r, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	probe_socket(r, AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
	probe_socket(r, AF_PACKET, SOCK_RAW, 0);
	probe_socket(r, AF_VSOCK, SOCK_STREAM, 0);
	probe_socket(r, AF_ALG, SOCK_SEQPACKET, 0);
	probe_socket(r, (long)(AF_INET | (1UL << 32)), SOCK_STREAM, 0);
}

static void test_default_sockets(void **state)
{
	struct slate_seccomp s = { 0 };
	struct results got;

	(void)state;
	skip_under_valgrind();
	prepare_default(&s);
	run_child(&s, true, probe_sockets, NULL, &got);
	assert_int_equal(got.installed, 1);
	assert_int_equal(got.err[0], 0);
	assert_int_equal(got.err[1], 0);
	assert_true(got.err[2] != EPERM); /* 0, or EAFNOSUPPORT without IPv6 */
	assert_int_equal(got.err[3], 0);
	for (int i = 4; i < 9; i++)
		if (got.err[i] != EPERM)
			fail_msg("socket probe %d: errno %d, want EPERM", i, got.err[i]);
	slate_seccomp_free(&s);
}

/* ---- the other ABIs: x32 and i386 ---- */

/* An i386 syscall from 64-bit code: int $0x80 enters the kernel's 32-bit
 * table, and seccomp sees AUDIT_ARCH_I386. r8-r15 come back zeroed. */
static long int80(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory", "cc", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15");
	return ret;
}

static void probe_abis(struct results *r, void *arg)
{
	(void)arg;
	PROBE(r, __X32_SYSCALL_BIT | SYS_mount, 0, 0, 0, 0, 0);
	PROBE(r, __X32_SYSCALL_BIT | SYS_getpid);
	PROBE(r, __X32_SYSCALL_BIT | SYS_unshare, 0);
	rec(r, int80(20, 0, 0, 0), 0); /* i386 getpid */
	rec(r, int80(21, 0, 0, 0), 0); /* i386 mount */
	rec(r, int80(310, 0, 0, 0), 0); /* i386 unshare(0) */
}

static void test_other_abis(void **state)
{
	struct slate_seccomp s = { 0 };
	struct results got, control;

	(void)state;
	skip_under_valgrind();
	prepare_default(&s);
	run_child(&s, true, probe_abis, NULL, &got);
	assert_int_equal(got.installed, 1);
	for (int i = 0; i < 3; i++)
		if (got.err[i] != EPERM)
			fail_msg("x32 probe %d: errno %d, want EPERM", i, got.err[i]);
	for (int i = 3; i < 6; i++)
		if (got.ret[i] != -EPERM)
			fail_msg("i386 probe %d: returned %ld, want -EPERM", i, got.ret[i]);
	/* Without the filter, the kernel (here without x32 support) says ENOSYS
	 * to x32 and, with ia32 emulation, runs i386 getpid. */
	run_child(NULL, false, probe_abis, NULL, &control);
	for (int i = 0; i < 3; i++)
		assert_true(control.err[i] != EPERM);
	if (control.ret[3] == -ENOSYS)
		print_message("# ia32 emulation is off: the i386 probes only show the filter\n");
	else
		assert_true(control.ret[3] > 0);
	slate_seccomp_free(&s);
}

/* The default profile with the i386 ABI under the rules instead of
 * refused: what `"x86": "rules"` gives. */
static char *write_x86_rules_profile(const char *dir)
{
	size_t len = 0;
	const char *bytes = slate_seccomp_default_profile(&len);
	json_error_t jerr;
	json_t *root = json_loadb(bytes, len, 0, &jerr);
	char *path = xasprintf("%s/x86-rules.json", dir);

	assert_non_null(root);
	assert_int_equal(json_object_set_new(json_object_get(root, "architectures"), "x86", json_string("rules")), 0);
	assert_int_equal(json_dump_file(root, path, 0), 0);
	json_decref(root);
	return path;
}

static void probe_i386(struct results *r, void *arg)
{
	int fds[2];
	long ret;

	(void)arg;
	if (pipe(fds) != 0)
		child_exit(94);
	rec(r, int80(20, 0, 0, 0), 0); /* getpid */
	rec(r, int80(21, 0, 0, 0), 0); /* mount */
	rec(r, int80(310, 0, 0, 0), 0); /* unshare(0) */
	ret = int80(120, CLONE_NEWUSER | SIGCHLD, 0, 0);
	if (ret == 0)
		child_exit(0);
	rec(r, ret, 0);
	rec(r, int80(54, fds[0], TIOCSTI, 0), 0); /* ioctl */
	rec(r, int80(54, fds[0], FIONREAD, 0), 0); /* ioctl, allowed: EFAULT */
	rec(r, int80(359, AF_INET, SOCK_STREAM, 0), 0); /* socket */
	rec(r, int80(102, 1, 0, 0), 0); /* socketcall(SYS_SOCKET) */
	rec(r, int80(102, 2, 0, 0), 0); /* socketcall(SYS_BIND): EFAULT */
	rec(r, int80(102, 8, 0, 0), 0); /* socketcall(SYS_SOCKETPAIR): EFAULT */
	rec(r, int80(140, -1, 0, 0), 0); /* _llseek: EBADF */
	rec(r, int80(197, -1, 0, 0), 0); /* fstat64: EBADF */
	rec(r, int80(117, 1, -1, 0), 0); /* ipc(SEMOP, -1, 0): EINVAL */
	rec(r, int80(117, 9999, 0, 0), 0); /* ipc(9999): no such subcall */
	rec(r, int80(136, 6, 0, 0), 0); /* personality(PER_BSD) */
}

static void test_x86_rules(void **state)
{
	static const long want[] = { 0 /* pid */, -EPERM,  -EPERM, -EPERM, -EPERM,  -EFAULT, -EPERM, -EPERM,
				     -EFAULT,     -EFAULT, -EBADF, -EBADF, -EINVAL, -EPERM,  -EPERM };
	const char *dir = *state;
	cleanup_free char *path = NULL;
	struct slate_seccomp s = { 0 };
	slate_error_t err = { 0 };
	struct results got, control;

	skip_under_valgrind();
	run_child(NULL, false, probe_i386, NULL, &control);
	if (control.ret[0] == -ENOSYS)
		skip(); /* no ia32 emulation in this kernel */
	path = write_x86_rules_profile(dir);
	if (slate_seccomp_prepare(path, NULL, &s, &err) != 0)
		fail_msg("%s", err.msg);
	run_child(&s, true, probe_i386, NULL, &got);
	assert_int_equal(got.installed, 1);
	assert_int_equal(got.n, sizeof(want) / sizeof(want[0]));
	assert_true(got.ret[0] > 0);
	for (int i = 1; i < got.n; i++)
		if (got.ret[i] != want[i])
			fail_msg("i386 probe %d: returned %ld, want %ld (without a filter: %ld)", i, got.ret[i],
				 want[i], control.ret[i]);
	slate_seccomp_free(&s);
}

/* ---- installing ---- */

static void probe_nothing(struct results *r, void *arg)
{
	(void)r;
	(void)arg;
}

static void test_install_needs_no_new_privs(void **state)
{
	struct slate_seccomp s = { 0 };
	struct results got;

	(void)state;
	skip_under_valgrind();
	/* Under a sandbox that already set no_new_privs (bwrap does), it cannot be unset. */
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1)
		skip();
	prepare_default(&s);
	run_child(&s, false, probe_nothing, NULL, &got);
	assert_int_equal(got.installed, -1);
	if (strstr(got.msg, "no_new_privs") == NULL)
		fail_msg("install without no_new_privs: `%s`", got.msg);
	slate_seccomp_free(&s);
}

/* ---- custom profiles ---- */

#define ARCHES "\"architectures\": {\"x86_64\": \"rules\", \"x32\": \"refuse\", \"x86\": \"refuse\"}"
#define HEAD "{\"slate_seccomp\": 1, \"default\": {\"action\": \"errno\", \"errno\": \"EPERM\"}, " ARCHES ", "

static char *write_profile(const char *dir, const char *text)
{
	slate_error_t err = { 0 };
	char *path = xasprintf("%s/profile.json", dir);

	if (slate_write_file_atomic(path, text, strlen(text), 0644, &err) != 0)
		fail_msg("%s", err.msg);
	return path;
}

static void assert_profile_refused(const char *dir, const char *text, const char *needle)
{
	cleanup_free char *path = write_profile(dir, text);
	struct slate_seccomp s = { 0 };
	slate_error_t err = { 0 };

	if (slate_seccomp_prepare(path, NULL, &s, &err) != -1)
		fail_msg("profile accepted, want a refusal naming `%s`: %s", needle, text);
	assert_error(&err, SLATE_EXIT_REFUSED, needle);
	assert_null(s.prog.filter);
}

static void test_profile_refusals(void **state)
{
	const char *dir = *state;

	assert_profile_refused(dir, HEAD "\"rules\": [], \"rulez\": []}", "unknown key `rulez`");
	assert_profile_refused(dir, HEAD "\"rules\": [{\"action\": \"allow\", \"sycalls\": [\"read\"]}]}",
			       "unknown key `sycalls`");
	assert_profile_refused(dir, HEAD "\"rules\": [{\"action\": \"allow\", \"syscalls\": [\"read\", \"getpidd\"]}]}",
			       "unknown syscall `getpidd`");
	assert_profile_refused(dir, HEAD "\"rules\": [{\"action\": \"permit\", \"syscalls\": [\"read\"]}]}",
			       "unknown action `permit`");
	assert_profile_refused(
		dir, HEAD "\"rules\": [{\"action\": \"errno\", \"errno\": \"EWHAT\", \"syscalls\": [\"read\"]}]}",
		"unknown errno `EWHAT`");
	assert_profile_refused(dir, HEAD "\"rules\": [{\"action\": \"errno\", \"syscalls\": [\"read\"]}]}",
			       "needs an `errno`");
	assert_profile_refused(dir,
			       HEAD "\"rules\": [{\"action\": \"errno\", \"errno\": 1, \"syscalls\": [\"read\"]}]}",
			       "the default action");
	assert_profile_refused(dir, "{\"slate_seccomp\": 2}", "version 2");
	assert_profile_refused(dir, "{\"slate_seccomp\": 1, ", "invalid JSON");
	assert_profile_refused(dir,
			       "{\"slate_seccomp\": 1, \"default\": {\"action\": \"errno\", \"errno\": \"EPERM\"}, "
			       "\"architectures\": {\"x86_64\": \"rules\", \"x86\": \"refuse\"}, \"rules\": []}",
			       "missing `x32`");
	/* libseccomp would let the unconditional rule win without a word. */
	assert_profile_refused(
		dir,
		HEAD
		"\"rules\": [{\"action\": \"allow\", \"syscalls\": [\"ioctl\"]},"
		"{\"action\": \"errno\", \"errno\": \"EACCES\", \"syscalls\": [\"ioctl\"],"
		" \"args\": [{\"arg\": 1, \"op\": \"masked_eq\", \"mask\": \"0xffffffff\", \"value\": 21522}]}]}",
		"`ioctl` already has a rule");
	assert_profile_refused(
		dir, HEAD "\"refuse\": [\"mount\"], \"rules\": [{\"action\": \"allow\", \"syscalls\": [\"mount\"]}]}",
		"`mount` is listed in `refuse`");
	assert_profile_refused(
		dir,
		HEAD
		"\"rules\": [{\"action\": \"allow\", \"syscalls\": [\"ioctl\"], \"args\": ["
		"{\"arg\": 1, \"op\": \"ne\", \"value\": 1}, {\"arg\": 1, \"op\": \"ne\", \"value\": 2}]}]}",
		"a second comparison on argument 1");
	assert_profile_refused(dir,
			       HEAD
			       "\"rules\": [{\"action\": \"allow\", \"syscalls\": [\"ioctl\"], "
			       "\"unless\": {\"arg\": 1, \"mask\": \"0xff\", \"values\": [\"0x5412\"]}}]}",
			       "bits outside the mask");
	assert_profile_refused(dir,
			       HEAD
			       "\"rules\": [{\"action\": \"allow\", \"syscalls\": [\"clone\"], \"args\": ["
			       "{\"arg\": 0, \"op\": \"masked_eq\", \"mask\": \"0xff\", \"value\": \"0x100\"}]}]}",
			       "never matches");
	assert_profile_refused(dir, HEAD "\"refuse\": [\"mountt\"], \"rules\": []}", "unknown syscall `mountt`");
	assert_profile_refused(dir,
			       HEAD
			       "\"rules\": [{\"action\": \"allow\", \"syscalls\": [\"personality\"], \"args\": ["
			       "{\"arg\": 0, \"op\": \"ne\", \"value\": [1, 2]}]}]}",
			       "a list of values needs op");
}

static void probe_minimal(struct results *r, void *arg)
{
	(void)arg;
	PROBE(r, SYS_getpid);
	PROBE(r, SYS_write, -1, "", 0);
}

static void test_profile_minimal(void **state)
{
	const char *dir = *state;
	cleanup_free char *path = NULL;
	struct slate_seccomp s = { 0 };
	slate_error_t err = { 0 };
	struct results got;

	skip_under_valgrind();
	path = write_profile(
		dir, HEAD
		"\"comment\": \"what the probe child needs; sanitizers call sigaltstack before a noreturn call\", "
		"\"rules\": [{\"action\": \"allow\", \"syscalls\": [\"write\", \"exit_group\", \"sigaltstack\"]}]}");
	if (slate_seccomp_prepare(path, NULL, &s, &err) != 0)
		fail_msg("%s", err.msg);
	run_child(&s, true, probe_minimal, NULL, &got);
	assert_int_equal(got.installed, 1);
	assert_int_equal(got.err[0], EPERM); /* getpid refused */
	assert_int_equal(got.err[1], EBADF); /* write allowed: the kernel saw fd -1 */
	slate_seccomp_free(&s);
}

/* ---- the cache ---- */

static char *cache_path(const char *dir, const struct slate_seccomp *s)
{
	return xasprintf("%s/%s.bpf", dir, s->index);
}

static char *read_all(const char *path, size_t *len)
{
	slate_error_t err = { 0 };
	char *bytes = slate_read_file(path, 1 << 20, len, &err);

	if (bytes == NULL)
		fail_msg("%s", err.msg);
	return bytes;
}

/* A cache file: 0600, ours, the header, the key (naming libseccomp and
 * the profile), the program at the end. */
static void assert_cache_file(const char *path, const struct slate_seccomp *s)
{
	size_t len = 0, plen = s->prog.len * sizeof(struct sock_filter);
	cleanup_free char *bytes = read_all(path, &len);
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_true(len > plen + 24);
	assert_memory_equal(bytes, "slate-seccomp\n\0\0", 16);
	assert_non_null(memmem(bytes, len - plen, "slate-seccomp-1\nlibseccomp ", 27));
	assert_non_null(memmem(bytes, len - plen, "\"slate_seccomp\"", 15));
	assert_memory_equal(bytes + len - plen, s->prog.filter, plen);
}

static void test_cache_reuse(void **state)
{
	const char *dir = *state;
	cleanup_free char *cache = xasprintf("%s/cache", dir), *path = NULL;
	struct slate_seccomp a = { 0 }, b = { 0 }, c = { 0 };
	slate_error_t err = { 0 };
	struct stat st;

	assert_int_equal(slate_seccomp_prepare(NULL, cache, &a, &err), 0);
	assert_false(a.from_cache);
	assert_int_equal(strlen(a.index), 16);
	assert_int_equal(stat(cache, &st), 0); /* created, 0700 */
	assert_int_equal(st.st_mode & 07777, 0700);
	path = cache_path(cache, &a);
	assert_cache_file(path, &a);

	assert_int_equal(slate_seccomp_prepare(NULL, cache, &b, &err), 0);
	assert_true(b.from_cache);
	assert_string_equal(a.index, b.index);
	assert_int_equal(a.prog.len, b.prog.len);
	assert_memory_equal(a.prog.filter, b.prog.filter, a.prog.len * sizeof(struct sock_filter));

	/* Compiling is deterministic: a second compile gives the same bytes. */
	assert_int_equal(slate_seccomp_prepare(NULL, NULL, &c, &err), 0);
	assert_false(c.from_cache);
	assert_int_equal(a.prog.len, c.prog.len);
	assert_memory_equal(a.prog.filter, c.prog.filter, a.prog.len * sizeof(struct sock_filter));
	slate_seccomp_free(&a);
	slate_seccomp_free(&b);
	slate_seccomp_free(&c);
}

/* Put `len` bytes (or a symlink to `target`) at the cache path, prepare,
 * and check that the file was not used and was replaced. */
static void assert_cache_replaced(const char *cache, const char *path, const void *bytes, size_t len, mode_t mode,
				  const char *target)
{
	struct slate_seccomp s = { 0 };
	slate_error_t err = { 0 };

	unlink(path);
	if (target) {
		assert_int_equal(symlink(target, path), 0);
	} else {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		assert_true(fd >= 0);
		assert_int_equal(fchmod(fd, mode), 0);
		assert_int_equal(write(fd, bytes, len), (ssize_t)len);
		close(fd);
	}
	if (slate_seccomp_prepare(NULL, cache, &s, &err) != 0)
		fail_msg("%s", err.msg);
	assert_false(s.from_cache);
	assert_cache_file(path, &s);
	slate_seccomp_free(&s);
}

static void test_cache_ignores_bad_files(void **state)
{
	const char *dir = *state;
	cleanup_free char *cache = xasprintf("%s/cache", dir), *path = NULL, *copy = xasprintf("%s/copy.bpf", dir);
	cleanup_free char *good = NULL, *bad = NULL;
	struct slate_seccomp s = { 0 };
	slate_error_t err = { 0 };
	size_t size, glen = 0, key_at = 24, prog_at;

	assert_int_equal(slate_seccomp_prepare(NULL, cache, &s, &err), 0);
	path = cache_path(cache, &s);
	size = s.prog.len * sizeof(struct sock_filter);
	good = read_all(path, &glen);
	prog_at = glen - size;
	bad = xmalloc(glen);
#define MUTATED(what) (memcpy(bad, good, glen), (what), bad)
	assert_cache_replaced(cache, path, "", 0, 0600, NULL); /* empty */
	assert_cache_replaced(cache, path, s.prog.filter, size, 0600, NULL); /* the bare program, no key */
	assert_cache_replaced(cache, path, good, prog_at, 0600, NULL); /* the key, no program */
	assert_cache_replaced(cache, path, good, glen - 3, 0600, NULL); /* not whole instructions */
	assert_cache_replaced(cache, path, good, glen - 8, 0600, NULL); /* truncated: no final return */
	assert_cache_replaced(cache, path, MUTATED(memset(bad + prog_at, 0, size)), glen, 0600,
			      NULL); /* not a program */
	assert_cache_replaced(cache, path, MUTATED(bad[0] ^= 1), glen, 0600, NULL); /* not our magic */
	assert_cache_replaced(cache, path, MUTATED(bad[16] ^= 1), glen, 0600, NULL); /* another key length */
	/* Another key under this name (another libseccomp, another profile):
	 * its program is never taken for ours. */
	assert_cache_replaced(cache, path, MUTATED(bad[key_at + 27] ^= 1), glen, 0600, NULL);
	assert_cache_replaced(cache, path, MUTATED(bad[prog_at - 9] ^= 1), glen, 0600, NULL);
	assert_cache_replaced(cache, path, good, glen, 0644, NULL); /* readable by others */
	assert_int_equal(slate_write_file_atomic(copy, good, glen, 0600, &err), 0);
	assert_cache_replaced(cache, path, NULL, 0, 0, copy); /* a symlink, even to a good copy */
#undef MUTATED
	slate_seccomp_free(&s);
}

static void test_cache_dir_refused(void **state)
{
	const char *dir = *state;
	cleanup_free char *open_dir = xasprintf("%s/open", dir), *file = xasprintf("%s/file", dir);
	struct slate_seccomp s = { 0 };
	slate_error_t err = { 0 };

	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 0777), 0);
	assert_int_equal(slate_seccomp_prepare(NULL, open_dir, &s, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, "writable by group or others");
	assert_null(s.prog.filter);

	assert_int_equal(slate_write_file_atomic(file, "x", 1, 0600, &err), 0);
	slate_error_clear(&err);
	assert_int_equal(slate_seccomp_prepare(NULL, file, &s, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, "not a directory");

	if (geteuid() == 0) {
		assert_int_equal(chmod(open_dir, 0700), 0);
		assert_int_equal(chown(open_dir, 65534, 65534), 0);
		slate_error_clear(&err);
		assert_int_equal(slate_seccomp_prepare(NULL, open_dir, &s, &err), -1);
		assert_error(&err, SLATE_EXIT_REFUSED, "owned by uid 65534");
	}
}

/* A different profile is a different cache entry. */
static void test_cache_key_follows_profile(void **state)
{
	const char *dir = *state;
	cleanup_free char *cache = xasprintf("%s/cache", dir);
	cleanup_free char *path =
		write_profile(dir, HEAD "\"rules\": [{\"action\": \"allow\", \"syscalls\": [\"write\"]}]}");
	struct slate_seccomp a = { 0 }, b = { 0 };
	slate_error_t err = { 0 };

	assert_int_equal(slate_seccomp_prepare(NULL, cache, &a, &err), 0);
	assert_int_equal(slate_seccomp_prepare(path, cache, &b, &err), 0);
	assert_false(b.from_cache);
	assert_string_not_equal(a.index, b.index);
	assert_true(a.prog.len != b.prog.len);
	slate_seccomp_free(&a);
	slate_seccomp_free(&b);
}

/* The binary embeds the profile file as it is in the tree. */
static void test_embedded_profile_is_the_file(void **state)
{
	slate_error_t err = { 0 };
	size_t len = 0, elen = 0;
	cleanup_free char *bytes = slate_read_file("runtime/seccomp-default.json", 1 << 20, &len, &err);
	const char *embedded = slate_seccomp_default_profile(&elen);

	(void)state;
	if (bytes == NULL)
		fail_msg("%s (run the tests from the repository root)", err.msg);
	assert_int_equal(len, elen);
	assert_memory_equal(bytes, embedded, len);
}

/* ---- what it costs ---- */

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

#define LOOP 200000

static void probe_loop(struct results *r, void *arg)
{
	int fds[2], avail = 0;
	double t0;

	(void)arg;
	if (pipe(fds) != 0)
		child_exit(93);
	t0 = now_ms();
	for (int i = 0; i < LOOP; i++)
		syscall(SYS_getppid);
	rec(r, (long)((now_ms() - t0) * 1e9 / LOOP), 0); /* picoseconds per call */
	t0 = now_ms();
	for (int i = 0; i < LOOP; i++)
		syscall(SYS_ioctl, fds[0], FIONREAD, &avail);
	rec(r, (long)((now_ms() - t0) * 1e9 / LOOP), 0);
}

/* Not a pass/fail test: prints the figures for docs/BENCHMARKS.md. */
static void test_cost(void **state)
{
	const char *dir = *state;
	cleanup_free char *cache = NULL;
	struct slate_seccomp s = { 0 };
	slate_error_t err = { 0 };
	struct results with, without;
	double t0, cold, warm;
	int n_cold = 20, n_warm = 200;

	skip_under_valgrind();
	cache = xasprintf("%s/cache", dir);
	t0 = now_ms();
	for (int i = 0; i < n_cold; i++) {
		assert_int_equal(slate_seccomp_prepare(NULL, NULL, &s, &err), 0);
		slate_seccomp_free(&s);
	}
	cold = (now_ms() - t0) / n_cold;
	assert_int_equal(slate_seccomp_prepare(NULL, cache, &s, &err), 0);
	slate_seccomp_free(&s);
	t0 = now_ms();
	for (int i = 0; i < n_warm; i++) {
		assert_int_equal(slate_seccomp_prepare(NULL, cache, &s, &err), 0);
		assert_true(s.from_cache);
		if (i < n_warm - 1)
			slate_seccomp_free(&s);
	}
	warm = (now_ms() - t0) / n_warm;
	print_message(
		"# seccomp prepare, default profile (%u instructions): compile %.3f ms, from cache %.3f ms "
		"(%.0fx)\n",
		s.prog.len, cold, warm, cold / warm);
	run_child(&s, true, probe_loop, NULL, &with);
	run_child(NULL, false, probe_loop, NULL, &without);
	print_message(
		"# syscall cost, ns per call without / with the filter: getppid %.1f / %.1f (%.2fx), "
		"ioctl(FIONREAD) %.1f / %.1f (%.2fx)\n",
		without.ret[0] / 1e3, with.ret[0] / 1e3, (double)with.ret[0] / (double)without.ret[0],
		without.ret[1] / 1e3, with.ret[1] / 1e3, (double)with.ret[1] / (double)without.ret[1]);
	slate_seccomp_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded_profile_is_the_file),
		cmocka_unit_test(test_default_refuses),
		cmocka_unit_test(test_default_allows),
		cmocka_unit_test(test_default_namespaces),
		cmocka_unit_test(test_default_ioctl),
		cmocka_unit_test(test_default_sockets),
		cmocka_unit_test(test_other_abis),
		cmocka_unit_test_setup_teardown(test_x86_rules, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test(test_install_needs_no_new_privs),
		cmocka_unit_test_setup_teardown(test_profile_refusals, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_profile_minimal, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_cache_reuse, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_cache_ignores_bad_files, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_cache_dir_refused, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_cache_key_follows_profile, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_cost, tmpdir_setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
