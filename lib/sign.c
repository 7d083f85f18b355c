/* slate: Ed25519 keys and signatures (see include/slate/sign.h).
 *
 * Only Ed25519 is accepted; keys are read with OpenSSL's PEM decoders and
 * checked for type before use, private key material lives only inside
 * EVP_PKEY and is freed with it, and temporary buffers that held message
 * copies are cleansed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "slate/hash.h"
#include "slate/sign.h"
#include "slate/util.h"

static void ossl_clear(void)
{
	ERR_clear_error();
}

static int key_set_id(struct slate_key *key, slate_error_t *err)
{
	unsigned char raw[32], digest[SLATE_SHA256_LEN];
	size_t len = sizeof(raw);

	if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &len) != 1 || len != sizeof(raw))
		return slate_error_fail(err, "cannot read the raw public key");
	if (slate_sha256_buf(raw, len, digest, err) < 0)
		return -1;
	slate_hex(digest, 8, key->id);
	return 0;
}

static int key_check_type(struct slate_key *key, const char *path, slate_error_t *err)
{
	if (EVP_PKEY_get_base_id(key->pkey) != EVP_PKEY_ED25519)
		return slate_error_refuse(err, "key `%s` is not an Ed25519 key", path);
	key->source = xstrdup(path);
	return key_set_id(key, err);
}

/* Keys are small: read them whole, through a non-following open. */
static BIO *key_bio(const char *path, slate_error_t *err)
{
	size_t len = 0;
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	char *buf;
	BIO *bio;

	if (fd < 0) {
		slate_error_sys(err, errno, "open key `%s`", path);
		return NULL;
	}
	buf = slate_read_fd(fd, path, 64 * 1024, &len, err);
	if (buf == NULL)
		return NULL;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || BIO_write(bio, buf, (int)len) != (int)len) {
		BIO_free(bio);
		bio = NULL;
		slate_error_fail(err, "cannot buffer key `%s`", path);
	}
	OPENSSL_cleanse(buf, len);
	free(buf);
	return bio;
}

int slate_key_load_private(const char *path, struct slate_key *key, slate_error_t *err)
{
	BIO *bio = key_bio(path, err);

	memset(key, 0, sizeof(*key));
	if (bio == NULL)
		return -1;
	key->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ossl_clear();
	if (key->pkey == NULL)
		return slate_error_refuse(err, "`%s` is not a PEM private key", path);
	key->has_private = true;
	if (key_check_type(key, path, err) < 0) {
		slate_key_free(key);
		return -1;
	}
	return 0;
}

int slate_key_load_public(const char *path, struct slate_key *key, slate_error_t *err)
{
	BIO *bio = key_bio(path, err);

	memset(key, 0, sizeof(*key));
	if (bio == NULL)
		return -1;
	key->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ossl_clear();
	if (key->pkey == NULL)
		return slate_error_refuse(err, "`%s` is not a PEM public key", path);
	if (key_check_type(key, path, err) < 0) {
		slate_key_free(key);
		return -1;
	}
	return 0;
}

void slate_key_free(struct slate_key *key)
{
	EVP_PKEY_free(key->pkey);
	free(key->source);
	memset(key, 0, sizeof(*key));
}

/* Create path exclusively with mode, never following a link, and write the
 * PEM produced by emit(). On any failure the file is removed. */
static int write_pem_excl(const char *path, mode_t mode, int (*emit)(BIO *, EVP_PKEY *), EVP_PKEY *pkey,
			  slate_error_t *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len = 0;
	int r = 0;

	if (fd < 0) {
		BIO_free(bio);
		if (errno == EEXIST)
			return slate_error_refuse(err, "`%s` exists: refusing to overwrite a key", path);
		return slate_error_sys(err, errno, "create `%s`", path);
	}
	if (bio == NULL || emit(bio, pkey) != 1 || (len = BIO_get_mem_data(bio, &data)) <= 0)
		r = slate_error_fail(err, "cannot encode key for `%s`", path);
	else if (fchmod(fd, mode) < 0)
		r = slate_error_sys(err, errno, "chmod `%s`", path);
	else if (slate_write_all(fd, data, (size_t)len, path, err) < 0)
		r = -1;
	else if (fsync(fd) < 0)
		r = slate_error_sys(err, errno, "fsync `%s`", path);
	if (data && len > 0)
		OPENSSL_cleanse(data, (size_t)len);
	BIO_free(bio);
	if (close(fd) < 0 && r == 0)
		r = slate_error_sys(err, errno, "close `%s`", path);
	if (r < 0)
		unlink(path);
	ossl_clear();
	return r;
}

static int emit_private(BIO *bio, EVP_PKEY *pkey)
{
	return PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
}

static int emit_public(BIO *bio, EVP_PKEY *pkey)
{
	return PEM_write_bio_PUBKEY(bio, pkey);
}

int slate_key_generate(const char *path, struct slate_key *out, slate_error_t *err)
{
	cleanup_free char *pub = xasprintf("%s.pub", path);
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (pkey == NULL) {
		ossl_clear();
		return slate_error_fail(err, "cannot generate an Ed25519 key");
	}
	/* Check both names first so that a refusal leaves nothing behind. */
	if (lstat(pub, &st) == 0) {
		EVP_PKEY_free(pkey);
		return slate_error_refuse(err, "`%s` exists: refusing to overwrite a key", pub);
	}
	if (write_pem_excl(path, 0600, emit_private, pkey, err) < 0) {
		EVP_PKEY_free(pkey);
		return -1;
	}
	if (write_pem_excl(pub, 0644, emit_public, pkey, err) < 0) {
		unlink(path);
		EVP_PKEY_free(pkey);
		return -1;
	}
	out->pkey = pkey;
	out->has_private = true;
	out->source = xstrdup(path);
	return key_set_id(out, err);
}

int slate_keyring_add_file(struct slate_keyring *kr, const char *path, slate_error_t *err)
{
	struct slate_key key;

	if (slate_key_load_public(path, &key, err) < 0)
		return -1;
	kr->keys = xrealloc(kr->keys, (kr->n + 1) * sizeof(*kr->keys));
	kr->keys[kr->n++] = key;
	return 0;
}

static int pub_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".pub") == 0;
}

int slate_keyring_add_dir(struct slate_keyring *kr, const char *dir, slate_error_t *err)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, pub_filter, alphasort);
	int r = 0;

	if (n < 0)
		return slate_error_sys(err, errno, "read key directory `%s`", dir);
	for (int i = 0; i < n; i++) {
		cleanup_free char *path = xasprintf("%s/%s", dir, names[i]->d_name);
		if (r == 0 && slate_keyring_add_file(kr, path, err) < 0)
			r = -1;
		free(names[i]);
	}
	free(names);
	if (r == 0 && n == 0)
		return slate_error_refuse(err, "no *.pub keys in `%s`", dir);
	return r;
}

const struct slate_key *slate_keyring_find(const struct slate_keyring *kr, const char *id)
{
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->keys[i].id, id) == 0)
			return &kr->keys[i];
	return NULL;
}

void slate_keyring_free(struct slate_keyring *kr)
{
	for (size_t i = 0; i < kr->n; i++)
		slate_key_free(&kr->keys[i]);
	free(kr->keys);
	kr->keys = NULL;
	kr->n = 0;
}

/* The signed message: prefix || manifest. */
static unsigned char *signed_message(const void *manifest, size_t len, size_t *out_len)
{
	size_t plen = sizeof(SLATE_SIGN_PREFIX) - 1;
	unsigned char *msg = xmalloc(plen + len);

	memcpy(msg, SLATE_SIGN_PREFIX, plen);
	memcpy(msg + plen, manifest, len);
	*out_len = plen + len;
	return msg;
}

int slate_sign_manifest(const struct slate_key *key, const void *manifest, size_t len, unsigned char sig[SLATE_SIG_LEN],
			slate_error_t *err)
{
	size_t mlen = 0, siglen = SLATE_SIG_LEN;
	cleanup_free unsigned char *msg = signed_message(manifest, len, &mlen);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!key->has_private) {
		EVP_MD_CTX_free(ctx);
		return slate_error_usage(err, "key `%s` is not a private key", key->source);
	}
	ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
	     EVP_DigestSign(ctx, sig, &siglen, msg, mlen) == 1 && siglen == SLATE_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	ossl_clear();
	return ok ? 0 : slate_error_fail(err, "signing failed");
}

static bool verify_one(EVP_PKEY *pkey, const unsigned char *msg, size_t mlen, const unsigned char *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
		  EVP_DigestVerify(ctx, sig, SLATE_SIG_LEN, msg, mlen) == 1;

	EVP_MD_CTX_free(ctx);
	ossl_clear();
	return ok;
}

void slate_sig_member(const struct slate_key *key, const unsigned char sig[SLATE_SIG_LEN],
		      unsigned char member[SLATE_SIG_MEMBER_LEN])
{
	/* key->id is our own hex of SLATE_KEYID_LEN bytes: it always decodes. */
	if (slate_unhex(key->id, member, SLATE_KEYID_LEN) < 0)
		abort();
	memcpy(member + SLATE_KEYID_LEN, sig, SLATE_SIG_LEN);
}

/* Threat: everything here is unverified. The member is a fixed-size record
 * read as bytes; its key id only selects which trusted key to try (a lie
 * about it can only make the check fail), and it is printed as hex, so the
 * refusal can name the claimed signer without parsing the manifest. One
 * signature check at most, whatever the keyring size. */
int slate_verify_manifest(const struct slate_keyring *kr, const void *msg, size_t msg_len, const unsigned char *member,
			  size_t member_len, const struct slate_key **signer, slate_error_t *err)
{
	char id[SLATE_KEYID_HEX];
	const struct slate_key *key;

	if (kr->n == 0)
		return slate_error_usage(err, "no trusted public key given");
	if (msg_len < SLATE_SIGN_PREFIX_LEN || memcmp(msg, SLATE_SIGN_PREFIX, SLATE_SIGN_PREFIX_LEN) != 0)
		return slate_error_fail(err, "signed message without the slate prefix");
	if (member_len != SLATE_SIG_MEMBER_LEN)
		return slate_error_refuse(err,
					  "bad signature: %zu bytes, the signature member is %d (key id, signature)",
					  member_len, SLATE_SIG_MEMBER_LEN);
	slate_hex(member, SLATE_KEYID_LEN, id);
	key = slate_keyring_find(kr, id);
	if (key == NULL)
		return slate_error_refuse(err, "unknown key: signed by key %s, which is not a trusted key", id);
	if (!verify_one(key->pkey, msg, msg_len, member + SLATE_KEYID_LEN))
		return slate_error_refuse(err, "bad signature: the manifest is not validly signed by key %s", id);
	*signer = key;
	return 0;
}
