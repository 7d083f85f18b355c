/* slate: reading and writing bundles.
 *
 * A bundle is one zstd-compressed tar: `.slate/manifest.json`, then
 * `.slate/manifest.sig`, then exactly the manifest's entries in manifest
 * order. slate_bundle_verify_fd() is the one way to read a bundle's
 * content: a single streaming pass over one fd that first checks the
 * signature, then checks every member against the manifest while it
 * streams (hashing as it reads), and hands each member to a visitor as it
 * goes. A visitor that writes must write somewhere temporary and only make
 * the result visible when verify returned 0: the last member is checked
 * last. */
#ifndef SLATE_BUNDLE_H
#define SLATE_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "slate/error.h"
#include "slate/hash.h"
#include "slate/manifest.h"
#include "slate/sign.h"

#define SLATE_MEMBER_MANIFEST ".slate/manifest.json"
#define SLATE_MEMBER_SIG ".slate/manifest.sig"

struct slate_bundle_visitor {
	void *ctx;
	/* After the signature checked, before the first member. */
	int (*manifest)(void *ctx, const struct slate_manifest *m, const char *id, slate_error_t *err);
	/* A member whose header matched its entry. */
	int (*begin)(void *ctx, const struct slate_entry *e, slate_error_t *err);
	/* File content, in order; not yet verified. */
	int (*data)(void *ctx, const struct slate_entry *e, const void *buf, size_t len, slate_error_t *err);
	/* The member is complete and its size and hash matched. */
	int (*end)(void *ctx, const struct slate_entry *e, slate_error_t *err);
};

/* Verify the bundle on fd (read from its current offset). On success the
 * parsed manifest goes to *out (if not NULL; free with
 * slate_manifest_free) and the bundle id (hex) to id. Refusals are kind
 * SLATE_EXIT_REFUSED and name the first problem. */
int slate_bundle_verify_fd(int fd, const char *name, const struct slate_keyring *kr, const struct slate_limits *lim,
			   const struct slate_bundle_visitor *v, struct slate_manifest *out, char id[SLATE_SHA256_HEX],
			   slate_error_t *err);

/* Read the manifest and check its signature, without reading any member:
 * what a host needs to know a bundle's id before deciding to unpack it.
 * With out NULL the manifest is not even parsed (the caller already holds
 * a copy verified under that id). */
int slate_bundle_verify_head(int fd, const char *name, const struct slate_keyring *kr, const struct slate_limits *lim,
			     struct slate_manifest *out, char id[SLATE_SHA256_HEX], slate_error_t *err);

/* Read the manifest and the signature bytes only, without trusting them
 * (inspect, diff). The manifest is still parsed and validated. */
int slate_bundle_read_manifest(int fd, const char *name, const struct slate_limits *lim, struct slate_manifest *out,
			       char id[SLATE_SHA256_HEX], slate_error_t *err);

struct slate_progress {
	void (*update)(void *ctx, uint64_t entries, uint64_t bytes, int final);
	void *ctx;
};

/* Sign m with key and write the bundle to out_path atomically (temporary
 * file beside it, fsync, rename). Entries need `source` or `data`.
 * threads: zstd worker threads (0: single-threaded mode). */
int slate_bundle_write(const char *out_path, struct slate_manifest *m, const struct slate_key *key, int level,
		       int threads, const struct slate_progress *progress, char id[SLATE_SHA256_HEX],
		       slate_error_t *err);

#endif
