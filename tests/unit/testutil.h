/* Helpers the unit tests share: error assertions, a temporary directory
 * per test, and whole-file reads and writes. Linked into every test
 * binary (see the Makefile rule for $(BUILD)/tests/%). */
#ifndef SLATE_TESTUTIL_H
#define SLATE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "slate/manifest.h"
#include "slate/util.h"

/* err has kind want_kind and its message names needle. A macro, so that a
 * failure reports the caller's line. */
#define assert_error(err, want_kind, needle)                                                                           \
	do {                                                                                                           \
		if ((err)->kind != (want_kind) || strstr((err)->msg, (needle)) == NULL)                                \
			fail_msg("got kind %d `%s`, want kind %d naming `%s`", (err)->kind, (err)->msg,                \
				 (int)(want_kind), (needle));                                                          \
	} while (0)
#define assert_refused(err, needle) assert_error(err, SLATE_EXIT_REFUSED, needle)

/* Remove path and everything under it, never following a symlink; the
 * result of nftw (0 when all went). */
int rm_tree(const char *path);

/* A new directory /tmp/slate-test-NAME-XXXXXX, NAME the test binary's name
 * without its "test_" (so test_tree makes /tmp/slate-test-tree-...); NULL
 * when mkdtemp fails. The caller frees it. */
char *make_tmpdir(void);

/* cmocka fixtures: *state is a new temporary directory (a char *), removed
 * with all it holds and freed afterwards. */
int tmpdir_setup(void **state);
int tmpdir_teardown(void **state);

/* "dir/rel", to free. */
char *path_join(const char *dir, const char *rel);

/* Create (or truncate) path holding text. */
void write_text(const char *path, const char *text);

/* The whole of path (up to 64 MiB), to free; fails the test when it cannot
 * be read. */
char *read_text(const char *path);

/* The number of entries in dir, "." and ".." aside. */
size_t count_entries(const char *dir);

/* Manifest building: a new entry of m (path, type and mode set), and a
 * symbolic link path -> target (mode 0777). */
struct slate_entry *add_entry(struct slate_manifest *m, const char *path, enum slate_entry_type type, unsigned mode);
void add_link(struct slate_manifest *m, const char *path, const char *target);

/* A bundle's image and settings that the one validator (lib/policy.c)
 * accepts, as JSON text: what a build of the example makes, in short. */
extern const char test_image_json[];
extern const char test_settings_json[];

#endif
