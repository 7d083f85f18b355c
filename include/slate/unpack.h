/* slate: unpack a bundle into a directory while it verifies.
 *
 * The one way the runtime writes a bundle to disk. Entries are written as
 * they stream out of slate_bundle_verify_fd(), into `tmp` (a new
 * directory), resolving every parent with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) and creating every file with O_EXCL|O_NOFOLLOW, so
 * that nothing is ever written outside `tmp` or through a link, whatever
 * the archive holds. Only when the whole bundle verified is `tmp` synced
 * and renamed to `dest`; on any failure `tmp` is removed. A crash leaves
 * at worst a `tmp` directory that is never used (callers remove stale
 * ones). */
#ifndef SLATE_UNPACK_H
#define SLATE_UNPACK_H

#include "slate/bundle.h"

/* Verify the bundle on fd and unpack it to dest (which must not exist) by
 * way of the temporary directory tmp (which must not exist either, and must
 * be on the same filesystem). The verified manifest goes to *out (if not
 * NULL) and the id to id. */
int slate_bundle_unpack(int fd, const char *name, const struct slate_keyring *kr, const struct slate_limits *lim,
			const char *tmp, const char *dest, struct slate_manifest *out, char id[SLATE_SHA256_HEX],
			slate_error_t *err);

/* Remove a directory tree without following links (openat/unlinkat). */
int slate_remove_tree(const char *path, slate_error_t *err);

#endif
