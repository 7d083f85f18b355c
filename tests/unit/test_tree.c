/* Unit tests for bundler/tree.c: the tree rules (parents, conflicts,
 * replacement), modes, relative link targets and parallel hashing. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "slate/hash.h"
#include "slate/util.h"
#include "tree.h"

/* ---- fixtures ---- */

static void write_bytes(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	slate_error_t err = { 0 };

	assert_true(fd >= 0);
	assert_int_equal(slate_write_all(fd, buf, len, path, &err), 0);
	assert_int_equal(close(fd), 0);
}

static void assert_entry(struct tree *t, const char *path, enum slate_entry_type type, unsigned mode)
{
	struct slate_entry *e = tree_get(t, path);

	if (e == NULL)
		fail_msg("no entry `%s`", path);
	assert_int_equal(e->type, type);
	assert_int_equal(e->mode, mode);
}

/* ---- tree_relative ---- */

static void assert_relative(const char *from, const char *to, const char *want)
{
	char *got = tree_relative(from, to);

	if (strcmp(got, want) != 0)
		fail_msg("tree_relative(`%s`, `%s`) = `%s`, want `%s`", from, to, got, want);
	free(got);
}

static void test_relative(void **state)
{
	(void)state;
	assert_relative("app", "app/web/x", "web/x");
	assert_relative("app/a", "app/b", "../b");
	assert_relative("app/a/b", "app/c", "../../c");
	assert_relative("x/y", "a", "../../a");
	assert_relative("", "app/x", "app/x");
	assert_relative("app", "", "..");
	assert_relative("app", "app", ".");
	assert_relative("", "", ".");
	assert_relative("a/b", "a/b/c/d", "c/d");
}

/* Shared prefixes that are not whole components do not count. */
static void test_relative_partial_components(void **state)
{
	(void)state;
	assert_relative("app/ab", "app/a", "../a");
	assert_relative("app/a", "app/ab", "../ab");
	assert_relative("a", "ab/c", "../ab/c");
	assert_relative("a/b", "a/bc/d", "../bc/d");
	assert_relative("ab", "a/x", "../a/x");
}

/* ---- tree_add_* ---- */

static void test_add_creates_parents(void **state)
{
	struct tree t;
	slate_error_t err = { 0 };

	(void)state;
	tree_init(&t);
	assert_int_equal(tree_add_data(&t, "a/b/c", "x", 1, false, &err), 0);
	assert_int_equal(t.m.n_entries, 3);
	assert_string_equal(t.m.entries[0].path, "a");
	assert_string_equal(t.m.entries[1].path, "a/b");
	assert_string_equal(t.m.entries[2].path, "a/b/c");
	assert_entry(&t, "a", SLATE_ENTRY_DIR, 0755);
	assert_entry(&t, "a/b", SLATE_ENTRY_DIR, 0755);
	assert_entry(&t, "a/b/c", SLATE_ENTRY_FILE, 0644);
	assert_int_equal(tree_get(&t, "a/b/c")->size, 1);
	tree_free(&t);
}

static void test_add_dir_twice_is_noop(void **state)
{
	struct tree t;
	slate_error_t err = { 0 };

	(void)state;
	tree_init(&t);
	assert_int_equal(tree_add_dir(&t, "a/b", &err), 0);
	assert_int_equal(tree_add_dir(&t, "a/b", &err), 0);
	assert_int_equal(tree_add_dir(&t, "a", &err), 0);
	assert_int_equal(t.m.n_entries, 2);
	tree_free(&t);
}

static void test_add_refuses_dir_over_file(void **state)
{
	struct tree t;
	slate_error_t err = { 0 };

	(void)state;
	tree_init(&t);
	assert_int_equal(tree_add_file(&t, "a", "/src/a", 0644, 3, false, &err), 0);
	assert_int_equal(tree_add_dir(&t, "a", &err), -1);
	assert_refused(&err, "`a` is a file, not a directory");
	assert_int_equal(tree_add_data(&t, "a/b", "x", 1, false, &err), -1);
	assert_refused(&err, "`a` is a file, not a directory");
	assert_int_equal(t.m.n_entries, 1);
	tree_free(&t);
}

static void test_add_refuses_path_below_symlink(void **state)
{
	struct tree t;
	slate_error_t err = { 0 };

	(void)state;
	tree_init(&t);
	assert_int_equal(tree_add_symlink(&t, "l", "d", false, &err), 0);
	assert_int_equal(tree_add_data(&t, "l/x", "x", 1, false, &err), -1);
	assert_refused(&err, "`l` is a symlink, not a directory");
	assert_null(tree_get(&t, "l/x"));
	tree_free(&t);
}

static void test_add_refuses_file_twice(void **state)
{
	struct tree t;
	slate_error_t err = { 0 };

	(void)state;
	tree_init(&t);
	assert_int_equal(tree_add_data(&t, "f", "one", 3, false, &err), 0);
	assert_int_equal(tree_add_data(&t, "f", "second", 6, false, &err), -1);
	assert_refused(&err, "`f` is added twice");
	assert_int_equal(tree_add_symlink(&t, "f", "x", false, &err), -1);
	assert_refused(&err, "`f` is added twice");
	assert_int_equal(tree_get(&t, "f")->size, 3);
	assert_string_equal(tree_get(&t, "f")->data, "one");
	tree_free(&t);
}

static void test_add_replace(void **state)
{
	struct tree t;
	slate_error_t err = { 0 };
	struct slate_entry *e;

	(void)state;
	tree_init(&t);
	assert_int_equal(tree_add_data(&t, "f", "one", 3, false, &err), 0);
	assert_int_equal(tree_add_file(&t, "f", "/host/f", 0755, 42, true, &err), 0);
	e = tree_get(&t, "f");
	assert_int_equal(e->type, SLATE_ENTRY_FILE);
	assert_int_equal(e->mode, 0755);
	assert_int_equal(e->size, 42);
	assert_string_equal(e->source, "/host/f");
	assert_null(e->data);
	assert_int_equal(tree_add_symlink(&t, "f", "g", true, &err), 0);
	e = tree_get(&t, "f");
	assert_int_equal(e->type, SLATE_ENTRY_SYMLINK);
	assert_int_equal(e->mode, 0777);
	assert_int_equal(e->size, 0);
	assert_string_equal(e->target, "g");
	assert_null(e->source);
	assert_int_equal(t.m.n_entries, 1);
	tree_free(&t);
}

static void test_add_refuses_replacing_dir(void **state)
{
	struct tree t;
	slate_error_t err = { 0 };

	(void)state;
	tree_init(&t);
	assert_int_equal(tree_add_dir(&t, "d/e", &err), 0);
	assert_int_equal(tree_add_data(&t, "d", "x", 1, true, &err), -1);
	assert_refused(&err, "`d` is a directory and cannot be replaced by a file");
	assert_int_equal(tree_add_symlink(&t, "d", "x", true, &err), -1);
	assert_refused(&err, "`d` is a directory and cannot be replaced by a symlink");
	assert_entry(&t, "d", SLATE_ENTRY_DIR, 0755);
	tree_free(&t);
}

static void test_add_refuses_unsafe(void **state)
{
	struct tree t;
	slate_error_t err = { 0 };

	(void)state;
	tree_init(&t);
	assert_int_equal(tree_add_data(&t, "a/../b", "x", 1, false, &err), -1);
	assert_refused(&err, "`a/../b`");
	assert_int_equal(tree_add_dir(&t, "/etc", &err), -1);
	assert_refused(&err, "`/etc`: absolute");
	assert_int_equal(tree_add_symlink(&t, "a/l", "../../x", false, &err), -1);
	assert_refused(&err, "`a/l`: target `../../x` leaves the tree");
	assert_int_equal(tree_add_symlink(&t, "a/l", "/x", false, &err), -1);
	assert_refused(&err, "`a/l`: absolute target");
	assert_int_equal(t.m.n_entries, 0);
	tree_free(&t);
}

/* ---- tree_mode ---- */

static void test_mode(void **state)
{
	(void)state;
	assert_int_equal(tree_mode(SLATE_ENTRY_DIR, S_IFDIR | 0700), 0755);
	assert_int_equal(tree_mode(SLATE_ENTRY_DIR, S_IFDIR | 01777), 0755);
	assert_int_equal(tree_mode(SLATE_ENTRY_FILE, S_IFREG | 0600), 0644);
	assert_int_equal(tree_mode(SLATE_ENTRY_FILE, S_IFREG | 0666), 0644);
	assert_int_equal(tree_mode(SLATE_ENTRY_FILE, S_IFREG | 0700), 0755);
	assert_int_equal(tree_mode(SLATE_ENTRY_FILE, S_IFREG | 0010), 0755);
	assert_int_equal(tree_mode(SLATE_ENTRY_FILE, S_IFREG | 04755), 0755);
	assert_int_equal(tree_mode(SLATE_ENTRY_FILE, S_IFREG | 02644), 0644);
	assert_int_equal(tree_mode(SLATE_ENTRY_SYMLINK, S_IFLNK | 0777), 0777);
}

static void test_note_mtime_keeps_newest(void **state)
{
	struct tree t;

	(void)state;
	tree_init(&t);
	tree_note_mtime(&t, 100);
	tree_note_mtime(&t, 300);
	tree_note_mtime(&t, 200);
	assert_int_equal(t.newest_mtime, 300);
	tree_free(&t);
}

/* ---- tree_hash ---- */

#define N_FILES 40

/* N_FILES files of different sizes on disk and one in-memory entry. */
static void build_hash_tree(struct tree *t, const char *dir)
{
	slate_error_t err = { 0 };

	tree_init(t);
	for (size_t i = 0; i < N_FILES; i++) {
		size_t len = i * 7919 % 300000;
		char *buf = xmalloc(len + 1), *host = xasprintf("%s/f%zu", dir, i), *rel = xasprintf("d/f%zu", i);
		for (size_t k = 0; k < len; k++)
			buf[k] = (char)(k * 31 + i);
		write_bytes(host, buf, len);
		assert_int_equal(tree_add_file(t, rel, host, 0644, len, false, &err), 0);
		free(buf);
		free(host);
		free(rel);
	}
	assert_int_equal(tree_add_data(t, "mem", "in memory", 9, false, &err), 0);
	assert_int_equal(tree_add_symlink(t, "d/l", "f1", false, &err), 0);
}

static void expected_sha(const struct slate_entry *e, unsigned char out[SLATE_SHA256_LEN])
{
	slate_error_t err = { 0 };
	size_t len = 0;
	char *buf = e->data ? NULL : slate_read_file(e->source, 1 << 20, &len, &err);

	assert_int_equal(slate_sha256_buf(e->data ? e->data : buf, e->size, out, &err), 0);
	free(buf);
}

/* Forget what a previous tree_hash() computed or kept in memory. */
static void forget_hashes(struct tree *t)
{
	for (size_t i = 0; i < t->m.n_entries; i++) {
		struct slate_entry *e = &t->m.entries[i];
		memset(e->sha256, 0, SLATE_SHA256_LEN);
		if (e->source != NULL) {
			free(e->data);
			e->data = NULL;
		}
	}
}

static void test_hash_threads_agree(void **state)
{
	unsigned char one[N_FILES + 4][SLATE_SHA256_LEN], want[SLATE_SHA256_LEN];
	slate_error_t err = { 0 };
	struct tree t;

	build_hash_tree(&t, *state);
	assert_true(t.m.n_entries <= N_FILES + 4);
	assert_int_equal(tree_hash(&t, 1, &err), 0);
	for (size_t i = 0; i < t.m.n_entries; i++)
		memcpy(one[i], t.m.entries[i].sha256, SLATE_SHA256_LEN);
	forget_hashes(&t);
	assert_int_equal(tree_hash(&t, 4, &err), 0);
	for (size_t i = 0; i < t.m.n_entries; i++) {
		const struct slate_entry *e = &t.m.entries[i];
		assert_memory_equal(e->sha256, one[i], SLATE_SHA256_LEN);
		if (e->type != SLATE_ENTRY_FILE)
			continue;
		expected_sha(e, want);
		assert_memory_equal(e->sha256, want, SLATE_SHA256_LEN);
	}
	tree_free(&t);
}

/* A file added with `size` bytes that has `now` bytes when it is hashed. */
static void assert_hash_sees_change(const char *dir, size_t size, size_t now)
{
	char *host = xasprintf("%s/changes", dir), *buf = xcalloc(size > now ? size : now, 1);
	slate_error_t err = { 0 };
	struct tree t;
	int r;

	tree_init(&t);
	write_bytes(host, buf, size);
	assert_int_equal(tree_add_file(&t, "changes", host, 0644, size, false, &err), 0);
	write_bytes(host, buf, now);
	r = tree_hash(&t, 4, &err);
	tree_free(&t);
	free(buf);
	free(host);
	assert_int_equal(r, -1);
	if (err.kind != SLATE_EXIT_SYSTEM || strstr(err.msg, "changed while it was being packed") == NULL)
		fail_msg("%zu bytes, then %zu: kind %d `%s`", size, now, err.kind, err.msg);
}

static void test_hash_refuses_shrunk_file(void **state)
{
	assert_hash_sees_change(*state, 5, 4);
	assert_hash_sees_change(*state, (2u << 20) + 1, 2u << 20);
}

static void test_hash_refuses_grown_file(void **state)
{
	assert_hash_sees_change(*state, (2u << 20) + 1, (2u << 20) + 2);
	assert_hash_sees_change(*state, 5, 6);
}

static void test_hash_missing_source(void **state)
{
	char *host = xasprintf("%s/gone", (const char *)*state);
	slate_error_t err = { 0 };
	struct tree t;

	tree_init(&t);
	assert_int_equal(tree_add_file(&t, "gone", host, 0644, 5, false, &err), 0);
	assert_int_equal(tree_hash(&t, 2, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, host);
	assert_int_equal(err.errnum, ENOENT);
	tree_free(&t);
	free(host);
}

#define tmpdir_test(fn) cmocka_unit_test_setup_teardown(fn, tmpdir_setup, tmpdir_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relative),
		cmocka_unit_test(test_relative_partial_components),
		cmocka_unit_test(test_add_creates_parents),
		cmocka_unit_test(test_add_dir_twice_is_noop),
		cmocka_unit_test(test_add_refuses_dir_over_file),
		cmocka_unit_test(test_add_refuses_path_below_symlink),
		cmocka_unit_test(test_add_refuses_file_twice),
		cmocka_unit_test(test_add_replace),
		cmocka_unit_test(test_add_refuses_replacing_dir),
		cmocka_unit_test(test_add_refuses_unsafe),
		cmocka_unit_test(test_mode),
		cmocka_unit_test(test_note_mtime_keeps_newest),
		tmpdir_test(test_hash_threads_agree),
		tmpdir_test(test_hash_refuses_shrunk_file),
		tmpdir_test(test_hash_refuses_grown_file),
		tmpdir_test(test_hash_missing_source),
	};

	return cmocka_run_group_tests_name("tree", tests, NULL, NULL);
}
