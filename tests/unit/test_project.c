/* Unit tests for bundler/project.c: secrets, slate.json settings, the
 * nginx rules, and the project walk on real temporary trees. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
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

#include "project.h"
#include "slate/util.h"

/* ---- fixtures: DIR/proj (the project) and DIR/outside ---- */

struct fixture {
	char dir[64];
	char *proj, *outside;
};

static int fixture_setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/slate-test-project-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	f->proj = xasprintf("%s/proj", f->dir);
	f->outside = xasprintf("%s/outside", f->dir);
	if (mkdir(f->proj, 0755) < 0 || mkdir(f->outside, 0755) < 0)
		return -1;
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	rm_tree(f->dir);
	free(f->proj);
	free(f->outside);
	free(f);
	return 0;
}

/* Create base/rel with its parent directories; a trailing '/' makes a dir. */
static void make(const char *base, const char *rel, const char *content)
{
	char *path = xasprintf("%s/%s", base, rel);
	FILE *fp;

	for (char *c = path + strlen(base) + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir `%s`: %s", path, strerror(errno));
		*c = '/';
	}
	if (path[strlen(path) - 1] != '/') {
		fp = fopen(path, "w");
		assert_non_null(fp);
		assert_true(fputs(content, fp) >= 0);
		assert_int_equal(fclose(fp), 0);
	}
	free(path);
}

static void make_mode(const char *base, const char *rel, mode_t mode)
{
	char *path = xasprintf("%s/%s", base, rel);

	assert_int_equal(chmod(path, mode), 0);
	free(path);
}

static void make_link(const char *base, const char *rel, const char *target)
{
	char *path = xasprintf("%s/%s", base, rel);

	if (symlink(target, path) < 0)
		fail_msg("symlink `%s`: %s", path, strerror(errno));
	free(path);
}

/* A minimal project: web/index.php and config/app.php. */
static void make_site(const struct fixture *f)
{
	make(f->proj, "web/index.php", "<?php echo 1;\n");
	make(f->proj, "config/app.php", "<?php return [];\n");
}

static void load(const char *dir, struct project *p)
{
	slate_error_t err = { 0 };

	if (project_load(dir, p, &err) != 0)
		fail_msg("project_load `%s`: %s", dir, err.msg);
}

static int collect(const struct fixture *f, bool dereference, struct project *p, struct tree *t, slate_error_t *err)
{
	load(f->proj, p);
	p->dereference = dereference;
	tree_init(t);
	return project_collect(p, t, err);
}

static void assert_collect_refused(const struct fixture *f, bool dereference, const char *needle)
{
	slate_error_t err = { 0 };
	struct project p;
	struct tree t;

	int r = collect(f, dereference, &p, &t, &err);

	tree_free(&t);
	project_free(&p);
	if (r != -1)
		fail_msg("project_collect accepted the project, want a refusal naming `%s`", needle);
	assert_refused(&err, needle);
}

static void collect_ok(const struct fixture *f, bool dereference, struct project *p, struct tree *t)
{
	slate_error_t err = { 0 };

	if (collect(f, dereference, p, t, &err) != 0)
		fail_msg("project_collect: %s", err.msg);
}

static struct slate_entry *get(struct tree *t, const char *path, enum slate_entry_type type)
{
	struct slate_entry *e = tree_get(t, path);

	if (e == NULL)
		fail_msg("no entry `%s`", path);
	assert_int_equal(e->type, type);
	return e;
}

static void load_refused(const struct fixture *f, const char *json, const char *needle)
{
	slate_error_t err = { 0 };
	struct project p;

	make(f->proj, "slate.json", json);
	if (project_load(f->proj, &p, &err) != -1)
		fail_msg("slate.json accepted: %s", json);
	assert_refused(&err, needle);
	project_free(&p);
}

/* ---- project_is_secret ---- */

static void test_is_secret(void **state)
{
	(void)state;
	assert_true(project_is_secret(".env"));
	assert_true(project_is_secret(".env.local"));
	assert_true(project_is_secret("config/.env.production"));
	assert_true(project_is_secret("x.pem"));
	assert_true(project_is_secret("keys/id_rsa"));
	assert_true(project_is_secret("auth.json"));
	assert_true(project_is_secret("certs/site.key"));
	assert_false(project_is_secret(".env.example"));
	assert_false(project_is_secret(".env.dist"));
	assert_false(project_is_secret("README"));
	assert_false(project_is_secret("config/app.php"));
	assert_false(project_is_secret("environment.php"));
}

/* ---- project_load ---- */

static void test_load_defaults(void **state)
{
	struct fixture *f = *state;
	struct project p;

	load(f->proj, &p);
	assert_string_equal(p.dir, f->proj);
	assert_null(p.name);
	assert_string_equal(p.webroot, "web");
	assert_int_equal(p.writable.n, 0);
	assert_int_equal(p.exclude.n, 0);
	assert_int_equal(p.allow_secrets.n, 0);
	assert_false(p.dereference);
	project_free(&p);
}

static void test_load_settings(void **state)
{
	struct fixture *f = *state;
	struct project p;

	make(f->proj, "slate.json",
	     "{\"name\":\"site\",\"webroot\":\"public\",\"writable\":[\"storage\",\"public/uploads\"],"
	     "\"exclude\":[\"*.log\"],\"allow_secrets\":[\"config/site.pem\"]}");
	load(f->proj, &p);
	assert_string_equal(p.name, "site");
	assert_string_equal(p.webroot, "public");
	assert_int_equal(p.writable.n, 2);
	assert_string_equal(p.writable.v[1], "public/uploads");
	assert_string_equal(p.exclude.v[0], "*.log");
	assert_string_equal(p.allow_secrets.v[0], "config/site.pem");
	project_free(&p);
}

static void test_load_refuses_unknown_key(void **state)
{
	load_refused(*state, "{\"webrot\":\"web\"}", "slate.json: unknown key `webrot`");
}

static void test_load_refuses_writable_webroot(void **state)
{
	load_refused(*state, "{\"writable\":[\"web\"]}", "writable `web` contains the webroot");
	load_refused(*state, "{\"webroot\":\"public/web\",\"writable\":[\"public\"]}",
		     "writable `public` contains the webroot");
}

static void test_load_refuses_unsafe_settings(void **state)
{
	load_refused(*state, "{\"webroot\":\"../web\"}", "webroot");
	load_refused(*state, "{\"writable\":[\"/var/lib\"]}", "`/var/lib`: absolute");
	load_refused(*state, "{\"webroot\":\"my web\"}", "webroot `my web` has characters");
	load_refused(*state, "{\"writable\":[\"a;b\"]}", "writable `a;b` has characters");
	load_refused(*state, "{\"allow_secrets\":[\"a/../.env\"]}", "allow_secrets");
}

static void test_load_refuses_bad_json(void **state)
{
	load_refused(*state, "{\"writable\":\"storage\"}", "`writable` must be a list of strings");
	load_refused(*state, "{\"webroot\":1}", "`webroot` must be a string");
	load_refused(*state, "{\"webroot\":\"a\",\"webroot\":\"b\"}", "slate.json");
	load_refused(*state, "[]", "slate.json: not a JSON object");
}

static void test_load_refuses_file(void **state)
{
	struct fixture *f = *state;
	char *file = xasprintf("%s/file", f->dir);
	slate_error_t err = { 0 };
	struct project p;

	make(f->dir, "file", "x");
	assert_int_equal(project_load(file, &p, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, file);
	project_free(&p);
	free(file);
}

/* ---- project_nginx_rules ---- */

static size_t count_lines_with(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *end = strchr(line, '\n');
		char *copy = end ? xstrndup(line, (size_t)(end - line)) : xstrdup(line);
		n += strstr(copy, needle) != NULL;
		free(copy);
	}
	return n;
}

static void test_nginx_rules(void **state)
{
	struct project p = { 0 };
	char *rules;

	(void)state;
	p.webroot = xstrdup("web");
	slate_strv_push(&p.writable, "storage");
	slate_strv_push(&p.writable, "web/cpresources");
	rules = project_nginx_rules(&p);
	assert_int_equal(count_lines_with(rules, "root /app/web;"), 1);
	assert_int_equal(count_lines_with(rules, "location"), 1);
	assert_int_equal(count_lines_with(rules, "location ^~ /cpresources/ {"), 1);
	assert_int_equal(count_lines_with(rules, "storage"), 0);
	assert_non_null(strstr(rules, "location ~ \\.php$ { return 403; }"));
	free(rules);
	project_free(&p);
}

static void test_nginx_rules_no_writable(void **state)
{
	struct project p = { 0 };
	char *rules;

	(void)state;
	p.webroot = xstrdup("public");
	rules = project_nginx_rules(&p);
	assert_int_equal(count_lines_with(rules, "root /app/public;"), 1);
	assert_int_equal(count_lines_with(rules, "location"), 0);
	free(rules);
	project_free(&p);
}

/* ---- project_collect ---- */

static void test_collect_site(void **state)
{
	struct fixture *f = *state;
	struct project p;
	struct tree t;
	char *rules;

	make_site(f);
	make(f->proj, "slate.json", "{\"writable\":[\"storage\",\"web/cpresources\"]}");
	make(f->proj, ".gitignore", "vendor\n");
	make(f->proj, "bin/run", "#!/bin/sh\n");
	make_mode(f->proj, "bin/run", 0700);
	collect_ok(f, false, &p, &t);
	get(&t, "app", SLATE_ENTRY_DIR);
	get(&t, "app/web", SLATE_ENTRY_DIR);
	assert_int_equal(get(&t, "app/web/index.php", SLATE_ENTRY_FILE)->size, strlen("<?php echo 1;\n"));
	assert_int_equal(get(&t, "app/bin/run", SLATE_ENTRY_FILE)->mode, 0755);
	assert_int_equal(get(&t, "app/config/app.php", SLATE_ENTRY_FILE)->mode, 0644);
	get(&t, "app/.gitignore", SLATE_ENTRY_FILE);
	get(&t, "app/slate.json", SLATE_ENTRY_FILE);
	get(&t, "app/storage", SLATE_ENTRY_DIR);
	get(&t, "app/web/cpresources", SLATE_ENTRY_DIR);
	rules = project_nginx_rules(&p);
	assert_string_equal(get(&t, "app/.slate/nginx.conf", SLATE_ENTRY_FILE)->data, rules);
	get(&t, "app/.slate", SLATE_ENTRY_DIR);
	free(rules);
	tree_free(&t);
	project_free(&p);
}

static void test_collect_skips_git_and_node_modules(void **state)
{
	struct fixture *f = *state;
	struct project p;
	struct tree t;

	make_site(f);
	make(f->proj, ".git/HEAD", "ref: refs/heads/main\n");
	make(f->proj, ".git/secret.pem", "x");
	make(f->proj, "node_modules/x/index.js", "1");
	make(f->proj, "web/assets/node_modules/y.js", "1");
	collect_ok(f, false, &p, &t);
	assert_null(tree_get(&t, "app/.git"));
	assert_null(tree_get(&t, "app/.git/HEAD"));
	assert_null(tree_get(&t, "app/node_modules"));
	assert_null(tree_get(&t, "app/web/assets/node_modules"));
	get(&t, "app/web/assets", SLATE_ENTRY_DIR);
	tree_free(&t);
	project_free(&p);
}

static void test_collect_exclude(void **state)
{
	struct fixture *f = *state;
	struct project p;
	struct tree t;

	make_site(f);
	make(f->proj, "slate.json", "{\"exclude\":[\"*.log\",\"tmp\",\"web/cache\"]}");
	make(f->proj, "app.log", "x");
	make(f->proj, "web/old.log", "x");
	make(f->proj, "tmp/x", "x");
	make(f->proj, "web/cache/c", "x");
	make(f->proj, "cache/keep", "x");
	collect_ok(f, false, &p, &t);
	assert_null(tree_get(&t, "app/app.log"));
	assert_null(tree_get(&t, "app/web/old.log"));
	assert_null(tree_get(&t, "app/tmp"));
	assert_null(tree_get(&t, "app/web/cache"));
	get(&t, "app/cache/keep", SLATE_ENTRY_FILE);
	tree_free(&t);
	project_free(&p);
}

static void test_collect_refuses_secrets(void **state)
{
	struct fixture *f = *state;

	make_site(f);
	make(f->proj, ".env", "DB_PASSWORD=x\n");
	make(f->proj, "config/id_rsa", "x");
	make(f->proj, ".env.example", "DB_PASSWORD=\n");
	assert_collect_refused(f, false, "secrets in the project, not packed: `.env`, `config/id_rsa`");
}

static void test_collect_secrets_excluded_or_allowed(void **state)
{
	struct fixture *f = *state;
	struct project p;
	struct tree t;

	make_site(f);
	make(f->proj, ".env", "DB_PASSWORD=x\n");
	make(f->proj, "config/id_rsa", "x");
	make(f->proj, "slate.json", "{\"exclude\":[\".env\"],\"allow_secrets\":[\"config/id_rsa\"]}");
	collect_ok(f, false, &p, &t);
	assert_null(tree_get(&t, "app/.env"));
	get(&t, "app/config/id_rsa", SLATE_ENTRY_FILE);
	tree_free(&t);
	project_free(&p);
}

static void test_collect_links_inside(void **state)
{
	struct fixture *f = *state;
	char *abs = NULL, *real = realpath(f->proj, NULL);
	struct project p;
	struct tree t;

	make_site(f);
	assert_non_null(real);
	abs = xasprintf("%s/config/app.php", real);
	make_link(f->proj, "web/rel", "../config/app.php");
	make_link(f->proj, "web/abs", abs);
	collect_ok(f, false, &p, &t);
	assert_string_equal(get(&t, "app/web/rel", SLATE_ENTRY_SYMLINK)->target, "../config/app.php");
	assert_string_equal(get(&t, "app/web/abs", SLATE_ENTRY_SYMLINK)->target, "../config/app.php");
	tree_free(&t);
	project_free(&p);
	free(abs);
	free(real);
}

static void test_collect_refuses_dangling_link(void **state)
{
	struct fixture *f = *state;

	make_site(f);
	make_link(f->proj, "web/broken", "missing.php");
	assert_collect_refused(f, false, "dangling symlink `web/broken` -> `missing.php`");
}

static void test_collect_refuses_outside_link(void **state)
{
	struct fixture *f = *state;
	char *target = xasprintf("%s/shared.php", f->outside), *want;

	make_site(f);
	make(f->outside, "shared.php", "<?php\n");
	make_link(f->proj, "web/out", target);
	make_link(f->proj, "up", "../outside");
	want = xasprintf("symlinks leave the project: `up -> ../outside`, `web/out -> %s`", target);
	assert_collect_refused(f, false, want);
	free(want);
	free(target);
}

/* web/s -> ".." is the project; web/t -> "s/../outside/x" stays inside
 * lexically, but resolves outside the project. */
static void test_collect_refuses_link_chain_leaving(void **state)
{
	struct fixture *f = *state;

	make_site(f);
	make(f->outside, "shared.php", "<?php\n");
	make_link(f->proj, "web/s", "..");
	make_link(f->proj, "web/t", "s/../outside/shared.php");
	assert_collect_refused(f, false, "`web/t -> s/../outside/shared.php`");
}

static void test_collect_dereferences_outside_link(void **state)
{
	struct fixture *f = *state;
	char *target = xasprintf("%s/shared.php", f->outside), *real;
	struct slate_entry *e;
	struct project p;
	struct tree t;

	make_site(f);
	make(f->outside, "shared.php", "<?php\n");
	make(f->outside, "lib/sub/b.php", "<?php // b\n");
	make_link(f->proj, "web/out", target);
	make_link(f->proj, "lib", "../outside/lib");
	collect_ok(f, true, &p, &t);
	e = get(&t, "app/web/out", SLATE_ENTRY_FILE);
	real = realpath(target, NULL);
	assert_string_equal(e->source, real);
	assert_int_equal(e->size, strlen("<?php\n"));
	get(&t, "app/lib", SLATE_ENTRY_DIR);
	get(&t, "app/lib/sub", SLATE_ENTRY_DIR);
	assert_int_equal(get(&t, "app/lib/sub/b.php", SLATE_ENTRY_FILE)->size, strlen("<?php // b\n"));
	tree_free(&t);
	project_free(&p);
	free(real);
	free(target);
}

static void test_collect_refuses_reserved_slate(void **state)
{
	struct fixture *f = *state;

	make_site(f);
	make(f->proj, ".slate/nginx.conf", "server {}\n");
	assert_collect_refused(f, false, "`.slate` is reserved");
	assert_collect_refused(f, false, f->proj);
}

static void test_collect_refuses_missing_webroot(void **state)
{
	struct fixture *f = *state;

	make(f->proj, "index.php", "<?php\n");
	assert_collect_refused(f, false, "has no webroot directory `web`");
}

static void test_collect_refuses_fifo(void **state)
{
	struct fixture *f = *state;
	char *fifo = xasprintf("%s/web/pipe", f->proj);

	make_site(f);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	assert_collect_refused(f, false, "project file `web/pipe` is not a regular file");
	free(fifo);
}

#define fixture_test(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_secret),
		fixture_test(test_load_defaults),
		fixture_test(test_load_settings),
		fixture_test(test_load_refuses_unknown_key),
		fixture_test(test_load_refuses_writable_webroot),
		fixture_test(test_load_refuses_unsafe_settings),
		fixture_test(test_load_refuses_bad_json),
		fixture_test(test_load_refuses_file),
		cmocka_unit_test(test_nginx_rules),
		cmocka_unit_test(test_nginx_rules_no_writable),
		fixture_test(test_collect_site),
		fixture_test(test_collect_skips_git_and_node_modules),
		fixture_test(test_collect_exclude),
		fixture_test(test_collect_refuses_secrets),
		fixture_test(test_collect_secrets_excluded_or_allowed),
		fixture_test(test_collect_links_inside),
		fixture_test(test_collect_refuses_dangling_link),
		fixture_test(test_collect_refuses_outside_link),
		fixture_test(test_collect_refuses_link_chain_leaving),
		fixture_test(test_collect_dereferences_outside_link),
		fixture_test(test_collect_refuses_reserved_slate),
		fixture_test(test_collect_refuses_missing_webroot),
		fixture_test(test_collect_refuses_fifo),
	};

	return cmocka_run_group_tests_name("project", tests, NULL, NULL);
}
