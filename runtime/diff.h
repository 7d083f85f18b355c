/* slate: what an instance wrote since it started (`slate diff`).
 *
 * An instance's root is an overlay: lower = the verified store copy of the
 * bundle (listed entry by entry in its signed manifest), upper = a
 * directory on the instance tmpfs. Everything the instance changed is in
 * the upper, in overlayfs's own encoding: new files, copied-up files
 * (changed content, or only changed metadata), whiteouts (character
 * devices 0:0) for deleted entries and opaque directories
 * (trusted.overlay.opaque = "y") whose lower content is hidden. The diff
 * decodes that against the manifest; it never reads the lower layer, only
 * the signed hashes, so a tampered lower cannot hide a change.
 *
 * The upper belongs to a live, untrusted instance: names are arbitrary
 * bytes (printed escaped), entries come and go while we walk (a vanished
 * entry is skipped; a directory swapped for something else fails the
 * diff rather than hide its content), and every open is resolved beneath
 * the upper without following a symlink. For a consistent snapshot the
 * caller freezes the instance's cgroup around diff_upper and
 * diff_save_tar.
 *
 * The diff is host work done on the instance's behalf, so it is bounded by
 * the instance's own limits, not by what its files claim: the walk goes
 * from directory fd to directory fd (at most DIFF_MAX_DEPTH open, a deeper
 * subtree or one whose paths would pass PATH_MAX is one entry flagged
 * too_deep); the bytes hashed, and those saved, stop at the size of the
 * tmpfs the upper is on (holes are skipped, not read; a hard link is read
 * once); a file that grows while read is read only as far as planned. */
#ifndef SLATE_RUNTIME_DIFF_H
#define SLATE_RUNTIME_DIFF_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "slate/error.h"
#include "slate/manifest.h"

/* More upper entries than this and the diff stops with an error. */
#define DIFF_MAX_ENTRIES 1000000
/* Directory levels walked below the upper (one fd each); deeper is too_deep. */
#define DIFF_MAX_DEPTH 64

enum diff_kind { DIFF_ADDED = 'A', DIFF_CHANGED = 'C', DIFF_DELETED = 'D' };

struct diff_entry {
	char *path; /* "app/storage/x": relative to the instance root */
	enum diff_kind kind;
	char type; /* 'f' file, 'd' directory, 'l' symlink, 'o' other (fifo, socket, device) */
	uint64_t size; /* files */
	char sha256[65]; /* files; "" otherwise */
	unsigned mode; /* st_mode & 07777 (deleted: the manifest's mode) */
	uid_t uid; /* host uid in the upper (deleted: 0) */
	char *target; /* symlinks, else NULL */
	bool too_deep; /* a directory whose content is not listed (DIFF_MAX_DEPTH, PATH_MAX) */
	bool not_hashed; /* a file not hashed: past what the instance's tmpfs can hold (sha256 "") */
};

struct diff_result {
	struct diff_entry *v;
	size_t n;
};

/* Walk upper (a directory fd of the overlay's upper dir) against the
 * lower's manifest. Files whose content equals the manifest's (metadata-only
 * copy-ups, e.g. the chown of the writable dirs at start) and symlinks with
 * the manifest's target are not reported; directories are reported only
 * when added (or when they replace a non-directory: changed). A whiteout is
 * DELETED (for a lower directory, the directory and its listed
 * descendants); an opaque directory, or a non-directory that replaces a
 * lower directory, hides the lower's descendants that are not in the upper
 * (DELETED). A directory DIFF_MAX_DEPTH levels down, or whose children's
 * paths could pass PATH_MAX, is reported (added, or changed over a lower
 * directory) with too_deep and not walked, so every listed path fits in
 * PATH_MAX. Files are hashed by their data extents, holes as zeros, while
 * the total stays within the tmpfs size (data, and zeros, each); a file
 * past that is reported not_hashed, and changed when it has a lower entry.
 * Sorted by slate_path_cmp, no duplicates. Fails past
 * DIFF_MAX_ENTRIES entries, and on an overlay redirect (the overlay is
 * mounted without redirect_dir, so a redirect means the upper is not what
 * slate made). */
int diff_upper(int upper_fd, const struct slate_manifest *lower, struct diff_result *out, slate_error_t *err);
void diff_result_free(struct diff_result *d);

const char *diff_kind_name(enum diff_kind k); /* "added", "changed", "deleted" */
const char *diff_type_name(char type); /* "file", "dir", "symlink", "other" */

/* [{"path": "/app/storage/x", "kind": "added", "type": "file", "size": N,
 *   "sha256": "...", "mode": 420, "uid": 1000}, ...]; size and sha256 for
 * files, target for symlinks, uid for what is in the upper, "too_deep":
 * true and "not_hashed": true when they apply. A name that is
 * not UTF-8 is given escaped (\xHH, backslash doubled) with "escaped": true. */
json_t *diff_to_json(const struct diff_result *d);

/* One line each, names escaped (control bytes, invalid UTF-8, bidi
 * overrides as \xHH), so a file name cannot forge lines or drive the
 * terminal:
 *   A /app/web/shell.php  1234 bytes  sha256:...
 *   A /app/storage/new  dir
 *   C /app/web/link -> ../x
 *   A /app/storage/fifo  other (mode 644)
 *   D /app/templates/index.twig  812 bytes  sha256:...
 *   A /app/storage/sparse  9223372036854775807 bytes  not hashed (...)
 *   A /app/storage/a/.../z  dir  too deep (...) */
void diff_print(const struct diff_result *d, FILE *out);

/* Keep the added and changed files, symlinks and directories as an
 * uncompressed pax tar at path (written atomically, mode 0600: the content
 * is the instance's, and may hold its secrets), for forensics: members
 * under the entries' relative paths with their upper mode (set-id bits
 * cleared), uid, gid and mtime; first ".slate-diff/diff.json" (the diff) and
 * ".slate-diff/deleted.txt" (one escaped absolute path per line). The
 * instance may still be running: a file saved with other content than the
 * diff hashed is listed in a member ".slate-diff/changed-during-save.txt".
 * Bounded like the diff: a file with holes is a sparse member (GNU sparse
 * 1.0: only its data is stored), a hard link to a file already saved is a
 * hard link member, and a file whose data (or holes before data) would
 * take the tar past the tmpfs size is left out and listed in a last member
 * ".slate-diff/not-saved.txt"; a too_deep directory is saved empty. */
int diff_save_tar(int upper_fd, const struct diff_result *d, const char *path, slate_error_t *err);

#endif
