/* slate exec: run a command inside an app's live instance: its namespaces
 * (joined through a pidfd of its init, which the monitor hands over, so no
 * pid can be recycled under us), its cgroup, seccomp, no capabilities, the
 * image's user unless --user says otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "control.h"
#include "env.h"
#include "init.h"
#include "instance.h"
#include "privs.h"
#include "seccomp.h"
#include "store.h"

extern char **environ;

static const char usage[] = "slate [--root DIR] exec [--user USER] APP -- CMD [ARGS...]";
static const char help[] =
	"usage: slate [--root DIR] exec [--user USER] APP -- CMD [ARGS...]\n\n"
	"Run CMD inside the app's live instance: its namespaces, cgroup and seccomp\n"
	"filter, no capabilities, as the image's user (www-data) unless --user says\n"
	"otherwise, with the app's environment. The exit status is CMD's.\n";

struct exec_ctx {
	int pidfd;
	pid_t init;
	int cgroup_fds[4];
	int ncg;
	struct identity id;
	struct slate_strv env;
	struct slate_seccomp seccomp;
	char **cmd;
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

/* In the instance's pid namespace: become the command. */
__attribute__((noreturn)) static void grandchild(struct exec_ctx *x)
{
	slate_error_t err = { 0 };

	if (setns(x->pidfd, CLONE_NEWUSER) < 0)
		child_die("join the user namespace");
	if (privs_drop(&x->id, &err) < 0 || syscall(SYS_close_range, 3, ~0U, 0) < 0) {
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
	char pid[24];
	int status;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		child_die("prctl");
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	for (int i = 0; i < x->ncg; i++)
		if (write(x->cgroup_fds[i], pid, strlen(pid)) < 0)
			child_die("join the cgroup");
	if (setns(x->pidfd, CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWPID) <
	    0)
		child_die("join the instance's namespaces");
	if (chdir("/app") < 0 && chdir("/") < 0)
		child_die("chdir");
	forward_pid = fork();
	if (forward_pid < 0)
		child_die("fork");
	if (forward_pid == 0)
		grandchild(x);
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

int cmd_exec(struct slate_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "user", required_argument, NULL, 'u' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	struct exec_ctx x = { .pidfd = -1 };
	slate_error_t err = { 0 };
	const char *user = NULL;
	int c, status, code;
	pid_t pid;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+u:h", opts, NULL)) != -1) {
		if (c == 'h')
			return fputs(help, stdout), 0;
		if (c != 'u')
			return usage_error(usage, "exec: bad option `%s`", argv[optind - 1]);
		user = optarg;
	}
	if (argc - optind < 3 || strcmp(argv[optind + 1], "--") != 0 || app_check_name(argv[optind], &err) < 0)
		return usage_error(usage, "exec: needs APP -- CMD");
	x.cmd = argv + optind + 2;
	if (prepare(ctx, argv[optind], user, &x, &err) < 0) {
		code = report(&err);
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		code = report((slate_error_sys(&err, errno, "fork"), &err));
		goto out;
	}
	if (pid == 0)
		child(&x);
	forward_pid = pid;
	signal(SIGTERM, forward);
	signal(SIGINT, forward);
	signal(SIGHUP, forward);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
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
