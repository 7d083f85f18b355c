/* slate: the store of verified bundles, by id, under ROOT/store:
 *
 *   store/<id>/root/           the verified tree: the instances' read-only lower layer
 *   store/<id>/manifest.json   the signed manifest bytes it was verified against
 *   store/<id>/meta.json       the same without its entries (all a start needs)
 *   store/<id>/seal            digest of the tree's metadata (names, inodes, ctimes, ...)
 *   store/<id>/bundles         SHA-256 of each bundle file that verified completely as <id>
 *   store/.tmp-<id>-<pid>/     an unpack in progress (never used; removed when stale)
 *   store/.drifted-<id>-<pid>-<time>/  a copy found changed, kept as evidence until gc
 *   store/<id>.lock            only while an unpack of <id> runs: serialises them
 *
 * A bundle enters the store only through slate_bundle_unpack() (verify
 * while writing, then one rename), so whatever is at store/<id> verified
 * completely when it got there. Everything is root-owned; directories 0700
 * above the trees, so no instance (a different host uid) can even look.
 *
 * Threats: a bundle file that shares a stored bundle's head (its signed
 * manifest) but not its body; a store copy changed on the host after it
 * verified (drift); gc removing a copy that is in use. Answers: a file is
 * trusted without reading its body only if its SHA-256 is one that verified
 * completely; every use of a copy re-checks its seal (stat only, no
 * hashing) and a copy that fails it is never used again; every user holds
 * a pin (a shared flock on the copy's directory) and gc removes only what
 * it can lock exclusively. */
#ifndef SLATE_RUNTIME_STORE_H
#define SLATE_RUNTIME_STORE_H

#include "slate/bundle.h"
#include "slate/util.h"

struct slate_stored {
	char id[SLATE_SHA256_HEX];
	char *dir; /* store/<id> */
	char *root; /* store/<id>/root */
	struct slate_manifest m;
	bool unpacked; /* false when it was already in the store */
	bool pinned; /* pin is a shared flock on dir: gc leaves it alone */
	int pin;
};

/* A policy check of a verified head, before anything is written (deploy's
 * downgrade rule). */
typedef int (*slate_store_check_fn)(void *ctx, const struct slate_manifest *m, slate_error_t *err);
/* One problem of a store copy: path relative to its root, a short word. */
typedef void (*slate_store_problem_fn)(void *ctx, const char *path, const char *problem);

/* Make ROOT and ROOT/store (0700) if missing. */
int slate_store_init(const char *root, slate_error_t *err);
/* Verify bundle_path against the trusted keys and make sure its tree is in
 * the store, pinned (unpacking it, or unpacking it afresh when the stored
 * copy drifted); check (may be NULL) sees the verified head first. The
 * manifest comes back in *out (without entries when it was stored). On
 * failure out->id is kept when known (for the audit). */
int slate_store_add(const char *root, const char *bundle_path, const struct slate_keyring *kr,
		    slate_store_check_fn check, void *check_ctx, struct slate_stored *out, slate_error_t *err);
/* Load a stored bundle by id for use: pinned, its seal checked (a drifted
 * copy is refused), its metadata (meta.json: the manifest without entries). */
int slate_store_load(const char *root, const char *id, struct slate_stored *out, slate_error_t *err);
/* The whole manifest, for reading only (diff, verify): no pin, no seal check. */
int slate_store_load_full(const char *root, const char *id, struct slate_stored *out, slate_error_t *err);
void slate_stored_free(struct slate_stored *s);
/* Re-hash a copy (loaded _full) against its manifest and list every
 * missing, changed and added entry; *n gets their number. */
int slate_store_check(const struct slate_stored *s, slate_store_problem_fn fn, void *ctx, size_t *n,
		      slate_error_t *err);
/* Unpack bundle_path, which must verify as id, afresh over store/<id>
 * (the old copy is kept aside as .drifted-*): `slate verify --repair`. */
int slate_store_repair(const char *root, const char *id, const char *bundle_path, const struct slate_keyring *kr,
		       slate_error_t *err);
/* Remove every stored copy not in keep, and every drifted copy, that no
 * one pins; removed() and in_use() (either may be NULL) hear of each. */
int slate_store_gc(const char *root, const struct slate_strv *keep, void (*removed)(const char *name),
		   void (*in_use)(const char *name), int *n_removed, slate_error_t *err);
/* Remove temporary directories left by killed unpacks and gcs; seal the
 * copies stored before seals existed (re-hashed against their manifest
 * once: one that does not match is sealed as drifted). */
int slate_store_clean_stale(const char *root, slate_error_t *err);

#endif
