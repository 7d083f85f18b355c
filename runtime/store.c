/* slate: the store (see store.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "slate/policy.h"
#include "slate/unpack.h"
#include "store.h"

/* A walk deeper than this is refused (the manifest's paths are far shallower). */
#define STORE_MAX_DEPTH 256
/* Verified bundle files remembered per copy (the oldest are forgotten). */
#define STORE_MAX_FILES 32

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

static void unpin(struct slate_stored *s)
{
	if (s->pinned)
		close(s->pin);
	s->pinned = false;
	s->pin = -1;
}

void slate_stored_free(struct slate_stored *s)
{
	unpin(s);
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

static bool is_id(const char *s)
{
	return strlen(s) == SLATE_SHA256_HEX - 1 && strspn(s, "0123456789abcdef") == SLATE_SHA256_HEX - 1;
}

/* ---- locks and pins ---- */

/* fd is still the object at path: not removed, not renamed away. Every
 * lock below is taken on an object that gc or an unlock may remove, so
 * whoever gets a lock checks this before trusting it. */
static bool same_object(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && a.st_nlink > 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* flock(fd, op), again after a signal; on failure fd is closed. */
static int flock_wait(int fd, int op, const char *path, slate_error_t *err)
{
	while (flock(fd, op) < 0) {
		int e = errno;
		if (e != EINTR) {
			close(fd);
			return slate_error_sys(err, e, "lock `%s`", path);
		}
	}
	return 0;
}

/* Lock the directory at path with flock op: LOCK_SH is a pin (held by
 * every user of a copy, and by an unpack from before it writes until the
 * instance has its own), LOCK_EX|LOCK_NB is gc's test that no one pins
 * it. Returns the fd; on failure errnum says why (ENOENT: no such copy,
 * EWOULDBLOCK: pinned). */
static int lock_dir(const char *path, int op, slate_error_t *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", path);
	if (flock_wait(fd, op, path, err) < 0)
		return -1;
	if (!same_object(fd, path)) {
		close(fd);
		return slate_error_sys(err, ENOENT, "`%s` was removed", path);
	}
	return fd;
}

/* Serialise the unpacks (and gc) of one id on store/<id>.lock. The file
 * exists only while it is held: the holder unlinks it before it lets go,
 * so a refused bundle leaves no lock file behind. */
static int lock_id(const char *root, const char *id, int op, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/store/%s.lock", root, id);

	for (;;) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return slate_error_sys(err, errno, "open `%s`", path);
		if (flock_wait(fd, op, path, err) < 0)
			return -1;
		if (same_object(fd, path))
			return fd;
		close(fd);
	}
}

static void unlock_id(const char *root, const char *id, int *fd)
{
	cleanup_free char *path = xasprintf("%s/store/%s.lock", root, id);

	if (*fd < 0)
		return;
	(void)unlink(path);
	close(*fd);
	*fd = -1;
}

/* ---- the seal ---- */

/* The seal is the list of records, not a digest of it: comparing it needs
 * no hashing (slate-monitor links no crypto library), and it is small (a
 * path and 80 bytes an entry). */
struct sealer {
	char *buf;
	size_t len, cap;
	slate_error_t *err;
};

#define SEAL_FIELDS 10

static void stat_record(const struct stat *st, uint64_t rec[SEAL_FIELDS])
{
	uint64_t r[SEAL_FIELDS] = { st->st_ino,
				    st->st_mode,
				    st->st_uid,
				    st->st_gid,
				    st->st_nlink,
				    (uint64_t)st->st_size,
				    (uint64_t)st->st_ctim.tv_sec,
				    (uint64_t)st->st_ctim.tv_nsec,
				    (uint64_t)st->st_mtim.tv_sec,
				    (uint64_t)st->st_mtim.tv_nsec };

	memcpy(rec, r, sizeof(r));
}

static void seal_record(struct sealer *s, const char *path, const struct stat *st)
{
	uint64_t rec[SEAL_FIELDS];
	size_t n = strlen(path) + 1;

	stat_record(st, rec);
	while (s->len + n + sizeof(rec) > s->cap) {
		s->cap = s->cap ? 2 * s->cap : 65536;
		s->buf = xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, path, n);
	memcpy(s->buf + s->len + n, rec, sizeof(rec));
	s->len += n + sizeof(rec);
}

static int list_dir(int dirfd, const char *what, struct slate_strv *names, slate_error_t *err)
{
	DIR *d = slate_opendir_fd(dirfd, what, err);
	struct dirent *de;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			slate_strv_push(names, de->d_name);
	closedir(d);
	slate_strv_sort(names);
	return 0;
}

/* Every entry below dirfd, in name order: its path and metadata. */
static int seal_dir(struct sealer *s, int dirfd, const char *rel, int depth)
{
	struct slate_strv names = { 0 };
	int r = list_dir(dirfd, rel, &names, s->err);

	for (size_t i = 0; r == 0 && i < names.n; i++) {
		cleanup_free char *path = xasprintf("%s/%s", rel, names.v[i]);
		struct stat st;
		if (fstatat(dirfd, names.v[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = slate_error_sys(s->err, errno, "stat `%s`", path);
			break;
		}
		seal_record(s, path, &st);
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth >= STORE_MAX_DEPTH) {
			r = slate_error_sys(s->err, ELOOP, "`%s` is too deep", path);
			break;
		}
		cleanup_close int sub = openat(dirfd, names.v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = sub < 0 ? slate_error_sys(s->err, errno, "open `%s`", path) : seal_dir(s, sub, path, depth + 1);
	}
	slate_strv_free(&names);
	return r;
}

/* The seal of store/<id>: the metadata (inode, type and mode, owner, link
 * count, size, ctime, mtime) of manifest.json, meta.json and every entry
 * of the tree, by path. Cheap to recompute (stat and readdir, no reading
 * of content), and any change made through the filesystem moves a ctime,
 * an inode or a listing: an added, removed, renamed, rewritten, chmod-ed
 * or chown-ed entry breaks it. */
static char *seal_compute(const char *dir, size_t *len, slate_error_t *err)
{
	static const char *const top[] = { "manifest.json", "meta.json", "root" };
	struct sealer s = { .err = err };
	cleanup_close int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), rootfd = -1;
	struct stat st;

	if (dirfd < 0) {
		slate_error_sys(err, errno, "open `%s`", dir);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		if (fstatat(dirfd, top[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			slate_error_sys(err, errno, "stat `%s/%s`", dir, top[i]);
			goto fail;
		}
		seal_record(&s, top[i], &st);
	}
	rootfd = openat(dirfd, "root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		slate_error_sys(err, errno, "open `%s/root`", dir);
		goto fail;
	}
	if (seal_dir(&s, rootfd, "root", 0) < 0)
		goto fail;
	close(rootfd);
	*len = s.len;
	return s.buf;
fail:
	if (rootfd >= 0)
		close(rootfd);
	free(s.buf);
	return NULL;
}

static int seal_write(const char *dir, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/seal", dir);
	size_t len = 0;
	cleanup_free char *buf = seal_compute(dir, &len, err);

	return buf ? slate_write_file_atomic(path, buf, len, 0600, err) : -1;
}

static int drifted(const char *id, slate_error_t *err)
{
	return slate_error_refuse(
		err,
		"the store copy of bundle %.12s has drifted (changed on the host since it verified): "
		"`slate verify APP` shows how; `slate verify --repair APP BUNDLE`, or a deploy of the "
		"bundle file, restores it",
		id);
}

/* Re-stat every entry the seal lists, in its order (a directory before
 * what it holds), and compare. No listing is needed to see an entry added
 * or removed: that moves its directory's mtime and ctime. */
static bool seal_matches(int dirfd, const char *buf, size_t len)
{
	uint64_t rec[SEAL_FIELDS];
	struct stat st;
	size_t off = 0;

	while (off < len) {
		const char *path = buf + off, *nul = memchr(path, '\0', len - off);
		if (nul == NULL || (size_t)(nul + 1 - buf) + sizeof(rec) > len)
			return false;
		if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return false;
		stat_record(&st, rec);
		if (memcmp(nul + 1, rec, sizeof(rec)) != 0)
			return false;
		off = (size_t)(nul + 1 - buf) + sizeof(rec);
	}
	return len > 0;
}

/* 0: the copy's seal holds; a refusal when it drifted, or has no seal
 * (errnum ENOENT: stored before seals existed, see seal_first). */
static int seal_check(const char *id, const char *dir, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/seal", dir), *want = NULL;
	cleanup_close int dirfd = -1;
	slate_error_t e = { 0 };
	size_t len = 0;

	want = slate_read_file(path, (size_t)1 << 30, &len, &e);
	if (want == NULL && e.errnum == ENOENT)
		return slate_error_set(err, SLATE_EXIT_REFUSED, ENOENT, "the store copy of bundle %.12s has no seal",
				       id);
	if (want == NULL)
		return *err = e, -1;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return slate_error_sys(err, errno, "open `%s`", dir);
	return seal_matches(dirfd, want, len) ? 0 : drifted(id, err);
}

/* A copy stored before seals existed: re-hashed once against its
 * manifest, then sealed (slate only: slate-monitor refuses it unsealed). */
static int seal_first(const char *root, const char *id, const char *dir, slate_error_t *err)
{
	struct slate_stored s = { 0 };
	size_t n = 0;
	int r = slate_store_load_full(root, id, &s, err);

	if (r == 0)
		r = slate_store_check(&s, NULL, NULL, &n, err);
	if (r == 0 && n > 0) {
		/* A seal that no tree matches: refused from now on, without re-hashing. */
		cleanup_free char *path = xasprintf("%s/seal", dir);
		(void)slate_write_file_atomic(path, "drifted\n", 8, 0600, err);
		r = drifted(id, err);
	}
	if (r == 0)
		r = seal_write(dir, err);
	slate_stored_free(&s);
	return r;
}

/* ---- loading ---- */

static int parse_json(const struct slate_stored *s, const char *name, struct slate_manifest *m, slate_error_t *err)
{
	struct slate_limits lim;
	cleanup_free char *path = xasprintf("%s/%s", s->dir, name), *buf = NULL;
	size_t len = 0;

	slate_limits_default(&lim);
	buf = slate_read_file(path, lim.max_manifest_bytes, &len, err);
	if (buf == NULL)
		return slate_error_wrap(err, "bundle %.12s is not in the store", s->id);
	return slate_manifest_parse(buf, len, &lim, m, err) < 0 ? -1 : slate_policy_check(m, err);
}

static int start_load(const char *root, const char *id, struct slate_stored *out, slate_error_t *err)
{
	memset(out, 0, sizeof(*out));
	out->pin = -1;
	if (!is_id(id))
		return slate_error_usage(err, "`%s` is not a bundle id", id);
	memcpy(out->id, id, SLATE_SHA256_HEX);
	stored_paths(root, out);
	return 0;
}

int slate_store_load(const char *root, const char *id, struct slate_stored *out, slate_error_t *err)
{
	slate_error_t e = { 0 };

	if (start_load(root, id, out, err) < 0)
		return -1;
	out->pin = lock_dir(out->dir, LOCK_SH, &e);
	if (out->pin < 0) {
		*err = e;
		return slate_error_wrap(err, "bundle %.12s is not in the store", id);
	}
	out->pinned = true;
	if (seal_check(out->id, out->dir, err) < 0 || parse_json(out, "meta.json", &out->m, err) < 0) {
		unpin(out);
		return -1;
	}
	return 0;
}

int slate_store_load_full(const char *root, const char *id, struct slate_stored *out, slate_error_t *err)
{
	if (start_load(root, id, out, err) < 0)
		return -1;
	return parse_json(out, "manifest.json", &out->m, err);
}

/* ---- bundle files that verified ---- */

static int file_digest(int fd, const char *name, char hex[SLATE_SHA256_HEX], struct stat *st, slate_error_t *err)
{
	unsigned char d[SLATE_SHA256_LEN];
	unsigned long long size = 0;

	if (fstat(fd, st) < 0)
		return slate_error_sys(err, errno, "stat `%s`", name);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return slate_error_sys(err, errno, "seek `%s`", name);
	if (slate_sha256_fd(fd, name, d, &size, err) < 0)
		return -1;
	slate_hex(d, sizeof(d), hex);
	return 0;
}

/* Nothing wrote to the file since *before: then the bytes that were hashed
 * are the bytes that verified. */
static bool file_unchanged(int fd, const struct stat *before)
{
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_ino == before->st_ino && st.st_dev == before->st_dev &&
	       st.st_size == before->st_size && st.st_mtim.tv_sec == before->st_mtim.tv_sec &&
	       st.st_mtim.tv_nsec == before->st_mtim.tv_nsec && st.st_ctim.tv_sec == before->st_ctim.tv_sec &&
	       st.st_ctim.tv_nsec == before->st_ctim.tv_nsec;
}

/* store/<id>/bundles: one line per bundle file that verified completely:
 * its SHA-256 (hex), then the identity it had when it was hashed (device,
 * inode, size, mtime and ctime in ns). A file whose fstat matches a line
 * is that file, unwritten since it verified (a write changes mtime and
 * ctime, and ctime cannot be set back from user space), so a warm start
 * does not re-read a 50 MB bundle; any other file is hashed. Raw writes to
 * the block device and a clock set back are outside this check, as they
 * are outside the seal's. At most STORE_MAX_FILES lines, newest last. */
#define FILE_LINE_MAX (SLATE_SHA256_HEX + 6 * 21)

static void file_identity(const struct stat *st, char *out, size_t len)
{
	snprintf(out, len, "%llu %llu %lld %lld %lld", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
		 (long long)st->st_size, (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
		 (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec);
}

static char *files_read(const char *dir, size_t *len)
{
	cleanup_free char *path = xasprintf("%s/bundles", dir);
	slate_error_t ignore = { 0 };

	return slate_read_file(path, STORE_MAX_FILES * FILE_LINE_MAX, len, &ignore);
}

/* The file is known by its hash (hex) or, when hex is NULL, by its
 * identity (st). */
static bool file_known(const char *dir, const char *hex, const struct stat *st)
{
	cleanup_free char *buf = NULL;
	char id[FILE_LINE_MAX];
	size_t len = 0;

	buf = files_read(dir, &len);
	if (buf == NULL)
		return false;
	file_identity(st, id, sizeof(id));
	for (char *line = buf, *nl; (nl = memchr(line, '\n', len - (size_t)(line - buf))) != NULL; line = nl + 1) {
		*nl = '\0';
		if (strlen(line) < SLATE_SHA256_HEX - 1)
			continue;
		if (hex ? strncmp(line, hex, SLATE_SHA256_HEX - 1) == 0
			: line[SLATE_SHA256_HEX - 1] == ' ' && strcmp(line + SLATE_SHA256_HEX, id) == 0)
			return true;
	}
	return false;
}

static void file_record(const char *dir, const char *hex, const struct stat *st)
{
	cleanup_free char *path = xasprintf("%s/bundles", dir), *buf = NULL, *out = NULL;
	slate_error_t ignore = { 0 };
	char id[FILE_LINE_MAX];
	size_t len = 0, lines = 0;
	const char *keep;

	buf = files_read(dir, &len);
	if (buf == NULL || len == 0 || buf[len - 1] != '\n')
		len = 0;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	keep = buf;
	for (; lines >= STORE_MAX_FILES; lines--)
		keep = memchr(keep, '\n', len - (size_t)(keep - buf)) + 1;
	file_identity(st, id, sizeof(id));
	out = xasprintf("%.*s%s %s\n", (int)(len ? len - (size_t)(keep - buf) : 0), len ? keep : "", hex, id);
	(void)slate_write_file_atomic(path, out, strlen(out), 0600, &ignore);
}

/* ---- the full check (slate verify) ---- */

struct checker {
	const struct slate_stored *s;
	slate_store_problem_fn fn;
	void *ctx;
	size_t n;
};

static void problem(struct checker *c, const char *path, const char *what)
{
	c->n++;
	if (c->fn)
		c->fn(c->ctx, path, what);
}

/* One entry of the copy against its manifest entry, never following a link
 * out of the tree. */
static void check_entry(struct checker *c, int rootfd, const struct slate_entry *e)
{
	struct open_how how = { .flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	unsigned char digest[SLATE_SHA256_LEN];
	unsigned long long size = 0;
	slate_error_t ignore = { 0 };
	struct stat st;
	char target[4096];
	int fd;

	if (fstatat(rootfd, e->path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return problem(c, e->path, "missing");
	if ((e->type == SLATE_ENTRY_DIR && !S_ISDIR(st.st_mode)) ||
	    (e->type == SLATE_ENTRY_FILE && !S_ISREG(st.st_mode)) ||
	    (e->type == SLATE_ENTRY_SYMLINK && !S_ISLNK(st.st_mode)))
		return problem(c, e->path, "type changed");
	if (st.st_uid != 0 || st.st_gid != 0)
		return problem(c, e->path, "owner changed");
	if (e->type != SLATE_ENTRY_SYMLINK && (st.st_mode & 07777) != e->mode)
		return problem(c, e->path, "mode changed");
	if (e->type == SLATE_ENTRY_SYMLINK) {
		ssize_t n = readlinkat(rootfd, e->path, target, sizeof(target) - 1);
		if (n < 0 || (target[n] = '\0', strcmp(target, e->target) != 0))
			problem(c, e->path, "link target changed");
		return;
	}
	if (e->type != SLATE_ENTRY_FILE)
		return;
	fd = (int)syscall(SYS_openat2, rootfd, e->path, &how, sizeof(how));
	if (fd < 0)
		return problem(c, e->path, "unreadable");
	if (slate_sha256_fd(fd, e->path, digest, &size, &ignore) < 0 || size != e->size ||
	    memcmp(digest, e->sha256, SLATE_SHA256_LEN) != 0)
		problem(c, e->path, "content changed");
	close(fd);
}

/* The manifest's order (the image's entries, then the app's). */
static int entry_path_cmp(const void *key, const void *elem)
{
	const struct slate_entry k = { .path = (char *)key };

	return slate_entry_order_cmp(&k, elem);
}

/* Every entry below dirfd that the manifest does not list. */
static int find_added(struct checker *c, int dirfd, const char *rel, int depth, slate_error_t *err)
{
	struct slate_strv names = { 0 };
	int r = list_dir(dirfd, rel[0] ? rel : "root", &names, err);

	for (size_t i = 0; r == 0 && i < names.n; i++) {
		cleanup_free char *path = rel[0] ? xasprintf("%s/%s", rel, names.v[i]) : xstrdup(names.v[i]);
		struct stat st;
		if (bsearch(path, c->s->m.entries, c->s->m.n_entries, sizeof(struct slate_entry), entry_path_cmp) ==
		    NULL) {
			/* A name added on the host may hold any byte. */
			cleanup_free char *shown = slate_escape_name(path, NULL);
			problem(c, shown, "added");
		}
		if (fstatat(dirfd, names.v[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (depth >= STORE_MAX_DEPTH) {
			cleanup_free char *shown = slate_escape_name(path, NULL);
			problem(c, shown, "too deep");
			continue;
		}
		cleanup_close int sub = openat(dirfd, names.v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			r = find_added(c, sub, path, depth + 1, err);
	}
	slate_strv_free(&names);
	return r;
}

int slate_store_check(const struct slate_stored *s, slate_store_problem_fn fn, void *ctx, size_t *n, slate_error_t *err)
{
	struct checker c = { .s = s, .fn = fn, .ctx = ctx };
	cleanup_close int rootfd = open(s->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (rootfd < 0)
		return slate_error_sys(err, errno, "open `%s`", s->root);
	for (size_t i = 0; i < s->m.n_entries; i++)
		check_entry(&c, rootfd, &s->m.entries[i]);
	if (find_added(&c, rootfd, "", 0, err) < 0)
		return -1;
	*n = c.n;
	return 0;
}

/* ---- adding ---- */

/* manifest.json: the verified manifest; meta.json: the same without its
 * entries, which is all that starting an instance needs (parsing a
 * 20,000-entry manifest on every start would cost more than the start). */
static int write_json(const char *dir, const char *name, const struct slate_manifest *m, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, name);
	size_t len = 0;
	cleanup_free char *bytes = slate_manifest_serialize(m, &len, err);

	if (bytes == NULL)
		return -1;
	return slate_write_file_atomic(path, bytes, len, 0600, err);
}

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

/* Make tmp store/<id>: a rename, or (a drifted copy, or a repair) an
 * exchange with the copy there, which is then kept aside as evidence:
 * instances started from it may still run from it. Under the id lock. */
static int install(const char *root, const char *tmp, const struct slate_stored *s, const char *bundle_path,
		   slate_error_t *err)
{
	cleanup_free char *aside = NULL;

	if (rename(tmp, s->dir) == 0)
		return 0;
	if (errno != EEXIST && errno != ENOTEMPTY)
		return slate_error_sys(err, errno, "move `%s` to `%s`", tmp, s->dir);
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, s->dir, RENAME_EXCHANGE) < 0)
		return slate_error_sys(err, errno, "exchange `%s` and `%s`", tmp, s->dir);
	for (int i = 0;; i++) {
		free(aside);
		aside = xasprintf("%s/store/.drifted-%s-%lld-%d", root, s->id, (long long)time(NULL), i);
		if (rename(tmp, aside) == 0 || (errno != EEXIST && errno != ENOTEMPTY) || i >= 1000)
			break;
	}
	if (access(tmp, F_OK) == 0)
		fprintf(stderr, "slate: move `%s` aside: %s\n", tmp, strerror(errno));
	fprintf(stderr, "slate: bundle %.12s unpacked afresh from `%s`; the old copy is kept as `%s`\n", s->id,
		bundle_path, aside);
	return 0;
}

/* Unpack into store/.tmp-<id>-<pid>/root (pinned from the start), add the
 * manifest, the seal and the file's hash, install it. Under the id lock. */
static int unpack_fresh(const char *root, int fd, const char *bundle_path, const struct slate_keyring *kr,
			struct slate_stored *out, slate_error_t *err)
{
	struct slate_limits lim;
	cleanup_free char *tmp = xasprintf("%s/store/.tmp-%s-%d", root, out->id, (int)getpid());
	cleanup_free char *tree = xasprintf("%s/root", tmp);
	char id[SLATE_SHA256_HEX], hex[SLATE_SHA256_HEX];
	slate_error_t ignore = { 0 };
	struct stat st;
	int pin;

	slate_limits_default(&lim);
	slate_remove_tree(tmp, &ignore);
	if (mkdir(tmp, 0700) < 0)
		return slate_error_sys(err, errno, "create `%s`", tmp);
	pin = lock_dir(tmp, LOCK_SH, err);
	if (pin < 0)
		goto fail;
	if (file_digest(fd, bundle_path, hex, &st, err) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    slate_bundle_unpack(fd, bundle_path, kr, &lim, tree, &out->m, id, err) < 0)
		goto fail;
	if (strcmp(id, out->id) != 0) {
		slate_error_refuse(err, "bundle `%s` changed while it was being read", bundle_path);
		goto fail;
	}
	if (write_manifest(tmp, &out->m, err) < 0 || seal_write(tmp, err) < 0)
		goto fail;
	if (file_unchanged(fd, &st))
		file_record(tmp, hex, &st);
	if (install(root, tmp, out, bundle_path, err) < 0)
		goto fail;
	out->pin = pin;
	out->pinned = true;
	out->unpacked = true;
	return 0;
fail:
	if (pin >= 0)
		close(pin);
	slate_remove_tree(tmp, &ignore);
	return -1;
}

/* The stored copy of the bundle on fd, for use: 1 used (pinned, metadata
 * loaded), 0 none to use (absent, or drifted: unpack afresh), -1 refused.
 * The bundle file's body is not read when the file is one that verified
 * completely (same SHA-256); any other file with this head is verified in
 * full first, so that a corrupt or tampered file never "deploys". */
static int use_stored(const char *root, int fd, const char *bundle_path, const struct slate_keyring *kr,
		      struct slate_stored *out, slate_error_t *err)
{
	struct slate_limits lim;
	char hex[SLATE_SHA256_HEX], id[SLATE_SHA256_HEX];
	slate_error_t e = { 0 };
	struct stat st;

	slate_limits_default(&lim);
	out->pin = lock_dir(out->dir, LOCK_SH, &e);
	if (out->pin < 0)
		return e.errnum == ENOENT ? 0 : (*err = e, -1);
	out->pinned = true;
	if (seal_check(out->id, out->dir, &e) < 0 &&
	    (e.errnum != ENOENT || seal_first(root, out->id, out->dir, &e) < 0)) {
		unpin(out);
		return e.kind == SLATE_EXIT_REFUSED ? 0 : (*err = e, -1);
	}
	if (fstat(fd, &st) < 0) {
		slate_error_sys(err, errno, "stat `%s`", bundle_path);
		goto fail;
	}
	if (file_known(out->dir, NULL, &st))
		goto known;
	if (file_digest(fd, bundle_path, hex, &st, err) < 0)
		goto fail;
	if (!file_known(out->dir, hex, &st)) {
		if (lseek(fd, 0, SEEK_SET) < 0 ||
		    slate_bundle_verify_fd(fd, bundle_path, kr, &lim, NULL, NULL, id, err) < 0)
			goto fail;
		if (strcmp(id, out->id) != 0) {
			slate_error_refuse(err, "bundle `%s` changed while it was being read", bundle_path);
			goto fail;
		}
	}
	/* Known by its hash, or verified in full just now: from now on by
	 * its identity too. */
	if (file_unchanged(fd, &st))
		file_record(out->dir, hex, &st);
known:
	if (parse_json(out, "meta.json", &out->m, err) < 0)
		goto fail;
	return 1;
fail:
	unpin(out);
	return -1;
}

int slate_store_add(const char *root, const char *bundle_path, const struct slate_keyring *kr,
		    slate_store_check_fn check, void *check_ctx, struct slate_stored *out, slate_error_t *err)
{
	struct slate_limits lim;
	struct slate_manifest head = { 0 };
	cleanup_close int fd = -1;
	int lock = -1, r;

	memset(out, 0, sizeof(*out));
	out->pin = -1;
	slate_limits_default(&lim);
	fd = open(bundle_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", bundle_path);
	/* The signature first, then the caller's policy: a bundle refused
	 * here stops before anything is written, not even a lock file. */
	if (slate_bundle_verify_head(fd, bundle_path, kr, &lim, check ? &head : NULL, out->id, err) < 0)
		return -1;
	if (check) {
		r = check(check_ctx, &head, err);
		slate_manifest_free(&head);
		if (r < 0)
			return -1;
	}
	stored_paths(root, out);
	if (slate_store_init(root, err) < 0)
		return -1;
	r = use_stored(root, fd, bundle_path, kr, out, err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	lock = lock_id(root, out->id, LOCK_EX, err);
	if (lock < 0)
		return -1;
	/* Another command may have unpacked it while this one waited. */
	r = use_stored(root, fd, bundle_path, kr, out, err);
	if (r == 0)
		r = unpack_fresh(root, fd, bundle_path, kr, out, err);
	unlock_id(root, out->id, &lock);
	return r < 0 ? -1 : 0;
}

int slate_store_repair(const char *root, const char *id, const char *bundle_path, const struct slate_keyring *kr,
		       slate_error_t *err)
{
	struct slate_limits lim;
	struct slate_stored s = { 0 };
	cleanup_close int fd = -1;
	int lock = -1, r = -1;

	slate_limits_default(&lim);
	fd = open(bundle_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", bundle_path);
	if (start_load(root, id, &s, err) < 0 ||
	    slate_bundle_verify_head(fd, bundle_path, kr, &lim, NULL, s.id, err) < 0)
		goto out;
	if (strcmp(s.id, id) != 0) {
		slate_error_refuse(err, "`%s` is bundle %.12s, not %.12s", bundle_path, s.id, id);
		goto out;
	}
	lock = lock_id(root, id, LOCK_EX, err);
	if (lock >= 0)
		r = unpack_fresh(root, fd, bundle_path, kr, &s, err);
	unlock_id(root, id, &lock);
out:
	slate_stored_free(&s);
	return r;
}

/* ---- removing ---- */

/* Remove store/<name> if no one pins it (and, for a copy, no unpack of its
 * id runs): out of sight first (one rename), then deleted. 1 removed, 0 in
 * use, -1 failed. */
static int remove_unpinned(const char *root, const char *name, bool copy, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/store/%s", root, name);
	cleanup_free char *gone = xasprintf("%s/store/.gc-%s-%d", root, name, (int)getpid());
	slate_error_t e = { 0 };
	int lock = -1, fd, r = 0;

	if (copy && (lock = lock_id(root, name, LOCK_EX | LOCK_NB, &e)) < 0)
		return e.errnum == EWOULDBLOCK ? 0 : (*err = e, -1);
	fd = lock_dir(path, LOCK_EX | LOCK_NB, &e);
	if (fd < 0) {
		r = e.errnum == EWOULDBLOCK || e.errnum == ENOENT ? 0 : (*err = e, -1);
	} else if (rename(path, gone) < 0) {
		r = slate_error_sys(err, errno, "move `%s` to `%s`", path, gone);
	} else {
		r = slate_remove_tree(gone, err) < 0 ? -1 : 1;
	}
	if (fd >= 0)
		close(fd);
	unlock_id(root, name, &lock);
	return r;
}

static int store_names(const char *root, struct slate_strv *names, slate_error_t *err)
{
	cleanup_free char *store = xasprintf("%s/store", root);
	cleanup_close int fd = open(store, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : slate_error_sys(err, errno, "open `%s`", store);
	return list_dir(fd, store, names, err);
}

int slate_store_gc(const char *root, const struct slate_strv *keep, void (*removed)(const char *name),
		   void (*in_use)(const char *name), int *n_removed, slate_error_t *err)
{
	struct slate_strv names = { 0 };
	int r = store_names(root, &names, err);

	*n_removed = 0;
	for (size_t i = 0; r == 0 && i < names.n; i++) {
		const char *name = names.v[i];
		bool copy = is_id(name) && !slate_strv_contains(keep, name);
		int gone;
		if (!copy && strncmp(name, ".drifted-", 9) != 0)
			continue;
		gone = remove_unpinned(root, name, copy, err);
		if (gone < 0)
			r = -1;
		else if (gone == 0 && copy && in_use)
			in_use(name);
		else if (gone == 1 && removed)
			removed(name);
		*n_removed += gone == 1;
	}
	slate_strv_free(&names);
	return r;
}

/* A .tmp-<id>-<pid> whose id lock is free (or gone) is abandoned: an unpack
 * holds that lock from before it makes its directory until it is renamed.
 * A .gc-* that no one locks is what a killed gc left. */
static bool abandoned(const char *store, const char *name)
{
	char id[SLATE_SHA256_HEX];
	slate_error_t ignore = { 0 };
	int fd;

	if (strncmp(name, ".gc-", 4) == 0) {
		cleanup_free char *path = xasprintf("%s/%s", store, name);
		fd = lock_dir(path, LOCK_EX | LOCK_NB, &ignore);
		return fd >= 0 ? (close(fd), true) : false;
	}
	if (strncmp(name, ".tmp-", 5) != 0 || strlen(name) < 5 + SLATE_SHA256_HEX)
		return false;
	memcpy(id, name + 5, SLATE_SHA256_HEX - 1);
	id[SLATE_SHA256_HEX - 1] = '\0';
	cleanup_free char *lockpath = xasprintf("%s/%s.lock", store, id);
	fd = open(lockpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT;
	bool free_ = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return free_;
}

/* An id lock that no one holds (left by an older slate, which kept them):
 * removed under the lock, as its holders do. */
static void remove_free_lock(const char *store, const char *name)
{
	size_t n = strlen(name);
	cleanup_free char *path = xasprintf("%s/%s", store, name);
	cleanup_free char *id = xstrndup(name, n > 5 ? n - 5 : 0);
	cleanup_close int fd = -1;

	if (n != SLATE_SHA256_HEX - 1 + 5 || strcmp(name + n - 5, ".lock") != 0 || !is_id(id))
		return;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && same_object(fd, path))
		(void)unlink(path);
}

/* A copy stored by an older slate has no seal: re-hash it and seal it. */
static void seal_old(const char *root, const char *store, const char *name)
{
	cleanup_free char *dir = xasprintf("%s/%s", store, name), *seal = xasprintf("%s/seal", dir);
	slate_error_t ignore = { 0 };
	int pin;

	if (access(seal, F_OK) == 0 || errno != ENOENT || (pin = lock_dir(dir, LOCK_SH, &ignore)) < 0)
		return;
	if (access(seal, F_OK) < 0 && errno == ENOENT)
		(void)seal_first(root, name, dir, &ignore);
	close(pin);
}

int slate_store_clean_stale(const char *root, slate_error_t *err)
{
	cleanup_free char *store = xasprintf("%s/store", root);
	struct slate_strv names = { 0 };
	int r = store_names(root, &names, err);

	for (size_t i = 0; r == 0 && i < names.n; i++) {
		if (is_id(names.v[i]))
			seal_old(root, store, names.v[i]);
		remove_free_lock(store, names.v[i]);
		if (!abandoned(store, names.v[i]))
			continue;
		cleanup_free char *path = xasprintf("%s/%s", store, names.v[i]);
		slate_error_t ignore = { 0 };
		slate_remove_tree(path, &ignore);
	}
	slate_strv_free(&names);
	return r;
}
