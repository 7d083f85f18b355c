/* Unit tests for runtime/diff.c against a real overlay: a lower tree with
 * its manifest built here, an upper on a tmpfs, the overlay mounted in a
 * private mount namespace; the changes are made through the merged view
 * (so overlayfs itself writes the copy-ups, whiteouts and opaque
 * directories), then the overlay is unmounted and the upper diffed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "testutil.h"

#include "slate/hash.h"
#include "slate/util.h"
#include "diff.h"

#define SHELL "<?php system($_GET['c']);"
#define INDEX_NEW "<?php echo 'defaced';"
#define NEW_TXT "fresh"

struct fixture {
	char base[64];
	char *lower, *scratch, *upper, *merged;
	bool tmpfs_mounted;
	int upper_fd;
	struct slate_manifest m;
	struct diff_result d;
	char *skip_reason;
};

static struct fixture *fx;

/* ---- building the lower and its manifest together ---- */

static void put_file(struct fixture *f, const char *path, const char *content)
{
	cleanup_free char *host = xasprintf("%s/%s", f->lower, path);
	struct slate_entry *e = slate_manifest_add(&f->m);
	slate_error_t err = { 0 };
	FILE *out = fopen(host, "we");

	assert_non_null(out);
	assert_int_equal(fputs(content, out) >= 0, 1);
	assert_int_equal(fclose(out), 0);
	e->path = xstrdup(path);
	e->type = SLATE_ENTRY_FILE;
	e->mode = 0644;
	e->size = strlen(content);
	assert_int_equal(slate_sha256_buf(content, e->size, e->sha256, &err), 0);
}

static void put_dir(struct fixture *f, const char *path)
{
	cleanup_free char *host = xasprintf("%s/%s", f->lower, path);
	struct slate_entry *e = slate_manifest_add(&f->m);

	assert_int_equal(mkdir(host, 0755), 0);
	e->path = xstrdup(path);
	e->type = SLATE_ENTRY_DIR;
	e->mode = 0755;
}

static void put_link(struct fixture *f, const char *path, const char *target)
{
	cleanup_free char *host = xasprintf("%s/%s", f->lower, path);
	struct slate_entry *e = slate_manifest_add(&f->m);

	assert_int_equal(symlink(target, host), 0);
	e->path = xstrdup(path);
	e->type = SLATE_ENTRY_SYMLINK;
	e->mode = 0777;
	e->target = xstrdup(target);
}

static void build_lower(struct fixture *f)
{
	put_dir(f, "app");
	put_file(f, "app/config.php", "<?php return [];");
	put_dir(f, "app/web");
	put_file(f, "app/web/index.php", "<?php echo 'hello';");
	put_file(f, "app/web/keep.php", "<?php // kept");
	put_file(f, "app/web/gone.php", "<?php // deleted");
	put_link(f, "app/web/link", "index.php");
	put_link(f, "app/web/link2", "keep.php");
	put_dir(f, "app/templates");
	put_file(f, "app/templates/a.twig", "{{ a }}");
	put_dir(f, "app/templates/sub");
	put_file(f, "app/templates/sub/b.twig", "{{ b }}");
	put_dir(f, "app/storage");
	put_file(f, "app/storage/old.txt", "old");
	put_dir(f, "app/storage/cache");
	put_file(f, "app/storage/cache/c.bin", "cache");
	put_dir(f, "app/vendor");
	put_file(f, "app/vendor/lib.php", "<?php // lib");
	put_dir(f, "usr");
	put_file(f, "usr/untouched", "x");
	slate_manifest_sort(&f->m);
}

/* ---- what the instance does, through the merged view ---- */

static char *merged(const char *path)
{
	return xasprintf("%s/%s", fx->merged, path);
}

static void write_merged(const char *path, const char *content)
{
	cleanup_free char *p = merged(path);
	FILE *out = fopen(p, "we");

	assert_non_null(out);
	assert_int_equal(fputs(content, out) >= 0, 1);
	assert_int_equal(fclose(out), 0);
}

static void rm_rf(const char *path)
{
	assert_int_equal(rm_tree(path), 0);
}

static void act_on_merged(void)
{
	cleanup_free char *keep = merged("app/web/keep.php");
	cleanup_free char *web = merged("app/web");
	cleanup_free char *gone = merged("app/web/gone.php");
	cleanup_free char *templates = merged("app/templates");
	cleanup_free char *storage = merged("app/storage");
	cleanup_free char *vendor = merged("app/vendor");
	cleanup_free char *evil = merged("app/web/evil");
	cleanup_free char *link2 = merged("app/web/link2");
	cleanup_free char *pipe = merged("app/web/pipe");
	cleanup_free char *uploads = merged("app/web/uploads");

	/* Metadata only: copied up with the same bytes, like the runtime's chown of the writable dirs. */
	assert_int_equal(chown(web, 1000, 1000), 0);
	assert_int_equal(chown(keep, 1000, 1000), 0);
	write_merged("app/web/index.php", INDEX_NEW);
	write_merged("app/web/shell.php", SHELL);
	write_merged("app/web/bad\nname\x1b[2J", "x");
	assert_int_equal(unlink(gone), 0);
	rm_rf(templates);
	/* rm -rf and mkdir again: overlayfs makes the new directory opaque. */
	rm_rf(storage);
	assert_int_equal(mkdir(storage, 0755), 0);
	write_merged("app/storage/new.txt", NEW_TXT);
	/* A file over a lower directory hides its content too. */
	rm_rf(vendor);
	write_merged("app/vendor", "not a dir");
	assert_int_equal(symlink("/etc/passwd", evil), 0);
	assert_int_equal(unlink(link2), 0);
	assert_int_equal(symlink("gone.php", link2), 0);
	assert_int_equal(mkfifo(pipe, 0600), 0);
	assert_int_equal(mkdir(uploads, 0700), 0);
	write_merged("app/web/uploads/x.jpg", "JFIF");
}

/* ---- fixture ---- */

static int fixture_setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	cleanup_free char *opts = NULL;
	cleanup_free char *work = NULL;

	*state = fx = f;
	f->upper_fd = -1;
	umask(022);
	strcpy(f->base, "/tmp/slate-test-diff-XXXXXX");
	if (mkdtemp(f->base) == NULL)
		return -1;
	f->lower = xasprintf("%s/lower", f->base);
	f->scratch = xasprintf("%s/scratch", f->base);
	f->upper = xasprintf("%s/upper", f->scratch);
	f->merged = xasprintf("%s/merged", f->base);
	if (mkdir(f->lower, 0755) < 0 || mkdir(f->scratch, 0755) < 0 || mkdir(f->merged, 0755) < 0)
		return -1;
	slate_manifest_init(&f->m);
	build_lower(f);
	/* Everything below happens in this test process's own mount namespace. */
	if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
		f->skip_reason = xasprintf("no private mount namespace: %s", strerror(errno));
		return 0;
	}
	if (mount("slate-test", f->scratch, "tmpfs", 0, "size=16m") < 0)
		return -1;
	f->tmpfs_mounted = true;
	opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s/work", f->lower, f->upper, f->scratch);
	work = xasprintf("%s/work", f->scratch);
	if (mkdir(f->upper, 0755) < 0 || mkdir(work, 0755) < 0)
		return -1;
	if (mount("overlay", f->merged, "overlay", 0, opts) < 0) {
		f->skip_reason = xasprintf("cannot mount an overlay: %s", strerror(errno));
		return 0;
	}
	act_on_merged();
	if (umount2(f->merged, 0) < 0)
		return -1;
	f->upper_fd = open(f->upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return f->upper_fd < 0 ? -1 : 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	if (f->upper_fd >= 0)
		close(f->upper_fd);
	if (f->tmpfs_mounted)
		umount2(f->scratch, MNT_DETACH);
	diff_result_free(&f->d);
	slate_manifest_free(&f->m);
	rm_tree(f->base);
	free(f->lower);
	free(f->scratch);
	free(f->upper);
	free(f->merged);
	free(f->skip_reason);
	free(f);
	return 0;
}

static struct fixture *need_overlay(void **state)
{
	struct fixture *f = *state;

	if (f->skip_reason) {
		print_message("skip: %s\n", f->skip_reason);
		skip();
	}
	return f;
}

static const struct diff_result *diffed(struct fixture *f)
{
	slate_error_t err = { 0 };

	if (f->d.v == NULL && diff_upper(f->upper_fd, &f->m, &f->d, &err) < 0)
		fail_msg("diff_upper: %s", err.msg);
	return &f->d;
}

static const struct diff_entry *find(const struct diff_result *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->v[i].path, path) == 0)
			return &d->v[i];
	return NULL;
}

static char *sha_hex(const char *s)
{
	unsigned char bin[SLATE_SHA256_LEN];
	slate_error_t err = { 0 };
	char *hex = xmalloc(SLATE_SHA256_HEX);

	assert_int_equal(slate_sha256_buf(s, strlen(s), bin, &err), 0);
	slate_hex(bin, sizeof(bin), hex);
	return hex;
}

/* ---- diff_upper ---- */

struct want {
	const char *path;
	char kind, type;
};

static const struct want expected[] = {
	{ "app/storage/cache", 'D', 'd' },
	{ "app/storage/cache/c.bin", 'D', 'f' },
	{ "app/storage/new.txt", 'A', 'f' },
	{ "app/storage/old.txt", 'D', 'f' },
	{ "app/templates", 'D', 'd' },
	{ "app/templates/a.twig", 'D', 'f' },
	{ "app/templates/sub", 'D', 'd' },
	{ "app/templates/sub/b.twig", 'D', 'f' },
	{ "app/vendor", 'C', 'f' },
	{ "app/vendor/lib.php", 'D', 'f' },
	{ "app/web/bad\nname\x1b[2J", 'A', 'f' },
	{ "app/web/evil", 'A', 'l' },
	{ "app/web/gone.php", 'D', 'f' },
	{ "app/web/index.php", 'C', 'f' },
	{ "app/web/link2", 'C', 'l' },
	{ "app/web/pipe", 'A', 'o' },
	{ "app/web/shell.php", 'A', 'f' },
	{ "app/web/uploads", 'A', 'd' },
	{ "app/web/uploads/x.jpg", 'A', 'f' },
};
#define N_EXPECTED (sizeof(expected) / sizeof(expected[0]))

static void test_diff_entries(void **state)
{
	struct fixture *f = need_overlay(state);
	const struct diff_result *d = diffed(f);

	if (d->n != N_EXPECTED)
		diff_print(d, stderr);
	assert_int_equal(d->n, N_EXPECTED);
	/* Sorted (component-wise), each exactly as expected. */
	for (size_t i = 0; i < N_EXPECTED; i++) {
		assert_string_equal(d->v[i].path, expected[i].path);
		assert_int_equal((char)d->v[i].kind, expected[i].kind);
		assert_int_equal(d->v[i].type, expected[i].type);
	}
	/* Never reported: metadata-only copy-ups, the untouched, lower dirs in the upper. */
	assert_null(find(d, "app/web/keep.php"));
	assert_null(find(d, "app/web"));
	assert_null(find(d, "app/storage"));
	assert_null(find(d, "app/web/link"));
	assert_null(find(d, "usr/untouched"));
}

static void test_diff_details(void **state)
{
	struct fixture *f = need_overlay(state);
	const struct diff_result *d = diffed(f);
	cleanup_free char *shell_sha = sha_hex(SHELL);
	cleanup_free char *index_sha = sha_hex(INDEX_NEW);
	cleanup_free char *gone_sha = sha_hex("<?php // deleted");
	const struct diff_entry *e;

	e = find(d, "app/web/shell.php");
	assert_non_null(e);
	assert_int_equal(e->size, strlen(SHELL));
	assert_string_equal(e->sha256, shell_sha);
	assert_int_equal(e->mode, 0644); /* fopen: 0666 & ~umask */
	assert_null(e->target);
	e = find(d, "app/web/index.php");
	assert_int_equal(e->size, strlen(INDEX_NEW));
	assert_string_equal(e->sha256, index_sha);
	e = find(d, "app/web/gone.php");
	assert_int_equal(e->size, strlen("<?php // deleted"));
	assert_string_equal(e->sha256, gone_sha);
	assert_int_equal(e->mode, 0644);
	e = find(d, "app/web/evil");
	assert_string_equal(e->target, "/etc/passwd");
	assert_string_equal(e->sha256, "");
	e = find(d, "app/web/link2");
	assert_string_equal(e->target, "gone.php");
	e = find(d, "app/web/uploads");
	assert_int_equal(e->mode, 0700);
	assert_int_equal(e->uid, 0);
	e = find(d, "app/web/pipe");
	assert_int_equal(e->mode, 0600);
	e = find(d, "app/templates");
	assert_int_equal(e->mode, 0755);
}

/* The test makes overlayfs write each encoding the diff decodes. */
static void test_upper_has_each_encoding(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *gone = xasprintf("%s/app/web/gone.php", f->upper);
	cleanup_free char *templates = xasprintf("%s/app/templates", f->upper);
	cleanup_free char *storage = xasprintf("%s/app/storage", f->upper);
	cleanup_free char *keep = xasprintf("%s/app/web/keep.php", f->upper);
	char val[4] = { 0 };
	struct stat st;

	assert_int_equal(lstat(gone, &st), 0);
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == 0);
	assert_int_equal(lstat(templates, &st), 0);
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == 0);
	assert_int_equal(getxattr(storage, "trusted.overlay.opaque", val, sizeof(val) - 1), 1);
	assert_string_equal(val, "y");
	assert_int_equal(lstat(keep, &st), 0);
	assert_true(S_ISREG(st.st_mode) && st.st_uid == 1000);
}

static void test_diff_untouched_upper_is_empty(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *empty = xasprintf("%s/empty", f->scratch);
	struct diff_result d = { 0 };
	slate_error_t err = { 0 };
	int fd;

	assert_int_equal(mkdir(empty, 0755), 0);
	fd = open(empty, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(diff_upper(fd, &f->m, &d, &err), 0);
	assert_int_equal(d.n, 0);
	diff_result_free(&d);
	close(fd);
	assert_int_equal(rmdir(empty), 0);
}

/* With metacopy=on a chown copies up only metadata (a sparse upper
 * file, data still in the lower): not a change either. */
static void test_diff_metacopy(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *upper = xasprintf("%s/mc-upper", f->scratch);
	cleanup_free char *work = xasprintf("%s/mc-work", f->scratch);
	cleanup_free char *mnt = xasprintf("%s/mc-merged", f->base);
	cleanup_free char *keep = xasprintf("%s/app/web/keep.php", mnt);
	cleanup_free char *upper_keep = xasprintf("%s/app/web/keep.php", upper);
	cleanup_free char *opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s,metacopy=on", f->lower, upper, work);
	struct diff_result d = { 0 };
	slate_error_t err = { 0 };
	int fd;

	assert_int_equal(mkdir(upper, 0755), 0);
	assert_int_equal(mkdir(work, 0755), 0);
	assert_int_equal(mkdir(mnt, 0755), 0);
	if (mount("overlay", mnt, "overlay", 0, opts) < 0) {
		print_message("skip: no metacopy overlay: %s\n", strerror(errno));
		skip();
	}
	assert_int_equal(chown(keep, 1000, 1000), 0);
	assert_int_equal(umount2(mnt, 0), 0);
	assert_true(getxattr(upper_keep, "trusted.overlay.metacopy", NULL, 0) >= 0);
	fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	if (diff_upper(fd, &f->m, &d, &err) < 0)
		fail_msg("diff_upper: %s", err.msg);
	if (d.n != 0)
		diff_print(&d, stderr);
	assert_int_equal(d.n, 0);
	close(fd);
	rm_rf(upper);
	rm_rf(work);
	assert_int_equal(rmdir(mnt), 0);
}

/* The walk holds at most DIFF_MAX_DEPTH directory fds however deep the
 * tree: the level past it is one entry, flagged too deep. */
static void test_diff_deep_tree_few_fds(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *top = xasprintf("%s/deep", f->scratch);
	struct rlimit old, low = { .rlim_cur = DIFF_MAX_DEPTH + 16, .rlim_max = 0 };
	struct diff_result d = { 0 };
	slate_error_t err = { 0 };
	int fd, cur, depth = 600, r;

	assert_int_equal(mkdir(top, 0755), 0);
	fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	cur = dup(fd);
	for (int i = 0; i < depth; i++) {
		int next;
		assert_int_equal(mkdirat(cur, "d", 0755), 0);
		next = openat(cur, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(next >= 0);
		close(cur);
		cur = next;
	}
	close(cur);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	r = diff_upper(fd, &f->m, &d, &err);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	if (r < 0)
		fail_msg("diff_upper: %s", err.msg);
	assert_int_equal(d.n, DIFF_MAX_DEPTH);
	for (size_t i = 0; i + 1 < d.n; i++)
		assert_false(d.v[i].too_deep);
	assert_true(d.v[DIFF_MAX_DEPTH - 1].too_deep);
	assert_int_equal(d.v[DIFF_MAX_DEPTH - 1].type, 'd');
	assert_int_equal(strlen(d.v[DIFF_MAX_DEPTH - 1].path), 2 * DIFF_MAX_DEPTH - 1);
	diff_result_free(&d);
	close(fd);
	rm_rf(top);
}

/* mkdir -p of `depth` nested directories named `len` times a letter (a, b,
 * ...) below dirfd, made relative to each parent (the path is too long to
 * make in one go). */
static void make_nested(int dirfd, int depth, size_t len)
{
	int cur = dup(dirfd);

	assert_true(cur >= 0);
	for (int i = 0; i < depth; i++) {
		char name[256];
		int next;
		memset(name, 'a' + i % 26, len);
		name[len] = '\0';
		assert_int_equal(mkdirat(cur, name, 0755), 0);
		next = openat(cur, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(next >= 0);
		close(cur);
		cur = next;
	}
	assert_int_equal(close(cur), 0);
}

/* rm -rf of what make_nested made below dirfd, from level i (nftw
 * cannot: the paths are too long). */
static void remove_nested(int dirfd, int i, int depth, size_t len)
{
	char name[256];
	int fd;

	if (i == depth)
		return;
	memset(name, 'a' + i % 26, len);
	name[len] = '\0';
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	remove_nested(fd, i + 1, depth, len);
	assert_int_equal(close(fd), 0);
	assert_int_equal(unlinkat(dirfd, name, AT_REMOVEDIR), 0);
}

/* 25 nested 200-byte names make paths past PATH_MAX: the diff does not
 * fail (it used to, with ENAMETOOLONG), lists the subtree down to where a
 * child's path would not fit, and flags that directory too deep; every
 * listed path fits in PATH_MAX. */
static void test_diff_long_names_too_deep(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *top = xasprintf("%s/longnames", f->scratch);
	struct diff_result d = { 0 };
	slate_error_t err = { 0 };
	size_t deep = 0;
	int fd;

	assert_int_equal(mkdir(top, 0755), 0);
	fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	make_nested(fd, 25, 200);
	if (diff_upper(fd, &f->m, &d, &err) < 0)
		fail_msg("diff_upper: %s", err.msg);
	assert_true(d.n > 10 && d.n < 25);
	for (size_t i = 0; i < d.n; i++) {
		assert_true(strlen(d.v[i].path) + 1 < PATH_MAX);
		assert_int_equal(d.v[i].type, 'd');
		assert_int_equal((char)d.v[i].kind, 'A');
		deep += d.v[i].too_deep;
	}
	assert_int_equal(deep, 1);
	assert_true(d.v[d.n - 1].too_deep);
	diff_result_free(&d);
	remove_nested(fd, 0, 25, 200);
	close(fd);
	rm_rf(top);
}

/* Write len bytes of `byte` at off in path (created if need be). */
static void write_at(const char *path, off_t off, int byte, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	char *buf = xmalloc(len);

	assert_true(fd >= 0);
	memset(buf, byte, len);
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	free(buf);
}

static void truncate_to(const char *path, off_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	assert_int_equal(close(fd), 0);
}

/* The SHA-256 of `head` bytes 'h', then zeros up to `tail_off`, then
 * `tail` bytes 't' (a sparse file's logical content). */
static void sparse_sha(size_t head, uint64_t tail_off, size_t tail, char hex[SLATE_SHA256_HEX])
{
	static unsigned char buf[1 << 16];
	unsigned char sum[SLATE_SHA256_LEN];
	slate_error_t err = { 0 };
	slate_sha256_t h = { 0 };
	uint64_t pos = head;

	assert_int_equal(slate_sha256_init(&h, &err), 0);
	memset(buf, 'h', head);
	assert_int_equal(slate_sha256_update(&h, buf, head, &err), 0);
	memset(buf, 0, sizeof(buf));
	while (pos < tail_off) {
		size_t k = tail_off - pos < sizeof(buf) ? (size_t)(tail_off - pos) : sizeof(buf);
		assert_int_equal(slate_sha256_update(&h, buf, k, &err), 0);
		pos += k;
	}
	memset(buf, 't', tail);
	assert_int_equal(slate_sha256_update(&h, buf, tail, &err), 0);
	assert_int_equal(slate_sha256_final(&h, sum, &err), 0);
	slate_hex(sum, sizeof(sum), hex);
}

#define MIB (1024 * 1024)
#define EIB8 INT64_MAX /* 8 EiB - 1: the largest file a tmpfs takes */

/* What an instance can make on its 16 MiB tmpfs to make the host's work
 * unbounded: an 8 EiB sparse file (all hole), one with data at both ends of
 * an 8 EiB hole, a 1 TiB one with data at 0 and at its end (and a second
 * name); and what must
 * still be read: a 4 MiB sparse file with data at both ends (hashed, holes
 * as zeros), a 1 MiB file with 20 hard links (read once). */
static void make_bounded_upper(const char *top)
{
	cleanup_free char *huge = xasprintf("%s/huge", top);
	cleanup_free char *ends = xasprintf("%s/ends", top);
	cleanup_free char *tera = xasprintf("%s/tera", top);
	cleanup_free char *tera_link = xasprintf("%s/tera-link", top);
	cleanup_free char *small = xasprintf("%s/small", top);
	cleanup_free char *big = xasprintf("%s/big", top);

	assert_int_equal(mkdir(top, 0755), 0);
	truncate_to(huge, EIB8);
	write_at(ends, 0, 'h', 4096);
	write_at(ends, EIB8 - 4096, 't', 4096);
	write_at(tera, 0, 'h', 4096);
	write_at(tera, (1LL << 40) - 4096, 't', 4096);
	assert_int_equal(link(tera, tera_link), 0);
	write_at(small, 0, 'h', 4096);
	write_at(small, 4 * MIB - 4096, 't', 4096);
	write_at(big, 0, 'b', MIB);
	for (int i = 0; i < 20; i++) {
		cleanup_free char *l = xasprintf("%s/link%02d", top, i);
		assert_int_equal(link(big, l), 0);
	}
}

static const struct diff_entry *entry(const struct diff_result *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->v[i].path, path) == 0)
			return &d->v[i];
	return NULL;
}

/* The diff of that upper finishes in bounded time (it used to hash
 * st_size bytes: 8 EiB never finish; the alarm fails the test), lists
 * every file with its st_size, hashes what fits in the tmpfs size and
 * flags the rest not hashed. */
static void test_diff_bounded_by_tmpfs(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *top = xasprintf("%s/bounded", f->scratch);
	cleanup_free char *big_sha = NULL;
	struct diff_result d = { 0 };
	slate_error_t err = { 0 };
	char hex[SLATE_SHA256_HEX];
	const struct diff_entry *e;
	char *big = xmalloc(MIB + 1);
	int fd;

	make_bounded_upper(top);
	fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	alarm(20);
	if (diff_upper(fd, &f->m, &d, &err) < 0)
		fail_msg("diff_upper: %s", err.msg);
	alarm(0);
	assert_int_equal(d.n, 6 + 20);
	e = entry(&d, "huge");
	assert_int_equal(e->size, EIB8);
	assert_true(e->not_hashed);
	assert_string_equal(e->sha256, "");
	assert_true(entry(&d, "ends")->not_hashed);
	assert_true(entry(&d, "tera")->not_hashed);
	assert_true(entry(&d, "tera-link")->not_hashed);
	e = entry(&d, "small");
	assert_false(e->not_hashed);
	assert_int_equal(e->size, 4 * MIB);
	sparse_sha(4096, 4 * MIB - 4096, 4096, hex);
	assert_string_equal(e->sha256, hex);
	memset(big, 'b', MIB);
	big[MIB] = '\0';
	big_sha = sha_hex(big);
	for (int i = 0; i < 20; i++) {
		cleanup_free char *l = xasprintf("link%02d", i);
		assert_string_equal(entry(&d, l)->sha256, big_sha);
		assert_false(entry(&d, l)->not_hashed);
	}
	assert_string_equal(entry(&d, "big")->sha256, big_sha);
	free(big);
	diff_result_free(&d);
	close(fd);
	rm_rf(top);
}

/* The flags are on the line, and in the JSON. */
static void test_diff_print_flags(void **state)
{
	struct diff_entry v[2] = {
		{ .path = (char *)"app/storage/deep", .kind = DIFF_ADDED, .type = 'd', .too_deep = true },
		{ .path = (char *)"app/storage/huge",
		  .kind = DIFF_ADDED,
		  .type = 'f',
		  .size = EIB8,
		  .not_hashed = true },
	};
	struct diff_result d = { .v = v, .n = 2 };
	json_t *j = diff_to_json(&d);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(out);
	diff_print(&d, out);
	assert_int_equal(fclose(out), 0);
	assert_non_null(strstr(buf, "A /app/storage/deep  dir  too deep ("));
	assert_non_null(strstr(buf, "A /app/storage/huge  9223372036854775807 bytes  not hashed ("));
	assert_true(json_is_true(json_object_get(json_array_get(j, 0), "too_deep")));
	assert_null(json_object_get(json_array_get(j, 0), "not_hashed"));
	assert_true(json_is_true(json_object_get(json_array_get(j, 1), "not_hashed")));
	assert_null(json_object_get(json_array_get(j, 1), "sha256"));
	json_decref(j);
	free(buf);
}

static void test_diff_refuses_redirect(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *top = xasprintf("%s/redir", f->scratch);
	cleanup_free char *app = xasprintf("%s/redir/app", f->scratch);
	struct diff_result d = { 0 };
	slate_error_t err = { 0 };
	int fd;

	assert_int_equal(mkdir(top, 0755), 0);
	assert_int_equal(mkdir(app, 0755), 0);
	assert_int_equal(setxattr(app, "trusted.overlay.redirect", "/usr", 4, 0), 0);
	fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(diff_upper(fd, &f->m, &d, &err), -1);
	assert_int_equal(err.kind, SLATE_EXIT_REFUSED);
	assert_non_null(strstr(err.msg, "redirect"));
	assert_int_equal(d.n, 0);
	close(fd);
	rm_rf(top);
}

/* ---- output ---- */

static void test_diff_json(void **state)
{
	struct fixture *f = need_overlay(state);
	const struct diff_result *d = diffed(f);
	json_t *j = diff_to_json(d), *o;
	cleanup_free char *shell_sha = sha_hex(SHELL);
	size_t i;

	assert_true(json_is_array(j));
	assert_int_equal(json_array_size(j), d->n);
	json_array_foreach (j, i, o) {
		const char *path = json_string_value(json_object_get(o, "path"));
		assert_non_null(path);
		assert_int_equal(path[0], '/');
		assert_non_null(json_string_value(json_object_get(o, "kind")));
		assert_non_null(json_string_value(json_object_get(o, "type")));
		assert_true(json_is_integer(json_object_get(o, "mode")));
		if (strcmp(path, "/app/web/shell.php") == 0) {
			assert_string_equal(json_string_value(json_object_get(o, "kind")), "added");
			assert_string_equal(json_string_value(json_object_get(o, "type")), "file");
			assert_int_equal(json_integer_value(json_object_get(o, "size")), strlen(SHELL));
			assert_string_equal(json_string_value(json_object_get(o, "sha256")), shell_sha);
			assert_int_equal(json_integer_value(json_object_get(o, "mode")), 0644);
		}
		if (strcmp(path, "/app/templates") == 0) {
			assert_string_equal(json_string_value(json_object_get(o, "kind")), "deleted");
			assert_string_equal(json_string_value(json_object_get(o, "type")), "dir");
			assert_null(json_object_get(o, "size"));
			assert_null(json_object_get(o, "sha256"));
		}
		if (strcmp(path, "/app/web/evil") == 0)
			assert_string_equal(json_string_value(json_object_get(o, "target")), "/etc/passwd");
		if (strcmp(path, "/app/vendor") == 0)
			assert_string_equal(json_string_value(json_object_get(o, "kind")), "changed");
	}
	json_decref(j);
}

static void test_diff_json_escapes_non_utf8(void **state)
{
	struct diff_entry e = { .path = (char *)"app/\xff\\x", .kind = DIFF_ADDED, .type = 'o', .mode = 0644 };
	struct diff_result d = { .v = &e, .n = 1 };
	json_t *j = diff_to_json(&d);
	json_t *o = json_array_get(j, 0);

	(void)state;
	assert_string_equal(json_string_value(json_object_get(o, "path")), "/app/\\xff\\\\x");
	assert_true(json_is_true(json_object_get(o, "escaped")));
	json_decref(j);
}

static void test_diff_print(void **state)
{
	struct fixture *f = need_overlay(state);
	const struct diff_result *d = diffed(f);
	cleanup_free char *shell_sha = sha_hex(SHELL);
	cleanup_free char *want = xasprintf("A /app/web/shell.php  %zu bytes  sha256:%s\n", strlen(SHELL), shell_sha);
	char *buf = NULL;
	size_t len = 0, lines = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	diff_print(d, out);
	assert_int_equal(fclose(out), 0);
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	/* One line per entry: the name with a newline cannot add a line. */
	assert_int_equal(lines, d->n);
	assert_non_null(strstr(buf, want));
	assert_non_null(strstr(buf, "A /app/web/bad\\x0aname\\x1b[2J  1 bytes  sha256:"));
	assert_null(strchr(buf, '\x1b'));
	assert_non_null(strstr(buf, "D /app/templates  dir\n"));
	assert_non_null(strstr(buf, "A /app/web/evil -> /etc/passwd\n"));
	assert_non_null(strstr(buf, "A /app/web/pipe  other (mode 600)\n"));
	assert_non_null(strstr(buf, "A /app/web/uploads  dir\n"));
	free(buf);
}

/* ---- diff_save_tar ---- */

struct member {
	char *path;
	mode_t type;
	unsigned perm;
	int64_t uid;
	char *data;
	size_t size;
	char *link;
	char *hardlink;
	int sparse; /* extents in the member's sparse map */
	int64_t realsize;
};

static size_t read_tar(const char *path, struct member *out, size_t max)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	size_t n = 0;

	assert_non_null(a);
	assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
	assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		struct member *m = &out[n++];
		la_int64_t size = archive_entry_size(ae);
		assert_true(n <= max);
		m->path = xstrdup(archive_entry_pathname(ae));
		if (m->path[0] && m->path[strlen(m->path) - 1] == '/') /* tar's mark of a directory */
			m->path[strlen(m->path) - 1] = '\0';
		m->type = archive_entry_filetype(ae);
		m->perm = archive_entry_perm(ae);
		m->uid = archive_entry_uid(ae);
		m->realsize = size;
		m->sparse = archive_entry_sparse_count(ae);
		/* Only what fits in memory: an 8 EiB sparse member is not read. */
		m->size = size <= 64 * 1024 * 1024 ? (size_t)size : 0;
		m->data = xcalloc(1, m->size + 1);
		if (m->size > 0)
			assert_int_equal(archive_read_data(a, m->data, m->size), size);
		if (archive_entry_symlink(ae))
			m->link = xstrdup(archive_entry_symlink(ae));
		if (archive_entry_hardlink(ae))
			m->hardlink = xstrdup(archive_entry_hardlink(ae));
	}
	assert_int_equal(archive_read_free(a), ARCHIVE_OK);
	return n;
}

static const struct member *member(const struct member *v, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].path, path) == 0)
			return &v[i];
	return NULL;
}

static void test_diff_save_tar(void **state)
{
	struct fixture *f = need_overlay(state);
	const struct diff_result *d = diffed(f);
	cleanup_free char *tar = xasprintf("%s/diff.tar", f->base);
	struct member v[64] = { 0 };
	slate_error_t err = { 0 };
	const struct member *m;
	struct stat st;
	json_t *j;
	size_t n;

	if (diff_save_tar(f->upper_fd, d, tar, &err) < 0)
		fail_msg("diff_save_tar: %s", err.msg);
	assert_int_equal(stat(tar, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	n = read_tar(tar, v, 64);
	/* The metadata first, then every added or changed file, link and dir
	 * (not the fifo, not the deleted). */
	assert_string_equal(v[0].path, ".slate-diff/diff.json");
	assert_string_equal(v[1].path, ".slate-diff/deleted.txt");
	assert_int_equal(n, 2 + 9);
	m = member(v, n, "app/web/shell.php");
	assert_non_null(m);
	assert_int_equal(m->type, AE_IFREG);
	assert_string_equal(m->data, SHELL);
	assert_int_equal(m->perm, 0644);
	assert_string_equal(member(v, n, "app/web/index.php")->data, INDEX_NEW);
	assert_string_equal(member(v, n, "app/storage/new.txt")->data, NEW_TXT);
	assert_string_equal(member(v, n, "app/vendor")->data, "not a dir");
	assert_string_equal(member(v, n, "app/web/uploads/x.jpg")->data, "JFIF");
	assert_non_null(member(v, n, "app/web/bad\nname\x1b[2J"));
	m = member(v, n, "app/web/uploads");
	assert_int_equal(m->type, AE_IFDIR);
	assert_int_equal(m->perm, 0700);
	m = member(v, n, "app/web/evil");
	assert_int_equal(m->type, AE_IFLNK);
	assert_string_equal(m->link, "/etc/passwd");
	assert_string_equal(member(v, n, "app/web/link2")->link, "gone.php");
	assert_null(member(v, n, "app/web/pipe"));
	assert_null(member(v, n, "app/web/gone.php"));
	assert_null(member(v, n, "app/web/keep.php"));
	assert_null(member(v, n, ".slate-diff/changed-during-save.txt"));
	assert_string_equal(v[1].data,
			    "/app/storage/cache\n/app/storage/cache/c.bin\n/app/storage/old.txt\n"
			    "/app/templates\n/app/templates/a.twig\n/app/templates/sub\n"
			    "/app/templates/sub/b.twig\n/app/vendor/lib.php\n/app/web/gone.php\n");
	j = json_loads(v[0].data, 0, NULL);
	assert_true(json_is_array(j));
	assert_int_equal(json_array_size(j), d->n);
	json_decref(j);
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].data);
		free(v[i].link);
		free(v[i].hardlink);
	}
}

/* A file changed after the diff is saved as it is now, and listed. */
static void test_diff_save_tar_notes_changes(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *top = xasprintf("%s/later", f->scratch);
	cleanup_free char *file = xasprintf("%s/later/x.txt", f->scratch);
	cleanup_free char *tar = xasprintf("%s/later.tar", f->base);
	struct diff_result d = { 0 };
	struct member v[8] = { 0 };
	slate_error_t err = { 0 };
	FILE *out;
	size_t n;
	int fd;

	assert_int_equal(mkdir(top, 0755), 0);
	out = fopen(file, "we");
	assert_non_null(out);
	fputs("first", out);
	assert_int_equal(fclose(out), 0);
	fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(diff_upper(fd, &f->m, &d, &err), 0);
	assert_int_equal(d.n, 1);
	assert_int_equal((char)d.v[0].kind, 'A');
	out = fopen(file, "we");
	fputs("second!", out);
	assert_int_equal(fclose(out), 0);
	assert_int_equal(diff_save_tar(fd, &d, tar, &err), 0);
	n = read_tar(tar, v, 8);
	assert_int_equal(n, 4);
	assert_string_equal(member(v, n, "x.txt")->data, "second!");
	assert_string_equal(member(v, n, ".slate-diff/changed-during-save.txt")->data, "/x.txt\n");
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].data);
		free(v[i].link);
		free(v[i].hardlink);
	}
	diff_result_free(&d);
	close(fd);
	rm_rf(top);
}

/* The tar of that upper stays about the size of the data the tmpfs holds
 * (it used to hold st_size bytes of each file, and of each hard link):
 * the hard links are link members to the first, the sparse files sparse
 * members with their data only, the all-hole 8 EiB file included; a file
 * whose holes before its data pass the budget is left out and listed. */
static void test_diff_save_tar_bounded(void **state)
{
	struct fixture *f = need_overlay(state);
	cleanup_free char *top = xasprintf("%s/bounded", f->scratch);
	cleanup_free char *tar = xasprintf("%s/bounded.tar", f->base);
	struct diff_result d = { 0 };
	struct member v[64] = { 0 };
	slate_error_t err = { 0 };
	const struct member *m;
	struct stat st;
	size_t n, links = 0;
	int fd;

	make_bounded_upper(top);
	fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	alarm(20);
	if (diff_upper(fd, &f->m, &d, &err) < 0 || diff_save_tar(fd, &d, tar, &err) < 0)
		fail_msg("diff: %s", err.msg);
	alarm(0);
	assert_int_equal(stat(tar, &st), 0);
	print_message("tar of the bounded upper: %lld bytes\n", (long long)st.st_size);
	assert_true(st.st_size < 2 * MIB);
	n = read_tar(tar, v, 64);
	m = member(v, n, "big");
	assert_non_null(m);
	assert_null(m->hardlink);
	assert_int_equal(m->size, MIB);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(v[i].path, "link", 4) != 0)
			continue;
		assert_non_null(v[i].hardlink);
		assert_string_equal(v[i].hardlink, "big");
		links++;
	}
	assert_int_equal(links, 20);
	m = member(v, n, "huge");
	assert_non_null(m);
	assert_int_equal(m->realsize, EIB8);
	assert_true(m->sparse > 0);
	m = member(v, n, "small");
	assert_true(m->sparse > 0);
	assert_int_equal(m->size, 4 * MIB);
	assert_int_equal(m->data[0], 'h');
	assert_int_equal(m->data[4096], 0);
	assert_int_equal(m->data[4 * MIB - 1], 't');
	/* 8 EiB (and 1 TiB) of hole before the data at the end: not saved. */
	assert_null(member(v, n, "ends"));
	assert_null(member(v, n, "tera"));
	m = member(v, n, ".slate-diff/not-saved.txt");
	assert_non_null(m);
	assert_string_equal(m->data, "/ends\n/tera\n/tera-link\n");
	assert_null(member(v, n, ".slate-diff/changed-during-save.txt"));
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].data);
		free(v[i].link);
		free(v[i].hardlink);
	}
	diff_result_free(&d);
	close(fd);
	rm_rf(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upper_has_each_encoding),
		cmocka_unit_test(test_diff_entries),
		cmocka_unit_test(test_diff_details),
		cmocka_unit_test(test_diff_untouched_upper_is_empty),
		cmocka_unit_test(test_diff_metacopy),
		cmocka_unit_test(test_diff_deep_tree_few_fds),
		cmocka_unit_test(test_diff_long_names_too_deep),
		cmocka_unit_test(test_diff_bounded_by_tmpfs),
		cmocka_unit_test(test_diff_refuses_redirect),
		cmocka_unit_test(test_diff_json),
		cmocka_unit_test(test_diff_json_escapes_non_utf8),
		cmocka_unit_test(test_diff_print),
		cmocka_unit_test(test_diff_print_flags),
		cmocka_unit_test(test_diff_save_tar),
		cmocka_unit_test(test_diff_save_tar_notes_changes),
		cmocka_unit_test(test_diff_save_tar_bounded),
	};

	return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
