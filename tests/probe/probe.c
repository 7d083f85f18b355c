/* probe: reports what a slate instance can do, one fact a line ("key
 * value"), for the integration tests. Packed into a test bundle and run as
 * the instance's command; built static so that it needs nothing from the
 * bundle, and built -m32 as well to check the x86 syscall ABI.
 *
 * In the spirit of bubblewrap's tests/try-syscall.c: every syscall that a
 * filter should refuse is called with a bad pointer, a bad fd or invalid
 * flags, so that if it is allowed it fails with EFAULT/EBADF/EINVAL without
 * doing anything, and a filtered one fails with EPERM. Each try_* function
 * says why it is harmless when allowed; keep it so when adding one.
 *
 * Exit status: 0 when the facts were printed (a refused operation is a
 * fact, not a failure), 1 when the probe itself failed, 2 on a usage error.
 * `exit`, `kill-self` and `memhog` exist to end otherwise. */
#define _FILE_OFFSET_BITS 64 /* -m32: overlayfs inode numbers, big files */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/keyctl.h>
#include <linux/reboot.h>
#include <linux/userfaultfd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_PROBE_FAILED 1
#define EXIT_USAGE 2

/* An address that is never mapped (below mmap_min_addr): any copy from or
 * to it fails with EFAULT. Never NULL: for some calls NULL means "default"
 * (acct(NULL) turns accounting off). */
#define BAD ((void *)1)

#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#define CLONE_ARGS_SIZE_VER2 88

#define MIB (1024 * 1024)

extern char **environ;

static const char *errname(int e)
{
	static char buf[32];
	const char *name;

	if (e == 0)
		return "OK";
	name = strerrorname_np(e);
	if (name)
		return name;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

/* Parses a non-negative decimal argument no larger than max; -1 if not. */
static long parse_num(const char *s, long max)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		return -1;
	return v;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the names in dir (without . and ..), sorted; NULL and errno set on
 * failure. *n gets the count; free with free_names. */
static char **read_names(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL, **grown;
	size_t cap = 0;

	*n = 0;
	if (!d)
		return NULL;
	while ((errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			grown = realloc(names, cap * sizeof(*names));
			if (!grown)
				break;
			names = grown;
		}
		if (!(names[*n] = strdup(de->d_name)))
			break;
		(*n)++;
	}
	closedir(d);
	if (!names)
		names = calloc(1, sizeof(*names));
	if (names)
		qsort(names, *n, sizeof(*names), cmp_str);
	return names;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- status, id, cwd, hostname, env ---- */

/* The lines of /proc/self/status the tests check, as "Key value" (the
 * colon dropped, tabs turned into spaces, trailing blanks trimmed). */
static int cmd_status(int argc, char **argv)
{
	static const char *const keys[] = { "CapInh", "CapPrm", "CapEff", "CapBnd",
					    "CapAmb", "NoNewPrivs", "Seccomp", "Uid",
					    "Gid", "Groups" };
	FILE *f = fopen("/proc/self/status", "re");
	char *line = NULL, *colon, *val, *p;
	size_t cap = 0, len;

	(void)argc, (void)argv;
	if (!f)
		return printf("status_error %s\n", errname(errno)), 0;
	while (getline(&line, &cap, f) > 0) {
		if (!(colon = strchr(line, ':')))
			continue;
		*colon = '\0';
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (strcmp(line, keys[i]) != 0)
				continue;
			for (val = colon + 1; *val == ' ' || *val == '\t'; val++)
				;
			len = strlen(val);
			while (len && (val[len - 1] == '\n' || val[len - 1] == ' ' ||
				       val[len - 1] == '\t'))
				val[--len] = '\0';
			for (p = val; *p; p++)
				if (*p == '\t')
					*p = ' ';
			printf("%s%s%s\n", line, *val ? " " : "", val);
		}
	}
	free(line);
	fclose(f);
	return 0;
}

static int cmd_id(int argc, char **argv)
{
	gid_t groups[NGROUPS_MAX];
	int n = getgroups(NGROUPS_MAX, groups);

	(void)argc, (void)argv;
	printf("uid %u\ngid %u\neuid %u\negid %u\ngroups", (unsigned)getuid(),
	       (unsigned)getgid(), (unsigned)geteuid(), (unsigned)getegid());
	for (int i = 0; i < n; i++)
		printf(" %u", (unsigned)groups[i]);
	putchar('\n');
	return 0;
}

static int cmd_cwd(int argc, char **argv)
{
	char buf[PATH_MAX];

	(void)argc, (void)argv;
	if (!getcwd(buf, sizeof(buf)))
		return printf("cwd_error %s\n", errname(errno)), 0;
	printf("cwd %s\n", buf);
	return 0;
}

static int cmd_hostname(int argc, char **argv)
{
	char buf[HOST_NAME_MAX + 1] = "";

	(void)argc, (void)argv;
	if (gethostname(buf, sizeof(buf)) < 0)
		return printf("hostname_error %s\n", errname(errno)), 0;
	printf("hostname %s\n", buf);
	return 0;
}

static int cmd_env(int argc, char **argv)
{
	(void)argc, (void)argv;
	for (char **e = environ; e && *e; e++)
		puts(*e);
	return 0;
}

/* ---- syscalls ---- */

/* Each try_* makes one call that a filter should refuse (EPERM); if it is
 * allowed, the arguments make the kernel fail it before it does anything.
 * "caps first" marks calls whose capability check comes before the
 * argument checks: for those an EPERM can also mean "no capability". */

static long try_getpid(void)
{
	return syscall(__NR_getpid);
}

static long try_uname(void)
{
	return syscall(__NR_uname, BAD); /* EFAULT */
}

static long try_read(void)
{
	return syscall(__NR_read, -1, BAD, 1); /* EBADF */
}

static long try_mount(void)
{
	/* The source and type strings are copied first: EFAULT. */
	return syscall(__NR_mount, BAD, BAD, BAD, 0UL, BAD);
}

static long try_umount2(void)
{
	/* The path lookup of BAD fails: EFAULT. */
	return syscall(__NR_umount2, BAD, 0);
}

static long try_pivot_root(void)
{
	/* Caps first (may_mount), then the lookup of BAD: EFAULT. */
	return syscall(__NR_pivot_root, BAD, BAD);
}

static long try_keyctl(void)
{
	/* No such operation: EOPNOTSUPP. */
	return syscall(__NR_keyctl, 0x7fffffffL, 0L, 0L, 0L, 0L);
}

static long try_add_key(void)
{
	/* The type string is copied first: EFAULT. */
	return syscall(__NR_add_key, BAD, BAD, BAD, 0UL, (long)KEY_SPEC_PROCESS_KEYRING);
}

static long try_request_key(void)
{
	return syscall(__NR_request_key, BAD, BAD, BAD, 0L); /* EFAULT */
}

static long try_bpf(void)
{
	/* No such command, and the attr copy from BAD fails first: EFAULT. */
	return syscall(__NR_bpf, 0x7fffffffL, BAD, 8L);
}

static long try_perf_event_open(void)
{
	/* The attr copy from BAD fails: EFAULT. */
	return syscall(__NR_perf_event_open, BAD, -1L, -1L, -1L, 0UL);
}

static long try_userfaultfd(void)
{
	/* UFFD_USER_MODE_ONLY passes the sysctl check; O_RDWR is not a valid
	 * flag: EINVAL. Were an fd returned, it is closed by the caller. */
	return syscall(__NR_userfaultfd, (long)(UFFD_USER_MODE_ONLY | O_RDWR));
}

static long try_kexec_load(void)
{
	/* Caps first; then an unknown arch in flags and more segments than
	 * KEXEC_SEGMENT_MAX: EINVAL. Never 0 segments (that unloads). */
	return syscall(__NR_kexec_load, 0UL, 1000UL, BAD, 0x7fff0000UL);
}

#ifdef __NR_kexec_file_load
static long try_kexec_file_load(void)
{
	/* Caps first; then an unknown flag (never KEXEC_FILE_UNLOAD): EINVAL. */
	return syscall(__NR_kexec_file_load, -1L, -1L, 0UL, BAD, 1UL << 30);
}
#define TRY_KEXEC_FILE_LOAD try_kexec_file_load
#else
#define TRY_KEXEC_FILE_LOAD NULL /* not in the i386 ABI */
#endif

static long try_init_module(void)
{
	/* Caps first; then the image copy from BAD fails: EFAULT. */
	return syscall(__NR_init_module, BAD, 4096UL, BAD);
}

static long try_finit_module(void)
{
	return syscall(__NR_finit_module, -1L, BAD, 0L); /* caps first; EBADF */
}

static long try_delete_module(void)
{
	return syscall(__NR_delete_module, BAD, 0L); /* caps first; EFAULT */
}

static long try_open_by_handle_at(void)
{
	return syscall(__NR_open_by_handle_at, -1L, BAD, 0L); /* EBADF */
}

static long try_acct(void)
{
	/* Caps first; then the name copy from BAD: EFAULT. Never NULL. */
	return syscall(__NR_acct, BAD);
}

#ifdef __NR_iopl
static long try_iopl(void)
{
	return syscall(__NR_iopl, 4L); /* levels are 0..3: EINVAL */
}
#define TRY_IOPL try_iopl
#else
#define TRY_IOPL NULL
#endif

#ifdef __NR_ioperm
static long try_ioperm(void)
{
	return syscall(__NR_ioperm, 0UL, 0UL, 0L); /* empty range: EINVAL */
}
#define TRY_IOPERM try_ioperm
#else
#define TRY_IOPERM NULL
#endif

static long try_swapon(void)
{
	/* Unknown swap flag, checked before anything: EINVAL. */
	return syscall(__NR_swapon, BAD, (long)(1U << 30));
}

static long try_swapoff(void)
{
	return syscall(__NR_swapoff, BAD); /* caps first; EFAULT */
}

static long try_reboot(void)
{
	/* Caps first; then wrong magic numbers and an unknown command:
	 * EINVAL. Never glibc's reboot(), which supplies the magic. */
	return syscall(__NR_reboot, 0L, 0L, 0x7eadbeefL, 0L);
}

static long try_io_uring_setup(void)
{
	return syscall(__NR_io_uring_setup, 1L, BAD); /* EFAULT */
}

static long try_io_uring_enter(void)
{
	return syscall(__NR_io_uring_enter, -1L, 0L, 0L, 0L, BAD, 0L); /* EBADF */
}

static long try_io_uring_register(void)
{
	return syscall(__NR_io_uring_register, -1L, 0L, BAD, 0L); /* EBADF */
}

static long try_unshare(void)
{
	/* Namespace flags (what a filter looks for) plus CLONE_PARENT_SETTID,
	 * which unshare does not take: EINVAL before anything is created. */
	return syscall(__NR_unshare, (long)(CLONE_NEWUSER | CLONE_NEWNS | CLONE_PARENT_SETTID));
}

static long try_setns(void)
{
	return syscall(__NR_setns, -1L, (long)(CLONE_NEWUSER | CLONE_NEWNS)); /* EBADF */
}

static long try_clone(void)
{
	/* CLONE_NEWNS with CLONE_FS is refused first thing in copy_process:
	 * EINVAL, no child. Stack and tid pointers are BAD too (the argument
	 * order differs between x86_64 and i386; all of them are BAD). */
	return syscall(__NR_clone, (long)(CLONE_NEWUSER | CLONE_NEWNS | CLONE_FS), BAD,
		       BAD, BAD, BAD);
}

static long try_clone3(void)
{
	/* The clone_args copy from BAD fails: EFAULT. */
	return syscall(__NR_clone3, BAD, (long)CLONE_ARGS_SIZE_VER2);
}

#ifdef __NR_umount
static long try_umount(void)
{
	return syscall(__NR_umount, BAD); /* i386's old umount; EFAULT */
}
#endif

#ifdef __NR_socketcall
static long try_socketcall(void)
{
	return syscall(__NR_socketcall, 0L, BAD); /* call 0: EINVAL */
}
#endif

static long try_tiocsti(void)
{
	/* fd -1: EBADF if allowed (a real tty would add tty-specific errors). */
	return syscall(__NR_ioctl, -1L, (unsigned long)TIOCSTI, BAD);
}

#if ULONG_MAX > 0xffffffffUL
static long try_tiocsti_high(void)
{
	/* The kernel truncates cmd to 32 bits: a filter comparing all 64 bits
	 * would let this TIOCSTI through (CVE-2019-10063). */
	return syscall(__NR_ioctl, -1L, (1UL << 32) | (unsigned long)TIOCSTI, BAD);
}
#define TRY_TIOCSTI_HIGH try_tiocsti_high
#else
#define TRY_TIOCSTI_HIGH NULL /* 32-bit registers: no high bits to set */
#endif

struct syscall_try {
	const char *name;
	long (*fn)(void); /* NULL: not in this ABI, printed as "n/a" */
};

static const struct syscall_try syscall_tries[] = {
	{ "getpid", try_getpid },
	{ "uname", try_uname },
	{ "read", try_read },
#ifdef __NR_socketcall
	{ "socketcall", try_socketcall },
#endif
	{ "mount", try_mount },
	{ "umount2", try_umount2 },
#ifdef __NR_umount
	{ "umount", try_umount },
#endif
	{ "pivot_root", try_pivot_root },
	{ "keyctl", try_keyctl },
	{ "add_key", try_add_key },
	{ "request_key", try_request_key },
	{ "bpf", try_bpf },
	{ "perf_event_open", try_perf_event_open },
	{ "userfaultfd", try_userfaultfd },
	{ "kexec_load", try_kexec_load },
	{ "kexec_file_load", TRY_KEXEC_FILE_LOAD },
	{ "init_module", try_init_module },
	{ "finit_module", try_finit_module },
	{ "delete_module", try_delete_module },
	{ "open_by_handle_at", try_open_by_handle_at },
	{ "acct", try_acct },
	{ "iopl", TRY_IOPL },
	{ "ioperm", TRY_IOPERM },
	{ "swapon", try_swapon },
	{ "swapoff", try_swapoff },
	{ "reboot", try_reboot },
	{ "io_uring_setup", try_io_uring_setup },
	{ "io_uring_enter", try_io_uring_enter },
	{ "io_uring_register", try_io_uring_register },
	{ "unshare", try_unshare },
	{ "setns", try_setns },
	{ "clone", try_clone },
	{ "clone3", try_clone3 },
	{ "tiocsti", try_tiocsti },
	{ "tiocsti_high", TRY_TIOCSTI_HIGH },
};

static const char *abi_name(void)
{
#if defined(__x86_64__) && defined(__ILP32__)
	return "x32";
#elif defined(__x86_64__)
	return "x86_64";
#elif defined(__i386__)
	return "i386";
#else
	return "other";
#endif
}

/* Runs one try; a call that unexpectedly succeeded is undone as far as it
 * can be (an fd closed, a child reaped) and reported "OK". */
static void run_try(const struct syscall_try *t)
{
	long r;
	int e;

	if (!t->fn) {
		printf("%s n/a\n", t->name);
		return;
	}
	errno = 0;
	r = t->fn();
	e = r < 0 ? errno : 0;
	if (r > 0 && strcmp(t->name, "userfaultfd") == 0)
		close((int)r);
	if (r > 0 && (strcmp(t->name, "clone") == 0 || strcmp(t->name, "clone3") == 0))
		waitpid((pid_t)r, NULL, __WALL);
	printf("%s %s\n", t->name, errname(e));
}

/* `syscalls [NAME...]`: all tries, or only the named ones. */
static int cmd_syscalls(int argc, char **argv)
{
	size_t n = sizeof(syscall_tries) / sizeof(syscall_tries[0]);

	printf("abi %s\n", abi_name());
	fflush(stdout);
	for (size_t i = 0; i < n; i++) {
		int wanted = argc < 2;

		for (int a = 1; a < argc && !wanted; a++)
			wanted = strcmp(argv[a], syscall_tries[i].name) == 0;
		if (wanted)
			run_try(&syscall_tries[i]);
	}
	return 0;
}

#if defined(__x86_64__) && !defined(__ILP32__)
/* `syscalls-x32`: x32 calls are x86_64's syscall instruction with bit 30
 * set in the number; the same audit arch, so a filter must check the bit
 * (libseccomp does when the x32 arch is, or is not, added). Apart from
 * `syscalls` because a filter may kill on it. Kernel without the x32 ABI
 * and no filter: ENOSYS. */
static int cmd_syscalls_x32(int argc, char **argv)
{
	const long x32 = 0x40000000L;
	long r;

	(void)argc, (void)argv;
	errno = 0;
	r = syscall(x32 | __NR_getpid);
	printf("x32_getpid %s\n", errname(r < 0 ? errno : 0));
	errno = 0;
	r = syscall(x32 | __NR_mount, BAD, BAD, BAD, 0UL, BAD); /* as try_mount */
	printf("x32_mount %s\n", errname(r < 0 ? errno : 0));
	return 0;
}
#else
static int cmd_syscalls_x32(int argc, char **argv)
{
	(void)argc, (void)argv;
	puts("x32_getpid n/a\nx32_mount n/a");
	return 0;
}
#endif

/* ---- net ---- */

/* Interface names of this process's network namespace from /proc/net/dev
 * ("  lo: 123 ..." after two header lines). -1 if it cannot be read. */
static int ifaces_from_proc(void)
{
	FILE *f = fopen("/proc/net/dev", "re");
	char *line = NULL, *name, *colon;
	size_t cap = 0;
	int lineno = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (++lineno <= 2 || !(colon = strchr(line, ':')))
			continue;
		*colon = '\0';
		for (name = line; *name == ' '; name++)
			;
		printf("iface %s\n", name);
	}
	free(line);
	fclose(f);
	return 0;
}

static int ifaces_from_netlink(void)
{
	struct if_nameindex *ifs = if_nameindex();

	if (!ifs)
		return -1;
	for (struct if_nameindex *i = ifs; i->if_index; i++)
		printf("iface %s\n", i->if_name);
	if_freenameindex(ifs);
	return 0;
}

/* SIOCGIFCONF lists only interfaces with an IPv4 address, one entry per
 * address: the last resort. */
static int ifaces_from_ioctl(void)
{
	struct ifreq reqs[64];
	struct ifconf conf = { .ifc_len = sizeof(reqs), .ifc_req = reqs };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), n;

	if (fd < 0)
		return -1;
	if (ioctl(fd, SIOCGIFCONF, &conf) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	n = conf.ifc_len / (int)sizeof(reqs[0]);
	for (int i = 0; i < n; i++)
		if (i == 0 || strcmp(reqs[i].ifr_name, reqs[i - 1].ifr_name) != 0)
			printf("iface %s\n", reqs[i].ifr_name);
	return 0;
}

/* `iface` lines come from a source that shows this process's own network
 * namespace; /sys/class/net shows the namespace of whoever mounted that
 * sysfs, so it is reported apart, as `sysfs_iface` (a host sysfs bound into
 * an instance would list the host's interfaces there). */
static int cmd_net(int argc, char **argv)
{
	char **names;
	size_t n;

	(void)argc, (void)argv;
	if (ifaces_from_proc() == 0)
		puts("net_source proc");
	else if (ifaces_from_netlink() == 0)
		puts("net_source netlink");
	else if (ifaces_from_ioctl() == 0)
		puts("net_source ioctl");
	else
		printf("net_error %s\n", errname(errno));
	if ((names = read_names("/sys/class/net", &n))) {
		for (size_t i = 0; i < n; i++)
			printf("sysfs_iface %s\n", names[i]);
		free_names(names, n);
	}
	return 0;
}

/* Connects without blocking and waits at most timeout_ms: 0 or an errno. */
static int connect_timeout(const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = 0, r;
	socklen_t elen = sizeof(e);
	struct pollfd p;

	if (fd < 0)
		return errno;
	if (connect(fd, sa, len) < 0) {
		e = errno;
		if (e == EINPROGRESS) {
			p = (struct pollfd){ .fd = fd, .events = POLLOUT };
			r = poll(&p, 1, timeout_ms);
			if (r < 0)
				e = errno;
			else if (r == 0)
				e = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
				e = errno;
		}
	}
	close(fd);
	return e;
}

/* `connect HOST PORT`: HOST is a numeric IPv4 or IPv6 address (a static
 * binary has no NSS to resolve names with). */
static int cmd_connect(int argc, char **argv)
{
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	long port;
	int e;

	if (argc != 3 || (port = parse_num(argv[2], 65535)) < 0)
		return EXIT_USAGE;
	if (inet_pton(AF_INET, argv[1], &in4.sin_addr) == 1) {
		in4.sin_port = htons((uint16_t)port);
		e = connect_timeout((struct sockaddr *)&in4, sizeof(in4), 1000);
	} else if (inet_pton(AF_INET6, argv[1], &in6.sin6_addr) == 1) {
		in6.sin6_port = htons((uint16_t)port);
		e = connect_timeout((struct sockaddr *)&in6, sizeof(in6), 1000);
	} else {
		return EXIT_USAGE;
	}
	printf("connect %s\n", errname(e));
	return 0;
}

/* ---- files ---- */

/* Every fd but the one reading /proc/self/fd. */
static int cmd_fds(int argc, char **argv)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	char target[PATH_MAX];
	ssize_t len;

	(void)argc, (void)argv;
	if (!d)
		return printf("fds_error %s\n", errname(errno)), 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
			continue;
		len = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
		target[len < 0 ? 0 : len] = '\0';
		printf("fd %s -> %s\n", de->d_name, target);
	}
	closedir(d);
	return 0;
}

static int cmd_ls(int argc, char **argv)
{
	char **names;
	size_t n;

	if (argc != 2)
		return EXIT_USAGE;
	if (!(names = read_names(argv[1], &n)))
		return printf("ls_error %s\n", errname(errno)), 0;
	for (size_t i = 0; i < n; i++)
		puts(names[i]);
	free_names(names, n);
	return 0;
}

/* Writes all of buf; 0 or an errno. */
static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len) {
		if ((w = write(fd, buf, len)) < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static int cmd_write(int argc, char **argv)
{
	const char *text = argc > 2 ? argv[2] : "";
	int fd, e;

	if (argc != 2 && argc != 3)
		return EXIT_USAGE;
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return printf("write %s\n", errname(errno)), 0;
	e = write_all(fd, text, strlen(text));
	if (close(fd) < 0 && !e)
		e = errno;
	printf("write %s\n", errname(e));
	return 0;
}

/* Copies the file to stdout as it is (no key). */
static int cmd_read(int argc, char **argv)
{
	char buf[65536];
	ssize_t r;
	int fd;

	if (argc != 2)
		return EXIT_USAGE;
	if ((fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return printf("read_error %s\n", errname(errno)), 0;
	fflush(stdout);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		if (write_all(STDOUT_FILENO, buf, (size_t)r))
			break;
	if (r < 0)
		printf("read_error %s\n", errname(errno));
	close(fd);
	return 0;
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "link";
	case S_IFCHR: return "char";
	case S_IFBLK: return "block";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	default: return "unknown";
	}
}

/* lstat: a symlink is reported as a link, with its target. */
static int cmd_stat(int argc, char **argv)
{
	struct stat st;
	char target[PATH_MAX];
	ssize_t len;

	if (argc != 2)
		return EXIT_USAGE;
	if (lstat(argv[1], &st) < 0)
		return printf("stat_error %s\n", errname(errno)), 0;
	printf("type %s\nmode %04o\nuid %u\ngid %u\nsize %lld\n", type_name(st.st_mode),
	       (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid,
	       (long long)st.st_size);
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
		printf("rdev %u:%u\n", major(st.st_rdev), minor(st.st_rdev));
	if (S_ISLNK(st.st_mode) && (len = readlink(argv[1], target, sizeof(target) - 1)) >= 0)
		printf("target %.*s\n", (int)len, target);
	return 0;
}

/* One `dev PATH TYPE [MAJ:MIN | TARGET]` line per entry, depth-first. */
static void list_devices(const char *dir, int depth)
{
	char **names, path[PATH_MAX], target[PATH_MAX];
	struct stat st;
	size_t n;
	ssize_t len;

	if (!(names = read_names(dir, &n)))
		return;
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (lstat(path, &st) < 0) {
			printf("dev %s error %s\n", path, errname(errno));
			continue;
		}
		printf("dev %s %s", path, type_name(st.st_mode));
		if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
			printf(" %u:%u", major(st.st_rdev), minor(st.st_rdev));
		if (S_ISLNK(st.st_mode) && (len = readlink(path, target, sizeof(target) - 1)) >= 0)
			printf(" %.*s", (int)len, target);
		putchar('\n');
		if (S_ISDIR(st.st_mode) && depth < 3)
			list_devices(path, depth + 1);
	}
	free_names(names, n);
}

static int cmd_devices(int argc, char **argv)
{
	(void)argc, (void)argv;
	list_devices("/dev", 1);
	return 0;
}

/* ---- limits ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A forkbomb child: waits to be killed, and dies on its own if its parent
 * does or after max_s seconds, so that nothing outlives the probe. */
static void forkbomb_child(pid_t parent, unsigned max_s)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	alarm(max_s);
	for (;;)
		pause();
}

/* `forkbomb N SECONDS` (N <= 100000, SECONDS <= 600): forks sleeping
 * children until N, a fork error or the deadline; then kills and reaps
 * them all. */
static int cmd_forkbomb(int argc, char **argv)
{
	long max, secs, k = 0, reaped = 0;
	pid_t *pids, pid, self = getpid();
	double deadline;
	int e = 0;

	if (argc != 3 || (max = parse_num(argv[1], 100000)) < 0 ||
	    (secs = parse_num(argv[2], 600)) < 0)
		return EXIT_USAGE;
	if (!(pids = calloc((size_t)max + 1, sizeof(*pids))))
		return EXIT_PROBE_FAILED;
	fflush(stdout);
	deadline = now_s() + (double)secs;
	while (k < max && now_s() < deadline) {
		if ((pid = fork()) < 0) {
			e = errno;
			break;
		}
		if (pid == 0)
			forkbomb_child(self, (unsigned)secs + 5);
		pids[k++] = pid;
	}
	printf("forks %ld\nfork_error %s\n", k, e ? errname(e) : "none");
	for (long i = 0; i < k; i++)
		kill(pids[i], SIGKILL);
	for (long i = 0; i < k; i++)
		if (waitpid(pids[i], NULL, 0) == pids[i])
			reaped++;
	printf("reaped %ld\n", reaped);
	free(pids);
	return 0;
}

/* `memhog MB`: maps and touches MB MiB one MiB at a time; under a memory
 * limit it is expected to be killed part way. */
static int cmd_memhog(int argc, char **argv)
{
	long mb, i;
	char *p;

	if (argc != 2 || (mb = parse_num(argv[1], 1L << 30)) < 0)
		return EXIT_USAGE;
	for (i = 0; i < mb; i++) {
		p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			printf("memhog_error %s\n", errname(errno));
			break;
		}
		memset(p, 0x5a, MIB);
		if ((i + 1) % 16 == 0)
			printf("touched %ld\n", i + 1);
	}
	printf("touched %ld\nmemhog done\n", i);
	return 0;
}

/* `fill PATH MB`: writes zeros until MB MiB or an error (ENOSPC on a full
 * tmpfs); the file is left in place. */
static int cmd_fill(int argc, char **argv)
{
	static const char zeros[MIB];
	long long written = 0;
	long mb;
	ssize_t w;
	int fd, e = 0;

	if (argc != 3 || (mb = parse_num(argv[2], 1L << 30)) < 0)
		return EXIT_USAGE;
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0) {
		printf("written 0\nfill_error %s\n", errname(errno));
		return 0;
	}
	while (written < (long long)mb * MIB) {
		if ((w = write(fd, zeros, sizeof(zeros))) < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			break;
		}
		written += w;
	}
	if (close(fd) < 0 && !e)
		e = errno;
	printf("written %lld\n", written);
	printf(e ? "fill_error %s\n" : "fill %s\n", errname(e));
	return 0;
}

/* ---- cost ---- */

/* `syscall-loop N` (N <= 1e9): N cheap syscalls that every filter allows
 * and that fail at once (fd -1), in turn getppid, read of 0 bytes and
 * ioctl(FIONREAD), to time a filter against no filter. The kernel skips the
 * filter for syscalls whose verdict does not depend on their arguments
 * (its per-syscall cache of constant allows): getppid and read measure that
 * path; ioctl, which has argument rules (TIOCSTI), runs the whole program. */
static int cmd_syscall_loop(int argc, char **argv)
{
	long n;

	if (argc != 2 || (n = parse_num(argv[1], 1000000000L)) < 0)
		return EXIT_USAGE;
	for (long i = 0; i < n; i++) {
		switch (i % 3) {
		case 0: syscall(SYS_getppid); break;
		case 1: syscall(SYS_read, -1, BAD, 0); break;
		default: syscall(SYS_ioctl, -1, FIONREAD, BAD); break;
		}
	}
	printf("loops %ld\n", n);
	return 0;
}

/* ---- isolation ---- */

/* Opens path with flags: "OK" (and closes it at once, nothing written) or
 * the errno's name. */
static const char *try_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return errname(errno);
	close(fd);
	return "OK";
}

/* `exe-write PID`: the CVE-2019-5736 class. Opening another process's (or
 * our own) exe for writing must fail; nothing is ever written. */
static int cmd_exe_write(int argc, char **argv)
{
	char path[64], magic[4];
	int fd;

	if (argc != 2)
		return EXIT_USAGE;
	snprintf(path, sizeof(path), "/proc/%s/exe", argv[1]);
	printf("exe_write %s\n", try_open(path, O_WRONLY));
	printf("exe_self_write %s\n", try_open("/proc/self/exe", O_RDWR));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		printf("exe_read %s\n", errname(errno));
		return 0;
	}
	if (read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic))
		puts("exe_read OK");
	else
		printf("exe_read %s\n", errno ? errname(errno) : "short");
	close(fd);
	return 0;
}

/* Masked: absent, an empty directory, or reads as empty (Docker binds
 * /dev/null over files and an empty read-only tmpfs over directories). */
static int is_masked(const char *path)
{
	struct stat st;
	char **names, c;
	size_t n;
	ssize_t r;
	int fd;

	if (lstat(path, &st) < 0)
		return errno == ENOENT;
	if (S_ISDIR(st.st_mode)) {
		if (!(names = read_names(path, &n)))
			return 0;
		free_names(names, n);
		return n == 0;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		fprintf(stderr, "probe: %s: %s\n", path, errname(errno));
		return 0;
	}
	r = read(fd, &c, 1);
	close(fd);
	return r == 0;
}

/* Read-only: absent, on a read-only mount, or the probe file (a file that
 * is writable for root when nothing protects it) refuses O_WRONLY. The
 * probe file is opened and closed, never written. */
static int is_readonly(const char *path, const char *probe_file)
{
	struct statvfs sv;
	int fd;

	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 1;
	if (statvfs(path, &sv) == 0 && (sv.f_flag & ST_RDONLY))
		return 1;
	if (!probe_file)
		return 0;
	if ((fd = open(probe_file, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) >= 0) {
		close(fd);
		return 0;
	}
	return errno == EROFS || errno == EACCES || errno == EPERM || errno == ENOENT;
}

static int cmd_proc_masks(int argc, char **argv)
{
	static const char *const masked[] = {
		"/proc/kcore",	 "/proc/keys",	"/proc/timer_list",    "/proc/sched_debug",
		"/proc/acpi",	 "/proc/asound", "/proc/scsi",	       "/proc/latency_stats",
		"/proc/timer_stats", "/sys/firmware",
	};
	static const char *const readonly[][2] = {
		{ "/proc/bus", NULL },
		{ "/proc/fs", NULL },
		{ "/proc/irq", "/proc/irq/default_smp_affinity" },
		{ "/proc/sys", "/proc/sys/kernel/hostname" },
		{ "/proc/sysrq-trigger", "/proc/sysrq-trigger" },
	};

	(void)argc, (void)argv;
	for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++)
		printf("masked %s %s\n", masked[i], is_masked(masked[i]) ? "yes" : "no");
	for (size_t i = 0; i < sizeof(readonly) / sizeof(readonly[0]); i++)
		printf("readonly %s %s\n", readonly[i][0],
		       is_readonly(readonly[i][0], readonly[i][1]) ? "yes" : "no");
	return 0;
}

/* ---- exit status ---- */

static int cmd_sleep(int argc, char **argv)
{
	long secs;

	if (argc != 2 || (secs = parse_num(argv[1], 86400)) < 0)
		return EXIT_USAGE;
	printf("sleeping %ld\n", secs);
	fflush(stdout);
	for (unsigned left = (unsigned)secs; left;)
		left = sleep(left);
	puts("slept");
	return 0;
}

static int cmd_exit(int argc, char **argv)
{
	long code;

	if (argc != 2 || (code = parse_num(argv[1], 255)) < 0)
		return EXIT_USAGE;
	fflush(stdout);
	_exit((int)code);
}

static int parse_signal(const char *s)
{
	long n = parse_num(s, NSIG - 1);
	const char *abbrev;

	if (n > 0)
		return (int)n;
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (int sig = 1; sig < NSIG; sig++)
		if ((abbrev = sigabbrev_np(sig)) && strcmp(abbrev, s) == 0)
			return sig;
	return -1;
}

/* `kill-self SIGNAL` (a number, TERM or SIGTERM): dies of it with the
 * default action, without a core file. */
static int cmd_kill_self(int argc, char **argv)
{
	struct rlimit no_core = { 0, 0 };
	sigset_t set;
	int sig;

	if (argc != 2 || (sig = parse_signal(argv[1])) < 0)
		return EXIT_USAGE;
	setrlimit(RLIMIT_CORE, &no_core);
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	fflush(stdout);
	kill(getpid(), sig);
	/* Still here: the signal is ignored by default (SIGCHLD...), or we are
	 * a pid namespace's init, which the kernel shields from itself. */
	printf("kill_self_survived %s\n", argv[1]);
	return EXIT_PROBE_FAILED;
}

/* ---- host resources: kernel quotas, fds of other processes ---- */

/* Creates inotify instances until N or a failure, then holds them for
 * SECONDS so that the host can look at its own quota meanwhile. */
static int cmd_inotify(int argc, char **argv)
{
	long n, secs, made = 0;
	int err = 0;

	if (argc != 3 || (n = parse_num(argv[1], 1000)) < 0 || (secs = parse_num(argv[2], 600)) < 0)
		return EXIT_USAGE;
	for (; made < n; made++) {
		if (syscall(SYS_inotify_init1, O_CLOEXEC) < 0) {
			err = errno;
			break;
		}
	}
	printf("inotify %ld\n", made);
	printf("inotify_error %s\n", err ? errname(err) : "none");
	printf("holding %ld\n", secs);
	fflush(stdout);
	for (unsigned left = (unsigned)secs; left;)
		left = sleep(left);
	return 0;
}

/* io_setup(1) for real (the host-wide fs.aio-nr quota is what a filter
 * must protect); destroyed at once if it was allowed. */
static int cmd_aio(int argc, char **argv)
{
	unsigned long ctx = 0;

	(void)argv;
	if (argc != 1)
		return EXIT_USAGE;
	if (syscall(SYS_io_setup, 1, &ctx) < 0) {
		printf("io_setup %s\n", errname(errno));
		return 0;
	}
	syscall(SYS_io_destroy, ctx);
	puts("io_setup OK");
	return 0;
}

static bool exists(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* Waits (bounded) until DIR/NAME exists. */
static bool wait_file(const char *dir, const char *name, long secs)
{
	for (long i = 0; i < secs * 10; i++) {
		if (exists(dir, name))
			return true;
		usleep(100000);
	}
	return false;
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	f = fopen(tmp, "we");
	if (!f)
		return;
	fputs(text, f);
	if (fclose(f) == 0)
		rename(tmp, path);
}

/* The victim: writes its pid to DIR/victim, holds /dev/tty if it can open
 * it (its session's controlling terminal), waits until the grabber says
 * DIR/grabbed, exits 0. */
static int cmd_victim(int argc, char **argv)
{
	char pid[32];
	long secs;
	int tty;

	if (argc != 3 || (secs = parse_num(argv[2], 600)) < 0)
		return EXIT_USAGE;
	tty = open("/dev/tty", O_RDWR | O_NOCTTY);
	printf("victim_tty %s\n", tty >= 0 ? "OK" : errname(errno));
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	put_file(argv[1], "victim", pid);
	puts(wait_file(argv[1], "grabbed", secs) ? "victim done" : "victim timeout");
	return 0;
}

#define MAX_GRAB 16

struct grabbed {
	int fd[MAX_GRAB], from[MAX_GRAB];
	int n;
};

/* Takes every fd of PID, twice: pidfd_getfd, and an open of
 * /proc/PID/fd/N (read-write, else write-only, else read-only). */
static void grab_all(pid_t pid, struct grabbed *g, FILE *rep)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	char path[64], target[256];

	if (pidfd < 0)
		fprintf(rep, "pidfd_open %s\n", errname(errno));
	for (int n = 0; n < 8 && g->n + 2 <= MAX_GRAB; n++) {
		ssize_t len;
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, n);
		len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		fd = pidfd >= 0 ? (int)syscall(SYS_pidfd_getfd, pidfd, n, 0) : -1;
		fprintf(rep, "getfd %d %s %s\n", n, fd >= 0 ? "OK" : errname(errno), target);
		if (fd >= 0) {
			g->fd[g->n] = fd;
			g->from[g->n++] = n;
		}
		fd = open(path, O_RDWR | O_NOCTTY);
		if (fd < 0)
			fd = open(path, O_WRONLY | O_NOCTTY);
		if (fd < 0)
			fd = open(path, O_RDONLY | O_NOCTTY);
		fprintf(rep, "reopen %d %s\n", n, fd >= 0 ? "OK" : errname(errno));
		if (fd >= 0) {
			g->fd[g->n] = fd;
			g->from[g->n++] = n;
		}
	}
}

/* After DIR/go: writes the marker to every grabbed fd and reads each for
 * a moment: what reaches the operator, and what the operator typed. */
static void use_all(const struct grabbed *g, const char *marker, FILE *rep)
{
	for (int i = 0; i < g->n; i++) {
		char buf[256];
		struct pollfd p = { g->fd[i], POLLIN, 0 };
		ssize_t w = write(g->fd[i], marker, strlen(marker));
		fprintf(rep, "write %d %s\n", g->from[i], w >= 0 ? "OK" : errname(errno));
		int r = poll(&p, 1, 1500);
		if (r <= 0 || !(p.revents & (POLLIN | POLLHUP))) {
			fprintf(rep, "read %d none\n", g->from[i]);
			continue;
		}
		ssize_t n = read(g->fd[i], buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			for (ssize_t k = 0; k < n; k++)
				if (buf[k] < 0x20 || buf[k] > 0x7e)
					buf[k] = '.';
			fprintf(rep, "read %d DATA %s\n", g->from[i], buf);
		} else {
			fprintf(rep, "read %d %s\n", g->from[i], n == 0 ? "EOF" : errname(errno));
		}
	}
}

/* The grabber: detaches (new session, stdio on /dev/null, the parent
 * prints its pid and exits), waits for DIR/victim, takes the victim's fds
 * (report in DIR/report, DIR is made first), says DIR/grabbed, waits for DIR/go (the test
 * makes it once the victim's command returned), uses the fds, says done.
 * Everything bounded by SECONDS. */
static int cmd_grabber(int argc, char **argv)
{
	struct grabbed g = { .n = 0 };
	char path[PATH_MAX], *pid_text;
	long secs;
	size_t len = 0;
	FILE *rep, *f;
	pid_t pid;
	int null;

	if (argc != 4 || (secs = parse_num(argv[2], 600)) < 0)
		return EXIT_USAGE;
	if (mkdir(argv[1], 0755) < 0) {
		printf("grabber_error %s\n", errname(errno));
		return EXIT_PROBE_FAILED;
	}
	pid = fork();
	if (pid < 0)
		return EXIT_PROBE_FAILED;
	if (pid > 0) {
		printf("grabber %d\n", (int)pid);
		return 0;
	}
	null = open("/dev/null", O_RDWR);
	if (setsid() < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(1);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)secs + 5);
	snprintf(path, sizeof(path), "%s/report", argv[1]);
	rep = fopen(path, "we");
	if (!rep)
		_exit(1);
	setvbuf(rep, NULL, _IOLBF, 0);
	snprintf(path, sizeof(path), "%s/victim", argv[1]);
	if (!wait_file(argv[1], "victim", secs) || !(f = fopen(path, "re"))) {
		fputs("grab timeout\ndone\n", rep);
		_exit(0);
	}
	pid_text = NULL;
	if (getline(&pid_text, &len, f) < 0)
		_exit(1);
	fclose(f);
	grab_all((pid_t)atoi(pid_text), &g, rep);
	put_file(argv[1], "grabbed", "");
	if (!wait_file(argv[1], "go", secs)) {
		fputs("go timeout\ndone\n", rep);
		_exit(0);
	}
	use_all(&g, argv[3], rep);
	fputs("done\n", rep);
	_exit(0);
}

static void print_winsize(void)
{
	struct winsize ws;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
		printf("winsize %s\n", errname(errno));
	else
		printf("winsize %u %u\n", ws.ws_row, ws.ws_col);
}

/* On a terminal: `winsize ROWS COLS`, `ready`, then one line read from
 * stdin (`got LINE`, or `got EOF`), then waits up to SECONDS for a
 * SIGWINCH and prints the window size again (or `winch timeout`). Exits 3,
 * so that the test sees the status pass through. */
static int cmd_tty_echo(int argc, char **argv)
{
	struct timespec ts = { 0, 0 };
	char line[256];
	sigset_t set;
	long secs;

	if (argc != 2 || (secs = parse_num(argv[1], 600)) < 0)
		return EXIT_USAGE;
	ts.tv_sec = secs;
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	sigprocmask(SIG_BLOCK, &set, NULL);
	print_winsize();
	puts("ready");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		puts("got EOF");
	} else {
		line[strcspn(line, "\r\n")] = '\0';
		printf("got %s\n", line);
	}
	fflush(stdout);
	if (sigtimedwait(&set, NULL, &ts) == SIGWINCH)
		print_winsize();
	else
		puts("winch timeout");
	fflush(stdout);
	return 3;
}

/* ---- dispatch ---- */

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *args;
};

static const struct command commands[] = {
	{ "status", cmd_status, "" },
	{ "syscalls", cmd_syscalls, "[NAME...]" },
	{ "syscalls-x32", cmd_syscalls_x32, "" },
	{ "net", cmd_net, "" },
	{ "connect", cmd_connect, "HOST PORT" },
	{ "fds", cmd_fds, "" },
	{ "cwd", cmd_cwd, "" },
	{ "ls", cmd_ls, "DIR" },
	{ "write", cmd_write, "PATH [TEXT]" },
	{ "read", cmd_read, "PATH" },
	{ "stat", cmd_stat, "PATH" },
	{ "forkbomb", cmd_forkbomb, "N SECONDS" },
	{ "memhog", cmd_memhog, "MB" },
	{ "fill", cmd_fill, "PATH MB" },
	{ "exe-write", cmd_exe_write, "PID" },
	{ "proc-masks", cmd_proc_masks, "" },
	{ "devices", cmd_devices, "" },
	{ "hostname", cmd_hostname, "" },
	{ "env", cmd_env, "" },
	{ "sleep", cmd_sleep, "SECONDS" },
	{ "exit", cmd_exit, "N" },
	{ "kill-self", cmd_kill_self, "SIGNAL" },
	{ "id", cmd_id, "" },
	{ "syscall-loop", cmd_syscall_loop, "N" },
	{ "inotify", cmd_inotify, "N SECONDS" },
	{ "aio", cmd_aio, "" },
	{ "victim", cmd_victim, "DIR SECONDS" },
	{ "grabber", cmd_grabber, "DIR SECONDS MARKER" },
	{ "tty-echo", cmd_tty_echo, "SECONDS" },
};

static void usage(void)
{
	fputs("usage: probe COMMAND [ARGS]\n", stderr);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "  probe %s%s%s\n", commands[i].name, *commands[i].args ? " " : "",
			commands[i].args);
}

int main(int argc, char **argv)
{
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; argc >= 2 && i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		rc = commands[i].fn(argc - 1, argv + 1);
		if (rc == EXIT_USAGE)
			fprintf(stderr, "usage: probe %s%s%s\n", commands[i].name,
				*commands[i].args ? " " : "", commands[i].args);
		if (fflush(stdout) != 0 || ferror(stdout))
			return EXIT_PROBE_FAILED;
		return rc;
	}
	usage();
	return EXIT_USAGE;
}
