/* Unit tests for lib/manifest.c: the canonical round trip, and every
 * refusal of slate_manifest_parse() on untrusted bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "slate/hash.h"
#include "slate/manifest.h"
#include "slate/util.h"

#define HOSTS "127.0.0.1 localhost\n"
#define INDEX "<?php echo 1;\n"

/* ---- building manifests ---- */

static void add_dir(struct slate_manifest *m, const char *path)
{
	add_entry(m, path, SLATE_ENTRY_DIR, 0755);
}

static void add_file(struct slate_manifest *m, const char *path, const char *content)
{
	struct slate_entry *e = add_entry(m, path, SLATE_ENTRY_FILE, 0644);
	slate_error_t err = { 0 };

	e->size = strlen(content);
	assert_int_equal(slate_sha256_buf(content, e->size, e->sha256, &err), 0);
}

static void init_meta(struct slate_manifest *m)
{
	slate_manifest_init(m);
	m->name = xstrdup("demo");
	m->version = xstrdup("1.2.3");
	m->created = 1700000000;
	m->sequence = 7;
	m->signer = xstrdup("0123456789abcdef");
	m->image = json_pack("{s:s}", "name", "php-8.2");
	m->settings = json_pack("{s:s}", "webroot", "web");
}

/* The image part (etc), then the project part (app), in archive order. */
static void init_sample(struct slate_manifest *m)
{
	init_meta(m);
	add_dir(m, "etc");
	add_file(m, "etc/hosts", HOSTS);
	add_link(m, "etc/link", "hosts");
	add_dir(m, "app");
	add_file(m, "app/index.php", INDEX);
}

static char *serialize(const struct slate_manifest *m, size_t *len)
{
	slate_error_t err = { 0 };
	char *s = slate_manifest_serialize(m, len, &err);

	if (s == NULL)
		fail_msg("serialize: %s", err.msg);
	return s;
}

static char *sample_text(void)
{
	struct slate_manifest m;
	char *s;

	init_sample(&m);
	s = serialize(&m, NULL);
	slate_manifest_free(&m);
	return s;
}

/* s with the first `from` replaced by `to` (which must occur). */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);

	if (at == NULL)
		fail_msg("`%s` not in `%s`", from, s);
	return xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

static int parse_with(const char *buf, size_t len, const struct slate_limits *lim, slate_error_t *err)
{
	struct slate_manifest out;
	int r = slate_manifest_parse(buf, len, lim, &out, err);

	if (r == 0)
		slate_manifest_free(&out);
	return r;
}

/* Free everything first, then assert: a failing check leaks nothing. */
static void assert_refusal(int r, const slate_error_t *err, const char *needle)
{
	if (r != -1)
		fail_msg("manifest accepted, want a refusal naming `%s`", needle);
	assert_refused(err, needle);
}

static void assert_text_refused(const char *text, const char *needle)
{
	struct slate_limits lim;
	slate_error_t err = { 0 };

	slate_limits_default(&lim);
	assert_refusal(parse_with(text, strlen(text), &lim, &err), &err, needle);
}

/* The sample text with one substitution must be refused. */
static void assert_edit_refused(const char *from, const char *to, const char *needle)
{
	char *text = sample_text(), *bad = replace(text, from, to);
	struct slate_limits lim;
	slate_error_t err = { 0 };
	int r;

	slate_limits_default(&lim);
	r = parse_with(bad, strlen(bad), &lim, &err);
	free(bad);
	free(text);
	assert_refusal(r, &err, needle);
}

/* Serialise m (which the writer never validates), parse it back, free m. */
static void assert_manifest_refused_with(struct slate_manifest *m, const struct slate_limits *lim,
					 const char *needle)
{
	char *text = serialize(m, NULL);
	slate_error_t err = { 0 };
	int r = parse_with(text, strlen(text), lim, &err);

	free(text);
	slate_manifest_free(m);
	assert_refusal(r, &err, needle);
}

static void assert_manifest_refused(struct slate_manifest *m, const char *needle)
{
	struct slate_limits lim;

	slate_limits_default(&lim);
	assert_manifest_refused_with(m, &lim, needle);
}

/* ---- round trip ---- */

static void test_round_trip_is_byte_identical(void **state)
{
	struct slate_limits lim;
	struct slate_manifest m;
	slate_error_t err = { 0 };
	size_t len = 0, len2 = 0;
	char *text = sample_text(), *again;

	(void)state;
	len = strlen(text);
	slate_limits_default(&lim);
	assert_int_equal(slate_manifest_parse(text, len, &lim, &m, &err), 0);
	again = serialize(&m, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(again, text, len);
	free(again);
	free(text);
	slate_manifest_free(&m);
}

static void test_parse_fills_fields(void **state)
{
	struct slate_limits lim;
	struct slate_manifest m, want;
	slate_error_t err = { 0 };
	char *text = sample_text();

	(void)state;
	slate_limits_default(&lim);
	init_sample(&want);
	assert_int_equal(slate_manifest_parse(text, strlen(text), &lim, &m, &err), 0);
	assert_string_equal(m.name, "demo");
	assert_string_equal(m.version, "1.2.3");
	assert_string_equal(m.signer, "0123456789abcdef");
	assert_int_equal(m.created, 1700000000);
	assert_int_equal(m.sequence, 7);
	assert_string_equal(json_string_value(json_object_get(m.settings, "webroot")), "web");
	assert_int_equal(m.n_entries, 5);
	assert_int_equal(m.total_size, strlen(HOSTS) + strlen(INDEX));
	assert_string_equal(m.entries[1].path, "etc/hosts");
	assert_int_equal(m.entries[1].type, SLATE_ENTRY_FILE);
	assert_int_equal(m.entries[1].mode, 0644);
	assert_memory_equal(m.entries[1].sha256, want.entries[1].sha256, SLATE_SHA256_LEN);
	assert_int_equal(m.entries[2].type, SLATE_ENTRY_SYMLINK);
	assert_string_equal(m.entries[2].target, "hosts");
	assert_int_equal(m.entries[3].type, SLATE_ENTRY_DIR);
	free(text);
	slate_manifest_free(&m);
	slate_manifest_free(&want);
}

/* image and settings default to empty objects (and nothing leaks: run
 * under ASan or valgrind). */
static void test_serialize_without_image_or_settings(void **state)
{
	struct slate_manifest m;
	char *text;

	(void)state;
	slate_manifest_init(&m);
	text = serialize(&m, NULL);
	slate_manifest_free(&m);
	assert_string_equal(text, "{\"created\":0,\"entries\":[],\"format\":1,\"image\":{},\"name\":\"\","
				  "\"sequence\":0,\"settings\":{},\"signer\":\"\",\"version\":\"\"}");
	free(text);
}

/* ---- refusals of the encoding ---- */

static void test_refuses_extra_space(void **state)
{
	(void)state;
	assert_edit_refused("\"format\":1", "\"format\": 1", "not in canonical form");
}

static void test_refuses_unsorted_keys(void **state)
{
	(void)state;
	assert_edit_refused("{\"mode\":493,\"path\":\"app\",\"type\":\"dir\"}",
			    "{\"path\":\"app\",\"mode\":493,\"type\":\"dir\"}", "not in canonical form");
}

static void test_refuses_duplicate_json_keys(void **state)
{
	(void)state;
	assert_edit_refused("\"format\":1", "\"format\":1,\"format\":1", "duplicate");
}

static void test_refuses_invalid_json(void **state)
{
	(void)state;
	assert_text_refused("{\"format\":1", "invalid JSON");
	assert_text_refused("[]", "not a JSON object");
}

static void test_refuses_unknown_top_level_key(void **state)
{
	(void)state;
	assert_edit_refused("\"format\":1", "\"format\":1,\"hooks\":{}", "unknown key `hooks`");
}

static void test_refuses_unknown_entry_key(void **state)
{
	(void)state;
	assert_edit_refused("\"path\":\"etc\",\"type\":\"dir\"}", "\"path\":\"etc\",\"type\":\"dir\",\"uid\":0}",
			    "unknown key `uid`");
}

static void test_refuses_missing_key(void **state)
{
	(void)state;
	assert_edit_refused("\"sequence\":7,", "", "missing `sequence`");
}

static void test_refuses_wrong_format_version(void **state)
{
	(void)state;
	assert_edit_refused("\"format\":1", "\"format\":2", "unsupported format version 2");
}

static void test_refuses_bad_type(void **state)
{
	(void)state;
	assert_edit_refused("\"path\":\"etc\",\"type\":\"dir\"", "\"path\":\"etc\",\"type\":\"fifo\"",
			    "entry `etc` has unknown type `fifo`");
	assert_edit_refused("\"name\":\"demo\"", "\"name\":5", "`name` must be a string");
	assert_edit_refused("\"image\":{\"name\":\"php-8.2\"}", "\"image\":[]", "`image` and `settings` must be objects");
}

static void test_refuses_bad_sha256(void **state)
{
	char hex[SLATE_SHA256_HEX], *upper;
	unsigned char digest[SLATE_SHA256_LEN];
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(slate_sha256_buf(HOSTS, strlen(HOSTS), digest, &err), 0);
	slate_hex(digest, SLATE_SHA256_LEN, hex);
	upper = xstrdup(hex);
	for (char *c = upper; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	assert_edit_refused(hex, upper, "entry `etc/hosts` has a malformed sha256");
	free(upper);
	assert_edit_refused(hex, "abcd", "entry `etc/hosts` has a malformed sha256");
	upper = xasprintf("g%s", hex + 1);
	assert_edit_refused(hex, upper, "entry `etc/hosts` has a malformed sha256");
	free(upper);
}

static void test_refuses_negative_and_real_numbers(void **state)
{
	(void)state;
	assert_edit_refused("\"size\":20", "\"size\":-20", "`size` must be a non-negative integer");
	assert_edit_refused("\"size\":20", "\"size\":20.0", "`size` must be a non-negative integer");
	assert_edit_refused("\"created\":1700000000", "\"created\":-1", "`created` must be a non-negative integer");
	assert_edit_refused("\"mode\":493", "\"mode\":493.0", "`mode` must be a non-negative integer");
}

/* ---- refusals of the content ---- */

static void test_refuses_setid_and_sticky_modes(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_sample(&m);
	m.entries[1].mode = 04755;
	assert_manifest_refused(&m, "entry `etc/hosts` has set-id or sticky bits");
	init_sample(&m);
	m.entries[0].mode = 01777;
	assert_manifest_refused(&m, "entry `etc` has set-id or sticky bits");
	assert_edit_refused("\"mode\":493,\"path\":\"etc\"", "\"mode\":4096,\"path\":\"etc\"",
			    "entry `etc` has invalid mode");
}

static void test_refuses_unsafe_entry_path(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_file(&m, "/etc/passwd", "x");
	assert_manifest_refused(&m, "`/etc/passwd`: absolute");
	init_meta(&m);
	add_dir(&m, "a");
	add_file(&m, "a/../../x", "x");
	assert_manifest_refused(&m, "`a/../../x`: `..` component");
}

static void test_refuses_out_of_order(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_file(&m, "b", "x");
	add_file(&m, "a", "x");
	assert_manifest_refused(&m, "entry `a` out of order");
	init_meta(&m);
	add_dir(&m, "app");
	add_dir(&m, "etc");
	assert_manifest_refused(&m, "entry `etc` out of order");
}

static void test_refuses_duplicate_entry(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_dir(&m, "a");
	add_dir(&m, "a");
	assert_manifest_refused(&m, "duplicate entry `a`");
}

static void test_refuses_missing_parent(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_file(&m, "a/b", "x");
	assert_manifest_refused(&m, "`a/b`: parent directory not listed before it");
}

static void test_refuses_parent_file(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_file(&m, "a", "x");
	add_file(&m, "a/b", "x");
	assert_manifest_refused(&m, "`a/b`: parent `a` is not a directory");
}

static void test_refuses_path_through_symlink(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_dir(&m, "etc");
	add_link(&m, "etc/link", "../usr");
	add_file(&m, "etc/link/x", "x");
	assert_manifest_refused(&m, "`etc/link/x`: goes through symlink `etc/link`");
}

static void test_refuses_symlink_target_absolute(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_link(&m, "l", "/etc/shadow");
	assert_manifest_refused(&m, "`l`: absolute target `/etc/shadow`");
}

static void test_refuses_symlink_target_leaving(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_dir(&m, "a");
	add_link(&m, "a/l", "../../etc/shadow");
	assert_manifest_refused(&m, "`a/l`: target `../../etc/shadow` leaves the tree");
}

/* a/s -> ".." is the root; a/t -> "s/../../x" then climbs two levels
 * above it. Each target stays inside lexically; resolved, t leaves. */
static void test_refuses_symlink_chain_leaving(void **state)
{
	struct slate_manifest m;

	(void)state;
	init_meta(&m);
	add_dir(&m, "a");
	add_link(&m, "a/s", "..");
	add_link(&m, "a/t", "s/../../x");
	assert_manifest_refused(&m, "`a/t`");
}

/* ---- limits ---- */

static void test_limit_entries(void **state)
{
	struct slate_manifest m;
	struct slate_limits lim;

	(void)state;
	slate_limits_default(&lim);
	lim.max_entries = 4;
	init_sample(&m);
	assert_manifest_refused_with(&m, &lim, "5 entries, more than the limit of 4");
}

static void test_limit_total_bytes(void **state)
{
	struct slate_manifest m;
	struct slate_limits lim;

	(void)state;
	slate_limits_default(&lim);
	lim.max_total_bytes = strlen(HOSTS) + strlen(INDEX) - 1;
	init_sample(&m);
	assert_manifest_refused_with(&m, &lim, "bundle content larger than the limit");
}

static void test_limit_file_bytes(void **state)
{
	struct slate_manifest m;
	struct slate_limits lim;

	(void)state;
	slate_limits_default(&lim);
	lim.max_file_bytes = strlen(HOSTS) - 1;
	init_sample(&m);
	assert_manifest_refused_with(&m, &lim, "entry `etc/hosts` is larger than the limit");
}

static void test_limit_path(void **state)
{
	struct slate_manifest m;
	struct slate_limits lim;

	(void)state;
	slate_limits_default(&lim);
	lim.max_path = 8;
	init_sample(&m);
	assert_manifest_refused_with(&m, &lim, "`etc/hosts...`: longer than 8 bytes");
}

static void test_limit_manifest_bytes(void **state)
{
	struct slate_limits lim;
	slate_error_t err = { 0 };
	char *text = sample_text();
	size_t len = strlen(text);

	(void)state;
	slate_limits_default(&lim);
	lim.max_manifest_bytes = len;
	assert_int_equal(parse_with(text, len, &lim, &err), 0);
	lim.max_manifest_bytes = len - 1;
	assert_int_equal(parse_with(text, len, &lim, &err), -1);
	assert_refused(&err, "manifest larger than the limit");
	free(text);
}

/* ---- order and the app part ---- */

static void test_sort_puts_image_before_app(void **state)
{
	const char *want[] = { "a", "app-x", "apps/y", "b", "app", "app/x", "app/x/y" };
	struct slate_manifest m;

	(void)state;
	slate_manifest_init(&m);
	add_dir(&m, "app/x");
	add_dir(&m, "b");
	add_dir(&m, "app");
	add_dir(&m, "apps/y");
	add_dir(&m, "app/x/y");
	add_dir(&m, "a");
	add_dir(&m, "app-x");
	slate_manifest_sort(&m);
	for (size_t i = 0; i < m.n_entries; i++)
		assert_string_equal(m.entries[i].path, want[i]);
	slate_manifest_free(&m);
}

static void test_entry_is_app(void **state)
{
	struct slate_entry e = { 0 };

	(void)state;
	e.path = "app";
	assert_true(slate_entry_is_app(&e));
	e.path = "app/web/index.php";
	assert_true(slate_entry_is_app(&e));
	e.path = "apps";
	assert_false(slate_entry_is_app(&e));
	e.path = "app-data/x";
	assert_false(slate_entry_is_app(&e));
	e.path = "srv/app";
	assert_false(slate_entry_is_app(&e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_is_byte_identical),
		cmocka_unit_test(test_parse_fills_fields),
		cmocka_unit_test(test_serialize_without_image_or_settings),
		cmocka_unit_test(test_refuses_extra_space),
		cmocka_unit_test(test_refuses_unsorted_keys),
		cmocka_unit_test(test_refuses_duplicate_json_keys),
		cmocka_unit_test(test_refuses_invalid_json),
		cmocka_unit_test(test_refuses_unknown_top_level_key),
		cmocka_unit_test(test_refuses_unknown_entry_key),
		cmocka_unit_test(test_refuses_missing_key),
		cmocka_unit_test(test_refuses_wrong_format_version),
		cmocka_unit_test(test_refuses_bad_type),
		cmocka_unit_test(test_refuses_bad_sha256),
		cmocka_unit_test(test_refuses_negative_and_real_numbers),
		cmocka_unit_test(test_refuses_setid_and_sticky_modes),
		cmocka_unit_test(test_refuses_unsafe_entry_path),
		cmocka_unit_test(test_refuses_out_of_order),
		cmocka_unit_test(test_refuses_duplicate_entry),
		cmocka_unit_test(test_refuses_missing_parent),
		cmocka_unit_test(test_refuses_parent_file),
		cmocka_unit_test(test_refuses_path_through_symlink),
		cmocka_unit_test(test_refuses_symlink_target_absolute),
		cmocka_unit_test(test_refuses_symlink_target_leaving),
		cmocka_unit_test(test_refuses_symlink_chain_leaving),
		cmocka_unit_test(test_limit_entries),
		cmocka_unit_test(test_limit_total_bytes),
		cmocka_unit_test(test_limit_file_bytes),
		cmocka_unit_test(test_limit_path),
		cmocka_unit_test(test_limit_manifest_bytes),
		cmocka_unit_test(test_sort_puts_image_before_app),
		cmocka_unit_test(test_entry_is_app),
	};

	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
