/* slate: the instance's filesystem (see mounts.h).
 *
 * Threat: the bundle is trusted content, but a signer's mistake (or a
 * compromised CI) must not turn into a host compromise. So no mount target
 * is ever reached through a symlink from the bundle: every target is
 * resolved below the new root with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) to an O_PATH fd, and the mount goes onto
 * /proc/self/fd/N (crun's safe_openat). Every mount carries nosuid and
 * nodev; everything writable also carries noexec. */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <dirent.h>

#include "mounts.h"

#define FD_PATH_MAX 32

static const char *fd_path(int fd, char buf[FD_PATH_MAX])
{
	snprintf(buf, FD_PATH_MAX, "/proc/self/fd/%d", fd);
	return buf;
}

int mounts_open_in_root(int rootfd, const char *path, int flags, slate_error_t *err)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));

	if (fd < 0)
		return slate_error_sys(err, errno,
				       "open `/%s` in the instance root (a missing directory, or a symlink?)", path);
	return (int)fd;
}

static int do_mount(const char *src, int target_fd, const char *type, unsigned long flags, const char *data,
		    const char *what, slate_error_t *err)
{
	char target[FD_PATH_MAX];

	if (mount(src, fd_path(target_fd, target), type, flags, data) < 0)
		return slate_error_sys(err, errno, "mount %s", what);
	return 0;
}

/* Mount at path (below rootfd): the target must be a real directory. */
static int mount_at(int rootfd, const char *path, const char *src, const char *type, unsigned long flags,
		    const char *data, slate_error_t *err)
{
	cleanup_close int fd = mounts_open_in_root(rootfd, path, O_PATH | O_DIRECTORY, err);

	if (fd < 0)
		return -1;
	return do_mount(src, fd, type, flags, data, path, err);
}

/* Bind-remount a mount point read-only, keeping nosuid, nodev, noexec. */
static int remount_ro(int rootfd, const char *path, unsigned long extra, slate_error_t *err)
{
	return mount_at(rootfd, path, NULL, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | extra, NULL,
			err);
}

/* The instance tmpfs: the only place an instance writes to, with a size
 * and an inode limit. */
static int setup_tmpfs(const struct mount_spec *s, slate_error_t *err)
{
	static const char *const dirs[] = { "upper", "work", "tmp", "run", "shm", "lower", "root", NULL };
	char opts[128];
	int r = 0;

	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=0700", (unsigned long long)s->tmpfs_size,
		 (unsigned long long)s->tmpfs_inodes);
	if (mount("slate", s->scratch, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return slate_error_sys(err, errno, "mount the instance tmpfs on `%s`", s->scratch);
	for (size_t i = 0; dirs[i] && r == 0; i++) {
		cleanup_free char *p = xasprintf("%s/%s", s->scratch, dirs[i]);
		if (mkdir(p, 0755) < 0)
			r = slate_error_sys(err, errno, "mkdir `%s`", p);
	}
	return r;
}

/* Ownership and modes in the instance tmpfs, as the instance sees them. */
static int chown_scratch(const struct mount_spec *s, const char *name, uid_t uid, gid_t gid, mode_t mode,
			 slate_error_t *err)
{
	cleanup_free char *p = xasprintf("%s/%s", s->scratch, name);

	if (chown(p, uid, gid) < 0 || chmod(p, mode) < 0)
		return slate_error_sys(err, errno, "prepare `%s`", p);
	return 0;
}

/* overlay: lower = the idmapped store copy (read-only, the signed bytes),
 * upper/work on the instance tmpfs; a redeploy throws the tmpfs away. */
static int setup_overlay(const struct mount_spec *s, slate_error_t *err)
{
	cleanup_free char *lower = xasprintf("%s/lower", s->scratch);
	cleanup_free char *root = xasprintf("%s/root", s->scratch);
	/* No redirects, no metacopy: the upper holds plain copies, which is
	 * what `slate diff` decodes (it refuses redirects). */
	cleanup_free char *opts =
		xasprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work,redirect_dir=off,metacopy=off", lower,
			  s->scratch, s->scratch);

	if (syscall(SYS_move_mount, s->lower_fd, "", AT_FDCWD, lower, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return slate_error_sys(err, errno, "attach the store copy");
	if (chown_scratch(s, "upper", s->root_uid, s->root_gid, 0755, err) < 0)
		return -1;
	if (mount("overlay", root, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
		return slate_error_sys(err, errno, "mount the overlay root");
	return 0;
}

static int chown_tree(int fd, uid_t uid, gid_t gid, int depth, slate_error_t *err);

static int chown_children(int fd, uid_t uid, gid_t gid, int depth, slate_error_t *err)
{
	DIR *d = slate_opendir_fd(fd, "(writable)", err);
	struct dirent *de;
	int r = 0;

	if (d == NULL)
		return -1;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fchownat(fd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			r = slate_error_sys(err, errno, "chown `%s`", de->d_name);
			break;
		}
		if (de->d_type == DT_DIR) {
			int child = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (child < 0) {
				r = slate_error_sys(err, errno, "open `%s`", de->d_name);
				break;
			}
			r = chown_tree(child, uid, gid, depth + 1, err);
			close(child);
		}
	}
	closedir(d);
	return r;
}

/* Give a writable tree to the app user (copying it up into the tmpfs):
 * never following a link. */
static int chown_tree(int fd, uid_t uid, gid_t gid, int depth, slate_error_t *err)
{
	if (depth > 256)
		return slate_error_refuse(err, "writable tree too deep");
	if (fchown(fd, uid, gid) < 0)
		return slate_error_sys(err, errno, "chown a writable directory");
	return chown_children(fd, uid, gid, depth, err);
}

/* Writable paths: owned by the app user, bound onto themselves so that they
 * stay writable once the root is made read-only; noexec. */
static int setup_writable(int rootfd, const struct mount_spec *s, slate_error_t *err)
{
	for (size_t i = 0; s->writable && i < s->writable->n; i++) {
		cleanup_free char *path = xasprintf("app/%s", s->writable->v[i]);
		cleanup_close int dir = mounts_open_in_root(rootfd, path, O_RDONLY | O_DIRECTORY, err);
		char target[FD_PATH_MAX];
		if (dir < 0 || chown_tree(dir, s->app_uid, s->app_gid, 0, err) < 0)
			return slate_error_wrap(err, "writable `%s`", s->writable->v[i]);
		if (mount(fd_path(dir, target), fd_path(dir, target), NULL, MS_BIND, NULL) < 0)
			return slate_error_sys(err, errno, "bind writable `%s`", s->writable->v[i]);
		if (mount_at(rootfd, path, NULL, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
			     err) < 0)
			return -1;
	}
	return 0;
}

/* /tmp, /run and /dev/shm: directories of the instance tmpfs, bound in. */
static int bind_scratch(int rootfd, const struct mount_spec *s, const char *name, const char *path, slate_error_t *err)
{
	cleanup_free char *src = xasprintf("%s/%s", s->scratch, name);

	if (mount_at(rootfd, path, src, NULL, MS_BIND, NULL, err) < 0)
		return -1;
	return mount_at(rootfd, path, NULL, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
}

static int setup_scratch_dirs(int rootfd, const struct mount_spec *s, slate_error_t *err)
{
	if (chown_scratch(s, "tmp", s->root_uid, s->root_gid, 01777, err) < 0 ||
	    chown_scratch(s, "run", s->root_uid, s->root_gid, 0755, err) < 0 ||
	    chown_scratch(s, "shm", s->root_uid, s->root_gid, 01777, err) < 0)
		return -1;
	if (bind_scratch(rootfd, s, "tmp", "tmp", err) < 0 || bind_scratch(rootfd, s, "run", "run", err) < 0)
		return -1;
	return 0;
}

int mounts_check_device(const char *path, unsigned major, unsigned minor, slate_error_t *err)
{
	struct stat st;
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return slate_error_sys(err, errno, "open host device `%s`", path);
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return slate_error_sys(err, e, "stat host device `%s`", path);
	}
	if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != major || minor(st.st_rdev) != minor) {
		close(fd);
		return slate_error_refuse(err, "host `%s` is not the character device %u:%u", path, major, minor);
	}
	return fd;
}

struct device {
	const char *name;
	unsigned major, minor;
};

static const struct device devices[] = {
	{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 }, { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};

/* One device: the host node, checked to be the real one, bound onto an
 * empty file in the instance's /dev. */
static int bind_device(int devfd, const struct device *d, slate_error_t *err)
{
	cleanup_free char *host = xasprintf("/dev/%s", d->name);
	cleanup_close int src = mounts_check_device(host, d->major, d->minor, err);
	cleanup_close int dst = -1;
	char a[FD_PATH_MAX], b[FD_PATH_MAX];

	if (src < 0)
		return -1;
	dst = openat(devfd, d->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
	if (dst < 0)
		return slate_error_sys(err, errno, "create /dev/%s", d->name);
	if (mount(fd_path(src, a), fd_path(dst, b), NULL, MS_BIND, NULL) < 0)
		return slate_error_sys(err, errno, "bind /dev/%s", d->name);
	return 0;
}

static int dev_links(int devfd, slate_error_t *err)
{
	static const char *const links[][2] = { { "fd", "/proc/self/fd" },
						{ "stdin", "/proc/self/fd/0" },
						{ "stdout", "/proc/self/fd/1" },
						{ "stderr", "/proc/self/fd/2" },
						{ "ptmx", "pts/ptmx" } };

	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		if (symlinkat(links[i][1], devfd, links[i][0]) < 0)
			return slate_error_sys(err, errno, "create /dev/%s", links[i][0]);
	}
	return 0;
}

/* A minimal /dev: a small tmpfs with the six devices, a private devpts,
 * shm from the instance tmpfs, the usual links; then read-only. */
static int setup_dev(int rootfd, const struct mount_spec *s, slate_error_t *err)
{
	cleanup_close int devfd = -1;
	char opts[96];

	if (mount_at(rootfd, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755", err) <
	    0)
		return -1;
	devfd = mounts_open_in_root(rootfd, "dev", O_RDONLY | O_DIRECTORY, err);
	if (devfd < 0)
		return -1;
	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
		if (bind_device(devfd, &devices[i], err) < 0)
			return -1;
	if (mkdirat(devfd, "pts", 0755) < 0 || mkdirat(devfd, "shm", 01777) < 0)
		return slate_error_sys(err, errno, "create /dev/pts, /dev/shm");
	snprintf(opts, sizeof(opts), "newinstance,ptmxmode=0666,mode=0620,gid=%u", (unsigned)s->tty_gid);
	if (mount_at(rootfd, "dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC, opts, err) < 0)
		return -1;
	if (bind_scratch(rootfd, s, "shm", "dev/shm", err) < 0 || dev_links(devfd, err) < 0)
		return -1;
	return remount_ro(rootfd, "dev", MS_NOEXEC, err);
}

/* Paths of /proc that reveal or change the host: masked (Docker's list). */
static const char *const proc_masked[] = { "proc/kcore",       "proc/keys",   "proc/timer_list", "proc/sched_debug",
					   "proc/acpi",        "proc/asound", "proc/scsi",       "proc/latency_stats",
					   "proc/timer_stats", NULL };
static const char *const proc_readonly[] = {
	"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger", NULL
};

static int mask_path(int rootfd, const char *path, slate_error_t *err)
{
	struct stat st;
	char a[FD_PATH_MAX], b[FD_PATH_MAX];
	cleanup_close int fd = -1, null = -1;

	if (fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : slate_error_sys(err, errno, "stat `/%s`", path);
	fd = mounts_open_in_root(rootfd, path, O_PATH, err);
	if (fd < 0)
		return -1;
	if (S_ISDIR(st.st_mode))
		return do_mount("tmpfs", fd, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
				"size=0,nr_inodes=1", path, err);
	null = mounts_open_in_root(rootfd, "dev/null", O_PATH, err);
	if (null < 0)
		return -1;
	if (mount(fd_path(null, a), fd_path(fd, b), NULL, MS_BIND, NULL) < 0)
		return slate_error_sys(err, errno, "mask `/%s`", path);
	return 0;
}

static int readonly_path(int rootfd, const char *path, slate_error_t *err)
{
	struct stat st;
	cleanup_close int fd = -1;

	if (fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : slate_error_sys(err, errno, "stat `/%s`", path);
	fd = mounts_open_in_root(rootfd, path, O_PATH, err);
	if (fd < 0)
		return -1;
	char self[FD_PATH_MAX];
	if (do_mount(fd_path(fd, self), fd, NULL, MS_BIND | MS_REC, NULL, path, err) < 0)
		return -1;
	/* The fd still names the covered inode: reopen the new mount. */
	close(fd);
	fd = mounts_open_in_root(rootfd, path, O_PATH, err);
	if (fd < 0)
		return -1;
	return do_mount(NULL, fd, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, path,
			err);
}

/* Networking: only lo, up; unprivileged ports from 0 so that the image's
 * masters (instance root, no capability in the host's namespaces) can bind
 * :80 in this network namespace, which belongs to the host's user
 * namespace. Done while /proc/sys is still writable. */
static int setup_net(int rootfd, slate_error_t *err)
{
	struct ifreq ifr = { 0 };
	cleanup_close int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cleanup_close int fd = -1;

	if (sock < 0)
		return slate_error_sys(err, errno, "socket");
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return slate_error_sys(err, errno, "read lo flags");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
		return slate_error_sys(err, errno, "bring lo up");
	fd = mounts_open_in_root(rootfd, "proc/sys/net/ipv4/ip_unprivileged_port_start", O_WRONLY, err);
	if (fd < 0)
		return -1;
	if (write(fd, "0", 1) != 1)
		return slate_error_sys(err, errno, "write ip_unprivileged_port_start");
	return 0;
}

static int setup_proc(int rootfd, slate_error_t *err)
{
	if (mount_at(rootfd, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0 ||
	    setup_net(rootfd, err) < 0)
		return -1;
	for (size_t i = 0; proc_masked[i]; i++)
		if (mask_path(rootfd, proc_masked[i], err) < 0)
			return -1;
	for (size_t i = 0; proc_readonly[i]; i++)
		if (readonly_path(rootfd, proc_readonly[i], err) < 0)
			return -1;
	return 0;
}

/* pivot_root(".", "."), then detach the old root stacked under it. */
static int do_pivot(const char *root, slate_error_t *err)
{
	if (chdir(root) < 0)
		return slate_error_sys(err, errno, "chdir to the new root");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return slate_error_sys(err, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return slate_error_sys(err, errno, "detach the old root");
	if (chdir("/") < 0)
		return slate_error_sys(err, errno, "chdir /");
	return 0;
}

int mounts_setup(struct mount_spec *s, slate_error_t *err)
{
	cleanup_free char *root = xasprintf("%s/root", s->scratch);
	cleanup_close int rootfd = -1;

	/* Nothing done here may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return slate_error_sys(err, errno, "make mounts private");
	if (setup_tmpfs(s, err) < 0 || setup_overlay(s, err) < 0)
		return -1;
	/* Kept by slate (never by the instance): what `slate diff` reads. */
	s->scratch_fd = open(s->scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->scratch_fd < 0)
		return slate_error_sys(err, errno, "open `%s`", s->scratch);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return slate_error_sys(err, errno, "open `%s`", root);
	if (setup_writable(rootfd, s, err) < 0 || setup_scratch_dirs(rootfd, s, err) < 0 ||
	    setup_dev(rootfd, s, err) < 0 || setup_proc(rootfd, err) < 0)
		return -1;
	if (sethostname(s->hostname, strlen(s->hostname)) < 0)
		return slate_error_sys(err, errno, "sethostname");
	if (do_pivot(root, err) < 0)
		return -1;
	/* The code is read-only, even for the instance's root. */
	if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return slate_error_sys(err, errno, "make the root read-only");
	return 0;
}
