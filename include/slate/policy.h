/* slate: the rules a bundle's image and settings obey.
 *
 * The manifest format (manifest.h) says what a bundle may contain; these
 * rules say what the runtime may do with it: which paths it makes
 * writable, which processes it starts, which paths it mounts over. The
 * bundler applies them before it signs, and the runtime applies them again
 * to every signed manifest before it unpacks or starts anything, because a
 * careless or compromised CI can sign anything. One set of rules, used by
 * both: a bundle the bundler would refuse never runs. */
#ifndef SLATE_POLICY_H
#define SLATE_POLICY_H

#include <stdbool.h>

#include <jansson.h>

#include "slate/error.h"
#include "slate/manifest.h"

/* The directories the runtime mounts over (/proc, /dev, /sys, /tmp, /run),
 * relative to the instance root, NULL-terminated. The project's writable
 * paths (below app/) are mounted over too. */
extern const char *const slate_policy_mounts[];

/* settings: {webroot, writable, exclude, allow_secrets}: every path
 * canonical and relative (no `..`, not absolute), no characters the
 * generated nginx rules cannot carry, `.slate` reserved, and no writable
 * path that holds the webroot or lies in the code under vendor/. */
int slate_policy_check_settings(const json_t *settings, slate_error_t *err);

/* image: {name, php, packages, user, processes, health, proxy_protocol}:
 * a user name (or UID[:GID]), a non-empty list of processes with absolute
 * argv[0], a health check (port 1-65535, an absolute path of printable
 * characters), ports mapped to ports. */
int slate_policy_check_image(const json_t *image, slate_error_t *err);

/* The entries against the settings (the manifest's settings must have
 * passed slate_policy_check_settings): the mount points and the webroot
 * are directories; a writable path is a directory (never a link) and
 * holds no PHP file; no symlink, followed through the manifest's other
 * links, leads into, through or above a path the runtime mounts over. */
int slate_policy_check_entries(const struct slate_manifest *m, slate_error_t *err);

/* All of the above (the entry rules only when the manifest lists entries:
 * a stored meta.json has none). Messages name the bundle part. */
int slate_policy_check(const struct slate_manifest *m, slate_error_t *err);

#endif
