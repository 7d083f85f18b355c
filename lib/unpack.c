/* slate: unpack while verifying (see include/slate/unpack.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "slate/path.h"
#include "slate/policy.h"
#include "slate/unpack.h"
#include "slate/util.h"

struct unpacker {
	int root; /* the temporary directory */
	int parent; /* cached fd of the last parent directory */
	char *parent_path; /* its path below root ("" = root) */
	int file; /* the file being written */
};

/* Open a directory below root, never through a link, never above root. */
static int open_beneath(int root, const char *path, slate_error_t *err)
{
	struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd;

	fd = path[0] == '\0' ? fcntl(root, F_DUPFD_CLOEXEC, 0) : syscall(SYS_openat2, root, path, &how, sizeof(how));
	if (fd < 0)
		return slate_error_sys(err, errno, "open directory `%s` in the unpack", path);
	return (int)fd;
}

/* The parent directory fd of e, reusing the last one: entries come sorted,
 * so consecutive files mostly share it. */
static int parent_of(struct unpacker *u, const char *path, const char **base, slate_error_t *err)
{
	cleanup_free char *parent = slate_path_parent(path);
	int fd;

	*base = path + strlen(parent) + (parent[0] ? 1 : 0);
	if (u->parent >= 0 && strcmp(parent, u->parent_path) == 0)
		return u->parent;
	fd = open_beneath(u->root, parent, err);
	if (fd < 0)
		return -1;
	if (u->parent >= 0)
		close(u->parent);
	free(u->parent_path);
	u->parent = fd;
	u->parent_path = steal_pointer(&parent);
	return fd;
}

static int unpack_begin(void *ctx, const struct slate_entry *e, slate_error_t *err)
{
	struct unpacker *u = ctx;
	const char *base;
	int dir = parent_of(u, e->path, &base, err);

	if (dir < 0)
		return -1;
	switch (e->type) {
	case SLATE_ENTRY_DIR:
		if (mkdirat(dir, base, e->mode) < 0 || fchmodat(dir, base, e->mode, AT_SYMLINK_NOFOLLOW) < 0)
			return slate_error_sys(err, errno, "create directory `%s`", e->path);
		return 0;
	case SLATE_ENTRY_SYMLINK:
		if (symlinkat(e->target, dir, base) < 0)
			return slate_error_sys(err, errno, "create symlink `%s`", e->path);
		return 0;
	case SLATE_ENTRY_FILE:
		u->file = openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (u->file < 0)
			return slate_error_sys(err, errno, "create `%s`", e->path);
		return 0;
	}
	return slate_error_fail(err, "entry `%s` has an unknown type", e->path);
}

static int unpack_data(void *ctx, const struct slate_entry *e, const void *buf, size_t len, slate_error_t *err)
{
	struct unpacker *u = ctx;

	return slate_write_all(u->file, buf, len, e->path, err);
}

/* The file is complete and verified: give it its mode (never set-id, the
 * manifest cannot hold those) and close it. */
static int unpack_end(void *ctx, const struct slate_entry *e, slate_error_t *err)
{
	struct unpacker *u = ctx;
	int r = 0;

	if (e->type != SLATE_ENTRY_FILE)
		return 0;
	if (fchmod(u->file, e->mode) < 0)
		r = slate_error_sys(err, errno, "chmod `%s`", e->path);
	if (close(u->file) < 0 && r == 0)
		r = slate_error_sys(err, errno, "close `%s`", e->path);
	u->file = -1;
	return r;
}

static int remove_at(int dirfd, const char *name, int depth, slate_error_t *err);

static int remove_children(int fd, int depth, slate_error_t *err)
{
	DIR *d = slate_opendir_fd(fd, "to remove", err);
	struct dirent *de;
	int r = 0;

	if (d == NULL)
		return -1;
	while (r == 0 && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			r = remove_at(fd, de->d_name, depth + 1, err);
	closedir(d);
	return r;
}

static int remove_at(int dirfd, const char *name, int depth, slate_error_t *err)
{
	int fd;

	if (depth > 4096)
		return slate_error_fail(err, "directory tree too deep to remove");
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return slate_error_sys(err, errno, "remove `%s`", name);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s` to remove it", name);
	if (remove_children(fd, depth, err) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return slate_error_sys(err, errno, "remove directory `%s`", name);
	return 0;
}

int slate_remove_tree(const char *path, slate_error_t *err)
{
	return remove_at(AT_FDCWD, path, 0, err);
}

/* The runtime's rules, checked once the signature holds and before the
 * first byte is written: a signed bundle the bundler would refuse is
 * refused here too (include/slate/policy.h). */
static int unpack_manifest(void *ctx, const struct slate_manifest *m, const char *id, slate_error_t *err)
{
	(void)ctx;
	(void)id;
	return slate_policy_check(m, err);
}

int slate_bundle_unpack(int fd, const char *name, const struct slate_keyring *kr, const struct slate_limits *lim,
			const char *dir, struct slate_manifest *out, char id[SLATE_SHA256_HEX], slate_error_t *err)
{
	struct unpacker u = { .root = -1, .parent = -1, .file = -1 };
	struct slate_bundle_visitor v = {
		.ctx = &u, .manifest = unpack_manifest, .begin = unpack_begin, .data = unpack_data, .end = unpack_end
	};
	slate_error_t ignore = { 0 };
	int r = -1;

	if (mkdir(dir, 0700) < 0)
		return slate_error_sys(err, errno, "create `%s`", dir);
	u.root = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (u.root < 0) {
		slate_error_sys(err, errno, "open `%s`", dir);
		goto out;
	}
	if (slate_bundle_verify_fd(fd, name, kr, lim, &v, out, id, err) < 0)
		goto out;
	/* Durable before visible: a crash never leaves a renamed, half-written copy. */
	if (syncfs(u.root) < 0) {
		slate_error_sys(err, errno, "sync `%s`", dir);
		goto out;
	}
	if (fchmod(u.root, 0755) < 0) {
		slate_error_sys(err, errno, "chmod `%s`", dir);
		goto out;
	}
	r = 0;
out:
	if (u.file >= 0)
		close(u.file);
	if (u.parent >= 0)
		close(u.parent);
	if (u.root >= 0)
		close(u.root);
	free(u.parent_path);
	if (r < 0) {
		slate_remove_tree(dir, &ignore);
		if (out && out->entries)
			slate_manifest_free(out);
	}
	return r;
}
