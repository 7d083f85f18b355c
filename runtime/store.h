/* slate: the store of verified bundles, by id, under ROOT/store:
 *
 *   store/<id>/root/           the verified tree: the instances' read-only lower layer
 *   store/<id>/manifest.json   the signed manifest bytes it was verified against
 *   store/<id>/meta.json       the same without its entries (all a start needs)
 *   store/.tmp-<id>-<pid>/     an unpack in progress (never used; removed when stale)
 *   store/<id>.lock            serialises concurrent first runs of one bundle
 *
 * A bundle enters the store only through slate_bundle_unpack() (verify
 * while writing, then one rename), so whatever is at store/<id> verified
 * completely. Everything is root-owned; directories 0700 above the trees,
 * so no instance (a different host uid) can even look. */
#ifndef SLATE_RUNTIME_STORE_H
#define SLATE_RUNTIME_STORE_H

#include "slate/bundle.h"

struct slate_stored {
	char id[SLATE_SHA256_HEX];
	char *dir; /* store/<id> */
	char *root; /* store/<id>/root */
	struct slate_manifest m;
	bool unpacked; /* false when it was already in the store */
};

/* Make ROOT and ROOT/store (0700) if missing. */
int slate_store_init(const char *root, slate_error_t *err);
/* Verify bundle_path against the trusted keys and make sure its tree is in
 * the store (unpacking it once); the stored manifest comes back in *out. */
int slate_store_add(const char *root, const char *bundle_path, const struct slate_keyring *kr, struct slate_stored *out,
		    slate_error_t *err);
/* Load an already stored bundle by id: its metadata (meta.json: the
 * manifest without entries), or with _full the whole manifest. */
int slate_store_load(const char *root, const char *id, struct slate_stored *out, slate_error_t *err);
int slate_store_load_full(const char *root, const char *id, struct slate_stored *out, slate_error_t *err);
void slate_stored_free(struct slate_stored *s);
/* Remove temporary unpack directories left by killed runs (whose lock is free). */
int slate_store_clean_stale(const char *root, slate_error_t *err);

#endif
