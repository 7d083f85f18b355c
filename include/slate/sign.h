/* slate: Ed25519 keys and manifest signatures (OpenSSL EVP only).
 *
 * What is signed is a fixed domain-separation prefix followed by the exact
 * manifest bytes (docs/FORMAT.md), so a slate signature can never be
 * replayed as a signature over anything else made with the same key. A key
 * id is the first 8 bytes of SHA-256 over the raw 32-byte public key,
 * in hex; a manifest names its signer by that id. */
#ifndef SLATE_SIGN_H
#define SLATE_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "slate/error.h"

#define SLATE_SIG_LEN 64
#define SLATE_KEYID_HEX 17
#define SLATE_SIGN_PREFIX "slate-manifest-v1\n"

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
/* Check sig over the raw manifest bytes against every trusted key, before
 * anything in the manifest is parsed; *signer gets the key that matched.
 * Refuses (kind REFUSED) when no trusted key made the signature. */
int slate_verify_manifest(const struct slate_keyring *kr, const void *manifest, size_t len, const unsigned char *sig,
			  size_t siglen, const struct slate_key **signer, slate_error_t *err);

#endif
