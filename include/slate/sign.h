/* slate: Ed25519 keys and manifest signatures (OpenSSL EVP only).
 *
 * What is signed is a fixed domain-separation prefix followed by the exact
 * manifest bytes (docs/FORMAT.md), so a slate signature can never be
 * replayed as a signature over anything else made with the same key. A key
 * id is the first 8 bytes of SHA-256 over the raw 32-byte public key,
 * in hex; a manifest names its signer by that id, and the signature member
 * carries it too (raw, before the signature), so that a verifier picks the
 * key and names it without reading a byte of the unverified manifest
 * (minisign's key id). */
#ifndef SLATE_SIGN_H
#define SLATE_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "slate/error.h"

#define SLATE_SIG_LEN 64
#define SLATE_KEYID_LEN 8
#define SLATE_KEYID_HEX 17
/* The `.slate/manifest.sig` member: key id (8 raw bytes) || signature. */
#define SLATE_SIG_MEMBER_LEN (SLATE_KEYID_LEN + SLATE_SIG_LEN)
#define SLATE_SIGN_PREFIX "slate-manifest-v1\n"
#define SLATE_SIGN_PREFIX_LEN (sizeof(SLATE_SIGN_PREFIX) - 1)

struct slate_key {
	void *pkey; /* EVP_PKEY */
	bool has_private;
	char id[SLATE_KEYID_HEX];
	char *source; /* file it came from */
};

/* Write a new private key to path (PKCS#8 PEM, 0600, O_EXCL|O_NOFOLLOW) and
 * its public key to path.pub (SubjectPublicKeyInfo PEM). Refuses to
 * overwrite either. */
int slate_key_generate(const char *path, struct slate_key *out, slate_error_t *err);
int slate_key_load_private(const char *path, struct slate_key *key, slate_error_t *err);
int slate_key_load_public(const char *path, struct slate_key *key, slate_error_t *err);
void slate_key_free(struct slate_key *key);

struct slate_keyring {
	struct slate_key *keys;
	size_t n;
};
int slate_keyring_add_file(struct slate_keyring *kr, const char *path, slate_error_t *err);
/* Every *.pub in dir (sorted); refuses an empty result. */
int slate_keyring_add_dir(struct slate_keyring *kr, const char *dir, slate_error_t *err);
const struct slate_key *slate_keyring_find(const struct slate_keyring *kr, const char *id);
void slate_keyring_free(struct slate_keyring *kr);

int slate_sign_manifest(const struct slate_key *key, const void *manifest, size_t len, unsigned char sig[SLATE_SIG_LEN],
			slate_error_t *err);
/* The signature member for sig made by key: its key id, then sig. */
void slate_sig_member(const struct slate_key *key, const unsigned char sig[SLATE_SIG_LEN],
		      unsigned char member[SLATE_SIG_MEMBER_LEN]);
/* Check a signature member over msg = SLATE_SIGN_PREFIX || manifest (the
 * caller reads the manifest right after the prefix, so that it is held
 * once, never copied). The key is the trusted one the member names; only
 * it is tried, and no manifest byte is parsed. *signer gets that key.
 * Refuses (kind REFUSED): "unknown key" when no trusted key has the id,
 * "bad signature" when the signature does not verify. */
int slate_verify_manifest(const struct slate_keyring *kr, const void *msg, size_t msg_len, const unsigned char *member,
			  size_t member_len, const struct slate_key **signer, slate_error_t *err);

#endif
