/* The store: a bundle file is used without reading its body only when it
 * verified before; a copy changed after it verified (drift) is refused,
 * reported entry by entry, and unpacked afresh from the bundle file; gc
 * leaves pinned copies alone; a policy refusal writes nothing. */
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

#include "store.h"
#include "testutil.h"

struct fixture {
	char *dir, *root, *bundle;
	struct slate_key key;
	struct slate_keyring kr;
	char id[SLATE_SHA256_HEX];
};

static void add_text(struct slate_manifest *m, const char *path, unsigned mode, const char *text)
{
	struct slate_entry *e = add_entry(m, path, SLATE_ENTRY_FILE, mode);
	slate_error_t err = { 0 };

	e->size = strlen(text);
	e->data = xstrdup(text);
	assert_int_equal(slate_sha256_buf(text, e->size, e->sha256, &err), 0);
}

static int fixture_setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct slate_manifest m;
	slate_error_t err = { 0 };
	cleanup_free char *key = NULL, *pub = NULL;

	*state = f;
	f->dir = make_tmpdir();
	if (f->dir == NULL)
		return -1;
	f->root = path_join(f->dir, "root");
	f->bundle = path_join(f->dir, "b.slate");
	key = path_join(f->dir, "key");
	pub = path_join(f->dir, "key.pub");
	if (slate_key_generate(key, &f->key, &err) < 0 || slate_keyring_add_file(&f->kr, pub, &err) < 0)
		return -1;
	slate_manifest_init(&m);
	m.name = xstrdup("demo");
	m.version = xstrdup("1");
	m.created = 1700000000;
	m.sequence = 5;
	/* What the one validator accepts: the image's mount points, the
	 * webroot and the writable directories. */
	m.image = json_loads(test_image_json, 0, NULL);
	m.settings = json_loads(test_settings_json, 0, NULL);
	static const char *const dirs[] = { "dev", "etc", "proc", "run", "sys", "tmp", "app", NULL };
	for (size_t i = 0; dirs[i]; i++)
		add_entry(&m, dirs[i], SLATE_ENTRY_DIR, 0755);
	add_text(&m, "etc/hosts", 0644, "127.0.0.1 localhost\n");
	add_text(&m, "app/index.php", 0644, "<?php echo 1;\n");
	add_link(&m, "app/l", "index.php");
	add_entry(&m, "app/storage", SLATE_ENTRY_DIR, 0755);
	add_entry(&m, "app/web", SLATE_ENTRY_DIR, 0755);
	add_entry(&m, "app/web/cpresources", SLATE_ENTRY_DIR, 0755);
	/* Enough incompressible bytes that the end of the file is far from its head. */
	char *big = xmalloc(200001);
	uint32_t x = 7;
	for (size_t i = 0; i < 200000; i++) {
		x = x * 1103515245 + 12345;
		big[i] = "0123456789abcdef"[(x >> 16) & 15];
	}
	big[200000] = '\0';
	add_text(&m, "app/z-big", 0644, big);
	free(big);
	slate_manifest_sort(&m);
	int r = slate_bundle_write(f->bundle, &m, &f->key, 3, 0, NULL, f->id, &err);
	slate_manifest_free(&m);
	return r;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	if (f->dir)
		rm_tree(f->dir);
	slate_key_free(&f->key);
	slate_keyring_free(&f->kr);
	free(f->dir);
	free(f->root);
	free(f->bundle);
	free(f);
	return 0;
}

static void add_ok(struct fixture *f, const char *bundle, struct slate_stored *s)
{
	slate_error_t err = { 0 };

	if (slate_store_add(f->root, bundle, &f->kr, NULL, NULL, s, &err) != 0)
		fail_msg("add: %s", err.msg);
	assert_string_equal(s->id, f->id);
	assert_true(s->pinned);
}

static char *store_path(struct fixture *f, const char *rel)
{
	return xasprintf("%s/store/%s%s", f->root, f->id, rel);
}

/* The store's names other than the copy itself (temporaries, locks, drifted copies). */
static size_t store_extras(struct fixture *f)
{
	cleanup_free char *store = path_join(f->root, "store");

	return count_entries(store) - 1;
}

static void test_add_then_reuse(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 };

	add_ok(f, f->bundle, &s);
	assert_true(s.unpacked);
	slate_stored_free(&s);
	add_ok(f, f->bundle, &s);
	assert_false(s.unpacked);
	slate_stored_free(&s);
	assert_int_equal(store_extras(f), 0);
}

/* Same head, corrupt body: verified in full, refused; the copy untouched. */
static void test_corrupt_body_of_a_stored_bundle(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 };
	slate_error_t err = { 0 };
	cleanup_free char *bad = path_join(f->dir, "bad.slate");
	struct stat st;

	add_ok(f, f->bundle, &s);
	slate_stored_free(&s);
	assert_int_equal(stat(f->bundle, &st), 0);
	cleanup_free char *cmd = xasprintf("head -c %lld %s > %s", (long long)st.st_size - 20, f->bundle, bad);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(slate_store_add(f->root, bad, &f->kr, NULL, NULL, &s, &err), -1);
	assert_int_equal(err.kind, SLATE_EXIT_REFUSED);
	/* A small bundle's truncated frame is seen while its head is read
	 * (the reader decompresses ahead); otherwise the id is known, for
	 * the audit. */
	if (s.id[0] != '\0')
		assert_string_equal(s.id, f->id);
	assert_false(s.pinned);
	slate_stored_free(&s);
	memset(&err, 0, sizeof(err));
	assert_int_equal(slate_store_load(f->root, f->id, &s, &err), 0);
	slate_stored_free(&s);
}

/* The same file (same inode) rewritten in place after it verified: its
 * identity no longer matches (ctime moved), so it is hashed and verified
 * in full, and refused. */
static void test_same_file_rewritten_in_place(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 };
	slate_error_t err = { 0 };
	struct stat st;
	unsigned char byte;
	int fd;

	add_ok(f, f->bundle, &s);
	slate_stored_free(&s);
	add_ok(f, f->bundle, &s); /* known by identity now */
	slate_stored_free(&s);
	fd = open(f->bundle, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(pread(fd, &byte, 1, st.st_size - 40), 1);
	byte ^= 0x55;
	assert_int_equal(pwrite(fd, &byte, 1, st.st_size - 40), 1);
	close(fd);
	assert_int_equal(slate_store_add(f->root, f->bundle, &f->kr, NULL, NULL, &s, &err), -1);
	assert_int_equal(err.kind, SLATE_EXIT_REFUSED);
	slate_stored_free(&s);
}

static int refuse_all(void *ctx, const struct slate_manifest *m, slate_error_t *err)
{
	*(int64_t *)ctx = m->sequence;
	return slate_error_refuse(err, "no, thanks");
}

static void test_policy_refusal_writes_nothing(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 };
	slate_error_t err = { 0 };
	int64_t seen = 0;
	cleanup_free char *store = path_join(f->root, "store");

	assert_int_equal(slate_store_add(f->root, f->bundle, &f->kr, refuse_all, &seen, &s, &err), -1);
	assert_refused(&err, "no, thanks");
	assert_int_equal(seen, 5);
	assert_int_equal(access(f->root, F_OK), -1);
	slate_stored_free(&s);
}

struct problems {
	char text[4096];
};

static void collect(void *ctx, const char *path, const char *what)
{
	struct problems *p = ctx;
	size_t n = strlen(p->text);

	snprintf(p->text + n, sizeof(p->text) - n, "%s: %s\n", path, what);
}

static void check_copy(struct fixture *f, const char *want)
{
	struct slate_stored s = { 0 };
	struct problems p = { "" };
	slate_error_t err = { 0 };
	size_t n = 0;

	assert_int_equal(slate_store_load_full(f->root, f->id, &s, &err), 0);
	assert_int_equal(slate_store_check(&s, collect, &p, &n, &err), 0);
	assert_string_equal(p.text, want);
	slate_stored_free(&s);
}

static void assert_drifted(struct fixture *f)
{
	struct slate_stored s = { 0 };
	slate_error_t err = { 0 };

	assert_int_equal(slate_store_load(f->root, f->id, &s, &err), -1);
	assert_refused(&err, "drifted");
	assert_false(s.pinned);
	slate_stored_free(&s);
}

/* An added file (with a newline in its name) breaks the seal, and the
 * check reports it, escaped. */
static void test_added_entry(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 };
	cleanup_free char *added = store_path(f, "/root/app/x\nevil: ok");

	add_ok(f, f->bundle, &s);
	slate_stored_free(&s);
	check_copy(f, "");
	write_text(added, "<?php system($_GET['c']);\n");
	assert_drifted(f);
	check_copy(f, "app/x\\x0aevil: ok: added\n");
}

/* chmod, a rewrite with the same bytes, a removal: each breaks the seal. */
static void test_metadata_and_content_changes(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 };
	cleanup_free char *hosts = store_path(f, "/root/etc/hosts"), *index = store_path(f, "/root/app/index.php");
	cleanup_free char *meta = store_path(f, "/meta.json");
	static const char *const kinds[] = { "chmod", "rewrite", "remove", "meta" };

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		add_ok(f, f->bundle, &s);
		slate_stored_free(&s);
		if (i == 0)
			assert_int_equal(chmod(hosts, 0666), 0);
		else if (i == 1)
			write_text(index, "<?php echo 1;\n");
		else if (i == 2)
			assert_int_equal(unlink(hosts), 0);
		else {
			cleanup_free char *text = read_text(meta);
			write_text(meta, text);
		}
		assert_drifted(f);
		if (i == 0)
			check_copy(f, "etc/hosts: mode changed\n");
		else if (i == 2)
			check_copy(f, "etc/hosts: missing\n");
		/* The bundle file at hand: unpacked afresh, the old copy kept aside. */
		add_ok(f, f->bundle, &s);
		assert_true(s.unpacked);
		slate_stored_free(&s);
		check_copy(f, "");
		assert_int_equal(store_extras(f), i + 1);
	}
}

static void test_repair(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 };
	slate_error_t err = { 0 };
	cleanup_free char *hosts = store_path(f, "/root/etc/hosts");
	char other[SLATE_SHA256_HEX];

	add_ok(f, f->bundle, &s);
	slate_stored_free(&s);
	write_text(hosts, "10.0.0.1 localhost\n");
	assert_drifted(f);
	memset(other, 'a', sizeof(other) - 1);
	other[sizeof(other) - 1] = '\0';
	assert_int_equal(slate_store_repair(f->root, other, f->bundle, &f->kr, &err), -1);
	assert_refused(&err, "not aaaaaaaaaaaa");
	memset(&err, 0, sizeof(err));
	assert_int_equal(slate_store_repair(f->root, f->id, f->bundle, &f->kr, &err), 0);
	assert_int_equal(slate_store_load(f->root, f->id, &s, &err), 0);
	slate_stored_free(&s);
	check_copy(f, "");
}

/* A copy stored by an older slate (no seal, a lock file left): the next
 * command's clean-up re-hashes and seals it, and removes the free lock; a
 * drifted one is sealed as drifted. slate_store_load refuses an unsealed
 * copy (slate-monitor cannot re-hash). */
static void test_copy_without_a_seal(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 };
	slate_error_t err = { 0 };
	cleanup_free char *seal = store_path(f, "/seal"), *lock = store_path(f, ".lock");
	cleanup_free char *hosts = store_path(f, "/root/etc/hosts");

	add_ok(f, f->bundle, &s);
	slate_stored_free(&s);
	assert_int_equal(unlink(seal), 0);
	write_text(lock, "");
	assert_int_equal(slate_store_load(f->root, f->id, &s, &err), -1);
	assert_refused(&err, "has no seal");
	slate_stored_free(&s);
	assert_int_equal(slate_store_clean_stale(f->root, &err), 0);
	assert_int_equal(access(lock, F_OK), -1);
	memset(&err, 0, sizeof(err));
	assert_int_equal(slate_store_load(f->root, f->id, &s, &err), 0);
	slate_stored_free(&s);

	assert_int_equal(unlink(seal), 0);
	write_text(hosts, "10.0.0.1 localhost\n");
	assert_int_equal(slate_store_clean_stale(f->root, &err), 0);
	cleanup_free char *text = read_text(seal);
	assert_string_equal(text, "drifted\n");
	assert_drifted(f);
}

static int n_removed_seen, n_in_use_seen;

static void on_removed(const char *name)
{
	(void)name;
	n_removed_seen++;
}

static void on_in_use(const char *name)
{
	(void)name;
	n_in_use_seen++;
}

/* gc skips a pinned copy, removes it once unpinned, and leaves no lock file. */
static void test_gc_skips_pinned(void **state)
{
	struct fixture *f = *state;
	struct slate_stored s = { 0 }, used = { 0 };
	struct slate_strv keep = { 0 };
	slate_error_t err = { 0 };
	cleanup_free char *dir = store_path(f, "");
	int n = 0;

	add_ok(f, f->bundle, &s);
	slate_stored_free(&s);
	assert_int_equal(slate_store_load(f->root, f->id, &used, &err), 0);
	n_removed_seen = n_in_use_seen = 0;
	assert_int_equal(slate_store_gc(f->root, &keep, on_removed, on_in_use, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(n_in_use_seen, 1);
	assert_int_equal(access(dir, F_OK), 0);
	slate_stored_free(&used);
	assert_int_equal(slate_store_gc(f->root, &keep, on_removed, on_in_use, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(n_removed_seen, 1);
	assert_int_equal(access(dir, F_OK), -1);
	cleanup_free char *store = path_join(f->root, "store");
	assert_int_equal(count_entries(store), 0);
	memset(&err, 0, sizeof(err));
	assert_int_equal(slate_store_load(f->root, f->id, &used, &err), -1);
	assert_non_null(strstr(err.msg, "not in the store"));
	slate_stored_free(&used);
}

#define fixture_test(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		fixture_test(test_add_then_reuse),
		fixture_test(test_corrupt_body_of_a_stored_bundle),
		fixture_test(test_same_file_rewritten_in_place),
		fixture_test(test_policy_refusal_writes_nothing),
		fixture_test(test_added_entry),
		fixture_test(test_metadata_and_content_changes),
		fixture_test(test_repair),
		fixture_test(test_gc_skips_pinned),
		fixture_test(test_copy_without_a_seal),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
