/* slate: the store (see store.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slate/policy.h"
#include "slate/unpack.h"
#include "slate/util.h"
#include "store.h"

static int mkdir_0700(const char *path, slate_error_t *err)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return slate_error_sys(err, errno, "create `%s`", path);
	if (lstat(path, &st) < 0)
		return slate_error_sys(err, errno, "stat `%s`", path);
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0)
		return slate_error_refuse(err, "`%s` is not a root-owned directory", path);
	if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) < 0)
		return slate_error_sys(err, errno, "chmod `%s`", path);
	return 0;
}

int slate_store_init(const char *root, slate_error_t *err)
{
	cleanup_free char *store = xasprintf("%s/store", root);

	if (mkdir_0700(root, err) < 0)
		return -1;
	return mkdir_0700(store, err);
}

void slate_stored_free(struct slate_stored *s)
{
	free(s->dir);
	free(s->root);
	if (s->m.entries || s->m.name)
		slate_manifest_free(&s->m);
	memset(s, 0, sizeof(*s));
}

static void stored_paths(const char *root, struct slate_stored *s)
{
	s->dir = xasprintf("%s/store/%s", root, s->id);
	s->root = xasprintf("%s/root", s->dir);
}

static int load_json(const char *root, const char *id, const char *name, struct slate_stored *out, slate_error_t *err)
{
	struct slate_limits lim;
	cleanup_free char *path = NULL, *buf = NULL;
	size_t len = 0;

	memset(out, 0, sizeof(*out));
	slate_limits_default(&lim);
	if (strlen(id) != SLATE_SHA256_HEX - 1 || strspn(id, "0123456789abcdef") != SLATE_SHA256_HEX - 1)
		return slate_error_usage(err, "`%s` is not a bundle id", id);
	memcpy(out->id, id, SLATE_SHA256_HEX);
	stored_paths(root, out);
	path = xasprintf("%s/%s", out->dir, name);
	buf = slate_read_file(path, lim.max_manifest_bytes, &len, err);
	if (buf == NULL)
		return slate_error_wrap(err, "bundle %.12s is not in the store", id);
	return slate_manifest_parse(buf, len, &lim, &out->m, err) < 0 ? -1 : slate_policy_check(&out->m, err);
}

int slate_store_load(const char *root, const char *id, struct slate_stored *out, slate_error_t *err)
{
	return load_json(root, id, "meta.json", out, err);
}

int slate_store_load_full(const char *root, const char *id, struct slate_stored *out, slate_error_t *err)
{
	return load_json(root, id, "manifest.json", out, err);
}

/* Serialise first unpacks of one bundle; the lock is released on close. */
static int lock_id(const char *root, const char *id, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/store/%s.lock", root, id);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", path);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return slate_error_sys(err, errno, "lock `%s`", path);
		}
	}
	return fd;
}

static int write_json(const char *dir, const char *name, const struct slate_manifest *m, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, name);
	size_t len = 0;
	cleanup_free char *bytes = slate_manifest_serialize(m, &len, err);

	if (bytes == NULL)
		return -1;
	return slate_write_file_atomic(path, bytes, len, 0600, err);
}

/* manifest.json: the verified manifest; meta.json: the same without its
 * entries, which is all that starting an instance needs (parsing a
 * 20,000-entry manifest on every start would cost more than the start). */
static int write_manifest(const char *dir, struct slate_manifest *m, slate_error_t *err)
{
	size_t n = m->n_entries;
	int r;

	if (write_json(dir, "manifest.json", m, err) < 0)
		return -1;
	m->n_entries = 0;
	r = write_json(dir, "meta.json", m, err);
	m->n_entries = n;
	return r;
}

/* Unpack into store/.tmp-<id>-<pid>/root, add the manifest, rename the
 * whole directory to store/<id>. */
static int unpack(const char *root, int fd, const char *bundle_path, const struct slate_keyring *kr,
		  struct slate_stored *out, slate_error_t *err)
{
	struct slate_limits lim;
	cleanup_free char *tmp = xasprintf("%s/store/.tmp-%s-%d", root, out->id, (int)getpid());
	cleanup_free char *tree = xasprintf("%s/root", tmp);
	char id[SLATE_SHA256_HEX];
	slate_error_t ignore = { 0 };

	slate_limits_default(&lim);
	slate_remove_tree(tmp, &ignore);
	if (mkdir(tmp, 0700) < 0)
		return slate_error_sys(err, errno, "create `%s`", tmp);
	if (lseek(fd, 0, SEEK_SET) < 0 || slate_bundle_unpack(fd, bundle_path, kr, &lim, tree, &out->m, id, err) < 0)
		goto fail;
	if (strcmp(id, out->id) != 0) {
		slate_error_refuse(err, "bundle `%s` changed while it was being read", bundle_path);
		goto fail;
	}
	if (write_manifest(tmp, &out->m, err) < 0)
		goto fail;
	if (rename(tmp, out->dir) < 0) {
		slate_error_sys(err, errno, "move `%s` to `%s`", tmp, out->dir);
		goto fail;
	}
	out->unpacked = true;
	return 0;
fail:
	slate_remove_tree(tmp, &ignore);
	return -1;
}

int slate_store_add(const char *root, const char *bundle_path, const struct slate_keyring *kr, struct slate_stored *out,
		    slate_error_t *err)
{
	struct slate_limits lim;
	cleanup_close int fd = -1, lock = -1;
	struct stat st;

	memset(out, 0, sizeof(*out));
	slate_limits_default(&lim);
	fd = open(bundle_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", bundle_path);
	/* The signature first: an untrusted bundle stops here, nothing written. */
	if (slate_bundle_verify_head(fd, bundle_path, kr, &lim, NULL, out->id, err) < 0)
		return -1;
	stored_paths(root, out);
	/* Already stored: it verified completely when it was unpacked, and the
	 * id (the hash of the manifest whose signature was just checked)
	 * names exactly that copy. */
	if (lstat(out->dir, &st) == 0) {
		char id[SLATE_SHA256_HEX];
		memcpy(id, out->id, sizeof(id));
		slate_stored_free(out);
		return slate_store_load(root, id, out, err);
	}
	if (slate_store_init(root, err) < 0)
		return -1;
	lock = lock_id(root, out->id, err);
	if (lock < 0)
		return -1;
	if (lstat(out->dir, &st) == 0) {
		char id[SLATE_SHA256_HEX];
		memcpy(id, out->id, sizeof(id));
		slate_stored_free(out);
		return slate_store_load(root, id, out, err);
	}
	return unpack(root, fd, bundle_path, kr, out, err);
}

/* A .tmp-<id>-<pid> whose id lock can be taken right away is abandoned. */
int slate_store_clean_stale(const char *root, slate_error_t *err)
{
	cleanup_free char *store = xasprintf("%s/store", root);
	DIR *d = opendir(store);
	struct dirent *de;

	if (d == NULL)
		return errno == ENOENT ? 0 : slate_error_sys(err, errno, "open `%s`", store);
	while ((de = readdir(d)) != NULL) {
		char id[SLATE_SHA256_HEX];
		if (strncmp(de->d_name, ".tmp-", 5) != 0 || strlen(de->d_name) < 5 + SLATE_SHA256_HEX)
			continue;
		memcpy(id, de->d_name + 5, SLATE_SHA256_HEX - 1);
		id[SLATE_SHA256_HEX - 1] = '\0';
		cleanup_free char *lockpath = xasprintf("%s/%s.lock", store, id);
		cleanup_close int lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0)
			continue;
		cleanup_free char *path = xasprintf("%s/%s", store, de->d_name);
		slate_error_t ignore = { 0 };
		slate_remove_tree(path, &ignore);
	}
	closedir(d);
	return 0;
}
