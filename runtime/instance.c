/* slate: run an instance (see instance.h).
 *
 * Process structure:
 *   slate (host root)      prepares, then waits; forwards SIGTERM/INT/HUP
 *    └─ setup → PID 1      new mount, pid, uts, ipc, net, cgroup namespaces;
 *        │                 builds the filesystem as host root (mounts owned
 *        │                 by the host), then joins the instance's user
 *        │                 namespace and becomes init (no capabilities)
 *        └─ processes      php-fpm, nginx (or the CMD)
 * The setup process dies with slate (PR_SET_PDEATHSIG) and the whole pid
 * namespace dies with it; the cgroup is removed by slate afterwards, or by
 * the next slate command if slate itself was killed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach.h"
#include "init.h"
#include "instance.h"
#include "mounts.h"
#include "privs.h"
#include "seccomp.h"
#include "slate/json.h"
#include "userns.h"

/* /etc/passwd and /etc/group of the image, read from the verified tree
 * with every link resolved inside it. */
static char *read_in_root(int rootfd, const char *path, slate_error_t *err)
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	char *buf;

	if (fd < 0) {
		/* Missing, or not a file of the tree: the bundle's content, refused. */
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EISDIR)
			slate_error_refuse(err, "the image has no `/%s` (%s)", path, strerror(errno));
		else
			slate_error_sys(err, errno, "open `/%s` of the image", path);
		return NULL;
	}
	buf = slate_read_fd((int)fd, path, 4 << 20, NULL, err);
	close((int)fd);
	return buf;
}

/* Field 0 = name, 2 = uid (or gid in group), 3 = gid. */
static int find_entry(const char *text, const char *name, unsigned long *id, unsigned long *gid)
{
	size_t n = strlen(name);

	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long a = 0, b = 0;
		if (strncmp(line, name, n) != 0 || line[n] != ':')
			continue;
		const char *p = strchr(line + n + 1, ':');
		if (p == NULL || sscanf(p + 1, "%lu:%lu", &a, &b) < 1)
			return -1;
		*id = a;
		if (gid)
			*gid = b;
		return 0;
	}
	return -1;
}

int instance_lookup_user(int rootfd, const char *user, uid_t *uid, gid_t *gid, slate_error_t *err)
{
	cleanup_free char *passwd = NULL;
	unsigned long u = 0, g = 0;
	char *end = NULL;

	if (user[0] >= '0' && user[0] <= '9') {
		u = strtoul(user, &end, 10);
		g = u;
		/* Digits only after the colon: strtoul would take " 5", "+5", "-0". */
		if (*end == ':' && end[1] >= '0' && end[1] <= '9')
			g = strtoul(end + 1, &end, 10);
		if (*end != '\0')
			return slate_error_usage(err, "user `%s` is not NAME or UID[:GID]", user);
	} else {
		passwd = read_in_root(rootfd, "etc/passwd", err);
		if (passwd == NULL)
			return -1;
		if (find_entry(passwd, user, &u, &g) < 0)
			return slate_error_refuse(err, "user `%s` is not in the image's /etc/passwd", user);
	}
	if (u >= SLATE_ID_COUNT || g >= SLATE_ID_COUNT)
		return slate_error_refuse(err, "user `%s`: ids must be below %u", user, SLATE_ID_COUNT);
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 0;
}

static gid_t lookup_group(int rootfd, const char *name, gid_t fallback)
{
	slate_error_t ignore = { 0 };
	cleanup_free char *group = read_in_root(rootfd, "etc/group", &ignore);
	unsigned long g = 0;

	if (group == NULL || find_entry(group, name, &g, NULL) < 0 || g >= SLATE_ID_COUNT)
		return fallback;
	return (gid_t)g;
}

/* Instances of one slate process (a monitor runs old and new side by side). */
static unsigned instance_serial;

/* What the setup process needs, all prepared by the host side. */
struct setup {
	const struct instance_opts *o;
	struct slate_idmap map;
	int userns_fd, lower_fd, sync;
	struct slate_seccomp seccomp;
	struct mount_spec mounts;
	struct slate_strv writable;
	struct init_spec init;
	struct init_proc *procs;
	struct slate_strv *argvs; /* the image processes' argv, owned here */
	char *scratch;
	int stdio[3]; /* the instance's stdin, stdout, stderr (-1: its /dev/null) */
	const struct slate_cgroup *cg;
};

struct instance {
	struct setup s;
	struct slate_cgroup cg;
	char *cgname;
	pid_t pid; /* the instance's init, on the host */
	int netns_fd; /* its network namespace */
	int scratch_fd; /* its tmpfs (upper/ inside) */
};

static int message(int sock, const slate_error_t *e)
{
	return send(sock, e, sizeof(*e), MSG_NOSIGNAL) == (ssize_t)sizeof(*e) ? 0 : -1;
}

/* The ready message carries the instance tmpfs fd to slate. */
static int message_fd(int sock, const slate_error_t *e, int fd)
{
	return attach_send_msg_fd(sock, e, sizeof(*e), fd);
}

static ssize_t recv_fd(int sock, slate_error_t *e, int *fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { e, sizeof(*e) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;

	*fd = -1;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	return n;
}

__attribute__((noreturn)) static void setup_fail(struct setup *s, slate_error_t *err)
{
	if (err->kind == 0)
		err->kind = SLATE_EXIT_SYSTEM;
	message(s->sync, err);
	_exit(err->kind);
}

/* The instance's fds 0-2, once its filesystem is in place: what the
 * caller gave (pipes that it relays), and the instance's own /dev/null
 * where it gave none, and always as the image processes' stdin (the
 * monitor hands a /dev/null of the host: a host fd is not for the
 * instance, whatever it is). */
static int instance_stdio(struct setup *s, slate_error_t *err)
{
	for (int i = 0; i < 3; i++) {
		int fd = s->stdio[i];
		if (fd < 0 || (i == 0 && s->init.relay_output))
			fd = attach_open_null(i == 0 ? O_RDONLY : O_WRONLY, err);
		if (fd < 0 || dup2(fd, i) < 0)
			return fd < 0 ? -1 : slate_error_sys(err, errno, "dup2");
		if (fd != s->stdio[i])
			close(fd);
	}
	return 0;
}

/* In the new namespaces, as host root. Order matters: cgroup namespace
 * after slate moved us into the cgroup; the filesystem while we still hold
 * the host's privileges; then the user namespace; then init. */
__attribute__((noreturn)) static void setup_child(struct setup *s)
{
	slate_error_t err = { 0 }, go = { 0 };

	/* A session of its own: the operator's terminal, if slate has one,
	 * is nobody's controlling terminal in the instance (/dev/tty). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || privs_not_dumpable(&err) < 0 || setsid() < 0)
		_exit(SLATE_EXIT_SYSTEM);
	/* slate says go once it holds our namespaces; if slate is gone, stop. */
	if (recv(s->sync, &go, sizeof(go), 0) != (ssize_t)sizeof(go))
		_exit(SLATE_EXIT_SYSTEM);
	/* Into the cgroup (by itself: cheaper than being moved), then a cgroup
	 * namespace rooted there. */
	if (slate_cgroup_enter_self(s->cg, &err) < 0)
		setup_fail(s, &err);
	if (unshare(CLONE_NEWCGROUP) < 0) {
		slate_error_sys(&err, errno, "unshare the cgroup namespace");
		setup_fail(s, &err);
	}
	if (mounts_setup(&s->mounts, &err) < 0 || instance_stdio(s, &err) < 0 ||
	    privs_enter_userns(s->userns_fd, &err) < 0)
		setup_fail(s, &err);
	/* A change of credentials clears the parent-death signal: set it
	 * again, then make sure slate did not die in between. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || message_fd(s->sync, &go, s->mounts.scratch_fd) < 0)
		_exit(SLATE_EXIT_SYSTEM); /* kind 0: ready */
	/* Nothing of slate's but stdio goes on into the instance. */
	if (syscall(SYS_close_range, 3, ~0U, 0) < 0)
		_exit(SLATE_EXIT_SYSTEM);
	init_run(&s->init);
}

static int build_procs(struct setup *s, int rootfd, slate_error_t *err)
{
	const struct instance_opts *o = s->o;
	json_t *procs = json_object_get(o->bundle->m.image, "processes"), *p;
	const char *user = o->user;
	size_t i;

	if (o->cmd != NULL) {
		s->procs = xcalloc(1, sizeof(*s->procs));
		s->procs[0].name = o->cmd[0];
		s->procs[0].argv = o->cmd;
		if (user == NULL)
			user = json_string_value(json_object_get(o->bundle->m.image, "user"));
		if (user == NULL ||
		    instance_lookup_user(rootfd, user, &s->procs[0].id.uid, &s->procs[0].id.gid, err) < 0)
			return user ? -1 : slate_error_refuse(err, "the image names no user");
		s->init.n = 1;
		s->init.relay_output = false;
	} else {
		if (!json_is_array(procs) || json_array_size(procs) == 0)
			return slate_error_refuse(err, "the image lists no processes to start");
		s->procs = xcalloc(json_array_size(procs), sizeof(*s->procs));
		s->argvs = xcalloc(json_array_size(procs), sizeof(*s->argvs));
		json_array_foreach (procs, i, p) {
			struct slate_strv *argv = &s->argvs[i];
			if (slate_json_get_strv(p, "argv", false, argv, "image process", err) < 0)
				return -1;
			if (argv->n == 0)
				return slate_error_refuse(err, "image process without argv");
			s->procs[i].name = json_string_value(json_object_get(p, "name"));
			s->procs[i].argv = argv->v;
			s->procs[i].id = (struct identity){
				.uid = 0, .gid = 0, .caps = slate_master_caps, .ncaps = slate_master_ncaps
			};
		}
		s->init.n = json_array_size(procs);
		s->init.relay_output = true;
	}
	s->init.procs = s->procs;
	s->init.env = o->env;
	s->init.cwd = "/app";
	s->init.grace_seconds = SLATE_STOP_GRACE_SECONDS;
	s->init.seccomp = &s->seccomp;
	return 0;
}

static int prepare_mounts(struct setup *s, int rootfd, slate_error_t *err)
{
	const char *image_user = json_string_value(json_object_get(s->o->bundle->m.image, "user"));
	uid_t app_uid = 0;
	gid_t app_gid = 0;

	if (image_user && instance_lookup_user(rootfd, image_user, &app_uid, &app_gid, err) < 0)
		return -1;
	slate_json_get_strv(s->o->bundle->m.settings, "writable", true, &s->writable, "settings", err);
	s->scratch = xasprintf("%s/mnt/%s-%u.%d", s->o->root, s->o->name, instance_serial, (int)getpid());
	s->mounts = (struct mount_spec){
		.scratch = s->scratch,
		.lower_fd = s->lower_fd,
		.tmpfs_size = s->o->tmpfs_size,
		.tmpfs_inodes = s->o->tmpfs_inodes,
		.root_uid = s->map.uid_base,
		.root_gid = s->map.gid_base,
		.app_uid = s->map.uid_base + app_uid,
		.app_gid = s->map.gid_base + app_gid,
		.tty_gid = s->map.gid_base + lookup_group(rootfd, "tty", 5),
		.writable = &s->writable,
		.hostname = s->o->name,
	};
	return 0;
}

static int prepare(struct setup *s, slate_error_t *err)
{
	cleanup_close int rootfd = open(s->o->bundle->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cleanup_free char *cache = xasprintf("%s/cache", s->o->root);
	cleanup_free char *mnt = xasprintf("%s/mnt", s->o->root);

	if (rootfd < 0)
		return slate_error_sys(err, errno, "open `%s`", s->o->bundle->root);
	if ((mkdir(cache, 0700) < 0 && errno != EEXIST) || (mkdir(mnt, 0700) < 0 && errno != EEXIST))
		return slate_error_sys(err, errno, "create `%s`", mnt);
	if (slate_idmap_default(&s->map, err) < 0 || build_procs(s, rootfd, err) < 0 ||
	    prepare_mounts(s, rootfd, err) < 0)
		return -1;
	if (slate_seccomp_prepare(s->o->seccomp_profile, cache, &s->seccomp, err) < 0)
		return -1;
	s->userns_fd = slate_userns_create(&s->map, err);
	if (s->userns_fd < 0)
		return -1;
	s->lower_fd = slate_idmapped_tree(s->o->bundle->root, s->userns_fd, err);
	if (s->lower_fd < 0)
		return -1;
	s->mounts.lower_fd = s->lower_fd;
	if (mkdir(s->scratch, 0700) < 0)
		return slate_error_sys(err, errno, "create `%s`", s->scratch);
	return 0;
}

static void release(struct setup *s)
{
	if (s->userns_fd >= 0)
		close(s->userns_fd);
	if (s->lower_fd >= 0)
		close(s->lower_fd);
	if (s->scratch)
		rmdir(s->scratch);
	free(s->scratch);
	for (size_t i = 0; s->argvs && i < s->init.n; i++)
		slate_strv_free(&s->argvs[i]);
	free(s->argvs);
	free(s->procs);
	slate_strv_free(&s->writable);
	slate_seccomp_free(&s->seccomp);
}

static volatile sig_atomic_t forward_to;

static void forward_signal(int sig)
{
	if (forward_to > 0)
		kill((pid_t)forward_to, sig);
}

static void forward_signals(pid_t pid)
{
	struct sigaction sa = { .sa_handler = forward_signal };

	forward_to = pid;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* The host side after clone: put the child in the cgroup, let it go, and
 * learn whether its setup worked (the ready message brings the tmpfs fd). */
static int start_child(struct instance *in, int sock, slate_error_t *err)
{
	slate_error_t go = { 0 }, reply = { 0 };
	cleanup_free char *ns = NULL;

	/* Before go: the setup waits for it, so its /proc entry is there (a
	 * quick CMD could be gone by the time it says ready). */
	ns = xasprintf("/proc/%d/ns/net", (int)in->pid);
	in->netns_fd = open(ns, O_RDONLY | O_CLOEXEC);
	if (in->netns_fd < 0)
		return slate_error_sys(err, errno, "open `%s`", ns);
	if (message(sock, &go) < 0)
		return slate_error_sys(err, errno, "start the instance");
	if (recv_fd(sock, &reply, &in->scratch_fd) != (ssize_t)sizeof(reply))
		return slate_error_fail(err, "instance setup died before it was ready");
	if (reply.kind != 0) {
		reply.msg[sizeof(reply.msg) - 1] = '\0';
		*err = reply;
		return slate_error_wrap(err, "instance setup");
	}
	return 0;
}

static int spawn(struct instance *in, slate_error_t *err)
{
	int sv[2];
	int r;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return slate_error_sys(err, errno, "socketpair");
	fflush(NULL);
	in->pid = (pid_t)syscall(SYS_clone,
				 CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD,
				 NULL, NULL, NULL, NULL);
	if (in->pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return slate_error_sys(err, errno, "create the instance namespaces");
	}
	if (in->pid == 0) {
		close(sv[0]);
		in->s.sync = sv[1];
		setup_child(&in->s);
	}
	close(sv[1]);
	r = start_child(in, sv[0], err);
	close(sv[0]);
	if (r < 0) {
		kill(in->pid, SIGKILL);
		waitpid(in->pid, NULL, 0);
		in->pid = -1;
	}
	return r;
}

static void instance_free(struct instance *in)
{
	if (in->netns_fd >= 0)
		close(in->netns_fd);
	if (in->scratch_fd >= 0)
		close(in->scratch_fd);
	release(&in->s);
	slate_cgroup_free(&in->cg);
	free(in->cgname);
	free(in);
}

struct instance *instance_start(const struct instance_opts *o, const int stdio[3], slate_error_t *err)
{
	struct instance *in = xcalloc(1, sizeof(*in));

	in->s = (struct setup){ .o = o, .userns_fd = -1, .lower_fd = -1, .sync = -1, .stdio = { -1, -1, -1 } };
	in->pid = -1;
	in->netns_fd = in->scratch_fd = -1;
	for (int i = 0; stdio && i < 3; i++)
		in->s.stdio[i] = stdio[i];
	in->cgname = xasprintf("%s-%u.%d", o->name, instance_serial, (int)getpid());
	if (prepare(&in->s, err) < 0 ||
	    slate_cgroup_create(SLATE_CGROUP_ROOT, in->cgname, &o->limits, &in->cg, err) < 0) {
		instance_serial++;
		instance_free(in);
		return NULL;
	}
	instance_serial++;
	in->s.cg = &in->cg;
	if (spawn(in, err) < 0) {
		slate_error_t ignore = { 0 };
		slate_cgroup_destroy(&in->cg, &ignore);
		instance_free(in);
		return NULL;
	}
	return in;
}

pid_t instance_pid(const struct instance *in)
{
	return in->pid;
}

int instance_netns_fd(const struct instance *in)
{
	return in->netns_fd;
}

int instance_scratch_fd(const struct instance *in)
{
	return in->scratch_fd;
}

int instance_finish(struct instance *in, slate_error_t *err)
{
	int r = slate_cgroup_destroy(&in->cg, err);

	instance_free(in);
	return r;
}

static int wait_child(pid_t pid, int *exit_code, slate_error_t *err)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return slate_error_sys(err, errno, "wait for the instance");
	}
	*exit_code = init_exit_code(status);
	return 0;
}

int instance_run(const struct instance_opts *o, int *exit_code, slate_error_t *err)
{
	struct attach at;
	struct instance *in;
	slate_error_t ignore = { 0 };
	int pidfd, r;

	/* The command's stdio are pipes that slate relays (stdin too); the
	 * image's processes get the instance's /dev/null as stdin. */
	if (attach_init(&at, o->cmd != NULL, false, err) < 0)
		return -1;
	in = instance_start(o, at.cmd, err);
	attach_close_cmd(&at);
	if (in == NULL) {
		attach_free(&at);
		return -1;
	}
	forward_signals(in->pid);
	pidfd = (int)syscall(SYS_pidfd_open, in->pid, 0);
	r = pidfd < 0 ? slate_error_sys(err, errno, "pidfd_open") : attach_relay(&at, pidfd, err);
	if (pidfd >= 0)
		close(pidfd);
	attach_free(&at);
	if (r < 0)
		kill(in->pid, SIGKILL);
	if (wait_child(in->pid, exit_code, r == 0 ? err : &ignore) < 0)
		r = -1;
	if (instance_finish(in, r == 0 ? err : &ignore) < 0)
		r = -1;
	return r;
}
