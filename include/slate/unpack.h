/* slate: unpack a bundle into a directory while it verifies.
 *
 * The one way the runtime writes a bundle to disk. Entries are written as
 * they stream out of slate_bundle_verify_fd(), into a new directory,
 * resolving every parent with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
 * and creating every file with O_EXCL|O_NOFOLLOW, so that nothing is ever
 * written outside it or through a link, whatever the archive holds. The
 * directory is temporary: the caller renames it into place only when the
 * whole bundle verified; on any failure it is removed. A crash leaves at
 * worst a temporary directory that is never used (callers remove stale
 * ones). */
#ifndef SLATE_UNPACK_H
#define SLATE_UNPACK_H

#include "slate/bundle.h"

/* Verify the bundle on fd and unpack it into dir, which must not exist
 * (it is created 0700). A signed manifest whose settings, image or links
 * break the runtime's rules (slate_policy_check) is refused before the
 * first entry is written. On success dir holds the verified tree, synced to
 * disk, the verified manifest goes to *out (if not NULL) and the id to id;
 * the caller makes it visible (a rename). On failure dir is removed. */
int slate_bundle_unpack(int fd, const char *name, const struct slate_keyring *kr, const struct slate_limits *lim,
			const char *dir, struct slate_manifest *out, char id[SLATE_SHA256_HEX], slate_error_t *err);

/* Remove a directory tree without following links (openat/unlinkat). */
int slate_remove_tree(const char *path, slate_error_t *err);

#endif
