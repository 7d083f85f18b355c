/* Unit tests for runtime/tamper.c: the classifier (names, open tags, magic
 * bytes), the escaper, the SHA-256 (against OpenSSL's), and the watcher on
 * a plain directory standing for an upper: a webshell raises one event
 * with its hash and its evidence, harmless files raise nothing, a new
 * directory is watched with what it already holds, a symlink is never
 * followed, a flood stays within the event and evidence bounds, the hook
 * gets each event on its stdin, and heals are rate-limited. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "slate/hash.h"
#include "slate/util.h"
#include "tamper.h"

static const char *cls(const char *name, const char *head)
{
	return tamper_classify(name, 'f', (const unsigned char *)head, strlen(head));
}

static void test_classify_names(void **state)
{
	(void)state;
	assert_string_equal(cls("x.php", ""), "php-name");
	assert_string_equal(cls("X.PhP", "hello"), "php-name");
	assert_string_equal(cls("a.phtml", ""), "php-name");
	assert_string_equal(cls("a.phar", ""), "php-name");
	assert_string_equal(cls("a.php7", ""), "php-name");
	assert_string_equal(cls(".htaccess", ""), "htaccess");
	assert_string_equal(cls(".user.ini", ""), "user-ini");
	assert_string_equal(tamper_classify("x.php", 'l', NULL, 0), "php-name");
	assert_string_equal(tamper_classify("x.php", 'o', NULL, 0), "php-name");
	assert_null(tamper_classify("x.php", 'd', NULL, 0));
	assert_null(cls("style.css", "body { color: red }"));
	assert_null(cls("notes.txt", "just text, no tag"));
	assert_null(cls("php", ""));
	assert_null(cls("x.php.txt", "plain"));
	assert_null(tamper_classify("link.txt", 'l', NULL, 0));
}

static void test_classify_content(void **state)
{
	(void)state;
	assert_string_equal(cls("x.txt", "<?php system($_GET['c']);"), "php-code");
	assert_string_equal(cls("x.txt", "<?PHP echo 1;"), "php-code");
	assert_string_equal(cls("x.gif", "GIF89a\x01\x02<?= `id` ?>"), "php-code");
	assert_string_equal(cls("run", "#!/bin/sh\nid\n"), "shebang");
	assert_string_equal(tamper_classify("a.out", 'f',
					    (const unsigned char *)"\x7f"
								   "ELF\x02\x01",
					    6),
			    "elf");
	assert_null(cls("x.txt", "<? not short tags"));
	assert_null(cls("x.txt", " #!/bin/sh"));
	assert_null(tamper_classify("x.txt", 'f', (const unsigned char *)"<?ph", 4));
}

/* ---- the watcher, on a plain directory ---- */

/* dir/rel holding text, its parents made as needed. */
static void write_file_at(const char *dir, const char *rel, const char *text)
{
	cleanup_free char *path = path_join(dir, rel);

	for (char *c = path + strlen(dir) + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", path, strerror(errno));
		*c = '/';
	}
	write_text(path, text);
}

static char *read_file_or_null(const char *path)
{
	return access(path, F_OK) == 0 ? read_text(path) : NULL;
}

struct fx {
	char *tmp, *app_dir, *upper;
	struct slate_ctx ctx;
	struct tamper *t;
	int scratch;
};

static int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	cleanup_free char *scratch = NULL;
	slate_error_t err = { 0 };

	f->tmp = make_tmpdir();
	f->app_dir = xasprintf("%s/app", f->tmp);
	scratch = xasprintf("%s/scratch", f->tmp);
	f->upper = xasprintf("%s/upper", scratch);
	f->ctx.root = f->tmp;
	f->ctx.run_dir = f->tmp;
	assert_int_equal(mkdir(f->app_dir, 0700), 0);
	assert_int_equal(mkdir(scratch, 0700), 0);
	assert_int_equal(mkdir(f->upper, 0700), 0);
	write_file_at(f->upper, "app/web/cpresources/.keep", "");
	write_file_at(f->upper, "app/storage/old.php", "<?php // there at the start");
	f->scratch = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	f->t = tamper_new(&f->ctx, "t", f->app_dir, NULL, &(struct tamper_hooks){ NULL, NULL }, &err);
	assert_non_null(f->t);
	assert_int_equal(tamper_watch(f->t, 1, f->scratch, 3, "abc", &err), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	tamper_free(f->t);
	close(f->scratch);
	rm_tree(f->tmp);
	free(f->tmp);
	free(f->app_dir);
	free(f->upper);
	free(f);
	return 0;
}

/* Handle what the queue holds now. */
static void pump(struct fx *f)
{
	struct pollfd p = { *tamper_fd(f->t, 0), POLLIN, 0 };

	while (poll(&p, 1, 50) > 0)
		tamper_dispatch(f->t, 0);
}

static char *events(struct fx *f)
{
	cleanup_free char *path = xasprintf("%s/events.jsonl", f->app_dir);
	char *s = read_file_or_null(path);

	return s ? s : xstrdup("");
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void put(struct fx *f, const char *rel, const char *content)
{
	write_file_at(f->upper, rel, content);
}

static void test_webshell_raises_one_event_with_evidence(void **state)
{
	struct fx *f = *state;
	const char *shell = "<?php system($_GET['c']);";
	char sha[65];
	cleanup_free char *ev = NULL, *evpath = NULL, *saved = NULL;

	slate_sha256_hex(shell, strlen(shell), sha);
	put(f, "app/web/cpresources/x.php", shell);
	put(f, "app/web/cpresources/site.css", "body{}");
	put(f, "app/storage/notes.txt", "<?xml but no php");
	pump(f);
	ev = events(f);
	assert_int_equal(count(ev, "\"kind\":\"tamper\""), 1);
	assert_non_null(strstr(ev, "\"path\":\"/app/web/cpresources/x.php\""));
	assert_non_null(strstr(ev, sha));
	assert_null(strstr(ev, "site.css"));
	assert_null(strstr(ev, "notes.txt"));
	assert_null(strstr(ev, "old.php")); /* there at the start: not examined */
	evpath = xasprintf("%s/evidence/%s", f->app_dir, sha);
	saved = read_file_or_null(evpath);
	assert_non_null(saved);
	assert_string_equal(saved, shell);
}

static void test_new_directory_and_symlink(void **state)
{
	struct fx *f = *state;
	cleanup_free char *dir = xasprintf("%s/app/storage/d1", f->upper), *link = NULL, *ev = NULL;

	assert_int_equal(mkdir(dir, 0700), 0);
	/* Written before the monitor saw the directory: found by its scan. */
	put(f, "app/storage/d1/d2/inner.txt", "#!/bin/sh\nid\n");
	link = xasprintf("%s/app/storage/l.php", f->upper);
	assert_int_equal(symlink("/etc/shadow", link), 0);
	pump(f);
	put(f, "app/storage/d1/d2/later.phtml", "x");
	pump(f);
	ev = events(f);
	assert_non_null(strstr(ev, "/app/storage/d1/d2/inner.txt"));
	assert_non_null(strstr(ev, "\"reason\":\"shebang\""));
	assert_non_null(strstr(ev, "/app/storage/d1/d2/later.phtml"));
	assert_non_null(strstr(ev, "\"type\":\"symlink\""));
	assert_non_null(strstr(ev, "\"target\":\"/etc/shadow\""));
	assert_null(strstr(ev, "root:")); /* never followed */
}

static void test_hostile_name_escaped(void **state)
{
	struct fx *f = *state;
	cleanup_free char *ev = NULL;

	put(f, "app/storage/a\nb\x1b\xff.php", "x");
	pump(f);
	ev = events(f);
	assert_non_null(strstr(ev, "/app/storage/a\\\\x0ab\\\\x1b\\\\xff.php"));
	assert_int_equal(count(ev, "\n"), 1);
}

static void test_flood_is_bounded(void **state)
{
	struct fx *f = *state;
	cleanup_free char *ev = NULL, *evdir = xasprintf("%s/evidence", f->app_dir);
	struct stat st;

	for (int i = 0; i < 2000; i++) {
		char rel[64], body[64];
		snprintf(rel, sizeof(rel), "app/storage/f%d.php", i);
		snprintf(body, sizeof(body), "<?php echo %d;", i);
		put(f, rel, body);
		if (i % 200 == 0)
			pump(f);
	}
	pump(f);
	ev = events(f);
	assert_true(count(ev, "\"kind\":\"tamper\"") <= TAMPER_WINDOW_EVENTS);
	assert_true(count(ev, "\"kind\":\"tamper\"") >= 10);
	assert_true(count_entries(evdir) <= TAMPER_EVIDENCE_FILES);
	assert_int_equal(stat(evdir, &st), 0);
}

/* More events than the kernel queues (16384 by default): the overflow
 * is answered by a rescan that finds the webshell written amid them. */
static void test_overflow_rescans(void **state)
{
	struct fx *f = *state;
	cleanup_free char *ev = NULL;

	for (int i = 0; i < 12000; i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "app/storage/n%d.txt", i);
		put(f, rel, "");
	}
	put(f, "app/storage/amid.php", "<?php");
	pump(f);
	ev = events(f);
	assert_non_null(strstr(ev, "\"kind\":\"overflow\""));
	assert_non_null(strstr(ev, "\"path\":\"/app/storage/amid.php\""));
}

/* Past the watch cap: said once, and a file in an unwatched directory is
 * found by the periodic rescan. */
static void test_watch_limit_rescans(void **state)
{
	struct fx *f = *state;
	cleanup_free char *ev = NULL;
	char rel[64];

	for (int i = 0; i < TAMPER_MAX_WATCHES + 10; i++) {
		snprintf(rel, sizeof(rel), "app/storage/d%d/keep", i);
		put(f, rel, "");
		if (i % 100 == 0)
			pump(f);
	}
	pump(f);
	ev = events(f);
	assert_int_equal(count(ev, "\"kind\":\"watch-limit\""), 1);
	snprintf(rel, sizeof(rel), "app/storage/d%d/late.php", TAMPER_MAX_WATCHES + 9);
	sleep(1); /* a ctime after the last scan */
	put(f, rel, "x");
	pump(f);
	free(ev);
	ev = events(f);
	assert_null(strstr(ev, "late.php"));
	sleep(TAMPER_RESCAN_SECONDS);
	tamper_tick(f->t);
	free(ev);
	ev = events(f);
	assert_non_null(strstr(ev, "late.php"));
}

static int heals;

static int count_heal(void *arg, unsigned gen, slate_error_t *err)
{
	(void)arg;
	(void)err;
	assert_int_equal(gen, 1);
	heals++;
	return 0;
}

/* The hook gets the event on stdin (its child reaped through
 * tamper_reaped); a heal is asked for once, the next one within 10 s is
 * suppressed. */
static void test_hook_and_heal(void **state)
{
	struct fx *f = *state;
	cleanup_free char *out = xasprintf("%s/hook.out", f->tmp), *cmd = xasprintf("cat >>%s", out);
	cleanup_free char *ev = NULL, *got = NULL;
	json_t *opts = json_pack("{s:s,s:b}", "on_tamper", cmd, "heal", 1);
	slate_error_t err = { 0 };
	int status;
	pid_t pid;

	tamper_free(f->t);
	f->t = tamper_new(&f->ctx, "t", f->app_dir, NULL, &(struct tamper_hooks){ count_heal, NULL }, &err);
	assert_non_null(f->t);
	assert_int_equal(tamper_watch(f->t, 1, f->scratch, 3, "abc", &err), 0);
	tamper_configure(f->t, opts);
	json_decref(opts);
	heals = 0;
	put(f, "app/storage/one.php", "1");
	pump(f);
	put(f, "app/storage/two.php", "2");
	pump(f);
	for (int i = 0; i < 2; i++) {
		pid = waitpid(-1, &status, 0);
		assert_true(pid > 0);
		assert_true(tamper_reaped(f->t, pid, status));
	}
	got = read_text(out);
	assert_non_null(strstr(got, "\"path\":\"/app/storage/one.php\""));
	assert_non_null(strstr(got, "\"path\":\"/app/storage/two.php\""));
	assert_int_equal(heals, 1);
	ev = events(f);
	assert_int_equal(count(ev, "\"heal\":\"started\""), 1);
	assert_int_equal(count(ev, "\"heal\":\"suppressed"), 1);
	assert_false(tamper_reaped(f->t, 1, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_names),
		cmocka_unit_test(test_classify_content),
		cmocka_unit_test_setup_teardown(test_webshell_raises_one_event_with_evidence, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_new_directory_and_symlink, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_name_escaped, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_flood_is_bounded, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_hook_and_heal, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_overflow_rescans, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_watch_limit_rescans, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
