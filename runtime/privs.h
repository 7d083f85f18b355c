/* slate: the privilege phases of an instance process, in order (crun's
 * order; bubblewrap's named phases). Each function states its invariant. */
#ifndef SLATE_RUNTIME_PRIVS_H
#define SLATE_RUNTIME_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

#include <sys/capability.h>

#include "slate/error.h"

/* What the image's master processes keep (php-fpm and nginx start as the
 * instance's root, bind their sockets, chown them, switch to www-data and
 * signal their workers): nothing else. */
extern const cap_value_t slate_master_caps[];
extern const int slate_master_ncaps;

struct identity {
	uid_t uid; /* inside the user namespace */
	gid_t gid;
	const cap_value_t *caps; /* the only capabilities kept (NULL, 0: none at all) */
	int ncaps;
};

/* Join the instance's user namespace as its root (uid 0 inside, the
 * unprivileged host uid outside). From here on the process has no
 * capability in any namespace the host owns. */
int privs_enter_userns(int userns_fd, slate_error_t *err);
/* Drop to id: bounding set, keepcaps, groups, setresgid, setresuid,
 * capset, ambient, no_new_privs. Verified after the fact. */
int privs_drop(const struct identity *id, slate_error_t *err);
/* Not dumpable: /proc/<pid> of this process is out of reach for the
 * instance (no /proc/pid/exe, mem, fd). */
int privs_not_dumpable(slate_error_t *err);

#endif
