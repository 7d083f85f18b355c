/* Unit tests for lib/util.c: size parsing, atomic file replacement and
 * bounded whole-file reads. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "slate/hash.h"
#include "slate/util.h"

/* ---- helpers (the temporary directory per test: tmpdir_setup in testutil.c) ---- */

static void assert_file_content(const char *path, const char *want)
{
	slate_error_t err = { 0 };
	size_t len = 0;
	char *got = slate_read_file(path, 1 << 20, &len, &err);

	if (got == NULL)
		fail_msg("read `%s`: %s", path, err.msg);
	assert_int_equal(len, strlen(want));
	assert_string_equal(got, want);
	free(got);
}

/* ---- slate_parse_size ---- */

static void assert_size(const char *s, unsigned long long want)
{
	slate_error_t err = { 0 };
	uint64_t got = 0;

	if (slate_parse_size(s, &got, &err) != 0)
		fail_msg("`%s` refused: %s", s, err.msg);
	assert_int_equal(got, want);
}

static void assert_size_refused(const char *s)
{
	slate_error_t err = { 0 };
	uint64_t got = 12345;

	if (slate_parse_size(s, &got, &err) != -1)
		fail_msg("`%s` accepted as %llu", s, got);
	assert_error(&err, SLATE_EXIT_USAGE, s);
	assert_int_equal(got, 12345);
}

static void test_size_units(void **state)
{
	(void)state;
	assert_size("10", 10);
	assert_size("0", 0);
	assert_size("64M", 64ULL << 20);
	assert_size("64k", 64ULL << 10);
	assert_size("1G", 1ULL << 30);
	assert_size("2T", 2ULL << 40);
	assert_size("64MiB", 64ULL << 20);
	assert_size("64MB", 64ULL << 20);
	assert_size("16777215T", 16777215ULL << 40);
}

static void test_size_refuses_malformed(void **state)
{
	(void)state;
	assert_size_refused("1.5G");
	assert_size_refused("12X");
	assert_size_refused("12 ");
	assert_size_refused("-1");
	assert_size_refused("M");
	assert_size_refused("0x10");
	assert_size_refused("10MM");
	assert_size_refused("10iB");
}

static void test_size_refuses_overflow(void **state)
{
	(void)state;
	assert_size_refused("18446744073709551616");
	assert_size_refused("16777216T");
	assert_size_refused("17179869184G");
}

static void test_size_refuses_empty(void **state)
{
	slate_error_t err = { 0 };
	uint64_t got = 0;

	(void)state;
	assert_int_equal(slate_parse_size("", &got, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, "not a size");
}

/* ---- slate_atomic_* ---- */

static void test_atomic_commit(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/out.txt", dir);
	struct slate_atomic a = { .fd = -1 };
	slate_error_t err = { 0 };
	struct stat st;

	assert_int_equal(slate_atomic_open(&a, path, 0640, &err), 0);
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(slate_write_all(a.fd, "hello\n", 6, a.tmp, &err), 0);
	assert_int_equal(slate_atomic_commit(&a, &err), 0);
	assert_file_content(path, "hello\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(count_entries(dir), 1);
	assert_null(a.tmp);
	free(path);
}

static void test_atomic_commit_replaces(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/out.txt", dir);
	slate_error_t err = { 0 };

	write_text(path, "old content that is longer\n");
	assert_int_equal(slate_write_file_atomic(path, "new\n", 4, 0644, &err), 0);
	assert_file_content(path, "new\n");
	assert_int_equal(count_entries(dir), 1);
	free(path);
}

static void test_atomic_abort_leaves_nothing(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/out.txt", dir);
	struct slate_atomic a = { .fd = -1 };
	slate_error_t err = { 0 };

	assert_int_equal(slate_atomic_open(&a, path, 0644, &err), 0);
	assert_int_equal(slate_write_all(a.fd, "partial", 7, a.tmp, &err), 0);
	slate_atomic_abort(&a);
	assert_int_equal(count_entries(dir), 0);
	assert_int_equal(a.fd, -1);
	assert_null(a.tmp);
	assert_null(a.path);
	free(path);
}

static void test_atomic_abort_keeps_old_file(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/out.txt", dir);
	struct slate_atomic a = { .fd = -1 };
	slate_error_t err = { 0 };

	write_text(path, "old\n");
	assert_int_equal(slate_atomic_open(&a, path, 0644, &err), 0);
	assert_int_equal(slate_write_all(a.fd, "new\n", 4, a.tmp, &err), 0);
	slate_atomic_abort(&a);
	assert_file_content(path, "old\n");
	assert_int_equal(count_entries(dir), 1);
	free(path);
}

static void test_atomic_open_missing_dir(void **state)
{
	char *path = xasprintf("%s/no/such/dir/out.txt", (const char *)*state);
	struct slate_atomic a = { .fd = -1 };
	slate_error_t err = { 0 };

	assert_int_equal(slate_atomic_open(&a, path, 0644, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, path);
	assert_int_equal(err.errnum, ENOENT);
	assert_null(a.tmp);
	assert_null(a.path);
	free(path);
}

/* An out-parameter is written, never read: open must not free what a
 * fresh (uninitialised) struct happens to hold. Run in a child, since the
 * failure mode is an abort in free(). */
static void test_atomic_open_ignores_previous_struct(void **state)
{
	char *path = xasprintf("%s/out.txt", (const char *)*state);
	static char not_heap[] = "not a heap pointer";
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct slate_atomic a = { .fd = 12345, .path = not_heap, .tmp = not_heap };
		const struct rlimit no_core = { 0, 0 };
		slate_error_t err = { 0 };

		setrlimit(RLIMIT_CORE, &no_core); /* an abort here leaves no core file in the repository */
		if (slate_atomic_open(&a, path, 0644, &err) < 0)
			_exit(2);
		slate_atomic_abort(&a);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	free(path);
	if (WIFSIGNALED(status))
		fail_msg("slate_atomic_open on a struct holding old values: killed by signal %d", WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("slate_atomic_open on a struct holding old values: exit status %d", WEXITSTATUS(status));
}

/* ---- slate_read_file ---- */

static void test_read_file_limit(void **state)
{
	char *path = xasprintf("%s/data", (const char *)*state);
	char text[101];
	slate_error_t err = { 0 };
	size_t len = 0;
	char *got;

	memset(text, 'x', 100);
	text[100] = '\0';
	write_text(path, text);
	got = slate_read_file(path, 100, &len, &err);
	assert_non_null(got);
	assert_int_equal(len, 100);
	assert_int_equal(got[100], '\0');
	free(got);
	assert_null(slate_read_file(path, 99, &len, &err));
	assert_error(&err, SLATE_EXIT_REFUSED, path);
	assert_non_null(strstr(err.msg, "larger than 99 bytes"));
	free(path);
}

static void test_read_file_large(void **state)
{
	char *path = xasprintf("%s/big", (const char *)*state);
	size_t n = 100000, len = 0;
	char *text = xmalloc(n + 1), *got;
	slate_error_t err = { 0 };

	for (size_t i = 0; i < n; i++)
		text[i] = (char)('a' + i % 26);
	text[n] = '\0';
	write_text(path, text);
	got = slate_read_file(path, n, &len, &err);
	assert_non_null(got);
	assert_int_equal(len, n);
	assert_memory_equal(got, text, n + 1);
	free(got);
	free(text);
	free(path);
}

static void test_read_file_missing(void **state)
{
	char *path = xasprintf("%s/missing", (const char *)*state);
	slate_error_t err = { 0 };

	assert_null(slate_read_file(path, 100, NULL, &err));
	assert_error(&err, SLATE_EXIT_SYSTEM, path);
	assert_int_equal(err.errnum, ENOENT);
	free(path);
}

/* ---- slate_escape ---- */

static void assert_escaped(const char *in, size_t len, const char *want)
{
	char *got = slate_escape(in, len);

	if (strcmp(got, want) != 0)
		fail_msg("escaped `%s`, want `%s`", got, want);
	free(got);
}

#define ESCAPED(lit, want) assert_escaped(lit, sizeof(lit) - 1, want)

static void test_escape_keeps_text(void **state)
{
	(void)state;
	ESCAPED("plain/path.php", "plain/path.php");
	ESCAPED("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
		"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
	ESCAPED("craft\\web\\Application", "craft\\web\\Application");
	ESCAPED("", "");
}

static void test_escape_c0_and_del(void **state)
{
	(void)state;
	ESCAPED("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m");
	ESCAPED("a\nb\rc\td\x07", "a\\x0ab\\x0dc\\x09d\\x07");
	ESCAPED("x\x7fy", "x\\x7fy");
	ESCAPED("nul\0here", "nul\\x00here");
}

/* C1 controls: U+0080-U+009F as UTF-8, and raw 0x80-0x9f bytes (invalid
 * UTF-8, what an 8-bit terminal reads as CSI). */
static void test_escape_c1(void **state)
{
	(void)state;
	ESCAPED("\xc2\x9b"
		"2J",
		"\\u009b2J");
	ESCAPED("\xc2\x80\xc2\x9f", "\\u0080\\u009f");
	ESCAPED("\x9b"
		"2J",
		"\\x9b2J");
	ESCAPED("\x85", "\\x85");
	ESCAPED("\xc2\xa0", "\xc2\xa0"); /* U+00A0 is text */
}

static void test_escape_bidi(void **state)
{
	(void)state;
	ESCAPED("evil\xe2\x80\xaetxt.php", "evil\\u202etxt.php");
	ESCAPED("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad", "\\u202a\\u202b\\u202c\\u202d");
	ESCAPED("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9", "\\u2066\\u2067\\u2068\\u2069");
	ESCAPED("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", "\\u200e\\u200f\\u061c");
	ESCAPED("\xe2\x80\xaf", "\xe2\x80\xaf"); /* U+202F, a space */
}

static void test_escape_invalid_utf8(void **state)
{
	(void)state;
	ESCAPED("\xc0\xaf", "\\xc0\\xaf"); /* overlong '/' */
	ESCAPED("\xe0\x80\xaf", "\\xe0\\x80\\xaf"); /* overlong */
	ESCAPED("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* a surrogate */
	ESCAPED("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
	ESCAPED("\xe2\x80", "\\xe2\\x80"); /* truncated */
	ESCAPED("\xe2\x80\x1b", "\\xe2\\x80\\x1b"); /* an ESC cannot hide in a sequence */
	ESCAPED("\xff\xfe", "\\xff\\xfe");
}

/* A bounded buffer gets whole escapes only, always NUL-terminated. */
static void test_escape_buf_bounded(void **state)
{
	char buf[8];

	(void)state;
	assert_int_equal(slate_escape_buf(buf, sizeof(buf), "ab\x1b\x1b", 4), 6);
	assert_string_equal(buf, "ab\\x1b");
	assert_int_equal(slate_escape_buf(buf, 3, "abcdef", 6), 2);
	assert_string_equal(buf, "ab");
	assert_int_equal(slate_escape_buf(buf, sizeof(buf), "\xe2\x80\xae", 3), 6);
	assert_string_equal(buf, "\\u202e");
	assert_int_equal(slate_escape_buf(buf, 6, "\xe2\x80\xae", 3), 0);
	assert_string_equal(buf, "");
}

/* Error messages go through the escaper: a path from a manifest cannot
 * move the cursor, and wrapping does not escape twice. */
static void test_error_messages_escaped(void **state)
{
	slate_error_t err = { 0 };

	(void)state;
	slate_error_refuse(&err, "unsafe path `%s`", "\x1b[2J\xe2\x80\xae.php");
	assert_string_equal(err.msg, "unsafe path `\\x1b[2J\\u202e.php`");
	slate_error_wrap(&err, "bundle `%s`",
			 "a\x9b"
			 "b");
	assert_string_equal(err.msg, "bundle `a\\x9bb`: unsafe path `\\x1b[2J\\u202e.php`");
}

/* slate_sha256_buf (OpenSSL's block functions) against the known vectors
 * and the streaming EVP helpers, at every length around the block size. */
static void test_sha256_buf_matches_streaming(void **state)
{
	size_t big = 3 << 20;
	unsigned char *buf = xmalloc(big), a[SLATE_SHA256_LEN], b[SLATE_SHA256_LEN];
	char hex[SLATE_SHA256_HEX];
	slate_error_t err = { 0 };

	(void)state;
	for (size_t i = 0; i < big; i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 13);
	slate_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	slate_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	for (size_t n = 0; n <= big; n = n < 300 ? n + 1 : n * 4 + 7) {
		slate_sha256_t h;
		assert_int_equal(slate_sha256_buf(buf, n, a, &err), 0);
		assert_int_equal(slate_sha256_init(&h, &err), 0);
		assert_int_equal(slate_sha256_update(&h, buf, n, &err), 0);
		assert_int_equal(slate_sha256_final(&h, b, &err), 0);
		slate_sha256_free(&h);
		assert_memory_equal(a, b, sizeof(a));
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest size[] = {
		cmocka_unit_test(test_sha256_buf_matches_streaming), cmocka_unit_test(test_size_units),
		cmocka_unit_test(test_size_refuses_malformed),       cmocka_unit_test(test_size_refuses_overflow),
		cmocka_unit_test(test_size_refuses_empty),
	};
	const struct CMUnitTest files[] = {
		cmocka_unit_test_setup_teardown(test_atomic_commit, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_atomic_commit_replaces, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_atomic_abort_leaves_nothing, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_atomic_abort_keeps_old_file, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_atomic_open_missing_dir, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_atomic_open_ignores_previous_struct, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_read_file_limit, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_read_file_large, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_read_file_missing, tmpdir_setup, tmpdir_teardown),
	};
	const struct CMUnitTest escape[] = {
		cmocka_unit_test(test_escape_keeps_text),
		cmocka_unit_test(test_escape_c0_and_del),
		cmocka_unit_test(test_escape_c1),
		cmocka_unit_test(test_escape_bidi),
		cmocka_unit_test(test_escape_invalid_utf8),
		cmocka_unit_test(test_escape_buf_bounded),
		cmocka_unit_test(test_error_messages_escaped),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("util-size", size, NULL, NULL);
	failed += cmocka_run_group_tests_name("util-escape", escape, NULL, NULL);
	failed += cmocka_run_group_tests_name("util-files", files, NULL, NULL);
	return failed ? 1 : 0;
}
