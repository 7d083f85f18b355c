/* slate: the instance's user namespace and the idmapped view of the store.
 *
 * Instance uid/gid 0..65535 map to an unprivileged host range (default
 * SLATE_UID_BASE .. +65535, or the range of the `slate` user in
 * /etc/subuid and /etc/subgid when it has one of at least 65536 ids).
 * The namespace is made first, by a short-lived helper process, so that
 * the store copy can be mounted idmapped to it (files owned by host root
 * appear owned by the instance's root) before the instance joins it.
 * The helper runs as the instance's host root (the map's base ids), so
 * that the kernel charges the namespace's per-user quotas to those ids and
 * not to host root, and it caps them inside (SLATE_NS_*). */
#ifndef SLATE_RUNTIME_USERNS_H
#define SLATE_RUNTIME_USERNS_H

#include <stdint.h>
#include <sys/types.h>

#include "slate/error.h"

#define SLATE_UID_BASE 1879048192u /* 0x70000000: high, below 2^31 (tools that print uids as int) */
#define SLATE_ID_COUNT 65536u
/* Per user of an instance (/proc/sys/user in its namespace). inotify: PHP
 * and nginx use none; a few for tools. Watches cost kernel memory (about
 * 1 KiB each). */
#define SLATE_NS_INOTIFY_INSTANCES 16
#define SLATE_NS_INOTIFY_WATCHES 8192

struct slate_idmap {
	uint32_t uid_base, gid_base, count;
};

/* The mapping: /etc/subuid + /etc/subgid entries for `slate`, else the default. */
int slate_idmap_default(struct slate_idmap *map, slate_error_t *err);
/* Parse one subordinate-id file for user `name`; 0 and *found=0 when absent. */
int slate_subid_lookup(const char *file, const char *name, uint32_t *base, uint32_t *count, int *found,
		       slate_error_t *err);
/* A new user namespace with the mapping; returns an O_CLOEXEC fd to it. */
int slate_userns_create(const struct slate_idmap *map, slate_error_t *err);
/* A detached, read-only, nosuid, nodev, idmapped clone of the directory
 * tree at path (open_tree + mount_setattr). Returns its fd. */
int slate_idmapped_tree(const char *path, int userns_fd, slate_error_t *err);

#endif
