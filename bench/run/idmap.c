/* idmap: what slate's idmapped store mount costs, for bench/run.sh.
 *
 *   idmap PATH DIR N
 *
 * Creates a user namespace mapping 0..65535 to 1879048192.. (slate's
 * default range, the way runtime/userns.c does: a helper unshares, the
 * parent writes the maps), then N times: open_tree(OPEN_TREE_CLONE) of
 * PATH, mount_setattr(MOUNT_ATTR_IDMAP | RDONLY | NOSUID | NODEV), attach
 * it with move_mount on DIR (an empty directory) in a private mount
 * namespace, check the shifted owner, detach it and close it. Prints the
 * mean time of each step in microseconds, one `key value` a line. Needs
 * root and kernel 5.12+. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UID_BASE 1879048192u
#define ID_COUNT 65536u

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
	fprintf(stderr, "idmap: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die(path);
	close(fd);
}

/* A user namespace with slate's mapping, held by fd. */
static int make_userns(void)
{
	int go[2], ready[2], fd;
	char path[64], map[64], c = 0;
	pid_t pid;

	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
		die("pipe");
	if ((pid = fork()) < 0)
		die("fork");
	if (pid == 0) {
		close(go[1]);
		if (unshare(CLONE_NEWUSER) < 0 || write(ready[1], "r", 1) != 1)
			_exit(1);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		die("user namespace helper");
	snprintf(map, sizeof(map), "0 %u %u\n", UID_BASE, ID_COUNT);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	write_file(path, map);
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	write_file(path, map);
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		die(path);
	close(go[1]);
	waitpid(pid, NULL, 0);
	close(go[0]);
	close(ready[0]);
	return fd;
}

int main(int argc, char **argv)
{
	double t0, t_userns = 0, t_clone = 0, t_attach = 0, t_detach = 0;
	const char *target;
	struct stat st;
	long n;

	if (argc != 4 || (n = strtol(argv[3], NULL, 10)) <= 0)
		return fprintf(stderr, "usage: idmap PATH DIR N\n"), 2;
	target = argv[2];
	/* Whatever stays mounted dies with this private mount namespace. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("private mount namespace");
	for (long i = 0; i < n; i++) {
		t0 = now_us();
		int ns = make_userns();
		t_userns += now_us() - t0;

		t0 = now_us();
		struct mount_attr attr = {
			.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
			.userns_fd = (unsigned)ns,
		};
		int fd = (int)syscall(SYS_open_tree, AT_FDCWD, argv[1], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (fd < 0)
			die("open_tree");
		if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
			die("mount_setattr");
		t_clone += now_us() - t0;

		t0 = now_us();
		if (syscall(SYS_move_mount, fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			die("move_mount");
		t_attach += now_us() - t0;
		if (stat(target, &st) < 0 || st.st_uid != UID_BASE)
			return fprintf(stderr, "idmap: %s is owned by %u, not %u\n", target, st.st_uid, UID_BASE), 1;

		t0 = now_us();
		if (umount2(target, MNT_DETACH) < 0)
			die("umount2");
		close(fd);
		close(ns);
		t_detach += now_us() - t0;
	}
	printf("userns_us %.1f\nopen_tree_setattr_us %.1f\nmove_mount_us %.1f\numount_close_us %.1f\ntotal_us %.1f\n",
	       t_userns / n, t_clone / n, t_attach / n, t_detach / n, (t_userns + t_clone + t_attach + t_detach) / n);
	return 0;
}
