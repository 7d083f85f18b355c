/* Unit tests for lib/path.c: canonical bundle paths, member-name
 * normalisation, symlink targets, archive order, globs and the path map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "slate/path.h"
#include "slate/util.h"

static int check(const char *path, slate_error_t *err)
{
	return slate_path_check(path, SLATE_PATH_MAX_DEFAULT, SLATE_NAME_MAX_DEFAULT, err);
}

/* path must be refused, with a message that contains needle. */
static void assert_check_refuses(const char *path, const char *needle)
{
	slate_error_t err = { 0 };

	if (check(path, &err) != -1)
		fail_msg("path `%s` was accepted", path);
	assert_refused(&err, needle);
}

/* ---- slate_path_check ---- */

static void test_check_accepts_canonical(void **state)
{
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(check("a", &err), 0);
	assert_int_equal(check("usr/lib/x86_64-linux-gnu/libc.so.6", &err), 0);
	assert_int_equal(check("app/.slate/nginx.conf", &err), 0);
	assert_int_equal(check("a/...", &err), 0);
	assert_int_equal(err.kind, 0);
}

static void test_check_refuses_empty(void **state)
{
	(void)state;
	assert_check_refuses("", "empty");
}

static void test_check_refuses_absolute(void **state)
{
	(void)state;
	assert_check_refuses("/etc/passwd", "`/etc/passwd`: absolute");
}

static void test_check_refuses_dot_components(void **state)
{
	(void)state;
	assert_check_refuses(".", "`.` component");
	assert_check_refuses("..", "`..` component");
	assert_check_refuses("./a", "`./a`: `.` component");
	assert_check_refuses("a/./b", "`a/./b`: `.` component");
	assert_check_refuses("a/../b", "`a/../b`: `..` component");
	assert_check_refuses("a/..", "`a/..`: `..` component");
}

static void test_check_refuses_empty_component(void **state)
{
	(void)state;
	assert_check_refuses("a//b", "`a//b`: empty component");
	assert_check_refuses("a/", "`a/`: empty component");
}

static void test_check_refuses_control_chars(void **state)
{
	(void)state;
	assert_check_refuses("a\nb", "control character");
	assert_check_refuses("dir/\x01x", "control character");
	assert_check_refuses("a\x7f", "control character");
	assert_check_refuses("a\tb", "control character");
}

static bool has_control_char(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Messages are one line: the offending bytes are not echoed raw. */
static void test_check_control_chars_message_is_one_line(void **state)
{
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(check("a\nslate: verified\x1b[2J", &err), -1);
	assert_int_equal(err.kind, SLATE_EXIT_REFUSED);
	if (has_control_char(err.msg))
		fail_msg("message carries control characters: `%s`", err.msg);
}

static void test_check_refuses_long_name(void **state)
{
	char name[SLATE_NAME_MAX_DEFAULT + 2];
	slate_error_t err = { 0 };

	(void)state;
	memset(name, 'n', SLATE_NAME_MAX_DEFAULT);
	name[SLATE_NAME_MAX_DEFAULT] = '\0';
	assert_int_equal(check(name, &err), 0);
	name[SLATE_NAME_MAX_DEFAULT] = 'n';
	name[SLATE_NAME_MAX_DEFAULT + 1] = '\0';
	assert_check_refuses(name, "name longer than 255 bytes");
	assert_check_refuses(name, "`nnnnnnnn");
}

static void test_check_refuses_long_path(void **state)
{
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(slate_path_check("abc/defg", 8, 255, &err), 0);
	assert_int_equal(slate_path_check("abc/defgh", 8, 255, &err), -1);
	assert_refused(&err, "`abc/defgh...`: longer than 8 bytes");
}

/* ---- slate_path_normalize ---- */

static void assert_normalizes(const char *name, const char *want)
{
	slate_error_t err = { 0 };
	char *got = slate_path_normalize(name, &err);

	if (got == NULL)
		fail_msg("`%s` refused: %s", name, err.msg);
	assert_string_equal(got, want);
	free(got);
}

static void assert_normalize_refuses(const char *name, const char *needle)
{
	slate_error_t err = { 0 };
	char *got = slate_path_normalize(name, &err);

	if (got != NULL)
		fail_msg("`%s` normalised to `%s`", name, got);
	assert_refused(&err, needle);
}

static void test_normalize(void **state)
{
	(void)state;
	assert_normalizes("./a//b/./c/", "a/b/c");
	assert_normalizes("a", "a");
	assert_normalizes("a/b/", "a/b");
	assert_normalizes("./.slate/manifest.json", ".slate/manifest.json");
}

static void test_normalize_refuses(void **state)
{
	(void)state;
	assert_normalize_refuses("/a", "`/a`: absolute");
	assert_normalize_refuses("a/../b", "`a/../b`: `..` component");
	assert_normalize_refuses("..", "`..` component");
	assert_normalize_refuses("", "empty");
	assert_normalize_refuses("./", "`./`: empty");
}

/* ---- slate_path_check_link ---- */

static void assert_link_ok(const char *link, const char *target)
{
	slate_error_t err = { 0 };

	if (slate_path_check_link(link, target, &err) != 0)
		fail_msg("`%s` -> `%s` refused: %s", link, target, err.msg);
}

static void assert_link_refused(const char *link, const char *target, const char *needle)
{
	slate_error_t err = { 0 };

	if (slate_path_check_link(link, target, &err) != -1)
		fail_msg("`%s` -> `%s` accepted", link, target);
	assert_refused(&err, needle);
}

static void test_link_relative_ok(void **state)
{
	(void)state;
	assert_link_ok("l", "x");
	assert_link_ok("a/l", "b/c");
	assert_link_ok("a/l", "./b");
	assert_link_ok("a/l", "..");
	assert_link_ok("a/b/c/l", "../../x");
	assert_link_ok("a/b/c/l", "../../../x");
	assert_link_refused("a/l", "x/../../y", "`..` inside target");
}

static void test_link_refuses_leaving(void **state)
{
	(void)state;
	assert_link_refused("l", "../x", "`l`: target `../x` leaves the tree");
	assert_link_refused("l", "..", "leaves the tree");
	assert_link_refused("a/b/l", "../../../x", "`a/b/l`: target `../../../x` leaves the tree");
	assert_link_refused("a/l", "x/../../../y", "`..` inside target");
}

static void test_link_refuses_absolute_and_empty(void **state)
{
	(void)state;
	assert_link_refused("a/l", "/etc/passwd", "`a/l`: absolute target `/etc/passwd`");
	assert_link_refused("a/l", "", "`a/l`: empty target");
}

/* ---- slate_path_cmp ---- */

static void test_cmp_order(void **state)
{
	(void)state;
	assert_true(slate_path_cmp("a", "a/b") < 0);
	assert_true(slate_path_cmp("a/b", "a-b") < 0);
	assert_true(slate_path_cmp("a-b", "a0") < 0);
	assert_true(slate_path_cmp("a0", "a-b") > 0);
	assert_true(slate_path_cmp("a/b", "a") > 0);
	assert_int_equal(slate_path_cmp("a/b", "a/b"), 0);
}

static int qsort_path_cmp(const void *a, const void *b)
{
	return slate_path_cmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_cmp_sort_dirs_before_contents(void **state)
{
	const char *list[] = { "a0", "a-b/x", "b", "a/b", "a", "a-b", "a/b/c", "a/c", "a/b-c" };
	const char *want[] = { "a", "a/b", "a/b/c", "a/b-c", "a/c", "a-b", "a-b/x", "a0", "b" };

	(void)state;
	qsort(list, sizeof(list) / sizeof(list[0]), sizeof(list[0]), qsort_path_cmp);
	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
		assert_string_equal(list[i], want[i]);
}

/* ---- slate_path_under, slate_path_parent ---- */

static void test_under(void **state)
{
	(void)state;
	assert_true(slate_path_under("a/b", "a"));
	assert_true(slate_path_under("a", "a"));
	assert_true(slate_path_under("a/b/c", "a/b"));
	assert_true(slate_path_under("x", ""));
	assert_false(slate_path_under("ab", "a"));
	assert_false(slate_path_under("a", "a/b"));
	assert_false(slate_path_under("a-b/c", "a"));
}

static void assert_parent(const char *path, const char *want)
{
	char *got = slate_path_parent(path);

	assert_string_equal(got, want);
	free(got);
}

static void test_parent(void **state)
{
	(void)state;
	assert_parent("a/b/c", "a/b");
	assert_parent("a/b", "a");
	assert_parent("a", "");
}

/* ---- slate_glob_match ---- */

static void test_glob_basename_any_depth(void **state)
{
	(void)state;
	assert_true(slate_glob_match("*.log", "x.log"));
	assert_true(slate_glob_match("*.log", "a/b/x.log"));
	assert_true(slate_glob_match("cache", "var/cache"));
	assert_false(slate_glob_match("*.log", "a/xlog"));
	assert_false(slate_glob_match("*.log", "x.log.gz"));
}

static void test_glob_with_slash_matches_whole_path(void **state)
{
	(void)state;
	assert_true(slate_glob_match("storage/logs", "storage/logs"));
	assert_true(slate_glob_match("/vendor", "vendor"));
	assert_true(slate_glob_match("web/*.css", "web/site.css"));
	assert_false(slate_glob_match("storage/logs", "a/storage/logs"));
	assert_false(slate_glob_match("web/*.css", "web/a/site.css"));
	assert_false(slate_glob_match("/vendor", "a/vendor"));
}

static void test_glob_directory_covers_contents(void **state)
{
	(void)state;
	assert_true(slate_glob_match("node_modules", "a/node_modules/x/y.js"));
	assert_true(slate_glob_match("*.d", "x.d/y/z"));
	assert_true(slate_glob_match("storage/logs", "storage/logs/2024/app.log"));
	assert_true(slate_glob_match("web/*", "web/sub/x"));
	assert_false(slate_glob_match("storage/logs", "storage/logsx/app.log"));
}

/* ---- slate_pathmap ---- */

static void test_pathmap_put_get_duplicate(void **state)
{
	struct slate_pathmap m;
	size_t v = 0;

	(void)state;
	slate_pathmap_init(&m);
	assert_true(slate_pathmap_put(&m, "a/b", 7));
	assert_true(slate_pathmap_get(&m, "a/b", &v));
	assert_int_equal(v, 7);
	assert_false(slate_pathmap_put(&m, "a/b", 9));
	assert_true(slate_pathmap_get(&m, "a/b", &v));
	assert_int_equal(v, 7);
	assert_false(slate_pathmap_get(&m, "a", &v));
	assert_false(slate_pathmap_get(&m, "a/b/c", NULL));
	assert_int_equal(m.n, 1);
	slate_pathmap_free(&m);
}

static void test_pathmap_growth(void **state)
{
	struct slate_pathmap m;
	char key[32];
	size_t v;

	(void)state;
	slate_pathmap_init(&m);
	for (size_t i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "dir%zu/file%zu", i % 97, i);
		assert_true(slate_pathmap_put(&m, key, i));
	}
	assert_int_equal(m.n, 10000);
	for (size_t i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "dir%zu/file%zu", i % 97, i);
		assert_true(slate_pathmap_get(&m, key, &v));
		assert_int_equal(v, i);
		assert_false(slate_pathmap_put(&m, key, 0));
	}
	assert_false(slate_pathmap_get(&m, "dir0/file10000", &v));
	slate_pathmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_accepts_canonical),
		cmocka_unit_test(test_check_refuses_empty),
		cmocka_unit_test(test_check_refuses_absolute),
		cmocka_unit_test(test_check_refuses_dot_components),
		cmocka_unit_test(test_check_refuses_empty_component),
		cmocka_unit_test(test_check_refuses_control_chars),
		cmocka_unit_test(test_check_control_chars_message_is_one_line),
		cmocka_unit_test(test_check_refuses_long_name),
		cmocka_unit_test(test_check_refuses_long_path),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_normalize_refuses),
		cmocka_unit_test(test_link_relative_ok),
		cmocka_unit_test(test_link_refuses_leaving),
		cmocka_unit_test(test_link_refuses_absolute_and_empty),
		cmocka_unit_test(test_cmp_order),
		cmocka_unit_test(test_cmp_sort_dirs_before_contents),
		cmocka_unit_test(test_under),
		cmocka_unit_test(test_parent),
		cmocka_unit_test(test_glob_basename_any_depth),
		cmocka_unit_test(test_glob_with_slash_matches_whole_path),
		cmocka_unit_test(test_glob_directory_covers_contents),
		cmocka_unit_test(test_pathmap_put_get_duplicate),
		cmocka_unit_test(test_pathmap_growth),
	};

	return cmocka_run_group_tests_name("path", tests, NULL, NULL);
}
