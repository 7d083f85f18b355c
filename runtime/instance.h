/* slate: one instance of a stored bundle: the host side that prepares it
 * (user namespace, idmapped store copy, seccomp filter, cgroup) and the
 * setup process that becomes its PID 1. */
#ifndef SLATE_RUNTIME_INSTANCE_H
#define SLATE_RUNTIME_INSTANCE_H

#include <stdint.h>

#include "cgroup.h"
#include "store.h"

#define SLATE_DEFAULT_MEMORY (1ULL << 30)
#define SLATE_DEFAULT_PIDS 1024
#define SLATE_DEFAULT_TMPFS_SIZE (256ULL << 20)
#define SLATE_DEFAULT_TMPFS_INODES 65536
#define SLATE_STOP_GRACE_SECONDS 10

struct instance_opts {
	const char *root; /* state root (--root): cache, scratch mounts */
	const char *name; /* hostname; the cgroup is named after it */
	const struct slate_stored *bundle;
	char **cmd; /* NULL: the image's processes */
	const char *user; /* NULL: the image's user (for a CMD) */
	char **env;
	struct slate_cg_limits limits;
	uint64_t tmpfs_size, tmpfs_inodes;
	const char *seccomp_profile; /* NULL: slate's default */
};

struct instance;

/* Start an instance; stdio (may be NULL) gives its stdin, stdout, stderr:
 * pipes the caller relays, never a host file or terminal; -1 (or NULL)
 * for the instance's own /dev/null. The image's processes always get the
 * instance's /dev/null as stdin. The caller reaps instance_pid() (SIGCHLD) and then
 * calls instance_finish, which removes the cgroup and frees everything. */
struct instance *instance_start(const struct instance_opts *o, const int stdio[3], slate_error_t *err);
pid_t instance_pid(const struct instance *in);
int instance_netns_fd(const struct instance *in);
int instance_scratch_fd(const struct instance *in);
int instance_finish(struct instance *in, slate_error_t *err);

/* Run the instance to its end, relaying slate's stdio to it through pipes
 * (stdin only to a command); *exit_code gets its exit status (128+N for a
 * signal N). Everything it used is gone when this returns. */
int instance_run(const struct instance_opts *o, int *exit_code, slate_error_t *err);

/* Resolve a user of the image (name or uid[:gid]) from its /etc/passwd,
 * read below the store tree without following links out of it. */
int instance_lookup_user(int rootfd, const char *user, uid_t *uid, gid_t *gid, slate_error_t *err);

#endif
