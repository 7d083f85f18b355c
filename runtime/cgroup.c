/* slate: cgroup limits for an instance, on cgroup v2 or v1 (see cgroup.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "slate/util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define CG_PARENT "slate"
#define CG_NAME_MAX 64
#define CG_READ_MAX (8u << 20)
#define CG_MAX_DEPTH 16
#define CG_MAX_CHILDREN 65536
#define CG_KILL_ROUNDS 2000

static const char *const v1_controllers[] = { "memory", "pids", "cpu" };
#define N_CONTROLLERS (sizeof(v1_controllers) / sizeof(v1_controllers[0]))

/* ---- small file helpers: one open, one write, errors name the file ---- */

/* Write value to dir/file. *missing (when given) turns ENOENT on open into
 * "missing" instead of an error: for files that depend on kernel options. */
static int cg_write_opt(const char *dir, const char *file, const char *value, bool *missing, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, file);
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t len = strlen(value);
	ssize_t w = -1;

	if (missing)
		*missing = false;
	if (fd < 0 && errno == ENOENT && missing) {
		*missing = true;
		return 0;
	}
	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s` for writing", path);
	for (int tries = 0; tries < 8; tries++) {
		w = write(fd, value, len);
		if (w >= 0 || errno != EINTR)
			break;
	}
	if (w < 0)
		return slate_error_sys(err, errno, "write `%s` to `%s`", value, path);
	if ((size_t)w != len)
		return slate_error_fail(err, "short write of `%s` to `%s`", value, path);
	return 0;
}

static int cg_write(const char *dir, const char *file, const char *value, slate_error_t *err)
{
	return cg_write_opt(dir, file, value, NULL, err);
}

static int cg_write_u64(const char *dir, const char *file, uint64_t v, slate_error_t *err)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return cg_write(dir, file, buf, err);
}

/* Read dir/file. With missing given, a file (or directory) that does not
 * exist yields NULL with *missing set and err untouched. */
static char *cg_read_opt(const char *dir, const char *file, bool *missing, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, file);
	slate_error_t e = { 0 };
	char *text = slate_read_file(path, CG_READ_MAX, NULL, &e);

	if (missing)
		*missing = text == NULL && e.errnum == ENOENT;
	if (text == NULL && !(missing && *missing) && err)
		*err = e;
	return text;
}

static int parse_u64(const char *s, const char **end, uint64_t *v)
{
	char *e = NULL;
	unsigned long long x;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	x = strtoull(s, &e, 10);
	if (errno != 0)
		return -1;
	*v = x;
	*end = e;
	return 0;
}

/* A file holding one number ("max" reads as UINT64_MAX). */
static int cg_read_u64(const char *dir, const char *file, uint64_t *v, slate_error_t *err)
{
	cleanup_free char *text = cg_read_opt(dir, file, NULL, err);
	const char *end = NULL;

	if (text == NULL)
		return -1;
	if (strncmp(text, "max", 3) == 0 && (text[3] == '\n' || text[3] == '\0')) {
		*v = UINT64_MAX;
		return 0;
	}
	if (parse_u64(text, &end, v) < 0 || (*end != '\n' && *end != '\0'))
		return slate_error_fail(err, "unexpected content in `%s/%s`", dir, file);
	return 0;
}

/* A flat-keyed file ("key value" lines). Returns 1 when key is absent. */
static int cg_read_key(const char *dir, const char *file, const char *key, uint64_t *v, slate_error_t *err)
{
	cleanup_free char *text = cg_read_opt(dir, file, NULL, err);
	size_t klen = strlen(key);
	const char *end = NULL;

	if (text == NULL)
		return -1;
	for (const char *line = text; *line;) {
		const char *next = strchr(line, '\n');
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			if (parse_u64(line + klen + 1, &end, v) < 0 || (*end != '\n' && *end != '\0'))
				return slate_error_fail(err, "unexpected `%s` line in `%s/%s`", key, dir, file);
			return 0;
		}
		if (next == NULL)
			break;
		line = next + 1;
	}
	return 1;
}

/* A whitespace-separated controller list ("cpu io memory", or "+memory"
 * as a fake tree may hold it) contains name. */
static bool list_has(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		size_t len;
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		if (*p == '+')
			p++;
		len = strcspn(p, " \n\t");
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p += len;
	}
	return false;
}

static bool valid_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > CG_NAME_MAX || name[0] == '.' || name[0] == '-' || name[0] == '_')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return false;
	}
	return true;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- detection ---- */

static bool v2_usable(const char *root)
{
	cleanup_free char *list = cg_read_opt(root, "cgroup.controllers", NULL, NULL);

	if (list == NULL)
		return false;
	for (size_t i = 0; i < N_CONTROLLERS; i++)
		if (!list_has(list, v1_controllers[i]))
			return false;
	return true;
}

int slate_cgroup_detect(const char *root, int *version, slate_error_t *err)
{
	struct statfs sfs;

	if (statfs(root, &sfs) < 0)
		return slate_error_sys(err, errno, "statfs `%s`", root);
	if (sfs.f_type == CGROUP2_SUPER_MAGIC && v2_usable(root)) {
		*version = 2;
		return 0;
	}
	for (size_t i = 0; i < N_CONTROLLERS; i++) {
		cleanup_free char *dir = xasprintf("%s/%s", root, v1_controllers[i]);
		if (statfs(dir, &sfs) < 0 || sfs.f_type != CGROUP_SUPER_MAGIC)
			return slate_error_fail(err,
						"no usable cgroups under `%s`: not a cgroup2 mount with memory, pids "
						"and cpu, and `%s` is not a cgroup v1 mount",
						root, dir);
	}
	*version = 1;
	return 0;
}

/* ---- walking a cgroup and its descendants ---- */

struct pidv {
	pid_t *v;
	size_t n, cap;
};

static void pidv_push(struct pidv *p, pid_t pid)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n++] = pid;
}

static int pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/* pid is in p, which cg_all_pids sorted. */
static bool pidv_has(const struct pidv *p, pid_t pid)
{
	return p->n > 0 && bsearch(&pid, p->v, p->n, sizeof(*p->v), pid_cmp) != NULL;
}

/* The subdirectories of a cgroup directory are its child cgroups. A
 * directory that is gone has none. */
static int cg_children(const char *dir, struct slate_strv *out, slate_error_t *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int r = 0;

	if (d == NULL)
		return errno == ENOENT ? 0 : slate_error_sys(err, errno, "open cgroup directory `%s`", dir);
	while ((errno = 0, e = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (e->d_type == DT_UNKNOWN && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			e->d_type = DT_DIR;
		if (e->d_type != DT_DIR)
			continue;
		if (out->n >= CG_MAX_CHILDREN) {
			r = slate_error_fail(err, "more than %d child cgroups in `%s`", CG_MAX_CHILDREN, dir);
			break;
		}
		slate_strv_push_owned(out, xasprintf("%s/%s", dir, e->d_name));
	}
	if (r == 0 && errno != 0)
		r = slate_error_sys(err, errno, "read cgroup directory `%s`", dir);
	closedir(d);
	return r;
}

static int parse_procs(const char *dir, const char *text, struct pidv *out, slate_error_t *err)
{
	for (const char *p = text; *p;) {
		const char *end = NULL;
		uint64_t v;
		if (*p == '\n') {
			p++;
			continue;
		}
		if (parse_u64(p, &end, &v) < 0 || v == 0 || v > INT32_MAX || (*end != '\n' && *end != '\0'))
			return slate_error_fail(err, "unexpected content in `%s/cgroup.procs`", dir);
		pidv_push(out, (pid_t)v);
		p = end;
	}
	return 0;
}

/* Every process in dir and below (pids as seen from our pid namespace). */
static int cg_tree_pids(const char *dir, int depth, struct pidv *out, slate_error_t *err)
{
	struct slate_strv kids = { 0 };
	bool missing = false;
	cleanup_free char *text = NULL;
	int r = 0;

	if (depth > CG_MAX_DEPTH)
		return slate_error_fail(err, "cgroup `%s` is nested deeper than %d levels", dir, CG_MAX_DEPTH);
	text = cg_read_opt(dir, "cgroup.procs", &missing, err);
	if (text == NULL)
		return missing ? 0 : -1;
	if (parse_procs(dir, text, out, err) < 0 || cg_children(dir, &kids, err) < 0)
		r = -1;
	for (size_t i = 0; r == 0 && i < kids.n; i++)
		r = cg_tree_pids(kids.v[i], depth + 1, out, err);
	slate_strv_free(&kids);
	return r;
}

/* Remove dir and its descendants, deepest first. EBUSY sets *busy and is
 * not an error (a process is still leaving, or was just entered). */
static int cg_tree_rmdir(const char *dir, int depth, bool *busy, slate_error_t *err)
{
	struct slate_strv kids = { 0 };
	int r = 0;

	if (depth > CG_MAX_DEPTH)
		return slate_error_fail(err, "cgroup `%s` is nested deeper than %d levels", dir, CG_MAX_DEPTH);
	r = cg_children(dir, &kids, err);
	for (size_t i = 0; r == 0 && i < kids.n; i++)
		r = cg_tree_rmdir(kids.v[i], depth + 1, busy, err);
	slate_strv_free(&kids);
	if (r == 0 && rmdir(dir) < 0) {
		if (errno == EBUSY)
			*busy = true;
		else if (errno != ENOENT)
			r = slate_error_sys(err, errno, "remove cgroup `%s`", dir);
	}
	return r;
}

/* The directories of one cgroup: one on v2, one per controller on v1. */
static size_t cg_dirs(const struct slate_cgroup *cg, const char *dirs[N_CONTROLLERS])
{
	size_t n = 0;

	if (cg->version == 2 && cg->path_v2)
		dirs[n++] = cg->path_v2;
	if (cg->version == 1) {
		const char *v1[N_CONTROLLERS] = { cg->path_memory, cg->path_pids, cg->path_cpu };
		for (size_t i = 0; i < N_CONTROLLERS; i++)
			if (v1[i])
				dirs[n++] = v1[i];
	}
	return n;
}

/* Every process of cg, once each (on v1 it is in each controller). */
static int cg_all_pids(const struct slate_cgroup *cg, struct pidv *out, slate_error_t *err)
{
	const char *dirs[N_CONTROLLERS];
	size_t n = cg_dirs(cg, dirs), u = 0;

	for (size_t i = 0; i < n; i++)
		if (cg_tree_pids(dirs[i], 0, out, err) < 0)
			return -1;
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), pid_cmp);
	for (size_t i = 0; i < out->n; i++)
		if (u == 0 || out->v[u - 1] != out->v[i])
			out->v[u++] = out->v[i];
	out->n = u;
	return 0;
}

/* Remove every directory of cg; *busy when one could not be removed yet. */
static int cg_remove_dirs(const struct slate_cgroup *cg, bool *busy, slate_error_t *err)
{
	const char *dirs[N_CONTROLLERS];
	size_t n = cg_dirs(cg, dirs);

	*busy = false;
	for (size_t i = 0; i < n; i++)
		if (cg_tree_rmdir(dirs[i], 0, busy, err) < 0)
			return -1;
	return 0;
}

/* ---- create ---- */

/* Enable memory, pids and cpu for the children of dir (v2): they must be
 * in its cgroup.controllers; only the missing ones are written, in one
 * write. */
static int v2_enable(const char *dir, slate_error_t *err)
{
	cleanup_free char *avail = cg_read_opt(dir, "cgroup.controllers", NULL, err);
	cleanup_free char *enabled = NULL;
	char want[64] = "";

	if (avail == NULL)
		return -1;
	enabled = cg_read_opt(dir, "cgroup.subtree_control", NULL, err);
	if (enabled == NULL)
		return -1;
	for (size_t i = 0; i < N_CONTROLLERS; i++) {
		const char *c = v1_controllers[i];
		if (!list_has(avail, c))
			return slate_error_fail(
				err, "cgroup controller `%s` is not available in `%s/cgroup.controllers`", c, dir);
		if (!list_has(enabled, c))
			snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s+%s", want[0] ? " " : "", c);
	}
	return want[0] ? cg_write(dir, "cgroup.subtree_control", want, err) : 0;
}

static int mkdir_exist_ok(const char *dir, slate_error_t *err)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return slate_error_sys(err, errno, "create cgroup `%s`", dir);
	return 0;
}

static int mkdir_new(const char *dir, slate_error_t *err)
{
	if (mkdir(dir, 0755) < 0)
		return slate_error_sys(err, errno, "create cgroup `%s`", dir);
	return 0;
}

static int v2_make(const char *root, const struct slate_cgroup *cg, slate_error_t *err)
{
	cleanup_free char *parent = xasprintf("%s/%s", root, CG_PARENT);

	if (v2_enable(root, err) < 0 || mkdir_exist_ok(parent, err) < 0 || v2_enable(parent, err) < 0)
		return -1;
	return mkdir_new(cg->path_v2, err);
}

static int v1_make(const char *root, const struct slate_cgroup *cg, slate_error_t *err)
{
	const char *leaf[N_CONTROLLERS] = { cg->path_memory, cg->path_pids, cg->path_cpu };

	for (size_t i = 0; i < N_CONTROLLERS; i++) {
		cleanup_free char *parent = xasprintf("%s/%s/%s", root, v1_controllers[i], CG_PARENT);
		if (mkdir_exist_ok(parent, err) < 0 || mkdir_new(leaf[i], err) < 0)
			return -1;
	}
	return 0;
}

/* CFS quota in microseconds per SLATE_CGROUP_CPU_PERIOD_US. */
static uint64_t cpu_quota_us(uint64_t millis)
{
	return millis * (SLATE_CGROUP_CPU_PERIOD_US / 1000);
}

static int v2_limits(const char *dir, const struct slate_cg_limits *lim, slate_error_t *err)
{
	bool missing = false;
	char buf[64];

	if (lim->memory && cg_write_u64(dir, "memory.max", lim->memory, err) < 0)
		return -1;
	/* No swap, limit or not: the memory limit is the instance's ceiling.
	 * memory.swap.max is absent only when the kernel does no swap
	 * accounting (CONFIG_MEMCG_SWAP off, or swapaccount=0): v2 then offers
	 * no per-cgroup swap control, and such a host should run without swap. */
	if (cg_write_opt(dir, "memory.swap.max", "0", &missing, err) < 0)
		return -1;
	if (lim->pids && cg_write_u64(dir, "pids.max", lim->pids, err) < 0)
		return -1;
	if (lim->cpu_millis) {
		snprintf(buf, sizeof(buf), "%llu %u", (unsigned long long)cpu_quota_us(lim->cpu_millis),
			 SLATE_CGROUP_CPU_PERIOD_US);
		if (cg_write(dir, "cpu.max", buf, err) < 0)
			return -1;
	}
	return 0;
}

static int v1_memory(const char *dir, uint64_t memory, slate_error_t *err)
{
	bool missing = true;

	/* limit_in_bytes first: memsw must never be below it. */
	if (memory && (cg_write_u64(dir, "memory.limit_in_bytes", memory, err) < 0))
		return -1;
	if (memory) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)memory);
		if (cg_write_opt(dir, "memory.memsw.limit_in_bytes", buf, &missing, err) < 0)
			return -1;
	}
	/* Without swap accounting (no memory.memsw.* files: swapaccount=0 or
	 * CONFIG_MEMCG_SWAP off), or without a memory limit, memsw cannot cap
	 * swap; swappiness 0 does: for a cgroup's own (limit) reclaim, 0 means
	 * no anonymous page of it is swapped at all (cgroup-v1/memory.rst). */
	if (missing && cg_write(dir, "memory.swappiness", "0", err) < 0)
		return -1;
	return 0;
}

static int v1_limits(const struct slate_cgroup *cg, const struct slate_cg_limits *lim, slate_error_t *err)
{
	if (v1_memory(cg->path_memory, lim->memory, err) < 0)
		return -1;
	if (lim->pids && cg_write_u64(cg->path_pids, "pids.max", lim->pids, err) < 0)
		return -1;
	if (lim->cpu_millis) {
		if (cg_write_u64(cg->path_cpu, "cpu.cfs_period_us", SLATE_CGROUP_CPU_PERIOD_US, err) < 0 ||
		    cg_write_u64(cg->path_cpu, "cpu.cfs_quota_us", cpu_quota_us(lim->cpu_millis), err) < 0)
			return -1;
	}
	return 0;
}

static void cg_set_paths(const char *root, struct slate_cgroup *cg)
{
	if (cg->version == 2) {
		cg->path_v2 = xasprintf("%s/%s/%s", root, CG_PARENT, cg->name);
		return;
	}
	cg->path_memory = xasprintf("%s/memory/%s/%s", root, CG_PARENT, cg->name);
	cg->path_pids = xasprintf("%s/pids/%s/%s", root, CG_PARENT, cg->name);
	cg->path_cpu = xasprintf("%s/cpu/%s/%s", root, CG_PARENT, cg->name);
}

/* An existing cgroup of this name with a process in it belongs to a live
 * instance (or to someone else): refuse, and change nothing, rather than
 * adopt or kill its processes. An empty one is a leftover of a killed
 * slate: remove it, so the new instance starts with fresh limits and
 * counters. Must run before anything is created. */
static int cg_take_over_leftover(const struct slate_cgroup *cg, slate_error_t *err)
{
	const char *dirs[N_CONTROLLERS];
	size_t n = cg_dirs(cg, dirs);
	bool busy = false;

	for (size_t i = 0; i < n; i++) {
		struct pidv pids = { 0 };
		int r = cg_tree_pids(dirs[i], 0, &pids, err);
		size_t count = pids.n;
		free(pids.v);
		if (r < 0)
			return -1;
		if (count > 0)
			return slate_error_set(err, SLATE_EXIT_REFUSED, EBUSY,
					       "cgroup `%s` already exists with %zu process%s in it", dirs[i], count,
					       count == 1 ? "" : "es");
	}
	if (cg_remove_dirs(cg, &busy, err) < 0)
		return -1;
	if (busy)
		return slate_error_set(err, SLATE_EXIT_REFUSED, EBUSY, "leftover cgroup `%s` is busy", dirs[0]);
	return 0;
}

int slate_cgroup_create_version(const char *root, int version, const char *name, const struct slate_cg_limits *lim,
				struct slate_cgroup *cg, slate_error_t *err)
{
	struct slate_cgroup new = { 0 };
	bool busy = false;
	int r;

	if (!valid_name(name))
		return slate_error_usage(err, "invalid cgroup name `%s` (use letters, digits, `.`, `_`, `-`)", name);
	if (version == 0 && slate_cgroup_detect(root, &version, err) < 0)
		return -1;
	if (version != 1 && version != 2)
		return slate_error_usage(err, "invalid cgroup version %d", version);
	new.version = version;
	new.name = xstrdup(name);
	cg_set_paths(root, &new);
	if (cg_take_over_leftover(&new, err) < 0) {
		slate_cgroup_free(&new);
		return -1;
	}
	if (version == 2) {
		r = v2_make(root, &new, err);
		if (r == 0)
			r = v2_limits(new.path_v2, lim, err);
	} else {
		r = v1_make(root, &new, err);
		if (r == 0)
			r = v1_limits(&new, lim, err);
	}
	if (r < 0) {
		slate_error_t ignored = { 0 };
		cg_remove_dirs(&new, &busy, &ignored);
		slate_cgroup_free(&new);
		return slate_error_wrap(err, "cgroup `%s`", name);
	}
	/* The owner's mark: a shared flock on the directory, released when the
	 * owner exits however it exits, and seen from any pid namespace
	 * (cleanup takes it exclusively before removing anything). */
	int lock = open(version == 2 ? new.path_v2 : new.path_pids, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock >= 0 && flock(lock, LOCK_SH | LOCK_NB) == 0)
		new.lock_fd = lock + 1;
	else if (lock >= 0)
		close(lock);
	*cg = new;
	return 0;
}

int slate_cgroup_create(const char *root, const char *name, const struct slate_cg_limits *lim, struct slate_cgroup *cg,
			slate_error_t *err)
{
	return slate_cgroup_create_version(root, 0, name, lim, cg, err);
}

/* ---- enter, stats ---- */

int slate_cgroup_enter(const struct slate_cgroup *cg, pid_t pid, slate_error_t *err)
{
	const char *dirs[N_CONTROLLERS];
	size_t n = cg_dirs(cg, dirs);
	char buf[32];

	if (pid < 0)
		return slate_error_usage(err, "invalid pid %d", (int)pid);
	if (n == 0)
		return slate_error_usage(err, "cgroup `%s` was not created", cg->name ? cg->name : "");
	snprintf(buf, sizeof(buf), "%d", (int)(pid ? pid : getpid()));
	for (size_t i = 0; i < n; i++)
		if (cg_write(dirs[i], "cgroup.procs", buf, err) < 0)
			return slate_error_wrap(err, "move pid %s into cgroup `%s`", buf, cg->name);
	return 0;
}

int slate_cgroup_enter_self(const struct slate_cgroup *cg, slate_error_t *err)
{
	const char *dirs[N_CONTROLLERS];
	size_t n = cg_dirs(cg, dirs);

	if (n == 0)
		return slate_error_usage(err, "cgroup `%s` was not created", cg->name ? cg->name : "");
	for (size_t i = 0; i < n; i++)
		if (cg_write(dirs[i], cg->version == 1 ? "tasks" : "cgroup.procs", "0", err) < 0)
			return slate_error_wrap(err, "enter cgroup `%s`", cg->name);
	return 0;
}

int slate_cgroup_stats(const struct slate_cgroup *cg, struct slate_cg_stats *st, slate_error_t *err)
{
	struct slate_cg_stats s = { 0 };
	const char *mem = cg->version == 2 ? cg->path_v2 : cg->path_memory;
	const char *pids = cg->version == 2 ? cg->path_v2 : cg->path_pids;
	int r;

	if (mem == NULL || pids == NULL)
		return slate_error_usage(err, "cgroup `%s` was not created", cg->name ? cg->name : "");
	if (cg_read_u64(mem, cg->version == 2 ? "memory.current" : "memory.usage_in_bytes", &s.memory_current, err) <
		    0 ||
	    cg_read_u64(pids, "pids.current", &s.pids_current, err) < 0 ||
	    cg_read_key(pids, "pids.events", "max", &s.pids_max_events, err) < 0)
		return -1;
	if (cg->version == 2)
		r = cg_read_key(mem, "memory.events", "oom_kill", &s.oom_kills, err);
	else if ((r = cg_read_key(mem, "memory.oom_control", "oom_kill", &s.oom_kills, err)) == 1)
		/* before 4.13 v1 did not count kills; failcnt counts the times
		 * the limit was hit, the closest there is */
		r = cg_read_u64(mem, "memory.failcnt", &s.oom_kills, err);
	if (r < 0)
		return -1;
	*st = s;
	return 0;
}

/* ---- the monitor's own cgroup ---- */

int slate_cgroup_monitor_enter(const char *root, const char *name, uint64_t memory, struct slate_cgroup *cg,
			       slate_error_t *err)
{
	struct slate_cg_limits lim = { .memory = memory };
	struct slate_cgroup new = { 0 };

	if (slate_cgroup_create(root, name, &lim, &new, err) < 0)
		return -1;
	if ((new.version == 1 && cg_write_u64(new.path_memory, "memory.kmem.tcp.limit_in_bytes", memory, err) < 0) ||
	    slate_cgroup_enter_self(&new, err) < 0) {
		slate_error_t ignore = { 0 };
		slate_cgroup_destroy(&new, &ignore);
		slate_cgroup_free(&new);
		return -1;
	}
	*cg = new;
	return 0;
}

int slate_cgroup_monitor_leave(const char *root, struct slate_cgroup *cg, slate_error_t *err)
{
	static const char *const v1[] = { "memory", "pids", "cpu" };

	if (cg->version == 2 && cg_write(root, "cgroup.procs", "0", err) < 0)
		return -1;
	for (size_t i = 0; cg->version == 1 && i < sizeof(v1) / sizeof(v1[0]); i++) {
		cleanup_free char *dir = xasprintf("%s/%s", root, v1[i]);
		if (cg_write(dir, "tasks", "0", err) < 0)
			return -1;
	}
	return slate_cgroup_destroy(cg, err);
}

int slate_cgroup_memory(const struct slate_cgroup *cg, struct slate_cg_memory *m, slate_error_t *err)
{
	struct slate_cg_memory s = { 0 };
	const char *dir = cg->version == 2 ? cg->path_v2 : cg->path_memory;

	if (dir == NULL)
		return slate_error_usage(err, "cgroup `%s` was not created", cg->name ? cg->name : "");
	if (cg->version == 2) {
		if (cg_read_u64(dir, "memory.max", &s.max, err) < 0 ||
		    cg_read_u64(dir, "memory.current", &s.current, err) < 0 ||
		    cg_read_key(dir, "memory.stat", "sock", &s.tcp, err) < 0)
			return -1;
	} else if (cg_read_u64(dir, "memory.limit_in_bytes", &s.max, err) < 0 ||
		   cg_read_u64(dir, "memory.usage_in_bytes", &s.current, err) < 0 ||
		   cg_read_u64(dir, "memory.kmem.tcp.usage_in_bytes", &s.tcp, err) < 0) {
		return -1;
	}
	*m = s;
	return 0;
}

/* ---- destroy ---- */

/* Set once pidfd_open said ENOSYS (old kernel, or valgrind). */
static atomic_bool no_pidfd;

/* SIGKILL the processes in pids that are still in the cgroup.
 *
 * Why the pidfds: a pid read from cgroup.procs may exit and be reused by an
 * unrelated host process before we signal it. So open a pidfd for each pid
 * first (it pins whichever process has that pid now), then read the
 * membership again: a process whose pidfd still signals successfully was
 * alive all along, so at the second read its pid was still its own, and it
 * was in the cgroup. Without pidfd_open (kernel < 5.3) fall back to kill(),
 * with the window narrowed to the time between the second read and kill. */
static int kill_round(const struct slate_cgroup *cg, const struct pidv *pids, slate_error_t *err)
{
	int *fds = xcalloc(pids->n, sizeof(int));
	struct pidv again = { 0 };
	int r = 0;

	/* fds[i]: a pidfd, or -errno of pidfd_open */
	for (size_t i = 0; i < pids->n; i++) {
		if (pids->v[i] <= 1)
			fds[i] = -ESRCH;
		else if (atomic_load(&no_pidfd))
			fds[i] = -ENOSYS;
		else if ((fds[i] = (int)syscall(SYS_pidfd_open, pids->v[i], 0)) < 0)
			fds[i] = -errno;
		if (fds[i] == -ENOSYS)
			atomic_store(&no_pidfd, true);
	}
	if (cg_all_pids(cg, &again, err) < 0)
		r = -1;
	for (size_t i = 0; r == 0 && i < pids->n; i++) {
		pid_t pid = pids->v[i];
		long k;
		if (pid <= 1 || pid == getpid() || !pidv_has(&again, pid))
			continue;
		if (fds[i] >= 0)
			k = syscall(SYS_pidfd_send_signal, fds[i], SIGKILL, NULL, 0);
		else if (fds[i] == -ENOSYS)
			k = kill(pid, SIGKILL);
		else
			continue; /* ESRCH: gone already */
		if (k < 0 && errno != ESRCH)
			r = slate_error_sys(err, errno, "kill pid %d in cgroup `%s`", (int)pid, cg->name);
	}
	for (size_t i = 0; i < pids->n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	free(again.v);
	return r;
}

/* v2 kernels >= 5.14: one write kills the whole subtree and refuses new
 * forks in it. *done says whether cgroup.kill existed. */
static int v2_kill(const struct slate_cgroup *cg, bool *done, slate_error_t *err)
{
	bool missing = true;

	*done = false;
	if (cg->version != 2)
		return 0;
	if (cg_write_opt(cg->path_v2, "cgroup.kill", "1", &missing, err) < 0)
		return -1;
	*done = !missing;
	return 0;
}

/* Whether the caller is inside: it would kill itself, and the cgroup could
 * never become empty. */
static int refuse_self(const struct slate_cgroup *cg, slate_error_t *err)
{
	struct pidv pids = { 0 };
	int r = cg_all_pids(cg, &pids, err);
	bool self = r == 0 && pidv_has(&pids, getpid());

	free(pids.v);
	if (self)
		return slate_error_usage(err, "cannot destroy cgroup `%s` from inside it (pid %d)", cg->name,
					 (int)getpid());
	return r;
}

int slate_cgroup_destroy(struct slate_cgroup *cg, slate_error_t *err)
{
	uint64_t deadline = now_ms() + SLATE_CGROUP_KILL_TIMEOUT_MS;
	const char *dirs[N_CONTROLLERS];
	bool killed = false, busy = false;
	size_t left = 0;
	unsigned pause = 1;

	if (cg_dirs(cg, dirs) == 0)
		return 0;
	if (refuse_self(cg, err) < 0 || v2_kill(cg, &killed, err) < 0)
		return slate_error_wrap(err, "destroy cgroup `%s`", cg->name);
	for (int round = 0; round < CG_KILL_ROUNDS; round++) {
		struct pidv pids = { 0 };
		int r = cg_all_pids(cg, &pids, err);
		left = pids.n;
		if (r == 0 && left == 0)
			r = cg_remove_dirs(cg, &busy, err);
		else if (r == 0 && !killed)
			r = kill_round(cg, &pids, err);
		free(pids.v);
		if (r < 0)
			return slate_error_wrap(err, "destroy cgroup `%s`", cg->name);
		if (left == 0 && !busy)
			return 0;
		if (now_ms() >= deadline)
			break;
		sleep_ms(pause);
		pause = pause < 8 ? pause * 2 : 10;
	}
	if (left > 0)
		return slate_error_fail(err, "destroy cgroup `%s`: %zu process%s still in it after %d ms", cg->name,
					left, left == 1 ? "" : "es", SLATE_CGROUP_KILL_TIMEOUT_MS);
	return slate_error_sys(err, EBUSY, "destroy cgroup `%s`: remove `%s`", cg->name, dirs[0]);
}

void slate_cgroup_free(struct slate_cgroup *cg)
{
	if (cg->lock_fd > 0)
		close(cg->lock_fd - 1);
	free(cg->name);
	free(cg->path_v2);
	free(cg->path_memory);
	free(cg->path_pids);
	free(cg->path_cpu);
	*cg = (struct slate_cgroup){ 0 };
}

/* ---- stale leftovers ---- */

/* The names under every place slate creates cgroups. */
static int stale_names(const char *root, struct slate_strv *names, slate_error_t *err)
{
	const char *const places[] = { CG_PARENT, "memory/" CG_PARENT, "pids/" CG_PARENT, "cpu/" CG_PARENT };

	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		cleanup_free char *dir = xasprintf("%s/%s", root, places[i]);
		struct slate_strv kids = { 0 };
		if (cg_children(dir, &kids, err) < 0)
			return -1;
		for (size_t k = 0; k < kids.n; k++) {
			const char *base = strrchr(kids.v[k], '/') + 1;
			if (valid_name(base) && !slate_strv_contains(names, base))
				slate_strv_push(names, base);
		}
		slate_strv_free(&kids);
	}
	return 0;
}

/* Remove the leftover `name` if nothing runs in it; *gone when removed. */
static int stale_remove(const char *root, const char *name, bool *gone, slate_error_t *err)
{
	struct slate_cgroup v2 = { .version = 2, .name = xstrdup(name) };
	struct slate_cgroup v1 = { .version = 1, .name = xstrdup(name) };
	struct slate_cgroup *both[2] = { &v2, &v1 };
	struct pidv pids = { 0 };
	bool busy = false;
	int r = 0;

	*gone = false;
	cg_set_paths(root, &v2);
	cg_set_paths(root, &v1);
	for (size_t i = 0; r == 0 && i < 2; i++)
		r = cg_all_pids(both[i], &pids, err);
	for (size_t i = 0; r == 0 && pids.n == 0 && i < 2; i++)
		r = cg_remove_dirs(both[i], &busy, err);
	*gone = r == 0 && pids.n == 0 && !busy;
	free(pids.v);
	slate_cgroup_free(&v2);
	slate_cgroup_free(&v1);
	return r;
}

/* Instances name their cgroup NAME.PID after the slate process that owns
 * it: while that process lives, the cgroup is not stale even when empty
 * (created, not yet entered), so cleanup never races a starting instance. */
static bool owner_alive(const char *root, const char *name)
{
	const char *dot = strrchr(name, '.');
	char *end = NULL;
	long pid;
	bool locked = false;

	/* The owner's flock (see create): held means alive, in any pid namespace. */
	for (int v = 1; v <= 2 && !locked; v++) {
		cleanup_free char *dir = v == 2 ? xasprintf("%s/%s/%s", root, CG_PARENT, name)
						: xasprintf("%s/pids/%s/%s", root, CG_PARENT, name);
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		locked = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		close(fd);
	}
	if (locked)
		return true;
	if (dot == NULL || dot[1] == '\0')
		return false;
	pid = strtol(dot + 1, &end, 10);
	if (*end != '\0' || pid <= 0)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int slate_cgroup_cleanup_stale(const char *root, int *removed, slate_error_t *err)
{
	struct slate_strv names = { 0 };
	slate_error_t first = { 0 };
	int r = 0;

	*removed = 0;
	if (stale_names(root, &names, err) < 0) {
		slate_strv_free(&names);
		return slate_error_wrap(err, "clean up stale cgroups");
	}
	for (size_t i = 0; i < names.n; i++) {
		slate_error_t e = { 0 };
		bool gone = false;
		if (owner_alive(root, names.v[i]))
			continue;
		if (stale_remove(root, names.v[i], &gone, &e) < 0 && r == 0) {
			first = e;
			r = -1;
		}
		*removed += gone ? 1 : 0;
	}
	slate_strv_free(&names);
	if (r < 0 && err) {
		*err = first;
		return slate_error_wrap(err, "clean up stale cgroups");
	}
	return 0;
}

/* ---- --cpus ---- */

int slate_parse_cpus(const char *s, uint64_t *millis, slate_error_t *err)
{
	const char *p = s;
	uint64_t whole = 0, frac = 0;
	int digits = 0, decimals = 0;

	for (; *p >= '0' && *p <= '9' && digits < 7; p++, digits++)
		whole = whole * 10 + (uint64_t)(*p - '0');
	if (digits == 0 || (*p >= '0' && *p <= '9'))
		return slate_error_usage(err, "`%s` is not a CPU count (e.g. 1, 0.5, 2.25)", s);
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9' && decimals < 4; p++, decimals++)
			frac = frac * 10 + (uint64_t)(*p - '0');
		if (decimals == 0)
			return slate_error_usage(err, "`%s` is not a CPU count (e.g. 1, 0.5, 2.25)", s);
		if (decimals > 3)
			return slate_error_usage(err, "`%s`: at most three decimals for a CPU count", s);
	}
	if (*p != '\0')
		return slate_error_usage(err, "`%s` is not a CPU count (e.g. 1, 0.5, 2.25)", s);
	for (int d = decimals; d < 3; d++)
		frac *= 10;
	if (whole * 1000 + frac < 10 || whole * 1000 + frac > 100000ULL * 1000)
		return slate_error_usage(err, "`%s`: a CPU count is between 0.01 and 100000", s);
	*millis = whole * 1000 + frac;
	return 0;
}
