/* Unit tests for env files (runtime/env.c): they hold secrets and are read
 * by root, so a file is refused when a symbolic link is on its path, when
 * it is not root's, when its group or everyone can write it; a malformed
 * line is named by file and line number, never by its content; a refused
 * file adds nothing. */
#include <errno.h>
#include <fcntl.h>
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

#include "env.h"

#define FAKE_SECRET "sk_live_4eC39HqLyjWDarjtT1zdp7dc"

/* path (in the test's directory) holding text, root's, with mode. */
static char *env_file(void **state, const char *rel, const char *text, mode_t mode)
{
	char *path = path_join(*state, rel);

	write_text(path, text);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

/* env_add_file refuses path with kind, naming needle, adding nothing. */
static void refused(const char *path, int kind, const char *needle)
{
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	slate_strv_push(&env, "KEEP=1");
	assert_int_equal(env_add_file(&env, path, &err), -1);
	assert_error(&err, kind, needle);
	assert_null(strstr(err.msg, FAKE_SECRET));
	assert_int_equal(env.n, 1);
	slate_strv_free(&env);
}

static void test_root_file_accepted(void **state)
{
	char *path = env_file(state, "ok.env", "A=1\n# c\n\nexport B=x=y\r\n", 0600);
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	if (env_add_file(&env, path, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_int_equal(env.n, 2);
	assert_string_equal(env.v[0], "A=1");
	assert_string_equal(env.v[1], "B=x=y");
	slate_strv_free(&env);
	free(path);
}

static void test_symlink_refused(void **state)
{
	char *path = env_file(state, "real.env", "TOKEN=" FAKE_SECRET "\n", 0600);
	char *link = path_join(*state, "link.env");

	assert_int_equal(symlink(path, link), 0);
	refused(link, SLATE_EXIT_REFUSED, "link.env");
	refused(link, SLATE_EXIT_REFUSED, "symbolic link");
	free(link);
	free(path);
}

static void test_symlinked_directory_refused(void **state)
{
	char *dir = path_join(*state, "real");
	char *link = path_join(*state, "linkdir");
	char *via = path_join(*state, "linkdir/app.env");
	char *path;

	assert_int_equal(mkdir(dir, 0700), 0);
	path = env_file(state, "real/app.env", "TOKEN=" FAKE_SECRET "\n", 0600);
	assert_int_equal(symlink(dir, link), 0);
	refused(via, SLATE_EXIT_REFUSED, "linkdir");
	/* The same file by its real path is fine. */
	{
		struct slate_strv env = { 0 };
		slate_error_t err = { 0 };
		if (env_add_file(&env, path, &err) != 0)
			fail_msg("refused: %s", err.msg);
		slate_strv_free(&env);
	}
	free(path);
	free(via);
	free(link);
	free(dir);
}

static void test_group_or_world_writable_refused(void **state)
{
	char *g = env_file(state, "g.env", "TOKEN=" FAKE_SECRET "\n", 0620);
	char *w = env_file(state, "w.env", "TOKEN=" FAKE_SECRET "\n", 0602);

	refused(g, SLATE_EXIT_REFUSED, "writable by its group");
	refused(w, SLATE_EXIT_REFUSED, "writable by everyone");
	free(g);
	free(w);
}

static void test_other_owner_refused(void **state)
{
	char *path = env_file(state, "nobody.env", "TOKEN=" FAKE_SECRET "\n", 0600);

	assert_int_equal(chown(path, 65534, 65534), 0);
	refused(path, SLATE_EXIT_REFUSED, "owned by uid 65534");
	free(path);
}

static void test_fifo_refused_without_blocking(void **state)
{
	char *path = path_join(*state, "fifo.env");

	assert_int_equal(mkfifo(path, 0600), 0);
	refused(path, SLATE_EXIT_REFUSED, "not a regular file");
	free(path);
}

static void test_malformed_line_never_quoted(void **state)
{
	char *nokey = env_file(state, "nokey.env", "A=1\n\n# c\n" FAKE_SECRET "\nB=2\n", 0600);
	char *badname = env_file(state, "badname.env", "A=1\nmy " FAKE_SECRET "=x\n", 0600);
	char *nul = path_join(*state, "nul.env");
	static const char text[] = "A=1\nB=" FAKE_SECRET "\0x\n";
	int fd;

	refused(nokey, SLATE_EXIT_USAGE, "nokey.env");
	refused(nokey, SLATE_EXIT_USAGE, "line 4 ");
	refused(badname, SLATE_EXIT_USAGE, "badname.env` line 2:");
	fd = open(nul, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	refused(nul, SLATE_EXIT_USAGE, "line 2 holds a NUL byte");
	free(nokey);
	free(badname);
	free(nul);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_root_file_accepted, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_symlinked_directory_refused, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_group_or_world_writable_refused, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_other_owner_refused, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_fifo_refused_without_blocking, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_line_never_quoted, tmpdir_setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
