/* slate: the instance's filesystem, built by the setup process (real root,
 * in the instance's new mount namespace, before it joins the instance's
 * user namespace: every mount below is owned by the host's user namespace,
 * so nothing in the instance can unmount, remount or move it).
 *
 * Layout of the instance tmpfs (one size and inode limit for everything
 * an instance can write):  upper/ work/ (overlay), tmp/, run/, shm/, and
 * lower/ (where the idmapped store copy is attached). */
#ifndef SLATE_RUNTIME_MOUNTS_H
#define SLATE_RUNTIME_MOUNTS_H

#include <stdint.h>
#include <sys/types.h>

#include "slate/error.h"
#include "slate/util.h"

struct mount_spec {
	const char *scratch; /* an empty host directory to build on (private to this mntns) */
	int lower_fd; /* detached idmapped mount of the store tree */
	uint64_t tmpfs_size; /* bytes */
	uint64_t tmpfs_inodes;
	uid_t root_uid; /* host uid of the instance's root */
	gid_t root_gid;
	uid_t app_uid; /* host uid/gid that owns the writable paths */
	gid_t app_gid;
	gid_t tty_gid; /* host gid of the instance's tty group */
	const struct slate_strv *writable; /* project-relative, below /app */
	const char *hostname;
	int scratch_fd; /* out: the instance tmpfs (upper/ inside), O_RDONLY|O_DIRECTORY */
};

/* Build everything and pivot_root into it; on return "/" is the instance
 * root (read-only), the old root is gone, and cwd is "/". */
int mounts_setup(struct mount_spec *s, slate_error_t *err);

/* Pieces, exposed for the unit tests. Each resolves its target inside the
 * new root without following any symlink (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) and mounts onto /proc/self/fd/N. */
int mounts_open_in_root(int rootfd, const char *path, int flags, slate_error_t *err);
int mounts_check_device(const char *path, unsigned major, unsigned minor, slate_error_t *err);

#endif
