/* slate exec: run a command inside an app's live instance: its namespaces
 * (joined through a pidfd of its init, which the monitor hands over, so no
 * pid can be recycled under us), its cgroup, seccomp, no capabilities, the
 * image's user unless --user says otherwise, a session of its own. Its
 * stdio are pipes (or, with -t, a pty of the instance's devpts) that slate
 * relays: no fd of the host enters the instance (attach.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "attach.h"
#include "control.h"
#include "env.h"
#include "init.h"
#include "instance.h"
#include "privs.h"
#include "seccomp.h"
#include "store.h"

extern char **environ;

static const char usage[] = "slate [--root DIR] exec [-i] [-t] [--user USER] APP -- CMD [ARGS...]";
static const char help[] =
	"usage: slate [--root DIR] exec [-i] [-t] [--user USER] APP -- CMD [ARGS...]\n\n"
	"Run CMD inside the app's live instance: its namespaces, cgroup and seccomp\n"
	"filter, no capabilities, as the image's user (www-data) unless --user says\n"
	"otherwise, with the app's environment, in a session of its own. CMD's output\n"
	"is relayed through pipes; its stdin is /dev/null unless -i. The exit status\n"
	"is CMD's.\n\n"
	"  -i, --interactive   relay stdin to CMD (EOF included)\n"
	"  -t, --tty           give CMD a terminal of the instance (a pty, raw relay)\n"
	"  --user USER         name or UID[:GID] (default: the image's user)\n";

struct exec_ctx {
	int pidfd;
	pid_t init;
	int cgroup_fds[4];
	int ncg;
	struct identity id;
	struct slate_strv env;
	struct slate_seccomp seccomp;
	char **cmd;
	struct attach at;
	int pty_sock; /* -t: the command's side sends the pty's master on it */
};

/* The instance's cgroup, from its init's /proc entry (host paths). */
static int open_cgroups(struct exec_ctx *x, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("/proc/%d/cgroup", (int)x->init);
	cleanup_free char *text = slate_read_file(path, 1 << 16, NULL, err);
	char *line, *save = NULL;

	if (text == NULL)
		return -1;
	for (line = strtok_r(text, "\n", &save); line && x->ncg < 4; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL || strstr(c2, "/slate/") == NULL)
			continue;
		*c2 = '\0';
		const char *ctrl = c1[1] ? c1 + 1 : "";
		cleanup_free char *procs = ctrl[0] ? xasprintf("/sys/fs/cgroup/%s%s/cgroup.procs", ctrl, c2 + 1)
						   : xasprintf("/sys/fs/cgroup%s/cgroup.procs", c2 + 1);
		int fd = open(procs, O_WRONLY | O_CLOEXEC);
		if (fd >= 0)
			x->cgroup_fds[x->ncg++] = fd;
	}
	return x->ncg > 0 ? 0 : slate_error_fail(err, "cannot find the instance's cgroup");
}

static void child_die(const char *what)
{
	dprintf(STDERR_FILENO, "slate: exec: %s: %s\n", what, strerror(errno));
	_exit(SLATE_EXIT_SYSTEM);
}

/* As the command's user: a session of its own, so that it has no
 * controlling terminal (else /dev/tty would open the operator's); with -t,
 * a pty of the instance as its stdio and controlling terminal, the master
 * sent to slate (or why not). */
static int command_stdio(struct exec_ctx *x, slate_error_t *err)
{
	int master;

	if (!x->at.tty)
		return setsid() < 0 ? slate_error_sys(err, errno, "setsid") : 0;
	master = attach_pty_open(x->at.have_ws ? &x->at.ws : NULL, err);
	if (master < 0) {
		attach_send_error(x->pty_sock, err);
		return -1;
	}
	if (attach_send_fd(x->pty_sock, master, err) < 0)
		return -1;
	close(master);
	return 0;
}

/* The fds 0-2 of the command, in the instance's mount namespace: the
 * pipes slate relays, the instance's /dev/null for stdin without -i, and
 * for -t the instance's /dev/null until the pty replaces them. */
static int safe_stdio(struct exec_ctx *x, slate_error_t *err)
{
	for (int i = 0; i < 3; i++) {
		int fd = x->at.cmd[i];
		if (fd < 0)
			fd = attach_open_null(i == 0 ? O_RDONLY : O_WRONLY, err);
		if (fd < 0 || dup2(fd, i) < 0)
			return fd < 0 ? -1 : slate_error_sys(err, errno, "dup2");
		if (fd != x->at.cmd[i])
			close(fd);
	}
	return 0;
}

/* In the instance's pid namespace: become the command. */
__attribute__((noreturn)) static void grandchild(struct exec_ctx *x)
{
	slate_error_t err = { 0 };

	if (setns(x->pidfd, CLONE_NEWUSER) < 0)
		child_die("join the user namespace");
	if (privs_drop(&x->id, &err) < 0 || command_stdio(x, &err) < 0 || syscall(SYS_close_range, 3, ~0U, 0) < 0) {
		dprintf(STDERR_FILENO, "slate: exec: %s\n", err.msg);
		_exit(SLATE_EXIT_SYSTEM);
	}
	environ = x->env.v;
	if (slate_seccomp_install(&x->seccomp, &err) < 0) {
		dprintf(STDERR_FILENO, "slate: exec: %s\n", err.msg);
		_exit(SLATE_EXIT_SYSTEM);
	}
	execvp(x->cmd[0], x->cmd);
	dprintf(STDERR_FILENO, "slate: exec `%s`: %s\n", x->cmd[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static pid_t forward_pid;

static void forward(int sig)
{
	if (forward_pid > 0)
		kill(forward_pid, sig);
}

/* Host root, joining everything but the user namespace, then a child in
 * the instance's pid namespace. */
__attribute__((noreturn)) static void child(struct exec_ctx *x)
{
	slate_error_t err = { 0 };
	char pid[24];
	int status;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		child_die("prctl");
	/* slate's ends of the pipes are slate's alone: a copy here would keep
	 * the command's stdin from ever seeing EOF. */
	attach_close_relay(&x->at);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	for (int i = 0; i < x->ncg; i++)
		if (write(x->cgroup_fds[i], pid, strlen(pid)) < 0)
			child_die("join the cgroup");
	if (setns(x->pidfd, CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWPID) <
	    0)
		child_die("join the instance's namespaces");
	if (chdir("/app") < 0 && chdir("/") < 0)
		child_die("chdir");
	if (safe_stdio(x, &err) < 0) {
		if (x->at.tty)
			attach_send_error(x->pty_sock, &err);
		dprintf(STDERR_FILENO, "slate: exec: %s\n", err.msg);
		_exit(SLATE_EXIT_SYSTEM);
	}
	forward_pid = fork();
	if (forward_pid < 0)
		child_die("fork");
	if (forward_pid == 0)
		grandchild(x);
	if (x->pty_sock >= 0)
		close(x->pty_sock);
	signal(SIGTERM, forward);
	signal(SIGINT, forward);
	signal(SIGHUP, forward);
	while (waitpid(forward_pid, &status, 0) < 0)
		if (errno != EINTR)
			_exit(SLATE_EXIT_SYSTEM);
	_exit(init_exit_code(status));
}

static int prepare(const struct slate_ctx *ctx, const char *app, const char *user, struct exec_ctx *x,
		   slate_error_t *err)
{
	struct app_paths p;
	struct slate_stored s = { 0 };
	json_t *reply, *a = NULL, *v;
	cleanup_free char *cache = xasprintf("%s/cache", ctx->root);
	cleanup_close int rootfd = -1;
	size_t i;
	int r = -1;

	app_paths(ctx, app, &p);
	reply = control_call(p.sock, json_pack("{s:s}", "cmd", "pidfd"), 5000, &x->pidfd, err);
	if (reply == NULL || control_result(reply, err) < 0 || x->pidfd < 0)
		goto out;
	x->init = (pid_t)json_integer_value(json_object_get(reply, "instance_pid"));
	json_decref(reply);
	reply = control_call(p.sock, json_pack("{s:s}", "cmd", "status"), 5000, NULL, err);
	const char *bundle = reply ? json_string_value(json_object_get(reply, "bundle")) : NULL;
	if (bundle == NULL || slate_store_load(ctx->root, bundle, &s, err) < 0 || open_cgroups(x, err) < 0)
		goto out;
	rootfd = open(s.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (user == NULL)
		user = json_string_value(json_object_get(s.m.image, "user"));
	if (rootfd < 0 || user == NULL || instance_lookup_user(rootfd, user, &x->id.uid, &x->id.gid, err) < 0)
		goto out;
	a = app_load(p.app_json, err);
	const char *file = json_string_value(json_object_get(json_object_get(a, "options"), "env_file"));
	if (a == NULL || (file && env_add_file(&x->env, file, err) < 0))
		goto out;
	json_array_foreach (json_object_get(json_object_get(a, "options"), "env"), i, v)
		env_add(&x->env, json_string_value(v), err);
	env_defaults(&x->env, app);
	r = slate_seccomp_prepare(NULL, cache, &x->seccomp, err);
out:
	json_decref(reply);
	json_decref(a);
	slate_stored_free(&s);
	app_paths_free(&p);
	return r;
}

/* slate's side once the child runs: the pty's master (-t), then the
 * relay until the child (and so the command) ended. */
static int attach_child(struct exec_ctx *x, pid_t pid, int sock, int *status, slate_error_t *err)
{
	cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int master, r = 0;

	attach_close_cmd(&x->at);
	if (pidfd < 0)
		r = slate_error_sys(err, errno, "pidfd_open");
	if (r == 0 && x->at.tty) {
		master = attach_recv_fd(sock, err);
		if (master < 0 || attach_set_master(&x->at, master, err) < 0)
			r = -1;
	}
	if (r == 0)
		r = attach_relay(&x->at, pidfd, err);
	if (r < 0)
		kill(pid, SIGKILL);
	attach_free(&x->at);
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return r < 0 ? r : slate_error_sys(err, errno, "wait for the command");
	return r;
}

/* Fork the child that enters the instance, and relay its command's stdio. */
static int run_child(struct exec_ctx *x, bool interactive, bool tty, int *status, slate_error_t *err)
{
	int sv[2] = { -1, -1 }, r;
	pid_t pid;

	if (attach_init(&x->at, interactive, tty, err) < 0)
		return -1;
	if (tty && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		attach_free(&x->at);
		return slate_error_sys(err, errno, "socketpair");
	}
	x->pty_sock = sv[1];
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		child(x);
	if (sv[1] >= 0)
		close(sv[1]);
	x->pty_sock = -1;
	if (pid < 0) {
		attach_free(&x->at);
		if (sv[0] >= 0)
			close(sv[0]);
		return slate_error_sys(err, errno, "fork");
	}
	forward_pid = pid;
	signal(SIGTERM, forward);
	signal(SIGINT, forward);
	signal(SIGHUP, forward);
	r = attach_child(x, pid, sv[0], status, err);
	if (sv[0] >= 0)
		close(sv[0]);
	return r;
}

int cmd_exec(struct slate_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "user", required_argument, NULL, 'u' },
					      { "interactive", no_argument, NULL, 'i' },
					      { "tty", no_argument, NULL, 't' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	struct exec_ctx x = { .pidfd = -1, .pty_sock = -1 };
	slate_error_t err = { 0 };
	const char *user = NULL;
	bool interactive = false, tty = false;
	int c, status = 0, code;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+u:ith", opts, NULL)) != -1) {
		if (c == 'h')
			return fputs(help, stdout), 0;
		if (c == 'i')
			interactive = true;
		else if (c == 't')
			tty = true;
		else if (c == 'u')
			user = optarg;
		else
			return usage_error(usage, "exec: bad option `%s`", argv[optind - 1]);
	}
	if (argc - optind < 3 || strcmp(argv[optind + 1], "--") != 0 || app_check_name(argv[optind], &err) < 0)
		return usage_error(usage, "exec: needs APP -- CMD");
	x.cmd = argv + optind + 2;
	if (prepare(ctx, argv[optind], user, &x, &err) < 0 || run_child(&x, interactive, tty, &status, &err) < 0) {
		code = report(&err);
		goto out;
	}
	code = init_exit_code(status);
	audit_log(ctx, "exec", argv[optind], 0, NULL, code == 0 ? "ok" : "nonzero exit");
out:
	if (x.pidfd >= 0)
		close(x.pidfd);
	for (int i = 0; i < x.ncg; i++)
		close(x.cgroup_fds[i]);
	slate_strv_free(&x.env);
	slate_seccomp_free(&x.seccomp);
	return code;
}
