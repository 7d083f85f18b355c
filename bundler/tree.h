/* slate-bundle: the tree being packed: manifest entries by path, with the
 * rules that keep it a tree (parents are directories, nothing below a
 * symlink, one entry per path, normalised modes). */
#ifndef SLATE_BUNDLER_TREE_H
#define SLATE_BUNDLER_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "slate/manifest.h"
#include "slate/path.h"

struct tree {
	struct slate_manifest m;
	struct slate_pathmap map;
	int64_t newest_mtime;
};

void tree_init(struct tree *t);
void tree_free(struct tree *t);
struct slate_entry *tree_get(struct tree *t, const char *path);
/* Modes in a bundle: 0755 for dirs and executable files, 0644 for other
 * files, 0777 for symlinks. */
unsigned tree_mode(enum slate_entry_type type, mode_t st_mode);

/* Each adds `path` (canonical, checked) and any missing parent
 * directories. Adding an existing directory again is a no-op; replacing
 * another kind of entry requires `replace`. */
int tree_add_dir(struct tree *t, const char *path, slate_error_t *err);
int tree_add_file(struct tree *t, const char *path, const char *source, unsigned mode, uint64_t size, bool replace,
		  slate_error_t *err);
int tree_add_data(struct tree *t, const char *path, const char *data, size_t len, bool replace, slate_error_t *err);
int tree_add_symlink(struct tree *t, const char *path, const char *target, bool replace, slate_error_t *err);
void tree_note_mtime(struct tree *t, int64_t mtime);

/* Hash every file entry (sources read in parallel on `threads` threads). */
int tree_hash(struct tree *t, int threads, slate_error_t *err);

/* "a/b" relative from directory `from` to `to` (both canonical, "" = root). */
char *tree_relative(const char *from_dir, const char *to);

#endif
