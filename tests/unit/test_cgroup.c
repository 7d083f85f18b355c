/* Unit tests for runtime/cgroup.c.
 *
 * - The v2 logic against a fake cgroup2 tree of plain files in a temporary
 *   directory (this host's cgroup2 mount has no memory, pids or cpu
 *   controller, so real v2 directories with limits cannot be made here).
 * - The real hierarchy of this machine (cgroup v1 here; the same tests run
 *   on v2 on a modern host): limits read back, enter, stats, destroy, a
 *   fork bomb stopped by pids.max, a memory hog OOM-killed, stale cleanup,
 *   refusal of a busy cgroup. Needs root; skipped otherwise.
 *
 * Every child process dies with the test (PR_SET_PDEATHSIG) or after 60 s
 * (alarm), every loop is bounded, and every cgroup is destroyed in the
 * teardown whatever the test did. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "cgroup.h"
#include "slate/util.h"

#define assert_ok(call, err)                                                                                           \
	do {                                                                                                           \
		if ((call) != 0)                                                                                       \
			fail_msg("%s failed: %s", #call, (err)->msg);                                                  \
	} while (0)

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static char *read_in(const char *dir, const char *file)
{
	char *path = path_join(dir, file);
	slate_error_t err = { 0 };
	char *text = slate_read_file(path, 1 << 20, NULL, &err);

	free(path);
	if (text == NULL)
		fail_msg("%s", err.msg);
	return text;
}

/* The file holds want, give or take the kernel's trailing newline. */
static void assert_file_text(const char *dir, const char *file, const char *want)
{
	char *text = read_in(dir, file);
	size_t len = strlen(text);

	if (len > 0 && text[len - 1] == '\n')
		text[len - 1] = '\0';
	if (strcmp(text, want) != 0)
		fail_msg("%s/%s holds `%s`, want `%s`", dir, file, text, want);
	free(text);
}

static void put_text(const char *dir, const char *file, const char *text)
{
	char *path = xasprintf("%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(text);

	if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) != 0) {
		fprintf(stderr, "test_cgroup: cannot write %s: %s\n", path, strerror(errno));
		abort();
	}
	free(path);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- the fake cgroup2 tree ----
 * The kernel fills a new cgroup directory with its interface files and
 * removes them with it; a plain directory does neither. While fake_root is
 * set, mkdir() and rmdir() under it (the calls runtime/cgroup.c makes, bound
 * to these definitions at link time) do what cgroupfs does: a new directory
 * gets the cgroup.* files and the files of the controllers that its parent
 * enabled in cgroup.subtree_control (so enabling in the wrong order shows
 * up as a missing memory.max), and rmdir refuses a cgroup with a process
 * or a child (EBUSY). Files cgroup.c writes start empty, so the test sees
 * exactly what was written. Everything else goes straight to the system
 * calls. */

static char *fake_root;
static const char *fake_omit; /* a file new cgroups lack ("cgroup.kill": a kernel before 5.14) */
static char fake_last_kill[16]; /* cgroup.kill of the last directory removed */

static bool under_fake(const char *path)
{
	size_t n = fake_root ? strlen(fake_root) : 0;

	return fake_root && strncmp(path, fake_root, n) == 0 && path[n] == '/';
}

static bool token_in(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		size_t len;
		while (*p == ' ' || *p == '\n' || *p == '+')
			p++;
		len = strcspn(p, " \n");
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p += len;
	}
	return false;
}

/* An interface file of a new fake cgroup, unless the test left it out. */
static void fake_file(const char *dir, const char *file, const char *text)
{
	if (fake_omit == NULL || strcmp(file, fake_omit) != 0)
		put_text(dir, file, text);
}

static void fake_populate(const char *dir)
{
	char *parent = xstrndup(dir, (size_t)(strrchr(dir, '/') - dir));
	char *enabled = read_in(parent, "cgroup.subtree_control");
	char avail[128] = "";
	static const char *const all[] = { "cpu", "memory", "pids" };

	for (size_t i = 0; i < 3; i++)
		if (token_in(enabled, all[i]))
			snprintf(avail + strlen(avail), sizeof(avail) - strlen(avail), "%s%s", avail[0] ? " " : "",
				 all[i]);
	fake_file(dir, "cgroup.controllers", avail);
	fake_file(dir, "cgroup.subtree_control", "");
	fake_file(dir, "cgroup.procs", "");
	fake_file(dir, "cgroup.kill", "");
	if (token_in(avail, "memory")) {
		fake_file(dir, "memory.max", "");
		fake_file(dir, "memory.swap.max", "");
		fake_file(dir, "memory.current", "0\n");
		fake_file(dir, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
	}
	if (token_in(avail, "pids")) {
		fake_file(dir, "pids.max", "");
		fake_file(dir, "pids.current", "0\n");
		fake_file(dir, "pids.events", "max 0\n");
	}
	if (token_in(avail, "cpu"))
		fake_file(dir, "cpu.max", "");
	free(enabled);
	free(parent);
}

int mkdir(const char *path, mode_t mode)
{
	if (syscall(SYS_mkdirat, AT_FDCWD, path, mode) < 0)
		return -1;
	if (under_fake(path))
		fake_populate(path);
	return 0;
}

/* EBUSY when the fake cgroup has a process or a child, like cgroupfs. */
static int fake_empty_files(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char *procs;
	int busy = 0;

	if (d == NULL)
		return -1;
	procs = read_in(path, "cgroup.procs");
	busy = procs[strspn(procs, " \n")] != '\0';
	free(procs);
	while (!busy && (e = readdir(d)) != NULL)
		if (e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			busy = 1;
	if (!busy) {
		char *kill_file = xasprintf("%s/cgroup.kill", path);
		char *k = slate_read_file(kill_file, 64, NULL, NULL);
		snprintf(fake_last_kill, sizeof(fake_last_kill), "%s", k ? k : "");
		free(k);
		free(kill_file);
		rewinddir(d);
		while ((e = readdir(d)) != NULL)
			if (e->d_type == DT_REG)
				unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	if (busy)
		errno = EBUSY;
	return busy ? -1 : 0;
}

int rmdir(const char *path)
{
	if (under_fake(path) && fake_empty_files(path) < 0)
		return -1;
	return (int)syscall(SYS_unlinkat, AT_FDCWD, path, AT_REMOVEDIR);
}

struct fake {
	char *root;
	struct slate_cgroup cg, cg2;
};

static int fake_setup(void **state)
{
	struct fake *f = xcalloc(1, sizeof(*f));

	f->root = xstrdup("/tmp/slate-test-cgroup-XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	put_text(f->root, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
	put_text(f->root, "cgroup.subtree_control", "");
	fake_root = f->root;
	fake_omit = NULL;
	fake_last_kill[0] = '\0';
	*state = f;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;

	fake_root = NULL;
	slate_cgroup_free(&f->cg);
	slate_cgroup_free(&f->cg2);
	rm_tree(f->root);
	free(f->root);
	free(f);
	return 0;
}

static const struct slate_cg_limits test_limits = { .memory = 32ULL << 20, .pids = 20, .cpu_millis = 1500 };

static char *fake_path(const struct fake *f, const char *rel)
{
	return xasprintf("%s/%s", f->root, rel);
}

/* ---- v2 against the fake tree ---- */

static void test_v2_create_writes_limits(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	char *slate = fake_path(f, "slate"), *leaf = fake_path(f, "slate/web");

	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	assert_int_equal(f->cg.version, 2);
	assert_string_equal(f->cg.name, "web");
	assert_string_equal(f->cg.path_v2, leaf);
	assert_null(f->cg.path_memory);
	/* enabled in both parents, root first (else the fake has no memory.max) */
	assert_file_text(f->root, "cgroup.subtree_control", "+memory +pids +cpu");
	assert_file_text(slate, "cgroup.subtree_control", "+memory +pids +cpu");
	assert_file_text(leaf, "memory.max", "33554432");
	assert_file_text(leaf, "memory.swap.max", "0");
	assert_file_text(leaf, "pids.max", "20");
	assert_file_text(leaf, "cpu.max", "150000 100000");
	assert_int_equal(err.kind, 0);
	free(slate);
	free(leaf);
}

static void test_v2_enables_only_missing(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	char *slate = fake_path(f, "slate");

	put_text(f->root, "cgroup.subtree_control", "cpu io memory pids\n");
	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	assert_file_text(f->root, "cgroup.subtree_control", "cpu io memory pids");
	assert_file_text(slate, "cgroup.subtree_control", "+memory +pids +cpu");
	/* a second instance finds everything enabled and writes nothing */
	put_text(slate, "cgroup.subtree_control", "cpu memory pids\n");
	assert_ok(slate_cgroup_create_version(f->root, 2, "api", &test_limits, &f->cg2, &err), &err);
	assert_file_text(slate, "cgroup.subtree_control", "cpu memory pids");
	free(slate);
}

static void test_v2_missing_controller(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	char *slate = fake_path(f, "slate");

	put_text(f->root, "cgroup.controllers", "cpu io memory\n");
	assert_int_equal(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "`pids` is not available");
	assert_non_null(strstr(err.msg, "cgroup.controllers"));
	assert_false(exists(slate));
	assert_file_text(f->root, "cgroup.subtree_control", "");
	assert_int_equal(f->cg.version, 0);
	free(slate);
}

static void test_v2_no_limits_still_no_swap(void **state)
{
	struct fake *f = *state;
	const struct slate_cg_limits none = { 0 };
	slate_error_t err = { 0 };

	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &none, &f->cg, &err), &err);
	assert_file_text(f->cg.path_v2, "memory.max", "");
	assert_file_text(f->cg.path_v2, "memory.swap.max", "0");
	assert_file_text(f->cg.path_v2, "pids.max", "");
	assert_file_text(f->cg.path_v2, "cpu.max", "");
}

static void test_v2_without_swap_accounting(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	char *swap = NULL;

	fake_omit = "memory.swap.max";
	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	assert_file_text(f->cg.path_v2, "memory.max", "33554432");
	swap = xasprintf("%s/memory.swap.max", f->cg.path_v2);
	assert_false(exists(swap));
	free(swap);
}

static void test_v2_parent_lacks_controller(void **state)
{
	struct fake *f = *state;
	const struct slate_cg_limits lim = { .pids = 20 };
	slate_error_t err = { 0 };
	char *slate = fake_path(f, "slate"), *leaf = fake_path(f, "slate/web");

	/* root/slate exists but was given no pids by root */
	put_text(f->root, "cgroup.subtree_control", "cpu memory");
	assert_int_equal(mkdir(slate, 0755), 0);
	put_text(f->root, "cgroup.subtree_control", "cpu memory pids");
	assert_int_equal(slate_cgroup_create_version(f->root, 2, "web", &lim, &f->cg, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "slate/cgroup.controllers");
	assert_false(exists(leaf));
	assert_int_equal(f->cg.version, 0);
	free(slate);
	free(leaf);
}

static void test_v2_failed_write_leaves_nothing(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	char *leaf = fake_path(f, "slate/web");

	fake_omit = "pids.max";
	assert_int_equal(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, "slate/web/pids.max");
	assert_int_equal(err.errnum, ENOENT);
	assert_false(exists(leaf));
	assert_int_equal(f->cg.version, 0);
	free(leaf);
}

static void test_v2_enter_and_stats(void **state)
{
	struct fake *f = *state;
	struct slate_cg_stats st = { 0 };
	slate_error_t err = { 0 };
	char self[32];

	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	assert_ok(slate_cgroup_enter(&f->cg, 0, &err), &err);
	snprintf(self, sizeof(self), "%d", (int)getpid());
	assert_file_text(f->cg.path_v2, "cgroup.procs", self);
	put_text(f->cg.path_v2, "memory.current", "12345\n");
	put_text(f->cg.path_v2, "memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n");
	put_text(f->cg.path_v2, "pids.current", "3\n");
	put_text(f->cg.path_v2, "pids.events", "max 7\n");
	assert_ok(slate_cgroup_stats(&f->cg, &st, &err), &err);
	assert_int_equal(st.memory_current, 12345);
	assert_int_equal(st.oom_kills, 2);
	assert_int_equal(st.pids_current, 3);
	assert_int_equal(st.pids_max_events, 7);
	/* the caller is inside: destroy refuses instead of killing it */
	assert_int_equal(slate_cgroup_destroy(&f->cg, &err), -1);
	assert_error(&err, SLATE_EXIT_USAGE, "from inside");
	assert_true(exists(f->cg.path_v2));
	assert_file_text(f->cg.path_v2, "cgroup.kill", "");
	put_text(f->cg.path_v2, "cgroup.procs", "");
	assert_ok(slate_cgroup_destroy(&f->cg, &err), &err);
	assert_false(exists(f->cg.path_v2));
}

static void test_v2_destroy_removes(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	char *slate = fake_path(f, "slate");

	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	assert_ok(slate_cgroup_destroy(&f->cg, &err), &err);
	assert_false(exists(f->cg.path_v2));
	assert_string_equal(fake_last_kill, "1");
	assert_true(exists(slate)); /* shared by every instance */
	assert_ok(slate_cgroup_destroy(&f->cg, &err), &err); /* again: nothing to do */
	free(slate);
}

/* The kernel drops a dead process from cgroup.procs; the fake needs this
 * thread to do it once the child is reaped. */
struct reaper {
	pid_t pid;
	int status;
	char *procs_dir;
};

static void *reap(void *arg)
{
	struct reaper *r = arg;

	if (waitpid(r->pid, &r->status, 0) == r->pid)
		put_text(r->procs_dir, "cgroup.procs", "");
	return NULL;
}

static pid_t spawn_sleeper(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		alarm(60);
		pause();
		_exit(0);
	}
	assert_true(pid > 0);
	return pid;
}

static void test_v2_destroy_kills_by_pid(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	struct reaper r = { 0 };
	pthread_t thread;
	char pid_text[32];

	fake_omit = "cgroup.kill";
	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	r.pid = spawn_sleeper();
	r.procs_dir = f->cg.path_v2;
	snprintf(pid_text, sizeof(pid_text), "%d\n", (int)r.pid);
	put_text(f->cg.path_v2, "cgroup.procs", pid_text);
	assert_int_equal(pthread_create(&thread, NULL, reap, &r), 0);
	if (slate_cgroup_destroy(&f->cg, &err) != 0) {
		kill(r.pid, SIGKILL);
		pthread_join(thread, NULL);
		fail_msg("destroy: %s", err.msg);
	}
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(WIFSIGNALED(r.status));
	assert_int_equal(WTERMSIG(r.status), SIGKILL);
	assert_false(exists(f->cg.path_v2));
}

static void test_v2_busy_refused(void **state)
{
	struct fake *f = *state;
	const struct slate_cg_limits other = { .pids = 30 };
	slate_error_t err = { 0 };
	char self[32];

	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	snprintf(self, sizeof(self), "%d\n", (int)getpid());
	put_text(f->cg.path_v2, "cgroup.procs", self);
	assert_int_equal(slate_cgroup_create_version(f->root, 2, "web", &other, &f->cg2, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, f->cg.path_v2);
	assert_int_equal(err.errnum, EBUSY);
	assert_int_equal(f->cg2.version, 0);
	assert_file_text(f->cg.path_v2, "pids.max", "20"); /* nothing changed */
	assert_file_text(f->cg.path_v2, "memory.max", "33554432");
	put_text(f->cg.path_v2, "cgroup.procs", "");
}

static void test_v2_busy_child_refused(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	char *inner = NULL, self[32];

	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	inner = xasprintf("%s/inner", f->cg.path_v2);
	assert_int_equal(mkdir(inner, 0755), 0);
	snprintf(self, sizeof(self), "%d\n", (int)getpid());
	put_text(inner, "cgroup.procs", self);
	slate_cgroup_free(&f->cg);
	assert_int_equal(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, "slate/web");
	assert_true(exists(inner));
	/* empty again: the leftover and its child are removed and recreated */
	put_text(inner, "cgroup.procs", "");
	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	assert_false(exists(inner));
	assert_file_text(f->cg.path_v2, "pids.max", "20");
	free(inner);
}

static void test_v2_leftover_recreated(void **state)
{
	struct fake *f = *state;
	const struct slate_cg_limits other = { .pids = 30 };
	slate_error_t err = { 0 };

	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &test_limits, &f->cg, &err), &err);
	put_text(f->cg.path_v2, "memory.events", "low 0\nhigh 0\nmax 9\noom 9\noom_kill 9\n");
	slate_cgroup_free(&f->cg); /* as if slate was killed */
	assert_ok(slate_cgroup_create_version(f->root, 2, "web", &other, &f->cg, &err), &err);
	assert_file_text(f->cg.path_v2, "pids.max", "30");
	assert_file_text(f->cg.path_v2, "memory.max", "");
	assert_file_text(f->cg.path_v2, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0");
}

/* The owner's flock goes with it: what a killed slate leaves behind. */
static void drop_owner_lock(struct slate_cgroup *cg)
{
	if (cg->lock_fd > 0)
		close(cg->lock_fd - 1);
	cg->lock_fd = 0;
}

static void test_v2_cleanup_stale(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	char self[32], *a = fake_path(f, "slate/a"), *b = fake_path(f, "slate/b");
	int removed = -1;

	assert_ok(slate_cgroup_create_version(f->root, 2, "a", &test_limits, &f->cg, &err), &err);
	assert_ok(slate_cgroup_create_version(f->root, 2, "b", &test_limits, &f->cg2, &err), &err);
	snprintf(self, sizeof(self), "%d\n", (int)getpid());
	put_text(b, "cgroup.procs", self);
	drop_owner_lock(&f->cg);
	drop_owner_lock(&f->cg2);
	assert_ok(slate_cgroup_cleanup_stale(f->root, &removed, &err), &err);
	assert_int_equal(removed, 1);
	assert_false(exists(a));
	assert_true(exists(b));
	self[strlen(self) - 1] = '\0';
	assert_file_text(b, "cgroup.procs", self);
	put_text(b, "cgroup.procs", "");
	assert_ok(slate_cgroup_cleanup_stale(f->root, &removed, &err), &err);
	assert_int_equal(removed, 1);
	assert_false(exists(b));
	assert_ok(slate_cgroup_cleanup_stale(f->root, &removed, &err), &err);
	assert_int_equal(removed, 0);
	free(a);
	free(b);
}

static void test_invalid_names(void **state)
{
	static const char *const bad[] = {
		"",   ".",       "..",  "../x", "a/b",
		"-x", ".hidden", "a b", "a\nb", "0123456789012345678901234567890123456789012345678901234567890123456789"
	};
	struct fake *f = *state;
	char *slate = fake_path(f, "slate");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		slate_error_t err = { 0 };
		if (slate_cgroup_create_version(f->root, 2, bad[i], &test_limits, &f->cg, &err) != -1)
			fail_msg("name `%s` accepted", bad[i]);
		assert_int_equal(err.kind, SLATE_EXIT_USAGE);
	}
	assert_false(exists(slate));
	free(slate);
}

static void test_detect(void **state)
{
	struct fake *f = *state;
	slate_error_t err = { 0 };
	struct statfs sfs;
	int version = 0;

	assert_int_equal(slate_cgroup_detect(f->root, &version, &err), -1);
	assert_error(&err, SLATE_EXIT_SYSTEM, f->root);
	assert_int_equal(version, 0);
	if (statfs(SLATE_CGROUP_ROOT, &sfs) != 0)
		skip();
	slate_error_clear(&err);
	if (slate_cgroup_detect(SLATE_CGROUP_ROOT, &version, &err) == 0)
		assert_int_equal(version, sfs.f_type == CGROUP2_SUPER_MAGIC ? 2 : 1);
	/* a hybrid host's cgroup2 mount without memory, pids, cpu is unusable */
	if (statfs(SLATE_CGROUP_ROOT "/unified", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
		assert_int_equal(slate_cgroup_detect(SLATE_CGROUP_ROOT "/unified", &version, &err), -1);
}

/* ---- slate_parse_cpus ---- */

static void test_parse_cpus(void **state)
{
	static const struct {
		const char *s;
		uint64_t millis;
	} good[] = { { "1", 1000 },  { "0.5", 500 },   { "2.25", 2250 }, { "1.5", 1500 },
		     { "0.01", 10 }, { "0.125", 125 }, { "16", 16000 },  { "100000", 100000000 } };
	static const char *const bad[] = { "0",  "-1",  "abc",   "1.2.3",  "",
					   "1.", ".5",  "0.001", "1.2345", " 1",
					   "1 ", "1e3", "+1",    "100001", "99999999999999999999" };
	(void)state;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		slate_error_t err = { 0 };
		uint64_t m = 0;
		if (slate_parse_cpus(good[i].s, &m, &err) != 0)
			fail_msg("`%s` refused: %s", good[i].s, err.msg);
		assert_int_equal(m, good[i].millis);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		slate_error_t err = { 0 };
		uint64_t m = 4242;
		if (slate_parse_cpus(bad[i], &m, &err) != -1)
			fail_msg("`%s` accepted as %llu", bad[i], (unsigned long long)m);
		assert_error(&err, SLATE_EXIT_USAGE, bad[i]);
		assert_int_equal(m, 4242);
	}
}

/* ---- the real hierarchy ---- */

struct real {
	int version;
	char name[64], name2[64];
	struct slate_cgroup cg, cg2;
	pid_t kids[4];
	size_t nkids;
};

static int real_setup(void **state)
{
	static unsigned counter;
	struct real *r = xcalloc(1, sizeof(*r));
	slate_error_t err = { 0 };

	if (geteuid() != 0 || slate_cgroup_detect(SLATE_CGROUP_ROOT, &r->version, &err) != 0)
		r->version = 0;
	snprintf(r->name, sizeof(r->name), "slate-test-%d-%u", (int)getpid(), counter++);
	snprintf(r->name2, sizeof(r->name2), "slate-test-%d-%u", (int)getpid(), counter++);
	*state = r;
	return 0;
}

static void reap_kids(struct real *r)
{
	for (size_t i = 0; i < r->nkids; i++) {
		kill(r->kids[i], SIGKILL);
		waitpid(r->kids[i], NULL, 0);
	}
	r->nkids = 0;
}

/* Whatever the test did: no process, no cgroup of it is left. */
static int real_teardown(void **state)
{
	struct real *r = *state;
	slate_error_t err = { 0 };
	int rc = 0;

	reap_kids(r);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	if (r->cg.version && slate_cgroup_destroy(&r->cg, &err) != 0) {
		fprintf(stderr, "teardown: %s\n", err.msg);
		rc = -1;
	}
	if (r->cg2.version && slate_cgroup_destroy(&r->cg2, &err) != 0) {
		fprintf(stderr, "teardown: %s\n", err.msg);
		rc = -1;
	}
	for (int i = 0; i < 1000 && waitpid(-1, NULL, WNOHANG) > 0; i++)
		; /* orphans a failed test left to us as subreaper */
	slate_cgroup_free(&r->cg);
	slate_cgroup_free(&r->cg2);
	free(r);
	return rc;
}

static void require_real(const struct real *r)
{
	if (r->version == 0)
		skip();
}

/* A child that waits for "go" (sent once it is in the cgroup), then runs
 * fn, then waits to be killed. It never returns into cmocka. */
static pid_t spawn(struct real *r, void (*fn)(int report), int *go, int *report)
{
	int gp[2], rp[2];
	pid_t parent = getpid(), pid;
	char c;

	assert_int_equal(pipe2(gp, O_CLOEXEC), 0);
	assert_int_equal(pipe2(rp, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		alarm(60);
		close(gp[1]);
		close(rp[0]);
		if (read(gp[0], &c, 1) != 1)
			_exit(98);
		if (fn)
			fn(rp[1]);
		pause();
		_exit(0);
	}
	assert_true(pid > 0);
	r->kids[r->nkids++] = pid;
	close(gp[0]);
	close(rp[1]);
	*go = gp[1];
	*report = rp[0];
	return pid;
}

static void enter_and_go(struct real *r, pid_t pid, int go)
{
	slate_error_t err = { 0 };

	assert_ok(slate_cgroup_enter(&r->cg, pid, &err), &err);
	assert_int_equal(write(go, "g", 1), 1);
	close(go);
}

/* Wait for a child, at most timeout_ms; returns its status. */
static int wait_child(struct real *r, pid_t pid, unsigned timeout_ms)
{
	int status = 0;

	for (unsigned waited = 0; waited <= timeout_ms; waited += 10) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			for (size_t i = 0; i < r->nkids; i++)
				if (r->kids[i] == pid)
					r->kids[i] = r->kids[--r->nkids];
			return status;
		}
		assert_int_equal(w, 0);
		sleep_ms(10);
	}
	fail_msg("child %d still running after %u ms", (int)pid, timeout_ms);
	return -1;
}

static void assert_killed(int status)
{
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("child not killed by SIGKILL: status 0x%x", status);
}

static void assert_gone(const struct slate_cgroup *cg)
{
	const char *paths[] = { cg->path_v2, cg->path_memory, cg->path_pids, cg->path_cpu };

	for (size_t i = 0; i < 4; i++)
		if (paths[i] && exists(paths[i]))
			fail_msg("`%s` still exists", paths[i]);
}

static void assert_real_limits(const struct real *r)
{
	const struct slate_cgroup *cg = &r->cg;
	char *memsw = NULL;

	if (r->version == 2) {
		char *swap = xasprintf("%s/memory.swap.max", cg->path_v2);
		assert_file_text(cg->path_v2, "memory.max", "33554432");
		if (exists(swap))
			assert_file_text(cg->path_v2, "memory.swap.max", "0");
		assert_file_text(cg->path_v2, "pids.max", "20");
		assert_file_text(cg->path_v2, "cpu.max", "150000 100000");
		free(swap);
		return;
	}
	memsw = xasprintf("%s/memory.memsw.limit_in_bytes", cg->path_memory);
	assert_file_text(cg->path_memory, "memory.limit_in_bytes", "33554432");
	if (exists(memsw))
		assert_file_text(cg->path_memory, "memory.memsw.limit_in_bytes", "33554432");
	else
		assert_file_text(cg->path_memory, "memory.swappiness", "0");
	assert_file_text(cg->path_pids, "pids.max", "20");
	assert_file_text(cg->path_cpu, "cpu.cfs_period_us", "100000");
	assert_file_text(cg->path_cpu, "cpu.cfs_quota_us", "150000");
	free(memsw);
}

/* A comma-separated controller list ("cpu,cpuacct") names ctrl. */
static bool comma_has(const char *list, const char *ctrl)
{
	size_t n = strlen(ctrl);

	for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',') {
		if (strncmp(p, ctrl, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	}
	return false;
}

/* /proc/PID/cgroup puts pid in /slate/<name> for memory, pids and cpu
 * (v1 "ID:CONTROLLERS:PATH" lines, cpu maybe as cpu,cpuacct) or in the
 * v2 line "0::/slate/<name>". */
static void assert_proc_cgroup(const struct real *r, pid_t pid)
{
	static const char *const ctrls[] = { "memory", "pids", "cpu" };
	char *dir = xasprintf("/proc/%d", (int)pid);
	char *text = read_in(dir, "cgroup");
	char *want = xasprintf("/slate/%s", r->name);
	char *save = NULL;
	bool seen[3] = { false, false, false };

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL || strcmp(c2 + 1, want) != 0)
			continue;
		*c2 = '\0';
		for (size_t i = 0; i < 3; i++)
			if ((r->version == 2 && c1[1] == '\0') || comma_has(c1 + 1, ctrls[i]))
				seen[i] = true;
	}
	for (size_t i = 0; i < 3; i++)
		if (!seen[i])
			fail_msg("pid %d is not in %s for %s", (int)pid, want, ctrls[i]);
	free(want);
	free(text);
	free(dir);
}

static void test_real_create_enter_destroy(void **state)
{
	struct real *r = *state;
	struct slate_cg_stats st = { 0 };
	slate_error_t err = { 0 };
	int go = -1, report = -1;
	pid_t pid;

	require_real(r);
	assert_ok(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name, &test_limits, &r->cg, &err), &err);
	assert_int_equal(r->cg.version, r->version);
	assert_real_limits(r);
	pid = spawn(r, NULL, &go, &report);
	enter_and_go(r, pid, go);
	assert_proc_cgroup(r, pid);
	assert_ok(slate_cgroup_stats(&r->cg, &st, &err), &err);
	assert_int_equal(st.pids_current, 1);
	assert_true(st.memory_current < test_limits.memory);
	assert_int_equal(st.oom_kills, 0);
	assert_int_equal(st.pids_max_events, 0);
	assert_ok(slate_cgroup_destroy(&r->cg, &err), &err);
	assert_gone(&r->cg);
	assert_killed(wait_child(r, pid, 5000));
	close(report);
}

/* The monitor's own cgroup (attack review item 12): a child enters it
 * with a memory limit (on v1 also the TCP one), is in it, sees the limit
 * through slate_cgroup_memory, leaves it, and the cgroup is gone. */
static void test_real_monitor_cgroup(void **state)
{
	struct real *r = *state;
	int report[2];
	pid_t pid;
	char res = 0;

	require_real(r);
	assert_int_equal(pipe2(report, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct slate_cgroup cg = { 0 };
		struct slate_cg_memory mem = { 0 };
		slate_error_t err = { 0 };
		char *want = xasprintf("/slate/%s\n", r->name);
		char *mine = read_in("/proc/self", "cgroup");
		char c = 'e';

		free(mine);
		if (slate_cgroup_monitor_enter(SLATE_CGROUP_ROOT, r->name, 64 << 20, &cg, &err) == 0) {
			mine = read_in("/proc/self", "cgroup");
			c = strstr(mine, want) == NULL ? 'i' : 'm';
			free(mine);
		}
		if (c == 'm')
			c = slate_cgroup_memory(&cg, &mem, &err) == 0 && mem.max == 64 << 20 && mem.current > 0 &&
					    mem.current < 64 << 20
				    ? 'l'
				    : 'M';
		if (c == 'l')
			c = slate_cgroup_monitor_leave(SLATE_CGROUP_ROOT, &cg, &err) == 0 ? 'k' : 'L';
		if (c == 'k') {
			mine = read_in("/proc/self", "cgroup");
			c = strstr(mine, want) == NULL ? 'o' : 'S';
			free(mine);
		}
		if (c != 'o')
			fprintf(stderr, "monitor cgroup: step %c: %s\n", c, err.msg);
		_exit(write(report[1], &c, 1) == 1 ? 0 : 1);
	}
	close(report[1]);
	{
		struct pollfd pfd = { .fd = report[0], .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		assert_int_equal(read(report[0], &res, 1), 1);
	}
	close(report[0]);
	assert_int_equal(res, 'o');
	waitpid(pid, NULL, 0);
	{
		char *v1 = xasprintf("%s/memory/slate/%s", SLATE_CGROUP_ROOT, r->name);
		char *v2 = xasprintf("%s/slate/%s", SLATE_CGROUP_ROOT, r->name);
		if (exists(v1) || exists(v2))
			fail_msg("the monitor cgroup `%s` is left", r->name);
		free(v1);
		free(v2);
	}
}

struct bomb_report {
	int forked, eagain, other;
};

/* Fork until refused, at most 200 times; children wait to be killed. */
static void fork_bomb(int report)
{
	struct bomb_report rep = { 0 };
	pid_t bomb = getpid();

	for (int i = 0; i < 200; i++) {
		pid_t p = fork();
		if (p == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != bomb)
				_exit(0);
			alarm(60);
			pause();
			_exit(0);
		}
		if (p > 0)
			rep.forked++;
		else if (errno == EAGAIN)
			rep.eagain++;
		else
			rep.other++;
	}
	if (write(report, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(97);
}

static void read_report(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) != 1)
		fail_msg("no report from the child within %d ms", timeout_ms);
	assert_int_equal(read(fd, buf, len), (ssize_t)len);
}

/* Reap up to want orphans killed by SIGKILL, for at most timeout_ms. */
static int reap_orphans(int want, unsigned timeout_ms)
{
	int reaped = 0, status = 0;

	for (unsigned waited = 0; reaped < want && waited <= timeout_ms;) {
		pid_t w = waitpid(-1, &status, WNOHANG);
		if (w > 0) {
			assert_killed(status);
			reaped++;
			continue;
		}
		sleep_ms(10);
		waited += 10;
	}
	return reaped;
}

static void test_real_fork_bomb_stopped(void **state)
{
	struct real *r = *state;
	const struct slate_cg_limits lim = { .pids = 20 };
	struct slate_cg_stats st = { 0 };
	struct bomb_report rep = { 0 };
	slate_error_t err = { 0 };
	int go = -1, report = -1, status = 0;
	pid_t pid, probe;

	require_real(r);
	/* the bomb's children are reparented to us, to be counted and reaped */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_ok(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name, &lim, &r->cg, &err), &err);
	pid = spawn(r, fork_bomb, &go, &report);
	enter_and_go(r, pid, go);
	read_report(report, &rep, sizeof(rep), 30000);
	close(report);
	assert_int_equal(rep.other, 0);
	assert_true(rep.eagain > 0); /* fork failed with EAGAIN */
	assert_true(rep.forked <= 19); /* the bomb itself is the 20th */
	assert_true(rep.forked + rep.eagain == 200);
	assert_ok(slate_cgroup_stats(&r->cg, &st, &err), &err);
	assert_true(st.pids_current <= 20);
	assert_int_equal(st.pids_current, (uint64_t)rep.forked + 1);
	assert_true(st.pids_max_events >= (uint64_t)rep.eagain);
	/* the host still forks */
	probe = fork();
	if (probe == 0)
		_exit(7);
	assert_true(probe > 0);
	assert_int_equal(waitpid(probe, &status, 0), probe);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 7);
	/* and everything in the cgroup dies with it */
	assert_ok(slate_cgroup_destroy(&r->cg, &err), &err);
	assert_gone(&r->cg);
	assert_killed(wait_child(r, pid, 5000));
	assert_int_equal(reap_orphans(rep.forked, 5000), rep.forked);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

/* Touch up to 256 MiB, page by page; surviving it is a failure. */
static void memory_hog(int report)
{
	size_t len = 256u << 20;
	volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)report;
	if (p == MAP_FAILED)
		_exit(2);
	for (size_t off = 0; off < len; off += 4096)
		p[off] = 1;
	_exit(0);
}

static void test_real_memory_hog_killed(void **state)
{
	struct real *r = *state;
	const struct slate_cg_limits lim = { .memory = 32ULL << 20, .pids = 20 };
	struct slate_cg_stats st = { 0 };
	slate_error_t err = { 0 };
	int go = -1, report = -1;
	pid_t pid;

	require_real(r);
	assert_ok(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name, &lim, &r->cg, &err), &err);
	pid = spawn(r, memory_hog, &go, &report);
	enter_and_go(r, pid, go);
	assert_killed(wait_child(r, pid, 30000));
	close(report);
	assert_ok(slate_cgroup_stats(&r->cg, &st, &err), &err);
	assert_true(st.oom_kills >= 1);
	assert_true(st.memory_current <= lim.memory);
	assert_int_equal(st.pids_current, 0);
	assert_ok(slate_cgroup_destroy(&r->cg, &err), &err);
	assert_gone(&r->cg);
}

static void test_real_cleanup_stale(void **state)
{
	struct real *r = *state;
	struct slate_cgroup stale = { 0 };
	slate_error_t err = { 0 };
	int go = -1, report = -1, removed = -1;
	pid_t pid;

	require_real(r);
	/* name2: a leftover of a killed slate, empty */
	assert_ok(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name2, &test_limits, &r->cg2, &err), &err);
	stale = r->cg2;
	drop_owner_lock(&stale);
	r->cg2 = (struct slate_cgroup){ 0 };
	/* name: alive */
	assert_ok(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name, &test_limits, &r->cg, &err), &err);
	pid = spawn(r, NULL, &go, &report);
	enter_and_go(r, pid, go);
	close(report);
	if (slate_cgroup_cleanup_stale(SLATE_CGROUP_ROOT, &removed, &err) != 0) {
		r->cg2 = stale;
		fail_msg("cleanup_stale: %s", err.msg);
	}
	assert_true(removed >= 1);
	assert_gone(&stale);
	slate_cgroup_free(&stale);
	assert_real_limits(r);
	assert_proc_cgroup(r, pid);
}

static void test_real_existing(void **state)
{
	struct real *r = *state;
	const struct slate_cg_limits other = { .pids = 30 };
	struct slate_cg_stats st = { 0 };
	slate_error_t err = { 0 };
	int go = -1, report = -1;
	pid_t pid;

	require_real(r);
	assert_ok(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name, &test_limits, &r->cg, &err), &err);
	pid = spawn(r, NULL, &go, &report);
	enter_and_go(r, pid, go);
	close(report);
	/* in use: refused, and nothing changed */
	assert_int_equal(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name, &other, &r->cg2, &err), -1);
	assert_error(&err, SLATE_EXIT_REFUSED, r->name);
	assert_int_equal(err.errnum, EBUSY);
	assert_int_equal(r->cg2.version, 0);
	assert_real_limits(r);
	assert_ok(slate_cgroup_stats(&r->cg, &st, &err), &err);
	assert_int_equal(st.pids_current, 1);
	/* an empty leftover of the same name is replaced */
	assert_ok(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name2, &test_limits, &r->cg2, &err), &err);
	slate_cgroup_free(&r->cg2);
	assert_ok(slate_cgroup_create(SLATE_CGROUP_ROOT, r->name2, &other, &r->cg2, &err), &err);
	assert_file_text(r->version == 2 ? r->cg2.path_v2 : r->cg2.path_pids, "pids.max", "30");
}

int main(void)
{
	const struct CMUnitTest fake[] = {
		cmocka_unit_test_setup_teardown(test_v2_create_writes_limits, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_enables_only_missing, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_missing_controller, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_no_limits_still_no_swap, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_without_swap_accounting, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_parent_lacks_controller, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_failed_write_leaves_nothing, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_enter_and_stats, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_destroy_removes, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_destroy_kills_by_pid, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_busy_refused, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_busy_child_refused, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_leftover_recreated, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_cleanup_stale, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_invalid_names, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_detect, fake_setup, fake_teardown),
		cmocka_unit_test(test_parse_cpus),
	};
	const struct CMUnitTest real[] = {
		cmocka_unit_test_setup_teardown(test_real_create_enter_destroy, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_monitor_cgroup, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_fork_bomb_stopped, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_memory_hog_killed, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_cleanup_stale, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_existing, real_setup, real_teardown),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("cgroup-v2-fake", fake, NULL, NULL);
	failed += cmocka_run_group_tests_name("cgroup-real", real, NULL, NULL);
	return failed ? 1 : 0;
}
