/* Unit tests for lib/policy.c: the rules the bundler applies before
 * signing and the runtime applies to every signed manifest (settings,
 * image, mount points, writable paths, links into what the runtime mounts
 * over). Each refusal is checked against a manifest that passes but for
 * that one change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "slate/policy.h"

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (j == NULL)
		fail_msg("bad test JSON: %s", jerr.text);
	return j;
}

/* What a build of the example makes, in short: the image's mount points,
 * the project with its webroot and writable directories. */
static void good_manifest(struct slate_manifest *m)
{
	static const char *const dirs[] = { "dev",         "etc",        "proc",    "run",
					    "sys",         "tmp",        "app",     "app/config",
					    "app/storage", "app/vendor", "app/web", "app/web/cpresources",
					    NULL };

	slate_manifest_init(m);
	m->image = parse(test_image_json);
	m->settings = parse(test_settings_json);
	for (size_t i = 0; dirs[i]; i++)
		add_entry(m, dirs[i], SLATE_ENTRY_DIR, 0755);
	add_entry(m, "etc/passwd", SLATE_ENTRY_FILE, 0644);
	add_link(m, "etc/localtime", "../usr/share/zoneinfo/Etc/UTC");
	add_entry(m, "app/config/general.php", SLATE_ENTRY_FILE, 0644);
	add_entry(m, "app/web/index.php", SLATE_ENTRY_FILE, 0644);
	add_link(m, "app/web/about.html", "../templates/about.html");
}

static void set_path(json_t *obj, const char *key, const char *json)
{
	json_object_set_new(obj, key, parse(json));
}

static void assert_policy_ok(struct slate_manifest *m)
{
	slate_error_t err = { 0 };

	if (slate_policy_check(m, &err) != 0)
		fail_msg("refused: %s", err.msg);
	slate_manifest_free(m);
}

static void assert_policy_refused(struct slate_manifest *m, const char *needle)
{
	slate_error_t err = { 0 };

	if (slate_policy_check(m, &err) != -1)
		fail_msg("accepted, want a refusal naming `%s`", needle);
	assert_refused(&err, needle);
	slate_manifest_free(m);
}

/* ---- the reference manifest ---- */

static void test_good_manifest_passes(void **state)
{
	struct slate_manifest m;

	(void)state;
	good_manifest(&m);
	assert_policy_ok(&m);
}

/* A stored meta.json lists no entries: only settings and image count. */
static void test_no_entries_checks_settings_only(void **state)
{
	struct slate_manifest m;

	(void)state;
	slate_manifest_init(&m);
	m.image = parse(test_image_json);
	m.settings = parse(test_settings_json);
	assert_policy_ok(&m);
	slate_manifest_init(&m);
	m.image = parse(test_image_json);
	m.settings = parse("{\"webroot\":\"web\",\"writable\":[\"../etc\"]}");
	assert_policy_refused(&m, "bundle settings: writable: unsafe path `../etc`");
}

/* ---- settings ---- */

static void settings_refused(const char *key, const char *json, const char *needle)
{
	struct slate_manifest m;

	good_manifest(&m);
	set_path(m.settings, key, json);
	assert_policy_refused(&m, needle);
}

static void test_settings_writable_unsafe(void **state)
{
	(void)state;
	settings_refused("writable", "[\"../etc\"]", "writable: unsafe path `../etc`: `..` component");
	settings_refused("writable", "[\"/etc\"]", "writable: unsafe path `/etc`: absolute");
	settings_refused("writable", "[\"storage/../../etc\"]", "`..` component");
	settings_refused("writable", "[\"\"]", "unsafe path: empty");
	settings_refused("writable", "[\"a;b\"]", "writable `a;b` has characters nginx rules cannot carry");
	settings_refused("writable", "[\".slate\"]", "`.slate` is reserved");
	settings_refused("writable", "\"storage\"", "`writable` must be a list of strings");
}

static void test_settings_writable_over_code(void **state)
{
	(void)state;
	settings_refused("writable", "[\"web\"]", "writable `web` contains the webroot");
	settings_refused("writable", "[\"vendor\"]", "writable `vendor` overlaps the code in `vendor`");
	settings_refused("writable", "[\"vendor/acme/lib\"]", "overlaps the code");
}

static void test_settings_webroot(void **state)
{
	struct slate_manifest m;

	(void)state;
	settings_refused("webroot", "\"../..\"", "webroot: unsafe path `../..`");
	settings_refused("webroot", "\"/srv\"", "absolute");
	settings_refused("webroot", "\"my web\"", "webroot `my web` has characters");
	settings_refused("webroot", "1", "`webroot` must be a string");
	good_manifest(&m);
	json_object_del(m.settings, "webroot");
	assert_policy_refused(&m, "settings: missing `webroot`");
}

static void test_settings_unknown_key(void **state)
{
	(void)state;
	settings_refused("persistent", "[\"/\"]", "settings: unknown key `persistent`");
	settings_refused("allow_secrets", "[\"../.env\"]", "allow_secrets: unsafe path");
}

/* ---- image ---- */

static void image_refused(const char *key, const char *json, const char *needle)
{
	struct slate_manifest m;

	good_manifest(&m);
	set_path(m.image, key, json);
	assert_policy_refused(&m, needle);
}

static void image_ok(const char *key, const char *json)
{
	struct slate_manifest m;

	good_manifest(&m);
	set_path(m.image, key, json);
	assert_policy_ok(&m);
}

static void test_image_processes(void **state)
{
	(void)state;
	image_refused("processes", "[]", "bundle image: `processes` must be a non-empty list");
	image_refused("processes", "{}", "`processes` must be a non-empty list");
	image_refused("processes", "[{\"name\":\"x\",\"argv\":[]}]", "process `x` needs an absolute argv[0]");
	image_refused("processes", "[{\"name\":\"x\",\"argv\":[\"sh\"]}]", "process `x` needs an absolute argv[0]");
	image_refused("processes", "[{\"name\":\"x\",\"argv\":[\"/bin/sh\"],\"env\":[]}]", "unknown key `env`");
	image_refused("processes", "[{\"argv\":[\"/bin/sh\"]}]", "process: missing `name`");
}

static void test_image_user(void **state)
{
	(void)state;
	image_ok("user", "\"www-data\"");
	image_ok("user", "\"33\"");
	image_ok("user", "\"33:33\"");
	image_refused("user", "\"0:x\"", "user `0:x` is not NAME or UID[:GID]");
	image_refused("user", "\"33:\"", "is not NAME or UID");
	image_refused("user", "\"\"", "is not NAME or UID");
	image_refused("user", "\"a b\"", "is not NAME or UID");
	image_refused("user", "\"-root\"", "is not NAME or UID");
	image_refused("user", "\"1a\"", "is not NAME or UID");
	image_refused("user", "5", "`user` must be a string");
}

static void test_image_health(void **state)
{
	(void)state;
	image_ok("health", "{\"port\":8080,\"path\":\"/health?x=1\"}");
	image_refused("health", "{\"port\":0,\"path\":\"/\"}", "health needs a port (1-65535)");
	image_refused("health", "{\"port\":65536,\"path\":\"/\"}", "health needs a port");
	image_refused("health", "{\"port\":80,\"path\":\"x\"}", "an absolute path");
	image_refused("health", "{\"port\":80,\"path\":\"/ HTTP/1.0\\r\\nX: y\"}", "must be printable ASCII");
	image_refused("health", "{\"port\":80,\"path\":\"/a b\"}", "must be printable ASCII");
	image_refused("health", "{\"port\":80,\"path\":\"/\",\"retries\":3}", "unknown key `retries`");
}

static void test_image_other_fields(void **state)
{
	struct slate_manifest m;

	(void)state;
	image_refused("proxy_protocol", "{\"80\":0}", "`proxy_protocol` must map ports to ports");
	image_refused("proxy_protocol", "{\"0x50\":8080}", "`proxy_protocol` must map ports to ports");
	image_refused("proxy_protocol", "{\"80\":\"8080\"}", "`proxy_protocol` must map ports to ports");
	image_refused("packages", "[]", "`packages` must be an object");
	image_refused("packages", "{\"nginx\":1}", "the pin of `nginx` must be a version string");
	image_refused("paths", "[]", "image: unknown key `paths`");
	good_manifest(&m);
	json_object_del(m.image, "proxy_protocol");
	assert_policy_ok(&m);
}

/* ---- entries ---- */

static struct slate_entry *entry(struct slate_manifest *m, const char *path)
{
	for (size_t i = 0; i < m->n_entries; i++)
		if (strcmp(m->entries[i].path, path) == 0)
			return &m->entries[i];
	fail_msg("no entry `%s`", path);
	return NULL;
}

static void test_mount_points_are_dirs(void **state)
{
	struct slate_manifest m;

	(void)state;
	good_manifest(&m);
	free(entry(&m, "run")->path);
	m.entries[3].path = xstrdup("runx");
	assert_policy_refused(&m, "mount point `/run` is not in the bundle");
	good_manifest(&m);
	entry(&m, "proc")->type = SLATE_ENTRY_FILE;
	assert_policy_refused(&m, "mount point `/proc` is a file in the bundle, not a directory");
	good_manifest(&m);
	free(entry(&m, "app/web")->path);
	m.entries[10].path = xstrdup("app/www");
	assert_policy_refused(&m, "webroot `/app/web` is not in the bundle");
}

static void test_writable_entries(void **state)
{
	struct slate_manifest m;
	struct slate_entry *e;

	(void)state;
	good_manifest(&m);
	e = entry(&m, "app/storage");
	e->type = SLATE_ENTRY_SYMLINK;
	e->target = xstrdup("web");
	assert_policy_refused(&m, "writable `/app/storage` is a symlink in the bundle, not a directory");
	good_manifest(&m);
	set_path(m.settings, "writable", "[\"config\"]");
	assert_policy_refused(&m, "writable `/app/config` holds PHP code `app/config/general.php`");
	good_manifest(&m);
	set_path(m.settings, "writable", "[\"missing\"]");
	assert_policy_refused(&m, "writable `/app/missing` is not in the bundle");
}

static void link_refused(const char *path, const char *target, const char *needle)
{
	struct slate_manifest m;

	good_manifest(&m);
	add_link(&m, path, target);
	assert_policy_refused(&m, needle);
}

static void link_ok(const char *path, const char *target)
{
	struct slate_manifest m;

	good_manifest(&m);
	add_link(&m, path, target);
	assert_policy_ok(&m);
}

static void test_links_into_mounts(void **state)
{
	(void)state;
	link_refused("app/web/env.txt", "../../proc/self/environ",
		     "symlink `app/web/env.txt` -> `../../proc/self/environ` leads into `/proc`");
	link_refused("app/web/d", "../../dev/null", "leads into `/dev`");
	link_refused("app/web/s", "../../sys", "leads into `/sys`");
	link_refused("app/web/t", "../../tmp/x", "leads into `/tmp`");
	link_refused("app/web/r", "../../run/php-fpm.sock", "leads into `/run`");
	link_refused("app/web/w", "../storage/logs/x.log", "leads into `/app/storage`");
	link_refused("app/web/c", "cpresources", "leads into `/app/web/cpresources`");
	link_refused("etc/mtab", "../proc/self/mounts",
		     "symlink `etc/mtab` -> `../proc/self/mounts` leads into `/proc`");
	/* Through a mount and back out: what lies there is not the bundle's. */
	link_refused("app/web/x", "../storage/../web/index.php", "leads into `/app/storage`");
}

static void test_links_above_mounts(void **state)
{
	(void)state;
	link_refused("app/web/root", "../..", "symlink `app/web/root` -> `../..` leads to `/`, which holds `/proc`");
	link_refused("app/web/app", "..", "leads to `/app`, which holds `/app/storage`");
	link_refused("app/up", "web", "leads to `/app/web`, which holds `/app/web/cpresources`");
}

static void test_link_chains(void **state)
{
	struct slate_manifest m;

	(void)state;
	/* a -> b -> ../../proc: refused at a, the first link met. */
	good_manifest(&m);
	add_link(&m, "app/web/a", "b");
	add_link(&m, "app/web/b", "../../proc");
	assert_policy_refused(&m, "symlink `app/web/a` -> `b` leads into `/proc`");
	/* A link as a directory on the way: up/../.. climbs from app/, not web/. */
	good_manifest(&m);
	add_link(&m, "app/web/up", "../config");
	add_link(&m, "app/web/t", "up/../../tmp");
	assert_policy_refused(&m, "symlink `app/web/t` -> `up/../../tmp` leads into `/tmp`");
	/* A loop stops. */
	good_manifest(&m);
	add_link(&m, "app/web/p", "q");
	add_link(&m, "app/web/q", "p");
	assert_policy_refused(&m, "too many levels of symlinks");
}

static void test_links_allowed(void **state)
{
	struct slate_manifest m;

	(void)state;
	link_ok("app/web/i.php", "index.php");
	link_ok("app/web/conf", "../config");
	link_ok("lib64", "usr/lib64");
	link_ok("app/web/x", "../vendor/../web/index.php");
	/* In a writable path: among the app's own writes, within that path. */
	link_ok("app/storage/current", "logs");
	link_ok("app/storage/here", ".");
	link_refused("app/storage/env", "../../proc/self/environ", "leads into `/proc`");
	/* Under /tmp: hidden by the runtime's tmpfs. */
	link_ok("tmp/x", "../proc/self/environ");
	/* A chain through a link that is fine by itself. */
	good_manifest(&m);
	add_link(&m, "app/web/v", "../vendor");
	add_link(&m, "app/web/w", "v/../config/general.php");
	assert_policy_ok(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_manifest_passes),
		cmocka_unit_test(test_no_entries_checks_settings_only),
		cmocka_unit_test(test_settings_writable_unsafe),
		cmocka_unit_test(test_settings_writable_over_code),
		cmocka_unit_test(test_settings_webroot),
		cmocka_unit_test(test_settings_unknown_key),
		cmocka_unit_test(test_image_processes),
		cmocka_unit_test(test_image_user),
		cmocka_unit_test(test_image_health),
		cmocka_unit_test(test_image_other_fields),
		cmocka_unit_test(test_mount_points_are_dirs),
		cmocka_unit_test(test_writable_entries),
		cmocka_unit_test(test_links_into_mounts),
		cmocka_unit_test(test_links_above_mounts),
		cmocka_unit_test(test_link_chains),
		cmocka_unit_test(test_links_allowed),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
