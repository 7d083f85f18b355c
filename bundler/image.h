/* slate-bundle: runtime images (images/NAME/image.json): load, check the
 * pins against the host's installed packages, capture the files. */
#ifndef SLATE_BUNDLER_IMAGE_H
#define SLATE_BUNDLER_IMAGE_H

#include <stdbool.h>

#include <jansson.h>

#include "slate/error.h"
#include "slate/util.h"
#include "tree.h"

struct image {
	char *dir;
	char *desc_path;
	json_t *desc; /* image.json as read (order kept for --repin) */
	const char *name, *php, *user;
	json_t *packages;
	struct slate_strv paths, dirs;
	char *rootfs; /* NULL if none */
};

int image_load(const char *dir, struct image *img, slate_error_t *err);
void image_free(struct image *img);
/* Compare the pins with the installed versions. A difference is refused,
 * naming every difference, unless repin: then image.json is rewritten
 * (atomically) with the installed versions. */
int image_check_pins(struct image *img, const char *dpkg_status, bool repin, slate_error_t *err);
/* Capture the image's files into t: paths (following symlink chains, each
 * link kept as a relative link), the ELF closure and loader, dirs, and the
 * rootfs overlay last (it wins). */
int image_collect(struct image *img, struct tree *t, slate_error_t *err);
/* The manifest's `image` object. */
json_t *image_meta(const struct image *img);

#endif
