/* slate: path safety for bundle entries.
 *
 * A bundle path is relative to the instance root, uses '/' as separator,
 * and is canonical: no leading '/', no empty, "." or ".." component, no
 * trailing '/', no control bytes, within the length limits. Every path that
 * enters a manifest or leaves an archive goes through these checks. */
#ifndef SLATE_PATH_H
#define SLATE_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "slate/error.h"

#define SLATE_PATH_MAX_DEFAULT 1024
#define SLATE_NAME_MAX_DEFAULT 255

/* Refuse a path that is not canonical (see above). */
int slate_path_check(const char *path, size_t max_path, size_t max_name, slate_error_t *err);

/* Normalise an archive member name: drop leading "./", collapse "//" and
 * "/./", drop a trailing '/'. Refuses absolute paths and ".." components;
 * the result still goes through slate_path_check. Returns a new string. */
char *slate_path_normalize(const char *name, slate_error_t *err);

/* Refuse a symlink whose target is absolute, empty, or leaves the tree when
 * resolved lexically from the link's directory. */
int slate_path_check_link(const char *link, const char *target, slate_error_t *err);

/* Component-wise order: a directory sorts right before its contents
 * ("a" < "a/b" < "a-b"). */
int slate_path_cmp(const char *a, const char *b);

/* path equals prefix, or lies below it. */
bool slate_path_under(const char *path, const char *prefix);

/* A new string: the parent of path ("" for a top-level name). */
char *slate_path_parent(const char *path);

/* Pattern matching for exclude lists: a pattern without '/' matches the
 * last component at any depth, a pattern with '/' matches the whole
 * relative path (shell globs, '*' does not cross '/'). A match on a
 * directory excludes everything below it. */
bool slate_glob_match(const char *pattern, const char *relpath);

/* A string -> index map for paths (open addressing). */
struct slate_pathmap {
	char **keys;
	size_t *vals;
	size_t n, cap;
};
void slate_pathmap_init(struct slate_pathmap *m);
/* Returns false if the key was already present (value unchanged). */
bool slate_pathmap_put(struct slate_pathmap *m, const char *key, size_t val);
bool slate_pathmap_get(const struct slate_pathmap *m, const char *key, size_t *val);
void slate_pathmap_free(struct slate_pathmap *m);

#endif
