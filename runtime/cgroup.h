/* slate: cgroup limits for an instance.
 *
 * Every instance gets one cgroup named after it, with three limits: memory
 * (with no swap, so the limit is a real ceiling), pids (a fork bomb stops
 * at pids.max with EAGAIN) and cpu (a CFS quota). slate uses the unified
 * hierarchy (cgroup v2) when `root` is a cgroup2 mount whose
 * cgroup.controllers lists memory, pids and cpu, and otherwise the v1
 * hierarchies `root/memory`, `root/pids` and `root/cpu` (a hybrid host, with
 * `root/unified` carrying no useful controller; `cpu` may be a symlink to a
 * co-mounted `cpu,cpuacct`).
 *
 * Layout: `<root>/slate/<name>` (v2) or `<root>/<controller>/slate/<name>`
 * (v1). The shared `slate` parent is created on demand and never removed.
 *
 * Lifetime: create, enter the instance's first process (its children
 * follow), destroy when the instance ends (kills whatever is left, removes
 * the directories). A slate killed with SIGKILL leaves an empty cgroup
 * behind; the next slate command removes it with cleanup_stale. A caller
 * that runs cleanup_stale concurrently with a create must serialise them
 * (a cgroup between create and enter is empty, hence "stale"). */
#ifndef SLATE_RUNTIME_CGROUP_H
#define SLATE_RUNTIME_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "slate/error.h"

#define SLATE_CGROUP_ROOT "/sys/fs/cgroup"
/* CFS period used for --cpus: quota = cpu_millis * period / 1000. */
#define SLATE_CGROUP_CPU_PERIOD_US 100000
/* How long destroy waits for the killed processes to leave the cgroup. */
#define SLATE_CGROUP_KILL_TIMEOUT_MS 5000

struct slate_cg_limits {
	uint64_t memory; /* bytes, 0 = none */
	uint64_t pids; /* 0 = none */
	uint64_t cpu_millis; /* 1000 = one CPU, 0 = none */
};

struct slate_cgroup {
	int version; /* 1 or 2; 0 for a cgroup that was never created */
	char *name;
	char *path_v2; /* v2 */
	char *path_memory, *path_pids, *path_cpu; /* v1 */
	int lock_fd; /* +1: a shared flock on the (first) cgroup directory, held while the owner lives */
};

struct slate_cg_stats {
	uint64_t memory_current; /* bytes charged now */
	uint64_t pids_current; /* tasks now */
	uint64_t oom_kills; /* processes the OOM killer killed in it */
	uint64_t pids_max_events; /* forks refused by pids.max */
};

/* Which hierarchy slate uses under root: 2 when root is a cgroup2 mount
 * whose cgroup.controllers lists memory, pids and cpu, 1 when root/memory,
 * root/pids and root/cpu are v1 cgroup mounts, else an error saying why. */
int slate_cgroup_detect(const char *root, int *version, slate_error_t *err);

/* Create the cgroup `name` under root (normally SLATE_CGROUP_ROOT) and
 * write the limits. v2 enables memory, pids and cpu in the
 * cgroup.subtree_control of root and root/slate as needed.
 * An existing cgroup of that name with a process in it (at any depth) is
 * refused (SLATE_EXIT_REFUSED, errnum EBUSY) naming it, and nothing
 * changes; an empty leftover is removed and created afresh. On failure
 * nothing that this call created is left and *cg is untouched.
 * Names: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 bytes. */
int slate_cgroup_create(const char *root, const char *name, const struct slate_cg_limits *lim, struct slate_cgroup *cg,
			slate_error_t *err);
/* The same with the hierarchy chosen by the caller (1 or 2; 0 detects):
 * lets tests drive the v2 logic against a fake tree of plain files. */
int slate_cgroup_create_version(const char *root, int version, const char *name, const struct slate_cg_limits *lim,
				struct slate_cgroup *cg, slate_error_t *err);

/* Move pid (0 = the caller) into the cgroup (every v1 controller). */
int slate_cgroup_enter(const struct slate_cgroup *cg, pid_t pid, slate_error_t *err);
/* The calling process moves itself (it must be single-threaded): on v1
 * through `tasks`, which spares the kernel-wide threadgroup lock (an RCU
 * grace period, 5-15 ms) that a cgroup.procs write of another process
 * waits for; on v2 through cgroup.procs. */
int slate_cgroup_enter_self(const struct slate_cgroup *cg, slate_error_t *err);

/* Kill everything left in the cgroup and its descendants (v2 cgroup.kill
 * when present, else SIGKILL to each pid of cgroup.procs, repeated until
 * empty, at most SLATE_CGROUP_KILL_TIMEOUT_MS), then remove every directory
 * of it. Refuses when the caller itself is inside. Missing directories are
 * fine, so destroy can be repeated. */
int slate_cgroup_destroy(struct slate_cgroup *cg, slate_error_t *err);

/* Free the strings (does not touch the cgroup itself). */
void slate_cgroup_free(struct slate_cgroup *cg);

/* Current usage and event counters (v2 memory.current, memory.events
 * oom_kill, pids.current, pids.events max; v1 memory.usage_in_bytes,
 * memory.oom_control oom_kill, or memory.failcnt on kernels before 4.13). */
int slate_cgroup_stats(const struct slate_cgroup *cg, struct slate_cg_stats *st, slate_error_t *err);

/* The monitor's own cgroup (attack review item 12): what an app's monitor
 * costs the host (its relay's buffers, its log pump) is bounded and
 * visible, apart from the instance's. slate_cgroup_monitor_enter creates
 * `NAME` (see slate_cgroup_create; pids and cpu unlimited) with a memory
 * limit, moves the caller into it and, on v1, where socket memory is only
 * accounted once memory.kmem.tcp.limit_in_bytes is set, sets that to the
 * same limit (v2 always charges sockets to the memory controller).
 * slate_cgroup_monitor_leave moves the caller back to the root of each
 * hierarchy and removes the cgroup. */
int slate_cgroup_monitor_enter(const char *root, const char *name, uint64_t memory, struct slate_cgroup *cg,
			       slate_error_t *err);
int slate_cgroup_monitor_leave(const char *root, struct slate_cgroup *cg, slate_error_t *err);

struct slate_cg_memory {
	uint64_t max; /* the limit, bytes */
	uint64_t current; /* charged now (v2: sockets included) */
	uint64_t tcp; /* socket memory charged now (v1 memory.kmem.tcp.usage_in_bytes, v2 memory.stat sock) */
};
int slate_cgroup_memory(const struct slate_cgroup *cg, struct slate_cg_memory *m, slate_error_t *err);

/* Remove every leftover `<root>/slate/<name>` and `<root>/<ctrl>/slate/<name>`
 * with no process left in it; one with a live process is kept. *removed is
 * the number of cgroups (names) removed. On an error the others are still
 * tried and the first error is returned. */
int slate_cgroup_cleanup_stale(const char *root, int *removed, slate_error_t *err);

/* Parse `--cpus`: "1" -> 1000, "0.5" -> 500, "2.25" -> 2250 millis; at most
 * three decimals, at least 0.01 (the kernel's 1 ms minimum quota), at most
 * 100000 CPUs. */
int slate_parse_cpus(const char *s, uint64_t *millis, slate_error_t *err);

#endif
