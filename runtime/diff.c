/* slate: what an instance wrote since it started (see diff.h).
 *
 * Threat: the upper is written by the instance, which may be an attacker
 * who wants a change to go unreported, or the operator's terminal or the
 * host to be fooled while we look. So: every open is resolved beneath the
 * upper with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)
 * and O_NOFOLLOW; only regular files are opened for reading (O_NONBLOCK,
 * and the tmpfs is nodev); a file is "unchanged" only when its bytes hash
 * to the signed manifest's SHA-256; names are escaped on output; the walk
 * keeps at most two directory fds open however deep the tree, and stops
 * past DIFF_MAX_ENTRIES. Only overlayfs itself (running in the host's user
 * namespace) can set trusted.overlay.* xattrs, so the opaque markers we read
 * are the kernel's, not the instance's. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "slate/hash.h"
#include "slate/path.h"
#include "slate/util.h"
#include "diff.h"

#define XATTR_OPAQUE "trusted.overlay.opaque"
#define XATTR_REDIRECT "trusted.overlay.redirect"
#define XATTR_METACOPY "trusted.overlay.metacopy"
#define LINK_MAX_BYTES 4096
/* The budget when the upper's file system reports no size (a tmpfs without
 * size=: slate never mounts one). */
#define DIFF_UNSIZED_BUDGET (256ULL << 20)
/* A directory is walked only if "/" + its path + "/" + any name fits in
 * PATH_MAX: every listed path stays usable by ordinary tools. */
#define DIFF_MAX_DIR_PATH (PATH_MAX - NAME_MAX - 3)

static void strv_cleanup(struct slate_strv *sv)
{
	slate_strv_free(sv);
}
#define cleanup_strv __attribute__((cleanup(strv_cleanup)))

/* ---- names: escaped for terminals and line-based files ---- */

/* The one escaper (slate_escape_name): controls, C1, bidi controls and
 * invalid UTF-8 as escapes, '\\' doubled; *escaped tells whether anything
 * changed. */
static char *escape_name(const char *s, bool *escaped)
{
	return slate_escape_name(s, escaped);
}

/* ---- opening beneath the upper ---- */

/* Without openat2 (kernels before 5.6, valgrind): one component at a
 * time, each with O_NOFOLLOW, refusing "." and "..", on the same device. */
static int open_by_components(int dirfd, const char *rel, int flags)
{
	cleanup_free char *copy = xstrdup(rel);
	cleanup_close int cur = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	char *save = NULL, *name = strtok_r(copy, "/", &save);
	struct stat top, st;

	if (cur < 0 || fstat(cur, &top) < 0)
		return -1;
	while (name != NULL) {
		char *next = strtok_r(NULL, "/", &save);
		int fd;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
			errno = EXDEV;
			return -1;
		}
		fd = openat(cur, name, (next ? O_PATH | O_DIRECTORY : flags) | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -1;
		close(cur);
		cur = fd;
		if (fstat(cur, &st) < 0)
			return -1;
		if (st.st_dev != top.st_dev) {
			errno = EXDEV;
			return -1;
		}
		name = next;
	}
	return steal_fd(&cur);
}

/* Open rel ("" for the upper itself) beneath dirfd, never through a
 * symlink, a magic link or another mount. */
static int open_beneath(int dirfd, const char *rel, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
					   RESOLVE_NO_XDEV };
	long fd;

	if (rel[0] == '\0')
		return openat(dirfd, ".", flags | O_CLOEXEC);
	fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		return open_by_components(dirfd, rel, flags);
	return (int)fd;
}

/* Read the names in a directory (without . and ..). */
static int read_names(int fd, const char *rel, struct slate_strv *names, slate_error_t *err)
{
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	struct dirent *de;

	if (d == NULL) {
		if (dup >= 0)
			close(dup);
		return slate_error_sys(err, errno, "read directory `/%s` in the upper", rel);
	}
	rewinddir(d); /* the dup shares fd's offset */
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			slate_strv_push(names, de->d_name);
	}
	if (errno != 0) {
		int e = errno;
		closedir(d);
		return slate_error_sys(err, e, "read directory `/%s` in the upper", rel);
	}
	closedir(d);
	return 0;
}

/* Whether fd has the xattr; with val, whether its value is exactly val. */
static int has_xattr(int fd, const char *name, const char *val, const char *path, bool *out, slate_error_t *err)
{
	char buf[8];
	ssize_t r = fgetxattr(fd, name, val ? buf : NULL, val ? sizeof(buf) : 0);

	*out = false;
	if (r < 0 && (errno == ENODATA || errno == ENOTSUP || errno == ERANGE))
		return 0;
	if (r < 0)
		return slate_error_sys(err, errno, "read xattr %s of `/%s` in the upper", name, path);
	*out = val == NULL || ((size_t)r == strlen(val) && memcmp(buf, val, (size_t)r) == 0);
	return 0;
}

/* ---- reading bounded by the instance's tmpfs ---- */

/* What the diff may still read and hash (and, afresh, what the tar may
 * still hold): the size of the instance's tmpfs, once for data and once
 * for the zeros of holes. The instance cannot store more data than that,
 * so an honest upper always fits; st_size, which the instance sets at will
 * (ftruncate to 8 EiB), is never what bounds the work. */
struct budget {
	uint64_t data, zeros;
};

static int budget_init(int upper_fd, struct budget *b, slate_error_t *err)
{
	struct statfs sf;
	uint64_t size;

	if (fstatfs(upper_fd, &sf) < 0)
		return slate_error_sys(err, errno, "statfs the upper");
	size = (uint64_t)sf.f_blocks * (uint64_t)sf.f_bsize;
	b->data = b->zeros = size > 0 ? size : DIFF_UNSIZED_BUDGET;
	return 0;
}

/* Take data and zeros bytes from the budget if both fit. */
static bool budget_take(struct budget *b, uint64_t data, uint64_t zeros)
{
	if (data > b->data || zeros > b->zeros)
		return false;
	b->data -= data;
	b->zeros -= zeros;
	return true;
}

struct extent {
	uint64_t off, len;
};

/* A file's first `size` bytes as data extents; the rest are holes. */
struct layout {
	struct extent *v;
	size_t n, cap;
	uint64_t size, data;
};

static void layout_free(struct layout *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
#define cleanup_layout __attribute__((cleanup(layout_free)))

/* Zeros in the holes before the last extent (a sparse tar member needs
 * them fed; the trailing hole is not). */
static uint64_t layout_inner_holes(const struct layout *l)
{
	return l->n ? l->v[l->n - 1].off + l->v[l->n - 1].len - l->data : 0;
}

/* The data extents of fd's first `size` bytes, from SEEK_DATA/SEEK_HOLE,
 * without reading a byte. The instance may write while we look: every
 * step moves forward, and past max_data bytes of data we stop (*too_big),
 * so neither the extents nor the data later read can pass the budget. */
static int file_layout(int fd, uint64_t size, uint64_t max_data, const char *path, struct layout *l, bool *too_big,
		       slate_error_t *err)
{
	uint64_t off = 0;

	*too_big = false;
	l->size = size;
	l->data = 0;
	while (off < size) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA), h = (off_t)size;
		if (d == -1 && errno == ENXIO)
			break; /* a hole to the end */
		if (d == -1)
			return slate_error_sys(err, errno, "seek data in `/%s` in the upper", path);
		if (d >= 0)
			h = lseek(fd, d, SEEK_HOLE);
		else
			d = (off_t)off;
		if (h == -1 && errno != ENXIO)
			return slate_error_sys(err, errno, "seek hole in `/%s` in the upper", path);
		if ((uint64_t)d >= size)
			break;
		/* Gone past the end (ENXIO: it shrank), or a bogus answer (a
		 * tmpfs gives LLONG_MIN for data that ends at 8 EiB): data up to
		 * the end, as far as the budget goes. */
		if (h <= d || (uint64_t)h > size)
			h = (off_t)size;
		if ((uint64_t)(h - d) > max_data - l->data) {
			*too_big = true;
			return 0;
		}
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 8;
			l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
		}
		l->v[l->n++] = (struct extent){ .off = (uint64_t)d, .len = (uint64_t)(h - d) };
		l->data += (uint64_t)(h - d);
		off = (uint64_t)h;
	}
	return 0;
}

/* Where a file's bytes go: a hash, a tar member, or both. */
struct sink {
	slate_sha256_t *h;
	struct archive *a;
	const char *path;
	uint64_t done; /* bytes streamed, zeros included */
};

static int sink_put(struct sink *s, const void *buf, size_t n, bool to_tar, slate_error_t *err)
{
	if (s->h && slate_sha256_update(s->h, buf, n, err) < 0)
		return -1;
	if (to_tar && s->a) {
		la_ssize_t w = archive_write_data(s->a, buf, n);
		if (w < 0 || (size_t)w != n)
			return slate_error_fail(err, "write the diff tar (%s): %s", s->path,
						archive_error_string(s->a) ? archive_error_string(s->a)
									   : "libarchive error");
	}
	s->done += n;
	return 0;
}

static int sink_zeros(struct sink *s, uint64_t n, bool to_tar, slate_error_t *err)
{
	static const unsigned char zeros[1 << 16];

	if (!s->h && !to_tar) {
		s->done += n;
		return 0;
	}
	while (n > 0) {
		size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
		if (sink_put(s, zeros, k, to_tar, err) < 0)
			return -1;
		n -= k;
	}
	return 0;
}

/* Read [off, off+len) of fd, never past it: a file that grows while we
 * read gives no more than was planned. *eof when it shrank. */
static int sink_extent(struct sink *s, int fd, const struct extent *x, bool *eof, slate_error_t *err)
{
	static unsigned char buf[1 << 16];
	uint64_t done = 0;

	while (done < x->len) {
		size_t want = x->len - done < sizeof(buf) ? (size_t)(x->len - done) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)(x->off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return slate_error_sys(err, errno, "read `/%s` in the upper", s->path);
		if (n == 0) {
			*eof = true;
			return 0;
		}
		if (sink_put(s, buf, (size_t)n, true, err) < 0)
			return -1;
		done += (uint64_t)n;
	}
	return 0;
}

/* The file's bytes by its layout: each extent read, each hole as zeros
 * (hashed; fed to the tar, which skips them, except the trailing one).
 * Stops at the first short read (*eof: the file shrank meanwhile). */
static int sink_layout(struct sink *s, int fd, const struct layout *l, bool *eof, slate_error_t *err)
{
	uint64_t pos = 0;

	*eof = false;
	for (size_t i = 0; i < l->n && !*eof; i++) {
		if (sink_zeros(s, l->v[i].off - pos, true, err) < 0 || sink_extent(s, fd, &l->v[i], eof, err) < 0)
			return -1;
		pos = l->v[i].off + l->v[i].len;
	}
	if (!*eof && s->h && sink_zeros(s, l->size - pos, false, err) < 0)
		return -1;
	if (!*eof && !s->h)
		s->done += l->size - pos;
	return 0;
}

/* The SHA-256 of a regular file's st_size bytes, within the budget; a
 * file past it is not read at all (*hashed false). *size: bytes hashed
 * (fewer than st_size if it shrank meanwhile). */
static int hash_bounded(int fd, const struct stat *st, const char *path, struct budget *b,
			unsigned char sum[SLATE_SHA256_LEN], uint64_t *size, bool *hashed, slate_error_t *err)
{
	cleanup_layout struct layout l = { 0 };
	slate_sha256_t h = { 0 };
	struct sink s = { .h = &h, .path = path };
	bool too_big = false, eof = false;

	*hashed = false;
	*size = (uint64_t)st->st_size;
	if (file_layout(fd, (uint64_t)st->st_size, b->data, path, &l, &too_big, err) < 0)
		return -1;
	if (too_big || !budget_take(b, l.data, l.size - l.data))
		return 0;
	if (slate_sha256_init(&h, err) < 0)
		return -1;
	if (sink_layout(&s, fd, &l, &eof, err) < 0) {
		slate_sha256_free(&h);
		return -1;
	}
	if (slate_sha256_final(&h, sum, err) < 0)
		return -1;
	*hashed = true;
	*size = s.done;
	return 0;
}

/* Identifies one version of an inode while the walk runs: a number the
 * tmpfs may reuse after an unlink, with its ctime, which any write, link
 * or unlink moves and which the instance cannot set. */
static char *inode_key(const struct stat *st)
{
	return xasprintf("%ju:%jd.%ld", (uintmax_t)st->st_ino, (intmax_t)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

/* ---- the walk ---- */

struct file_sum {
	unsigned char sum[SLATE_SHA256_LEN];
	uint64_t size;
	bool hashed;
};

struct walker {
	int upper_fd;
	const struct slate_manifest *m;
	struct slate_pathmap lower; /* path -> entry index */
	size_t *order; /* entry indices in slate_path_cmp order */
	struct slate_pathmap seen; /* every path in the upper, whiteouts too */
	struct slate_strv hiding; /* upper paths that hide the lower's descendants */
	struct diff_entry *v;
	size_t n, cap;
	size_t visited;
	dev_t dev; /* the upper's */
	struct budget budget;
	struct slate_pathmap inodes; /* inode_key of a file with hard links -> index in sums */
	struct file_sum *sums;
	size_t n_sums, cap_sums;
};

static const struct slate_entry *lower_get(const struct walker *w, const char *path)
{
	size_t i;

	return slate_pathmap_get(&w->lower, path, &i) ? &w->m->entries[i] : NULL;
}

static struct diff_entry *push(struct walker *w, const char *path, enum diff_kind kind, char type)
{
	struct diff_entry *e;

	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
	}
	e = &w->v[w->n++];
	memset(e, 0, sizeof(*e));
	e->path = xstrdup(path);
	e->kind = kind;
	e->type = type;
	return e;
}

static char lower_type(const struct slate_entry *e)
{
	switch (e->type) {
	case SLATE_ENTRY_FILE: return 'f';
	case SLATE_ENTRY_DIR: return 'd';
	case SLATE_ENTRY_SYMLINK: return 'l';
	}
	return 'o';
}

static void push_deleted(struct walker *w, const struct slate_entry *le)
{
	struct diff_entry *e = push(w, le->path, DIFF_DELETED, lower_type(le));

	e->mode = le->mode;
	if (le->type == SLATE_ENTRY_FILE) {
		e->size = le->size;
		slate_hex(le->sha256, SLATE_SHA256_LEN, e->sha256);
	}
	if (le->target)
		e->target = xstrdup(le->target);
}

/* Something of type `type` is in the upper at path, and differs from the
 * lower entry le (NULL: nothing there). A non-directory over a lower
 * directory hides everything the lower has below it. */
static struct diff_entry *push_upper(struct walker *w, const char *path, const struct slate_entry *le, char type,
				     const struct stat *st)
{
	struct diff_entry *e = push(w, path, le ? DIFF_CHANGED : DIFF_ADDED, type);

	e->mode = st->st_mode & 07777;
	e->uid = st->st_uid;
	if (le && le->type == SLATE_ENTRY_DIR && type != 'd')
		slate_strv_push(&w->hiding, path);
	return e;
}

static int visit_whiteout(struct walker *w, const char *path, const struct slate_entry *le)
{
	/* A whiteout over nothing hides nothing (overlayfs only makes them
	 * over lower entries; one made by hand changes nothing visible). */
	if (le == NULL)
		return 0;
	push_deleted(w, le);
	if (le->type == SLATE_ENTRY_DIR)
		slate_strv_push(&w->hiding, path);
	return 0;
}

/* Whether a directory at this depth (1: in the upper's top) is left
 * unwalked: its fd would pass DIFF_MAX_DEPTH, or a child's path PATH_MAX. */
static bool dir_too_deep(const char *path, unsigned depth)
{
	return depth >= DIFF_MAX_DEPTH || strlen(path) > DIFF_MAX_DIR_PATH;
}

static int visit_dir(struct walker *w, int dirfd, const char *name, const char *path, unsigned depth,
		     const struct slate_entry *le, const struct stat *st, bool *descend, slate_error_t *err)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	bool opaque = false, redirect = false;

	*descend = false;
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return slate_error_sys(err, errno, "open directory `/%s` in the upper", path);
	if (has_xattr(fd, XATTR_REDIRECT, NULL, path, &redirect, err) < 0 ||
	    has_xattr(fd, XATTR_OPAQUE, "y", path, &opaque, err) < 0)
		return -1;
	if (redirect)
		return slate_error_refuse(err,
					  "`/%s` in the upper is an overlay redirect (renamed lower directory): "
					  "slate mounts its overlays without redirect_dir",
					  path);
	/* Reported, not walked, and hiding nothing: what it holds is unknown. */
	if (dir_too_deep(path, depth)) {
		push_upper(w, path, le, 'd', st)->too_deep = true;
		return 0;
	}
	*descend = true;
	if (le == NULL || le->type != SLATE_ENTRY_DIR)
		push_upper(w, path, le, 'd', st);
	else if (opaque)
		slate_strv_push(&w->hiding, path);
	return 0;
}

/* A file's hash within the walk's budget, read once however many hard
 * links name it (100 links to a 4 MiB file cost 4 MiB, not 400). */
static int hash_once(struct walker *w, int fd, const struct stat *st, const char *path, struct file_sum *out,
		     slate_error_t *err)
{
	cleanup_free char *key = st->st_nlink > 1 ? inode_key(st) : NULL;
	size_t i;

	if (key && slate_pathmap_get(&w->inodes, key, &i)) {
		*out = w->sums[i];
		return 0;
	}
	if (hash_bounded(fd, st, path, &w->budget, out->sum, &out->size, &out->hashed, err) < 0)
		return -1;
	if (key) {
		if (w->n_sums == w->cap_sums) {
			w->cap_sums = w->cap_sums ? w->cap_sums * 2 : 16;
			w->sums = xrealloc(w->sums, w->cap_sums * sizeof(*w->sums));
		}
		w->sums[w->n_sums] = *out;
		slate_pathmap_put(&w->inodes, key, w->n_sums++);
	}
	return 0;
}

static int visit_file(struct walker *w, int dirfd, const char *name, const char *path, const struct slate_entry *le,
		      slate_error_t *err)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct file_sum fs = { 0 };
	bool metacopy = false;
	struct diff_entry *e;
	struct stat st;

	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return slate_error_sys(err, errno, "open `/%s` in the upper", path);
	if (fstat(fd, &st) < 0)
		return slate_error_sys(err, errno, "stat `/%s` in the upper", path);
	if (!S_ISREG(st.st_mode))
		return slate_error_fail(err, "`/%s` in the upper changed type while it was read", path);
	if (le && le->type == SLATE_ENTRY_FILE) {
		/* A metacopy upper holds only metadata; its data is the lower's
		 * (the one at the same path: a redirect would name another). */
		bool redirect = false;
		if (has_xattr(fd, XATTR_METACOPY, NULL, path, &metacopy, err) < 0 ||
		    (metacopy && has_xattr(fd, XATTR_REDIRECT, NULL, path, &redirect, err) < 0))
			return -1;
		if (redirect)
			return slate_error_refuse(err, "`/%s` in the upper is an overlay data redirect", path);
		if (metacopy && (uint64_t)st.st_size == le->size)
			return 0;
	}
	if (hash_once(w, fd, &st, path, &fs, err) < 0)
		return -1;
	if (le && le->type == SLATE_ENTRY_FILE && fs.hashed && fs.size == le->size &&
	    memcmp(fs.sum, le->sha256, sizeof(fs.sum)) == 0)
		return 0;
	e = push_upper(w, path, le, 'f', &st);
	e->size = fs.size;
	if (fs.hashed)
		slate_hex(fs.sum, sizeof(fs.sum), e->sha256);
	else
		e->not_hashed = true;
	return 0;
}

static int visit_link(struct walker *w, int dirfd, const char *name, const char *path, const struct slate_entry *le,
		      const struct stat *st, slate_error_t *err)
{
	char target[LINK_MAX_BYTES];
	ssize_t r = readlinkat(dirfd, name, target, sizeof(target));

	if (r < 0 && (errno == ENOENT || errno == EINVAL))
		return 0; /* gone, or no longer a link: raced with the instance */
	if (r < 0)
		return slate_error_sys(err, errno, "read link `/%s` in the upper", path);
	if ((size_t)r >= sizeof(target))
		return slate_error_fail(err, "link `/%s` in the upper has a target longer than %d bytes", path,
					LINK_MAX_BYTES - 1);
	target[r] = '\0';
	if (le && le->type == SLATE_ENTRY_SYMLINK && strcmp(le->target, target) == 0)
		return 0;
	push_upper(w, path, le, 'l', st)->target = xstrdup(target);
	return 0;
}

/* One name in the upper directory dirfd (at rel). */
static int visit(struct walker *w, int dirfd, const char *rel, const char *name, unsigned depth,
		 struct slate_strv *subdirs, slate_error_t *err)
{
	cleanup_free char *path = rel[0] ? xasprintf("%s/%s", rel, name) : xstrdup(name);
	const struct slate_entry *le = lower_get(w, path);
	bool descend = false;
	struct stat st;

	if (++w->visited > DIFF_MAX_ENTRIES)
		return slate_error_refuse(err, "the upper has more than %d entries", DIFF_MAX_ENTRIES);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return slate_error_sys(err, errno, "stat `/%s` in the upper", path);
	}
	slate_pathmap_put(&w->seen, path, 0);
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
		return visit_whiteout(w, path, le);
	if (S_ISREG(st.st_mode))
		return visit_file(w, dirfd, name, path, le, err);
	if (S_ISLNK(st.st_mode))
		return visit_link(w, dirfd, name, path, le, &st, err);
	if (!S_ISDIR(st.st_mode)) {
		push_upper(w, path, le, 'o', &st);
		return 0;
	}
	if (visit_dir(w, dirfd, name, path, depth, le, &st, &descend, err) < 0)
		return -1;
	if (descend)
		slate_strv_push(subdirs, name);
	return 0;
}

/* A subdirectory, opened relative to its parent's fd: never through a
 * symlink, never onto another mount. Gone: *out stays -1. */
static int open_subdir(const struct walker *w, int dirfd, const char *name, const char *path, int *out,
		       slate_error_t *err)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	*out = -1;
	if (fd < 0 && errno == ENOENT)
		return 0;
	/* Not skipped: a directory swapped for a link must not hide what it holds. */
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
		return slate_error_fail(
			err, "`/%s` in the upper changed while the diff ran (freeze the instance, or retry)", path);
	if (fd < 0)
		return slate_error_sys(err, errno, "open directory `/%s` in the upper", path);
	if (fstat(fd, &st) < 0)
		return slate_error_sys(err, errno, "stat `/%s` in the upper", path);
	if (st.st_dev != w->dev)
		return slate_error_fail(err, "`/%s` in the upper is on another file system", path);
	*out = steal_fd(&fd);
	return 0;
}

/* Depth first, from directory fd to directory fd: each subdirectory is
 * opened relative to its parent, so no path is resolved twice and a name
 * is all the kernel ever looks up (25 nested 200-byte names cannot fail
 * with ENAMETOOLONG). One fd per level, and visit_dir stops at
 * DIFF_MAX_DEPTH levels. */
static int walk_dir(struct walker *w, int fd, const char *rel, unsigned depth, slate_error_t *err)
{
	cleanup_strv struct slate_strv names = { 0 };
	cleanup_strv struct slate_strv subdirs = { 0 };
	int r = read_names(fd, rel, &names, err);

	for (size_t i = 0; r == 0 && i < names.n; i++)
		r = visit(w, fd, rel, names.v[i], depth + 1, &subdirs, err);
	for (size_t i = 0; r == 0 && i < subdirs.n; i++) {
		cleanup_free char *child = rel[0] ? xasprintf("%s/%s", rel, subdirs.v[i]) : xstrdup(subdirs.v[i]);
		cleanup_close int cfd = -1;
		r = open_subdir(w, fd, subdirs.v[i], child, &cfd, err);
		if (r == 0 && cfd >= 0)
			r = walk_dir(w, cfd, child, depth + 1, err);
	}
	return r;
}

static int order_cmp(const void *a, const void *b, void *ctx)
{
	const struct slate_manifest *m = ctx;

	return slate_path_cmp(m->entries[*(const size_t *)a].path, m->entries[*(const size_t *)b].path);
}

/* The lower's descendants of each hiding path that the upper does not
 * have are gone from the merged view. In slate_path_cmp order a
 * directory's descendants directly follow it. */
static void push_hidden(struct walker *w)
{
	const struct slate_manifest *m = w->m;

	for (size_t h = 0; h < w->hiding.n; h++) {
		const char *top = w->hiding.v[h];
		size_t lo = 0, hi = m->n_entries;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (slate_path_cmp(m->entries[w->order[mid]].path, top) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t i = lo; i < m->n_entries; i++) {
			const struct slate_entry *le = &m->entries[w->order[i]];
			if (!slate_path_under(le->path, top))
				break;
			if (!slate_pathmap_get(&w->seen, le->path, NULL))
				push_deleted(w, le);
		}
	}
}

static void entry_free(struct diff_entry *e)
{
	free(e->path);
	free(e->target);
}

static int entry_cmp(const void *a, const void *b)
{
	return slate_path_cmp(((const struct diff_entry *)a)->path, ((const struct diff_entry *)b)->path);
}

/* Sort, and drop the duplicates that nested hiding paths report twice. */
static void sort_unique(struct walker *w)
{
	size_t o = 0;

	if (w->n > 1)
		qsort(w->v, w->n, sizeof(*w->v), entry_cmp);
	for (size_t i = 0; i < w->n; i++) {
		if (o > 0 && strcmp(w->v[o - 1].path, w->v[i].path) == 0) {
			entry_free(&w->v[i]);
			continue;
		}
		w->v[o++] = w->v[i];
	}
	w->n = o;
}

static void walker_free(struct walker *w)
{
	for (size_t i = 0; i < w->n; i++)
		entry_free(&w->v[i]);
	free(w->v);
	free(w->order);
	slate_pathmap_free(&w->lower);
	slate_pathmap_free(&w->seen);
	slate_pathmap_free(&w->inodes);
	free(w->sums);
	slate_strv_free(&w->hiding);
}

int diff_upper(int upper_fd, const struct slate_manifest *lower, struct diff_result *out, slate_error_t *err)
{
	struct walker w = { .upper_fd = upper_fd, .m = lower };
	cleanup_close int top = openat(upper_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	out->v = NULL;
	out->n = 0;
	if (top < 0 || fstat(top, &st) < 0)
		return slate_error_sys(err, errno, "open the upper");
	if (budget_init(top, &w.budget, err) < 0)
		return -1;
	w.dev = st.st_dev;
	slate_pathmap_init(&w.lower);
	slate_pathmap_init(&w.seen);
	slate_pathmap_init(&w.inodes);
	w.order = xcalloc(lower->n_entries, sizeof(*w.order));
	for (size_t i = 0; i < lower->n_entries; i++) {
		slate_pathmap_put(&w.lower, lower->entries[i].path, i);
		w.order[i] = i;
	}
	if (lower->n_entries > 1)
		qsort_r(w.order, lower->n_entries, sizeof(*w.order), order_cmp, (void *)lower);
	if (walk_dir(&w, top, "", 0, err) < 0) {
		walker_free(&w);
		return slate_error_wrap(err, "diff the instance's upper layer");
	}
	push_hidden(&w);
	sort_unique(&w);
	out->v = steal_pointer(&w.v);
	out->n = w.n;
	w.n = 0;
	walker_free(&w);
	return 0;
}

void diff_result_free(struct diff_result *d)
{
	for (size_t i = 0; i < d->n; i++)
		entry_free(&d->v[i]);
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

/* ---- output ---- */

const char *diff_kind_name(enum diff_kind k)
{
	switch (k) {
	case DIFF_ADDED: return "added";
	case DIFF_CHANGED: return "changed";
	case DIFF_DELETED: return "deleted";
	}
	return "?";
}

const char *diff_type_name(char type)
{
	switch (type) {
	case 'f': return "file";
	case 'd': return "dir";
	case 'l': return "symlink";
	}
	return "other";
}

/* A JSON string for a name: as is when it is UTF-8 (jansson escapes the
 * controls), else escaped, which *escaped reports. */
static json_t *json_name(const char *prefix, const char *name, bool *escaped)
{
	cleanup_free char *raw = xasprintf("%s%s", prefix, name);
	cleanup_free char *esc = NULL;
	json_t *j = json_string(raw);

	if (j != NULL)
		return j;
	esc = escape_name(raw, NULL);
	*escaped = true;
	return json_string(esc);
}

/* What an entry leaves out, for JSON readers. */
static void json_flags(const struct diff_entry *e, json_t *o)
{
	if (e->too_deep)
		json_object_set_new(o, "too_deep", json_true());
	if (e->not_hashed)
		json_object_set_new(o, "not_hashed", json_true());
}

static json_t *entry_json(const struct diff_entry *e)
{
	bool escaped = false;
	json_t *o = json_object();

	json_object_set_new(o, "path", json_name("/", e->path, &escaped));
	json_object_set_new(o, "kind", json_string(diff_kind_name(e->kind)));
	json_object_set_new(o, "type", json_string(diff_type_name(e->type)));
	if (e->type == 'f') {
		json_object_set_new(o, "size", json_integer((json_int_t)e->size));
		if (e->sha256[0])
			json_object_set_new(o, "sha256", json_string(e->sha256));
	}
	if (e->target)
		json_object_set_new(o, "target", json_name("", e->target, &escaped));
	json_object_set_new(o, "mode", json_integer(e->mode));
	if (e->kind != DIFF_DELETED)
		json_object_set_new(o, "uid", json_integer(e->uid));
	json_flags(e, o);
	if (escaped)
		json_object_set_new(o, "escaped", json_true());
	return o;
}

json_t *diff_to_json(const struct diff_result *d)
{
	json_t *a = json_array();

	if (a == NULL)
		abort();
	for (size_t i = 0; i < d->n; i++)
		if (json_array_append_new(a, entry_json(&d->v[i])) < 0)
			abort();
	return a;
}

/* What an entry leaves out, at the end of its line. */
static void print_flags(const struct diff_entry *e, FILE *out)
{
	if (e->not_hashed)
		fputs("  not hashed (past what the instance's tmpfs holds: sparse, or growing)", out);
	if (e->too_deep)
		fprintf(out, "  too deep (content not listed: over %d levels, or paths past %d bytes)", DIFF_MAX_DEPTH,
			PATH_MAX);
}

void diff_print(const struct diff_result *d, FILE *out)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct diff_entry *e = &d->v[i];
		cleanup_free char *path = escape_name(e->path, NULL);
		cleanup_free char *target = e->target ? escape_name(e->target, NULL) : NULL;

		fprintf(out, "%c /%s", (char)e->kind, path);
		switch (e->type) {
		case 'f':
			fprintf(out, "  %llu bytes", (unsigned long long)e->size);
			if (e->sha256[0])
				fprintf(out, "  sha256:%s", e->sha256);
			break;
		case 'd': fputs("  dir", out); break;
		case 'l': fprintf(out, " -> %s", target ? target : ""); break;
		default: fprintf(out, "  other (mode %o)", e->mode); break;
		}
		print_flags(e, out);
		fputc('\n', out);
	}
}

/* ---- the forensic tar ---- */

struct tar {
	struct archive *a;
	struct archive_entry *ae;
	struct slate_strv changed; /* saved with other content than diffed, or gone */
	struct slate_strv not_saved; /* past the budget */
	struct budget budget; /* what the members' data may still take */
	struct slate_pathmap inodes; /* inode_key of a file with hard links -> index in linked (SIZE_MAX: not saved) */
	struct slate_strv linked; /* its member path */
	time_t now;
};

static int tar_fail(struct tar *t, const char *what, slate_error_t *err)
{
	int e = archive_errno(t->a);
	const char *msg = archive_error_string(t->a);

	if (e > 0 && e < 1000)
		return slate_error_sys(err, e, "write the diff tar (%s)", what);
	return slate_error_fail(err, "write the diff tar (%s): %s", what, msg ? msg : "libarchive error");
}

static void tar_header(struct tar *t, const char *path, mode_t type, const struct stat *st)
{
	archive_entry_clear(t->ae);
	archive_entry_set_pathname(t->ae, path);
	archive_entry_set_filetype(t->ae, type);
	/* Keep the instance's set-id bits out of a file someone may unpack as root. */
	archive_entry_set_perm(t->ae, st->st_mode & 0777);
	archive_entry_set_uid(t->ae, st->st_uid);
	archive_entry_set_gid(t->ae, st->st_gid);
	archive_entry_set_mtime(t->ae, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	archive_entry_set_size(t->ae, type == AE_IFREG ? st->st_size : 0);
}

static int tar_write_header(struct tar *t, const char *path, slate_error_t *err)
{
	/* ARCHIVE_WARN: a name that is not UTF-8 goes out as hdrcharset=BINARY. */
	if (archive_write_header(t->a, t->ae) < ARCHIVE_WARN)
		return tar_fail(t, path, err);
	return 0;
}

static int tar_data(struct tar *t, const char *path, const void *buf, size_t len, slate_error_t *err)
{
	la_ssize_t n = archive_write_data(t->a, buf, len);

	if (n < 0 || (size_t)n != len)
		return tar_fail(t, path, err);
	return 0;
}

static int tar_mem(struct tar *t, const char *path, const char *buf, size_t len, slate_error_t *err)
{
	struct stat st = { .st_mode = 0644, .st_size = (off_t)len };

	st.st_mtim.tv_sec = t->now;
	tar_header(t, path, AE_IFREG, &st);
	if (tar_write_header(t, path, err) < 0)
		return -1;
	return tar_data(t, path, buf, len, err);
}

/* A file with holes is a sparse member: its data extents are listed in the
 * header and only they are stored; a file that is all hole gets one empty
 * extent at its end (else libarchive would store it as data). */
static void tar_sparse_map(struct tar *t, const struct layout *l)
{
	if (l->data == l->size)
		return;
	for (size_t i = 0; i < l->n; i++)
		archive_entry_sparse_add_entry(t->ae, (la_int64_t)l->v[i].off, (la_int64_t)l->v[i].len);
	if (l->n == 0)
		archive_entry_sparse_add_entry(t->ae, (la_int64_t)l->size, 0);
}

/* The member's bytes, by the layout planned for its header; with the
 * diff's hash, compared to it. */
static int tar_stream(struct tar *t, int fd, const struct diff_entry *e, const struct layout *l, slate_error_t *err)
{
	slate_sha256_t h = { 0 };
	struct sink s = { .a = t->a, .path = e->path };
	unsigned char sum[SLATE_SHA256_LEN];
	char hex[SLATE_SHA256_HEX] = "";
	bool eof = false;

	/* libarchive writes a sparse member's map with its first data: a
	 * file that is all hole has none, so an empty write puts it out. */
	if (archive_write_data(t->a, "", 0) < 0)
		return tar_fail(t, e->path, err);
	if (e->sha256[0]) {
		if (slate_sha256_init(&h, err) < 0)
			return -1;
		s.h = &h;
	}
	if (sink_layout(&s, fd, l, &eof, err) < 0) {
		slate_sha256_free(&h);
		return -1;
	}
	if (s.h) {
		if (slate_sha256_final(&h, sum, err) < 0)
			return -1;
		slate_hex(sum, sizeof(sum), hex);
	}
	if (eof || s.done != e->size || strcmp(hex, e->sha256) != 0)
		slate_strv_push(&t->changed, e->path);
	return 0;
}

/* A regular file, bounded: a further name of a file already saved is a
 * hard link member; else its data, and the zeros the writer must be fed
 * (all of them when hashed, else those before its last extent), come out
 * of the budget, or it is not saved but listed. The header is written
 * from the layout, and the data read by it, so a file that grows
 * meanwhile cannot take the tar past the plan. */
static int tar_file(struct tar *t, int fd, const struct diff_entry *e, const struct stat *st, slate_error_t *err)
{
	cleanup_free char *key = st->st_nlink > 1 ? inode_key(st) : NULL;
	cleanup_layout struct layout l = { 0 };
	bool too_big = false;
	size_t i;

	tar_header(t, e->path, AE_IFREG, st);
	if (key && slate_pathmap_get(&t->inodes, key, &i) && i == SIZE_MAX) {
		slate_strv_push(&t->not_saved, e->path);
		return 0;
	}
	if (key && slate_pathmap_get(&t->inodes, key, &i)) {
		archive_entry_set_size(t->ae, 0);
		archive_entry_set_hardlink(t->ae, t->linked.v[i]);
		return tar_write_header(t, e->path, err);
	}
	if (file_layout(fd, (uint64_t)st->st_size, t->budget.data, e->path, &l, &too_big, err) < 0)
		return -1;
	if (too_big || !budget_take(&t->budget, l.data, e->sha256[0] ? l.size - l.data : layout_inner_holes(&l))) {
		/* Its other names are not laid out again (a million links to it). */
		if (key)
			slate_pathmap_put(&t->inodes, key, SIZE_MAX);
		slate_strv_push(&t->not_saved, e->path);
		return 0;
	}
	tar_sparse_map(t, &l);
	if (tar_write_header(t, e->path, err) < 0)
		return -1;
	if (key) {
		slate_pathmap_put(&t->inodes, key, t->linked.n);
		slate_strv_push(&t->linked, e->path);
	}
	return tar_stream(t, fd, e, &l, err);
}

/* One added or changed entry, as it is in the upper now. */
static int tar_entry(struct tar *t, int upper_fd, const struct diff_entry *e, slate_error_t *err)
{
	int flags = e->type == 'f' ? O_RDONLY | O_NONBLOCK | O_NOCTTY : O_PATH;
	cleanup_close int fd = open_beneath(upper_fd, e->path, flags);
	char target[LINK_MAX_BYTES];
	struct stat st;
	ssize_t n;

	if (fd < 0 && (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == EXDEV)) {
		slate_strv_push(&t->changed, e->path);
		return 0;
	}
	if (fd < 0)
		return slate_error_sys(err, errno, "open `/%s` in the upper", e->path);
	if (fstat(fd, &st) < 0)
		return slate_error_sys(err, errno, "stat `/%s` in the upper", e->path);
	if ((e->type == 'f' && !S_ISREG(st.st_mode)) || (e->type == 'd' && !S_ISDIR(st.st_mode)) ||
	    (e->type == 'l' && !S_ISLNK(st.st_mode))) {
		slate_strv_push(&t->changed, e->path);
		return 0;
	}
	if (e->type == 'd') {
		tar_header(t, e->path, AE_IFDIR, &st);
		return tar_write_header(t, e->path, err);
	}
	if (e->type == 'f')
		return tar_file(t, fd, e, &st, err);
	n = readlinkat(fd, "", target, sizeof(target));
	if (n < 0)
		return slate_error_sys(err, errno, "read link `/%s` in the upper", e->path);
	if ((size_t)n >= sizeof(target))
		return slate_error_fail(err, "link `/%s` in the upper has a target longer than %d bytes", e->path,
					LINK_MAX_BYTES - 1);
	target[n] = '\0';
	if (e->target == NULL || strcmp(target, e->target) != 0)
		slate_strv_push(&t->changed, e->path);
	tar_header(t, e->path, AE_IFLNK, &st);
	archive_entry_set_symlink(t->ae, target);
	return tar_write_header(t, e->path, err);
}

/* One escaped absolute path per line. */
static char *path_lines(const struct slate_strv *paths, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL)
		abort();
	for (size_t i = 0; i < paths->n; i++) {
		cleanup_free char *esc = escape_name(paths->v[i], NULL);
		fprintf(f, "/%s\n", esc);
	}
	if (fclose(f) != 0)
		abort();
	*len = size;
	return buf;
}

static int tar_meta(struct tar *t, const struct diff_result *d, slate_error_t *err)
{
	json_t *j = diff_to_json(d);
	cleanup_free char *dump = json_dumps(j, JSON_INDENT(2));
	cleanup_free char *json = NULL;
	cleanup_free char *deleted = NULL;
	cleanup_strv struct slate_strv paths = { 0 };
	size_t len = 0;

	json_decref(j);
	if (dump == NULL)
		return slate_error_fail(err, "cannot encode the diff as JSON");
	json = xasprintf("%s\n", dump);
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].kind == DIFF_DELETED)
			slate_strv_push(&paths, d->v[i].path);
	deleted = path_lines(&paths, &len);
	if (tar_mem(t, ".slate-diff/diff.json", json, strlen(json), err) < 0)
		return -1;
	return tar_mem(t, ".slate-diff/deleted.txt", deleted, len, err);
}

static int tar_all(struct tar *t, int upper_fd, const struct diff_result *d, slate_error_t *err)
{
	if (tar_meta(t, d, err) < 0)
		return -1;
	for (size_t i = 0; i < d->n; i++) {
		const struct diff_entry *e = &d->v[i];
		if (e->kind == DIFF_DELETED || e->type == 'o')
			continue;
		if (tar_entry(t, upper_fd, e, err) < 0)
			return -1;
	}
	if (t->changed.n > 0) {
		size_t len = 0;
		cleanup_free char *changed = path_lines(&t->changed, &len);
		if (tar_mem(t, ".slate-diff/changed-during-save.txt", changed, len, err) < 0)
			return -1;
	}
	if (t->not_saved.n > 0) {
		size_t len = 0;
		cleanup_free char *not_saved = path_lines(&t->not_saved, &len);
		if (tar_mem(t, ".slate-diff/not-saved.txt", not_saved, len, err) < 0)
			return -1;
	}
	if (archive_write_close(t->a) != ARCHIVE_OK)
		return tar_fail(t, "close", err);
	return 0;
}

int diff_save_tar(int upper_fd, const struct diff_result *d, const char *path, slate_error_t *err)
{
	struct slate_atomic out = { .fd = -1 };
	struct tar t = { .now = time(NULL) };
	int r = -1;

	if (budget_init(upper_fd, &t.budget, err) < 0 || slate_atomic_open(&out, path, 0600, err) < 0)
		return slate_error_wrap(err, "save the diff");
	slate_pathmap_init(&t.inodes);
	t.a = archive_write_new();
	t.ae = archive_entry_new();
	if (t.a == NULL || t.ae == NULL)
		slate_error_fail(err, "cannot allocate an archive writer");
	else if (archive_write_set_format_pax(t.a) != ARCHIVE_OK || archive_write_add_filter_none(t.a) != ARCHIVE_OK ||
		 archive_write_open_fd(t.a, out.fd) != ARCHIVE_OK)
		tar_fail(&t, "open", err);
	else
		r = tar_all(&t, upper_fd, d, err);
	if (t.a)
		archive_write_free(t.a);
	if (t.ae)
		archive_entry_free(t.ae);
	slate_strv_free(&t.changed);
	slate_strv_free(&t.not_saved);
	slate_strv_free(&t.linked);
	slate_pathmap_free(&t.inodes);
	if (r == 0)
		r = slate_atomic_commit(&out, err);
	else
		slate_atomic_abort(&out);
	if (r < 0)
		return slate_error_wrap(err, "save the diff as `%s`", path);
	return 0;
}
