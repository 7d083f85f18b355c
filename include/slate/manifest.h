/* slate: the bundle manifest.
 *
 * The manifest is canonical JSON (sorted keys, no insignificant white
 * space, integers only) that lists every entry of the bundle in archive
 * order, plus the bundle's metadata. Its SHA-256 is the bundle id; its
 * Ed25519 signature makes the bundle trusted. docs/FORMAT.md is the
 * reference; this header is the code's view of it. */
#ifndef SLATE_MANIFEST_H
#define SLATE_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "slate/error.h"
#include "slate/hash.h"

#define SLATE_FORMAT_VERSION 1
/* The project part of a bundle lives below this top-level directory. */
#define SLATE_APP_DIR "app"

enum slate_entry_type {
	SLATE_ENTRY_FILE,
	SLATE_ENTRY_DIR,
	SLATE_ENTRY_SYMLINK,
};

struct slate_entry {
	char *path; /* canonical, relative to the instance root */
	enum slate_entry_type type;
	unsigned mode; /* permission bits only (no set-id, no sticky) */
	uint64_t size; /* files */
	unsigned char sha256[SLATE_SHA256_LEN]; /* files */
	char *target; /* symlinks: relative, stays in the tree */
	/* Writer only, never serialised: where the bytes come from. */
	char *source; /* host path, or NULL */
	char *data; /* in-memory content (size bytes), or NULL */
};

/* Limits for everything read from an untrusted archive. */
struct slate_limits {
	uint64_t max_entries;
	uint64_t max_total_bytes;
	uint64_t max_file_bytes;
	uint64_t max_manifest_bytes;
	size_t max_path;
	size_t max_name;
};
void slate_limits_default(struct slate_limits *lim);

struct slate_manifest {
	int format;
	char *name;
	char *version;
	int64_t created;
	int64_t sequence;
	char *signer; /* key id, 16 hex digits */
	json_t *image; /* object: name, php, packages, user, processes, health */
	json_t *settings; /* object: webroot, writable, exclude, allow_secrets */
	struct slate_entry *entries;
	size_t n_entries, cap_entries;
	uint64_t total_size;
};

void slate_manifest_init(struct slate_manifest *m);
void slate_manifest_free(struct slate_manifest *m);
const char *slate_entry_type_name(enum slate_entry_type t);
bool slate_entry_is_app(const struct slate_entry *e);
/* Append an entry (the manifest takes ownership of the strings). */
struct slate_entry *slate_manifest_add(struct slate_manifest *m);
/* Sort entries into archive order: image part, then project part, each in
 * component-wise path order (directories right before their contents). */
void slate_manifest_sort(struct slate_manifest *m);
int slate_entry_order_cmp(const struct slate_entry *a, const struct slate_entry *b);

/* Canonical bytes (malloc'd, not NUL-terminated in the count). */
char *slate_manifest_serialize(const struct slate_manifest *m, size_t *len, slate_error_t *err);
/* Parse and fully validate untrusted manifest bytes: canonical encoding,
 * known keys, every path safe and in order, parents are directories, no
 * path through a symlink, link targets inside the tree, modes, limits. */
int slate_manifest_parse(const char *buf, size_t len, const struct slate_limits *lim, struct slate_manifest *m,
			 slate_error_t *err);
/* The structural checks of parse, on a manifest built in memory. */
int slate_manifest_validate(const struct slate_manifest *m, const struct slate_limits *lim, slate_error_t *err);

#endif
