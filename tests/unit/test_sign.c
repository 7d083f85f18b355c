/* Unit tests for lib/sign.c: Ed25519 key files, key ids, keyrings, and
 * manifest signatures (with the domain prefix really in the message). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "slate/sign.h"
#include "slate/util.h"

static const char manifest[] = "{\"entries\":[],\"format\":1}";

/* ---- fixtures ---- */

struct fixture {
	char dir[64];
	char *key, *pub;
};

static int fixture_setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/slate-test-sign-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	f->key = xasprintf("%s/key", f->dir);
	f->pub = xasprintf("%s/key.pub", f->dir);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	rm_tree(f->dir);
	free(f->key);
	free(f->pub);
	free(f);
	return 0;
}

static void generate(const char *path, struct slate_key *key)
{
	slate_error_t err = { 0 };

	if (slate_key_generate(path, key, &err) != 0)
		fail_msg("generate `%s`: %s", path, err.msg);
}

static void keyring_of(struct slate_keyring *kr, const char *pub)
{
	slate_error_t err = { 0 };

	memset(kr, 0, sizeof(*kr));
	if (slate_keyring_add_file(kr, pub, &err) != 0)
		fail_msg("keyring `%s`: %s", pub, err.msg);
}

static void sign(const struct slate_key *key, const void *msg, size_t len, unsigned char sig[SLATE_SIG_LEN])
{
	slate_error_t err = { 0 };

	if (slate_sign_manifest(key, msg, len, sig, &err) != 0)
		fail_msg("sign: %s", err.msg);
}

/* Check siglen bytes of sig, in a signature member naming key `by`, over
 * prefix || msg. */
static int verify_signer(const struct slate_keyring *kr, const struct slate_key *by, const void *msg, size_t len,
			 const unsigned char *sig, size_t siglen, const struct slate_key **signer, slate_error_t *err)
{
	unsigned char full[SLATE_SIG_LEN] = { 0 }, member[SLATE_SIG_MEMBER_LEN];
	char *text = xmalloc(SLATE_SIGN_PREFIX_LEN + len);
	int r;

	memcpy(full, sig, siglen < SLATE_SIG_LEN ? siglen : SLATE_SIG_LEN);
	slate_sig_member(by, full, member);
	memcpy(text, SLATE_SIGN_PREFIX, SLATE_SIGN_PREFIX_LEN);
	memcpy(text + SLATE_SIGN_PREFIX_LEN, msg, len);
	r = slate_verify_manifest(kr, text, SLATE_SIGN_PREFIX_LEN + len, member, SLATE_KEYID_LEN + siglen, signer, err);
	free(text);
	return r;
}

static int verify(const struct slate_keyring *kr, const struct slate_key *by, const void *msg, size_t len,
		  const unsigned char *sig, size_t siglen, slate_error_t *err)
{
	const struct slate_key *signer = NULL;

	return verify_signer(kr, by, msg, len, sig, siglen, &signer, err);
}

static bool is_key_id(const char *id)
{
	if (strlen(id) != 16)
		return false;
	for (const char *c = id; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

/* ---- key files ---- */

static void test_generate_writes_both_files(void **state)
{
	struct fixture *f = *state;
	struct slate_key key;
	struct stat st;

	generate(f->key, &key);
	assert_true(key.has_private);
	assert_true(is_key_id(key.id));
	assert_int_equal(lstat(f->key, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(lstat(f->pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	slate_key_free(&key);
}

static void test_generate_refuses_existing_private(void **state)
{
	struct fixture *f = *state;
	struct slate_key key;
	slate_error_t err = { 0 };
	char *text;

	write_text(f->key, "keep me\n");
	assert_int_equal(slate_key_generate(f->key, &key, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, f->key);
	assert_non_null(strstr(err.msg, "refusing to overwrite"));
	assert_int_equal(access(f->pub, F_OK), -1);
	text = read_text(f->key);
	assert_string_equal(text, "keep me\n");
	free(text);
}

static void test_generate_refuses_existing_public(void **state)
{
	struct fixture *f = *state;
	struct slate_key key;
	slate_error_t err = { 0 };
	char *text;

	write_text(f->pub, "keep me\n");
	assert_int_equal(slate_key_generate(f->key, &key, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, f->pub);
	assert_non_null(strstr(err.msg, "refusing to overwrite"));
	assert_int_equal(access(f->key, F_OK), -1);
	text = read_text(f->pub);
	assert_string_equal(text, "keep me\n");
	free(text);
}

static void test_generate_refuses_symlink(void **state)
{
	struct fixture *f = *state;
	char *victim = xasprintf("%s/victim", f->dir);
	struct slate_key key;
	slate_error_t err = { 0 };

	assert_int_equal(symlink(victim, f->key), 0);
	assert_int_equal(slate_key_generate(f->key, &key, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, f->key);
	assert_int_equal(access(victim, F_OK), -1);
	assert_int_equal(access(f->pub, F_OK), -1);
	free(victim);
}

static void test_load_private_and_public_same_id(void **state)
{
	struct fixture *f = *state;
	struct slate_key gen, priv, pub;
	slate_error_t err = { 0 };

	generate(f->key, &gen);
	assert_int_equal(slate_key_load_private(f->key, &priv, &err), 0);
	assert_int_equal(slate_key_load_public(f->pub, &pub, &err), 0);
	assert_true(priv.has_private);
	assert_false(pub.has_private);
	assert_true(is_key_id(pub.id));
	assert_string_equal(priv.id, gen.id);
	assert_string_equal(pub.id, gen.id);
	assert_string_equal(pub.source, f->pub);
	slate_key_free(&gen);
	slate_key_free(&priv);
	slate_key_free(&pub);
}

static void test_two_keys_have_different_ids(void **state)
{
	struct fixture *f = *state;
	char *other = xasprintf("%s/other", f->dir);
	struct slate_key a, b;

	generate(f->key, &a);
	generate(other, &b);
	assert_string_not_equal(a.id, b.id);
	slate_key_free(&a);
	slate_key_free(&b);
	free(other);
}

static void test_load_refuses_wrong_kind_of_pem(void **state)
{
	struct fixture *f = *state;
	struct slate_key key, loaded;
	slate_error_t err = { 0 };

	generate(f->key, &key);
	assert_int_equal(slate_key_load_public(f->key, &loaded, &err), -1);
	assert_refused(&err, f->key);
	assert_non_null(strstr(err.msg, "not a PEM public key"));
	assert_int_equal(slate_key_load_private(f->pub, &loaded, &err), -1);
	assert_refused(&err, f->pub);
	assert_non_null(strstr(err.msg, "not a PEM private key"));
	slate_key_free(&key);
}

static void test_load_refuses_garbage_and_missing(void **state)
{
	struct fixture *f = *state;
	struct slate_key key;
	slate_error_t err = { 0 };

	write_text(f->pub, "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
	assert_int_equal(slate_key_load_public(f->pub, &key, &err), -1);
	assert_refused(&err, f->pub);
	assert_int_equal(slate_key_load_private(f->key, &key, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, f->key);
	assert_int_equal(err.errnum, ENOENT);
}

/* An EC P-256 key pair written with OpenSSL directly. */
static void write_ec_pair(const char *priv, const char *pub)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	FILE *f;

	assert_non_null(pkey);
	f = fopen(priv, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	f = fopen(pub, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, pkey), 1);
	fclose(f);
	EVP_PKEY_free(pkey);
}

static void test_load_refuses_non_ed25519(void **state)
{
	struct fixture *f = *state;
	struct slate_keyring kr = { 0 };
	struct slate_key key;
	slate_error_t err = { 0 };

	write_ec_pair(f->key, f->pub);
	assert_int_equal(slate_key_load_private(f->key, &key, &err), -1);
	assert_refused(&err, f->key);
	assert_non_null(strstr(err.msg, "not an Ed25519 key"));
	assert_int_equal(slate_key_load_public(f->pub, &key, &err), -1);
	assert_refused(&err, f->pub);
	assert_non_null(strstr(err.msg, "not an Ed25519 key"));
	assert_int_equal(slate_keyring_add_file(&kr, f->pub, &err), -1);
	assert_int_equal(kr.n, 0);
	slate_keyring_free(&kr);
}

/* ---- keyrings ---- */

static void test_keyring_add_dir(void **state)
{
	struct fixture *f = *state;
	char *other = xasprintf("%s/another", f->dir);
	struct slate_keyring kr = { 0 };
	struct slate_key a, b;
	slate_error_t err = { 0 };

	generate(f->key, &a);
	generate(other, &b);
	assert_int_equal(slate_keyring_add_dir(&kr, f->dir, &err), 0);
	assert_int_equal(kr.n, 2);
	assert_string_equal(kr.keys[0].id, b.id); /* another.pub sorts before key.pub */
	assert_string_equal(kr.keys[1].id, a.id);
	assert_ptr_equal(slate_keyring_find(&kr, a.id), &kr.keys[1]);
	assert_null(slate_keyring_find(&kr, "0000000000000000"));
	slate_keyring_free(&kr);
	slate_key_free(&a);
	slate_key_free(&b);
	free(other);
}

static void test_keyring_add_dir_refuses_no_pub(void **state)
{
	struct fixture *f = *state;
	struct slate_keyring kr = { 0 };
	slate_error_t err = { 0 };

	write_text(f->key, "not a public key\n");
	assert_int_equal(slate_keyring_add_dir(&kr, f->dir, &err), -1);
	assert_refused(&err, f->dir);
	assert_non_null(strstr(err.msg, "no *.pub keys"));
	assert_int_equal(kr.n, 0);
}

/* ---- signatures ---- */

static void test_sign_verify(void **state)
{
	struct fixture *f = *state;
	struct slate_keyring kr;
	struct slate_key key;
	const struct slate_key *signer = NULL;
	unsigned char sig[SLATE_SIG_LEN];
	slate_error_t err = { 0 };

	generate(f->key, &key);
	keyring_of(&kr, f->pub);
	sign(&key, manifest, strlen(manifest), sig);
	assert_int_equal(verify_signer(&kr, &key, manifest, strlen(manifest), sig, sizeof(sig), &signer, &err), 0);
	assert_ptr_equal(signer, &kr.keys[0]);
	assert_int_equal(err.kind, 0);
	slate_keyring_free(&kr);
	slate_key_free(&key);
}

static void test_verify_refuses_flipped_message_bit(void **state)
{
	struct fixture *f = *state;
	struct slate_keyring kr;
	struct slate_key key;
	unsigned char sig[SLATE_SIG_LEN];
	char *copy = xstrdup(manifest);
	slate_error_t err = { 0 };

	generate(f->key, &key);
	keyring_of(&kr, f->pub);
	sign(&key, manifest, strlen(manifest), sig);
	copy[5] ^= 0x01;
	assert_int_equal(verify(&kr, &key, copy, strlen(copy), sig, sizeof(sig), &err), -1);
	assert_refused(&err, "bad signature");
	free(copy);
	slate_keyring_free(&kr);
	slate_key_free(&key);
}

static void test_verify_refuses_flipped_signature_bit(void **state)
{
	struct fixture *f = *state;
	struct slate_keyring kr;
	struct slate_key key;
	unsigned char sig[SLATE_SIG_LEN];
	slate_error_t err = { 0 };

	generate(f->key, &key);
	keyring_of(&kr, f->pub);
	sign(&key, manifest, strlen(manifest), sig);
	for (size_t bit = 0; bit < 8 * SLATE_SIG_LEN; bit += 37) {
		sig[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		assert_int_equal(verify(&kr, &key, manifest, strlen(manifest), sig, sizeof(sig), &err), -1);
		assert_refused(&err, "bad signature");
		sig[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	assert_int_equal(verify(&kr, &key, manifest, strlen(manifest), sig, sizeof(sig), &err), 0);
	slate_keyring_free(&kr);
	slate_key_free(&key);
}

static void test_verify_refuses_short_signature(void **state)
{
	struct fixture *f = *state;
	struct slate_keyring kr;
	struct slate_key key;
	unsigned char sig[SLATE_SIG_LEN];
	slate_error_t err = { 0 };

	generate(f->key, &key);
	keyring_of(&kr, f->pub);
	sign(&key, manifest, strlen(manifest), sig);
	assert_int_equal(verify(&kr, &key, manifest, strlen(manifest), sig, SLATE_SIG_LEN - 1, &err), -1);
	assert_refused(&err, "bad signature: 71 bytes");
	slate_keyring_free(&kr);
	slate_key_free(&key);
}

static void test_verify_refuses_unknown_key(void **state)
{
	struct fixture *f = *state;
	char *other = xasprintf("%s/other", f->dir), *other_pub = xasprintf("%s/other.pub", f->dir);
	struct slate_keyring kr;
	struct slate_key key, stranger;
	unsigned char sig[SLATE_SIG_LEN];
	slate_error_t err = { 0 };

	generate(f->key, &key);
	generate(other, &stranger);
	keyring_of(&kr, other_pub);
	sign(&key, manifest, strlen(manifest), sig);
	assert_int_equal(verify(&kr, &key, manifest, strlen(manifest), sig, sizeof(sig), &err), -1);
	assert_refused(&err, "unknown key: signed by key");
	assert_non_null(strstr(err.msg, key.id));
	slate_keyring_free(&kr);
	slate_key_free(&key);
	slate_key_free(&stranger);
	free(other);
	free(other_pub);
}

/* The member's key id picks the one key that is tried: a signature by a
 * trusted key, in a member naming another trusted key, is refused, and
 * the refusal names the key the member claims. */
static void test_verify_tries_only_the_named_key(void **state)
{
	struct fixture *f = *state;
	char *other = xasprintf("%s/other", f->dir), *other_pub = xasprintf("%s/other.pub", f->dir);
	struct slate_keyring kr;
	struct slate_key key, second;
	const struct slate_key *signer = NULL;
	unsigned char sig[SLATE_SIG_LEN];
	slate_error_t err = { 0 };

	generate(f->key, &key);
	generate(other, &second);
	keyring_of(&kr, f->pub);
	assert_int_equal(slate_keyring_add_file(&kr, other_pub, &err), 0);
	sign(&key, manifest, strlen(manifest), sig);
	assert_int_equal(verify(&kr, &second, manifest, strlen(manifest), sig, sizeof(sig), &err), -1);
	assert_refused(&err, "bad signature");
	assert_non_null(strstr(err.msg, second.id));
	/* Control: naming the right key, it verifies, and that key is the signer. */
	assert_int_equal(verify_signer(&kr, &key, manifest, strlen(manifest), sig, sizeof(sig), &signer, &err), 0);
	assert_string_equal(signer->id, key.id);
	slate_keyring_free(&kr);
	slate_key_free(&key);
	slate_key_free(&second);
	free(other);
	free(other_pub);
}

/* The message must carry the prefix: a caller that forgot it fails. */
static void test_verify_needs_the_prefix(void **state)
{
	struct fixture *f = *state;
	struct slate_keyring kr;
	struct slate_key key;
	const struct slate_key *signer = NULL;
	unsigned char sig[SLATE_SIG_LEN], member[SLATE_SIG_MEMBER_LEN];
	slate_error_t err = { 0 };

	generate(f->key, &key);
	keyring_of(&kr, f->pub);
	sign(&key, manifest, strlen(manifest), sig);
	slate_sig_member(&key, sig, member);
	assert_int_equal(slate_verify_manifest(&kr, manifest, strlen(manifest), member, sizeof(member), &signer, &err),
			 -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "prefix");
	slate_keyring_free(&kr);
	slate_key_free(&key);
}

static void test_verify_with_empty_keyring_is_usage(void **state)
{
	struct slate_keyring kr = { 0 };
	struct slate_key key = { .id = "0123456789abcdef" };
	unsigned char sig[SLATE_SIG_LEN] = { 0 };
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(verify(&kr, &key, manifest, strlen(manifest), sig, sizeof(sig), &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, "no trusted public key");
}

static void test_sign_refuses_public_key(void **state)
{
	struct fixture *f = *state;
	struct slate_key gen, pub;
	unsigned char sig[SLATE_SIG_LEN];
	slate_error_t err = { 0 };

	generate(f->key, &gen);
	assert_int_equal(slate_key_load_public(f->pub, &pub, &err), 0);
	assert_int_equal(slate_sign_manifest(&pub, manifest, strlen(manifest), sig, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, f->pub);
	slate_key_free(&gen);
	slate_key_free(&pub);
}

/* A plain Ed25519 signature over msg, made without slate's prefix. */
static void raw_sign(const struct slate_key *key, const void *msg, size_t len, unsigned char sig[SLATE_SIG_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t siglen = SLATE_SIG_LEN;

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, msg, len), 1);
	assert_int_equal(siglen, SLATE_SIG_LEN);
	EVP_MD_CTX_free(ctx);
}

static void test_domain_prefix_is_signed(void **state)
{
	struct fixture *f = *state;
	struct slate_keyring kr;
	struct slate_key key;
	unsigned char bare[SLATE_SIG_LEN], prefixed[SLATE_SIG_LEN];
	char *msg = xasprintf("%s%s", SLATE_SIGN_PREFIX, manifest);
	slate_error_t err = { 0 };

	generate(f->key, &key);
	keyring_of(&kr, f->pub);
	raw_sign(&key, manifest, strlen(manifest), bare);
	assert_int_equal(verify(&kr, &key, manifest, strlen(manifest), bare, sizeof(bare), &err), -1);
	assert_refused(&err, "bad signature");
	/* Control: the same key over prefix || manifest is a slate signature. */
	raw_sign(&key, msg, strlen(msg), prefixed);
	assert_int_equal(verify(&kr, &key, manifest, strlen(manifest), prefixed, sizeof(prefixed), &err), 0);
	free(msg);
	slate_keyring_free(&kr);
	slate_key_free(&key);
}

#define fixture_test(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		fixture_test(test_generate_writes_both_files),
		fixture_test(test_generate_refuses_existing_private),
		fixture_test(test_generate_refuses_existing_public),
		fixture_test(test_generate_refuses_symlink),
		fixture_test(test_load_private_and_public_same_id),
		fixture_test(test_two_keys_have_different_ids),
		fixture_test(test_load_refuses_wrong_kind_of_pem),
		fixture_test(test_load_refuses_garbage_and_missing),
		fixture_test(test_load_refuses_non_ed25519),
		fixture_test(test_keyring_add_dir),
		fixture_test(test_keyring_add_dir_refuses_no_pub),
		fixture_test(test_sign_verify),
		fixture_test(test_verify_refuses_flipped_message_bit),
		fixture_test(test_verify_refuses_flipped_signature_bit),
		fixture_test(test_verify_refuses_short_signature),
		fixture_test(test_verify_refuses_unknown_key),
		fixture_test(test_verify_tries_only_the_named_key),
		fixture_test(test_verify_needs_the_prefix),
		cmocka_unit_test(test_verify_with_empty_keyring_is_usage),
		fixture_test(test_sign_refuses_public_key),
		fixture_test(test_domain_prefix_is_signed),
	};

	return cmocka_run_group_tests_name("sign", tests, NULL, NULL);
}
