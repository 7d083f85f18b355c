/* Unit tests for the runtime's small, security-relevant helpers:
 *
 * - env.c: --env replaces earlier values, bad names are refused, and
 *   --env-file (comments, `export`, CRLF) is refused when others can read
 *   it (it holds secrets), naming the file;
 * - userns.c: slate_subid_lookup on temporary /etc/subuid-like files;
 * - mounts.c: mounts_open_in_root never follows a symlink and never leaves
 *   the root; mounts_check_device accepts only the real character device;
 * - instance.c: instance_lookup_user reads the image's /etc/passwd with
 *   every link resolved INSIDE the image root (RESOLVE_IN_ROOT), so a
 *   bundle whose etc/passwd points at the host's file never reads it.
 *
 * Every test works in its own temporary directory, removed afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "env.h"
#include "instance.h"
#include "mounts.h"
#include "slate/unpack.h"
#include "slate/util.h"
#include "userns.h"

/* ---- fixtures: a temporary directory per test ---- */

static int tmpdir_remove(void **state)
{
	slate_error_t err = { 0 };
	char *dir = *state;
	int r = slate_remove_tree(dir, &err);

	free(dir);
	return r;
}

static char *path_in(void **state, const char *rel)
{
	return xasprintf("%s/%s", (const char *)*state, rel);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0)
		fail_msg("create `%s`: %s", path, strerror(errno));
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	/* The mode as given, whatever the umask. */
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void make_dirs(void **state, const char *rel)
{
	char *p = path_in(state, rel);

	for (char *s = p + strlen((const char *)*state) + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir `%s`: %s", p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		fail_msg("mkdir `%s`: %s", p, strerror(errno));
	free(p);
}

static const char *env_get(const struct slate_strv *env, const char *key)
{
	size_t n = strlen(key);

	for (size_t i = 0; i < env->n; i++)
		if (strncmp(env->v[i], key, n) == 0 && env->v[i][n] == '=')
			return env->v[i] + n + 1;
	return NULL;
}

/* openat2 (Linux 5.6) is what the code under test resolves paths with;
 * valgrind does not know it (ENOSYS): skip rather than fail there. */
static void need_openat2(void)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC };
	long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));

	if (fd < 0 && errno == ENOSYS)
		skip();
	if (fd >= 0)
		close((int)fd);
}

/* ---- env.c ---- */

static void test_env_add_replaces(void **state)
{
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(env_add(&env, "A=1", &err), 0);
	assert_int_equal(env_add(&env, "AB=2", &err), 0);
	assert_int_equal(env_add(&env, "A=3", &err), 0);
	assert_int_equal(env_add(&env, "EMPTY=", &err), 0);
	assert_int_equal(env_add(&env, "URL=a=b", &err), 0);
	assert_int_equal(err.kind, 0);
	assert_int_equal(env.n, 4);
	assert_string_equal(env.v[0], "A=3"); /* replaced in place, not appended */
	assert_string_equal(env_get(&env, "AB"), "2");
	assert_string_equal(env_get(&env, "EMPTY"), "");
	assert_string_equal(env_get(&env, "URL"), "a=b");
	assert_null(env.v[env.n]);
	slate_strv_free(&env);
}

static void test_env_add_refuses_bad_names(void **state)
{
	static const char *const bad[] = { "1A=x", "A-B=x", "A B=x", "A.B=x", "=x", "Ä=x", "A\n=x" };
	struct slate_strv env = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		slate_error_t err = { 0 };
		if (env_add(&env, bad[i], &err) != -1)
			fail_msg("`%s` accepted", bad[i]);
		assert_int_equal(err.kind, SLATE_EXIT_USAGE);
	}
	{
		slate_error_t err = { 0 };
		assert_int_equal(env_add(&env, "NOEQUALS", &err), -1);
		assert_error(&err, SLATE_EXIT_USAGE, "NOEQUALS");
	}
	{
		slate_error_t err = { 0 };
		assert_int_equal(env_add(&env, "A-B=x", &err), -1);
		assert_error(&err, SLATE_EXIT_USAGE, "A-B");
	}
	assert_int_equal(env.n, 0);
	slate_strv_free(&env);
}

static void test_env_file(void **state)
{
	char *path = path_in(state, "app.env");
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	write_file(path,
		   "# a comment\n"
		   "\n"
		   "DB_HOST=db.internal\r\n"
		   "export DB_USER=craft\n"
		   "   # an indented comment\n"
		   "  INDENTED=yes\n"
		   "SECRET=s3cr=t\r\n"
		   "DB_HOST=replaced\n"
		   "LAST=no-newline",
		   0600);
	assert_int_equal(env_add(&env, "KEEP=1", &err), 0);
	if (env_add_file(&env, path, &err) != 0)
		fail_msg("env file refused: %s", err.msg);
	assert_int_equal(env.n, 6);
	assert_string_equal(env_get(&env, "KEEP"), "1");
	assert_string_equal(env_get(&env, "DB_HOST"), "replaced");
	assert_string_equal(env_get(&env, "DB_USER"), "craft"); /* `export ` dropped */
	assert_string_equal(env_get(&env, "INDENTED"), "yes");
	assert_string_equal(env_get(&env, "SECRET"), "s3cr=t"); /* no \r kept */
	assert_string_equal(env_get(&env, "LAST"), "no-newline");
	for (size_t i = 0; i < env.n; i++)
		assert_null(strchr(env.v[i], '\r'));
	slate_strv_free(&env);
	free(path);
}

static void test_env_file_world_readable_refused(void **state)
{
	char *path = path_in(state, "public.env");
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	write_file(path, "SECRET=hunter2\n", 0644);
	assert_int_equal(env_add_file(&env, path, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, path);
	assert_null(strstr(err.msg, "hunter2")); /* never a value in a message */
	assert_int_equal(env.n, 0);
	/* Readable by the group only is fine (0640). */
	write_file(path, "SECRET=hunter2\n", 0640);
	memset(&err, 0, sizeof(err));
	if (env_add_file(&env, path, &err) != 0)
		fail_msg("0640 refused: %s", err.msg);
	assert_string_equal(env_get(&env, "SECRET"), "hunter2");
	slate_strv_free(&env);
	free(path);
}

static void test_env_file_bad_line_named(void **state)
{
	char *path = path_in(state, "bad.env");
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	write_file(path, "GOOD=1\nBAD-NAME=2\n", 0600);
	assert_int_equal(env_add_file(&env, path, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, path);
	assert_non_null(strstr(err.msg, "line 2"));
	assert_null(strstr(err.msg, "BAD-NAME")); /* a line's content is never quoted */
	slate_strv_free(&env);
	free(path);
}

static void test_env_file_missing(void **state)
{
	char *path = path_in(state, "missing.env");
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	assert_int_equal(env_add_file(&env, path, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, path);
	assert_int_equal(err.errnum, ENOENT);
	assert_int_equal(env.n, 0);
	free(path);
}

static void test_env_file_not_regular(void **state)
{
	char *dir = path_in(state, "dir.env");
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(env_add_file(&env, dir, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, dir);
	free(dir);
}

static void test_env_defaults(void **state)
{
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(env_add(&env, "PATH=/opt/bin", &err), 0);
	env_defaults(&env, "box");
	assert_int_equal(env.n, 3);
	assert_string_equal(env_get(&env, "PATH"), "/opt/bin"); /* given: kept */
	assert_string_equal(env_get(&env, "HOME"), "/");
	assert_string_equal(env_get(&env, "HOSTNAME"), "box");
	slate_strv_free(&env);
}

/* ---- userns.c: slate_subid_lookup ---- */

static void test_subid_found(void **state)
{
	char *path = path_in(state, "subuid");
	slate_error_t err = { 0 };
	uint32_t base = 0, count = 0;
	int found = -1;

	write_file(path, "alice:100000:65536\nslatex:1:2\nslate:200000:131072\nbob:300000:65536\n", 0644);
	assert_int_equal(slate_subid_lookup(path, "slate", &base, &count, &found, &err), 0);
	assert_int_equal(found, 1);
	assert_int_equal(base, 200000);
	assert_int_equal(count, 131072);
	assert_int_equal(slate_subid_lookup(path, "bob", &base, &count, &found, &err), 0);
	assert_int_equal(found, 1);
	assert_int_equal(base, 300000);
	assert_int_equal(err.kind, 0);
	free(path);
}

static void test_subid_absent(void **state)
{
	char *path = path_in(state, "subuid");
	char *missing = path_in(state, "nothing");
	slate_error_t err = { 0 };
	uint32_t base = 7, count = 7;
	int found = -1;

	/* Only prefixes and suffixes of the name: no match. */
	write_file(path, "slatex:100000:65536\nsla:200000:65536\n# slate:1:1\n", 0644);
	assert_int_equal(slate_subid_lookup(path, "slate", &base, &count, &found, &err), 0);
	assert_int_equal(found, 0);
	assert_int_equal(base, 7);
	assert_int_equal(count, 7);
	found = -1;
	assert_int_equal(slate_subid_lookup(missing, "slate", &base, &count, &found, &err), 0);
	assert_int_equal(found, 0);
	assert_int_equal(err.kind, 0);
	free(path);
	free(missing);
}

static void test_subid_malformed(void **state)
{
	static const char *const bad[] = {
		"slate:abc:65536\n",     "slate:100000\n",           "slate:0:65536\n", /* base 0 would map host root */
		"slate:4294967295:10\n", "slate:4294901760:65537\n", "slate::\n",
	};
	char *path = path_in(state, "subuid");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		slate_error_t err = { 0 };
		uint32_t base = 0, count = 0;
		int found = 0;
		write_file(path, bad[i], 0644);
		if (slate_subid_lookup(path, "slate", &base, &count, &found, &err) != -1)
			fail_msg("`%s` accepted as %u:%u", bad[i], base, count);
		assert_error(&err, SLATE_EXIT_REFUSED, path);
		assert_int_equal(found, 0);
	}
	free(path);
}

/* ---- mounts.c: mounts_open_in_root, mounts_check_device ---- */

/* root/ with a/b/ (dirs), a/file, link -> a, abs -> / and up -> .. */
static int open_root(void **state)
{
	char *root = NULL, *p = NULL;
	int fd;

	need_openat2();
	root = path_in(state, "root");

	make_dirs(state, "root/a/b");
	p = path_in(state, "root/a/file");
	write_file(p, "x", 0644);
	free(p);
	p = path_in(state, "root/link");
	assert_int_equal(symlink("a", p), 0);
	free(p);
	p = path_in(state, "root/abs");
	assert_int_equal(symlink("/", p), 0);
	free(p);
	p = path_in(state, "root/a/up");
	assert_int_equal(symlink("../..", p), 0);
	free(p);
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	free(root);
	return fd;
}

static void test_open_in_root_plain_dir(void **state)
{
	int root = open_root(state), fd;
	slate_error_t err = { 0 };
	struct stat st;

	fd = mounts_open_in_root(root, "a/b", O_PATH | O_DIRECTORY, &err);
	if (fd < 0)
		fail_msg("a/b refused: %s", err.msg);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = mounts_open_in_root(root, "a/file", O_PATH, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(err.kind, 0);
	close(root);
}

/* A symlink in the middle of a path is refused (ELOOP); so is one at the
 * end when the caller wants a directory or a readable file. With O_PATH
 * alone, a final symlink yields a handle on the link itself (openat2
 * RESOLVE_NO_SYMLINKS with O_NOFOLLOW): never on what it points to. */
static void test_open_in_root_refuses_symlinks(void **state)
{
	static const char *const middle[] = { "link/b", "abs/etc", "a/up/a", "link/file" };
	static const char *const last[] = { "link", "abs", "a/up" };
	int root = open_root(state);

	for (size_t i = 0; i < sizeof(middle) / sizeof(middle[0]); i++) {
		slate_error_t err = { 0 };
		int fd = mounts_open_in_root(root, middle[i], O_PATH, &err);
		if (fd >= 0)
			fail_msg("`%s` opened through a symlink", middle[i]);
		assert_error(&err, SLATE_EXIT_SYSTEM, middle[i]);
		assert_int_equal(err.errnum, ELOOP);
	}
	for (size_t i = 0; i < sizeof(last) / sizeof(last[0]); i++) {
		slate_error_t err = { 0 };
		struct stat st;
		int fd = mounts_open_in_root(root, last[i], O_PATH | O_DIRECTORY, &err);
		if (fd >= 0)
			fail_msg("`%s` opened as a directory through a symlink", last[i]);
		assert_error(&err, SLATE_EXIT_SYSTEM, last[i]);
		memset(&err, 0, sizeof(err));
		fd = mounts_open_in_root(root, last[i], O_RDONLY, &err);
		if (fd >= 0)
			fail_msg("`%s` opened for reading through a symlink", last[i]);
		assert_int_equal(err.errnum, ELOOP);
		memset(&err, 0, sizeof(err));
		fd = mounts_open_in_root(root, last[i], O_PATH, &err);
		if (fd >= 0) {
			assert_int_equal(fstat(fd, &st), 0);
			if (!S_ISLNK(st.st_mode))
				fail_msg("`%s` (O_PATH) followed the link", last[i]);
			close(fd);
		}
	}
	close(root);
}

static void test_open_in_root_refuses_dotdot(void **state)
{
	static const char *const paths[] = { "..", "../root/a", "a/../../root", "a/b/../../..", "/etc" };
	int root = open_root(state);

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		slate_error_t err = { 0 };
		int fd = mounts_open_in_root(root, paths[i], O_PATH, &err);
		if (fd >= 0)
			fail_msg("`%s` left the root", paths[i]);
		assert_int_equal(err.kind, SLATE_EXIT_SYSTEM);
		assert_int_equal(err.errnum, EXDEV);
	}
	/* `..` that stays inside is fine. */
	{
		slate_error_t err = { 0 };
		int fd = mounts_open_in_root(root, "a/b/../b", O_PATH | O_DIRECTORY, &err);
		if (fd < 0)
			fail_msg("a/b/../b refused: %s", err.msg);
		close(fd);
	}
	close(root);
}

static void test_check_device(void **state)
{
	char *file = path_in(state, "fake-null");
	char *link = path_in(state, "null-link");
	slate_error_t err = { 0 };
	struct stat st;
	int fd;

	fd = mounts_check_device("/dev/null", 1, 3, &err);
	if (fd < 0)
		fail_msg("/dev/null as 1:3 refused: %s", err.msg);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	close(fd);

	assert_int_equal(mounts_check_device("/dev/null", 1, 5, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, "/dev/null");

	write_file(file, "", 0666);
	memset(&err, 0, sizeof(err));
	assert_int_equal(mounts_check_device(file, 1, 3, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, file);

	/* A link to the real device is not the device. */
	assert_int_equal(symlink("/dev/null", link), 0);
	memset(&err, 0, sizeof(err));
	assert_int_equal(mounts_check_device(link, 1, 3, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, link);

	memset(&err, 0, sizeof(err));
	assert_int_equal(mounts_check_device("/dev/slate-no-such-device", 1, 3, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "/dev/slate-no-such-device");
	free(file);
	free(link);
}

/* ---- instance.c: instance_lookup_user ---- */

static const char passwd_text[] =
	"root:x:0:0:root:/root:/bin/sh\n"
	"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
	"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
	"www:x:1000:1001::/home/www:/bin/sh\n"
	"big:x:70000:33::/:/bin/sh\n"
	"biggid:x:33:65536::/:/bin/sh\n";

static int image_root(void **state, const char *passwd)
{
	char *root = NULL, *p = NULL;
	int fd;

	need_openat2();
	root = path_in(state, "image");
	p = path_in(state, "image/etc/passwd");

	make_dirs(state, "image/etc");
	if (passwd)
		write_file(p, passwd, 0644);
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	free(root);
	free(p);
	return fd;
}

static void assert_user(int root, const char *user, uid_t want_uid, gid_t want_gid)
{
	slate_error_t err = { 0 };
	uid_t uid = 99999;
	gid_t gid = 99999;

	if (instance_lookup_user(root, user, &uid, &gid, &err) != 0)
		fail_msg("user `%s` refused: %s", user, err.msg);
	assert_int_equal(uid, want_uid);
	assert_int_equal(gid, want_gid);
}

static void assert_user_refused(int root, const char *user, int kind)
{
	slate_error_t err = { 0 };
	uid_t uid = 99999;
	gid_t gid = 99999;

	if (instance_lookup_user(root, user, &uid, &gid, &err) != -1)
		fail_msg("user `%s` accepted as %u:%u", user, (unsigned)uid, (unsigned)gid);
	if (kind)
		assert_error(&err, kind, user);
	assert_int_equal(uid, 99999);
	assert_int_equal(gid, 99999);
}

static void test_lookup_user_by_name(void **state)
{
	int root = image_root(state, passwd_text);

	assert_user(root, "www-data", 33, 33);
	assert_user(root, "root", 0, 0);
	assert_user(root, "www", 1000, 1001);
	assert_user_refused(root, "nobody", SLATE_EXIT_REFUSED);
	assert_user_refused(root, "www-dat", SLATE_EXIT_REFUSED); /* a prefix is not a name */
	assert_user_refused(root, "ww", SLATE_EXIT_REFUSED);
	close(root);
}

static void test_lookup_user_numeric(void **state)
{
	int root = image_root(state, passwd_text);

	assert_user(root, "0", 0, 0);
	assert_user(root, "33", 33, 33);
	assert_user(root, "1000:1001", 1000, 1001);
	assert_user(root, "65535:65535", 65535, 65535);
	assert_user(root, "4242", 4242, 4242); /* need not be in /etc/passwd */
	assert_user_refused(root, "12ab", SLATE_EXIT_USAGE);
	assert_user_refused(root, "33:x", SLATE_EXIT_USAGE);
	assert_user_refused(root, "33:5:7", SLATE_EXIT_USAGE);
	close(root);
}

/* UID: or UID:GID with anything but digits after the colon is not a user:
 * strtoul would read "" as gid 0 (the instance's root group) and skip
 * blanks and signs. */
static void test_lookup_user_numeric_malformed(void **state)
{
	static const char *const bad[] = { "33:", "33: 5", "33:+5", "33:-0" };
	int root = image_root(state, passwd_text);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_user_refused(root, bad[i], SLATE_EXIT_USAGE);
	close(root);
}

static void test_lookup_user_high_ids_refused(void **state)
{
	int root = image_root(state, passwd_text);

	assert_user_refused(root, "65536", SLATE_EXIT_REFUSED);
	assert_user_refused(root, "0:65536", SLATE_EXIT_REFUSED);
	assert_user_refused(root, "4294967296", SLATE_EXIT_REFUSED);
	assert_user_refused(root, "big", SLATE_EXIT_REFUSED);
	assert_user_refused(root, "biggid", SLATE_EXIT_REFUSED);
	close(root);
}

/* etc/passwd -> a file outside the image root (absolute, then relative
 * with ..): resolved inside the root, never the outside file. */
static void test_lookup_user_symlink_stays_in_root(void **state)
{
	int root = image_root(state, NULL);
	char *outside_dir = path_in(state, "outside");
	char *outside = path_in(state, "outside/passwd");
	char *link = path_in(state, "image/etc/passwd");
	char *mirror = NULL, *mirror_rel = NULL;

	assert_int_equal(mkdir(outside_dir, 0755), 0);
	write_file(outside, "evil:x:4242:4242::/:/bin/sh\nroot:x:0:0::/:/bin/sh\n", 0644);

	/* Absolute target: inside the root, that path does not exist. */
	assert_int_equal(symlink(outside, link), 0);
	assert_user_refused(root, "evil", 0);
	assert_user_refused(root, "root", 0);
	/* Once the root holds that path, the root's file is what is read. */
	mirror = xasprintf("%s/image%s", (const char *)*state, outside);
	{
		char *rel = xasprintf("image%s", outside_dir);
		make_dirs(state, rel);
		free(rel);
	}
	write_file(mirror, "inside:x:42:43::/:/bin/sh\n", 0644);
	assert_user(root, "inside", 42, 43);
	assert_user_refused(root, "evil", SLATE_EXIT_REFUSED);

	/* Relative target climbing out: `..` stops at the image root. */
	assert_int_equal(unlink(link), 0);
	assert_int_equal(symlink("../../../../../../../../outside/passwd", link), 0);
	assert_user_refused(root, "evil", 0);
	make_dirs(state, "image/outside");
	mirror_rel = path_in(state, "image/outside/passwd");
	write_file(mirror_rel, "inside2:x:44:45::/:/bin/sh\n", 0644);
	assert_user(root, "inside2", 44, 45);
	assert_user_refused(root, "evil", SLATE_EXIT_REFUSED);

	/* /etc/passwd of the host through an absolute link: the image's own
	 * etc/passwd is the link itself, so it cannot resolve to anything. */
	assert_int_equal(unlink(link), 0);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	assert_user_refused(root, "root", 0);
	close(root);
	free(outside_dir);
	free(outside);
	free(link);
	free(mirror);
	free(mirror_rel);
}

/* The file missing altogether: a refusal of the bundle's content (exit 1,
 * not a system error) naming it, no fallback. */
static void test_lookup_user_no_passwd(void **state)
{
	int root = image_root(state, NULL);
	slate_error_t err = { 0 };
	uid_t uid = 0;
	gid_t gid = 0;

	assert_int_equal(instance_lookup_user(root, "www-data", &uid, &gid, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, "the image has no `/etc/passwd`");
	close(root);
}

int main(void)
{
	const struct CMUnitTest env[] = {
		cmocka_unit_test(test_env_add_replaces),
		cmocka_unit_test(test_env_add_refuses_bad_names),
		cmocka_unit_test_setup_teardown(test_env_file, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_env_file_world_readable_refused, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_env_file_bad_line_named, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_env_file_missing, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_env_file_not_regular, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test(test_env_defaults),
	};
	const struct CMUnitTest subid[] = {
		cmocka_unit_test_setup_teardown(test_subid_found, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_subid_absent, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_subid_malformed, tmpdir_setup, tmpdir_remove),
	};
	const struct CMUnitTest mounts[] = {
		cmocka_unit_test_setup_teardown(test_open_in_root_plain_dir, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_open_in_root_refuses_symlinks, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_open_in_root_refuses_dotdot, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_check_device, tmpdir_setup, tmpdir_remove),
	};
	const struct CMUnitTest users[] = {
		cmocka_unit_test_setup_teardown(test_lookup_user_by_name, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_lookup_user_numeric, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_lookup_user_numeric_malformed, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_lookup_user_high_ids_refused, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_lookup_user_symlink_stays_in_root, tmpdir_setup, tmpdir_remove),
		cmocka_unit_test_setup_teardown(test_lookup_user_no_passwd, tmpdir_setup, tmpdir_remove),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("runtime-env", env, NULL, NULL);
	failed += cmocka_run_group_tests_name("runtime-subid", subid, NULL, NULL);
	failed += cmocka_run_group_tests_name("runtime-mounts", mounts, NULL, NULL);
	failed += cmocka_run_group_tests_name("runtime-user", users, NULL, NULL);
	return failed ? 1 : 0;
}
