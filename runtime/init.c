/* slate: the instance's PID 1 (see init.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "slate/util.h"

extern char **environ;

int init_exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static void child_fail(const char *name, const slate_error_t *err)
{
	dprintf(STDERR_FILENO, "slate: %s: %s\n", name, err->msg);
	_exit(127);
}

/* In the forked child: from init's state to the process's own, then exec.
 * Seccomp last, right before execve. */
__attribute__((noreturn)) static void exec_proc(struct init_spec *s, struct init_proc *p, int out, int errfd)
{
	sigset_t none;
	slate_error_t err = { 0 };

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	if (out >= 0 && (dup2(out, STDOUT_FILENO) < 0 || dup2(errfd, STDERR_FILENO) < 0))
		_exit(127);
	if (chdir(s->cwd) < 0) {
		slate_error_sys(&err, errno, "chdir `%s`", s->cwd);
		child_fail(p->name, &err);
	}
	if (privs_drop(&p->id, &err) < 0)
		child_fail(p->name, &err);
	/* Nothing of slate's reaches the process but stdio. */
	if (syscall(SYS_close_range, 3, ~0U, 0) < 0) {
		slate_error_sys(&err, errno, "close_range");
		child_fail(p->name, &err);
	}
	environ = s->env;
	if (s->seccomp && slate_seccomp_install(s->seccomp, &err) < 0)
		child_fail(p->name, &err);
	execvp(p->argv[0], p->argv);
	dprintf(STDERR_FILENO, "slate: %s: exec `%s`: %s\n", p->name, p->argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

struct relay {
	int fd[2]; /* read ends: stdout, stderr of the processes */
	int out[2]; /* write ends given to the processes */
};

static void relay_copy(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf));

	for (ssize_t off = 0; n > 0 && off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* the reader went away: keep draining, drop the bytes */
		off += w;
	}
}

static void drain(int from, int to)
{
	char buf[16384];
	ssize_t n;

	if (from < 0 || fcntl(from, F_SETFL, O_NONBLOCK) < 0)
		return;
	while ((n = read(from, buf, sizeof(buf))) > 0)
		if (write(to, buf, (size_t)n) < 0)
			return;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void signal_all(struct init_spec *s, int sig)
{
	for (size_t i = 0; i < s->n; i++)
		if (!s->procs[i].exited && s->procs[i].pid > 0)
			kill(s->procs[i].pid, sig);
}

static bool all_exited(const struct init_spec *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (!s->procs[i].exited)
			return false;
	return true;
}

/* Reap everything; note our processes. Returns the index of the first of
 * ours that exited in this round, or -1. */
static int reap(struct init_spec *s)
{
	int status, first = -1;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < s->n; i++) {
			if (s->procs[i].pid == pid && !s->procs[i].exited) {
				s->procs[i].exited = true;
				s->procs[i].status = status;
				if (first < 0)
					first = (int)i;
			}
		}
	}
	return first;
}

static int start_all(struct init_spec *s, struct relay *r)
{
	for (size_t i = 0; i < s->n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			dprintf(STDERR_FILENO, "slate: init: fork: %s\n", strerror(errno));
			return -1;
		}
		if (pid == 0)
			exec_proc(s, &s->procs[i], s->relay_output ? r->out[0] : -1, s->relay_output ? r->out[1] : -1);
		s->procs[i].pid = pid;
	}
	if (s->relay_output) {
		close(r->out[0]);
		close(r->out[1]);
	}
	return 0;
}

static int setup_relay(struct relay *r)
{
	int a[2], b[2];

	if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
		return -1;
	r->fd[0] = a[0];
	r->out[0] = a[1];
	r->fd[1] = b[0];
	r->out[1] = b[1];
	return 0;
}

/* Init's own privileges: none (it only waits, signals its own uid's
 * processes and copies bytes). */
static void init_drop(struct init_spec *s)
{
	/* CAP_KILL (scoped to the instance's user namespace): init forwards
	 * signals to a CMD that runs as www-data. */
	static const cap_value_t kill_only[] = { CAP_KILL };
	struct identity self = { .uid = 0, .gid = 0, .caps = kill_only, .ncaps = 1 };
	slate_error_t err = { 0 };

	if (privs_drop(&self, &err) < 0 || privs_not_dumpable(&err) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
	    (s->seccomp && slate_seccomp_install(s->seccomp, &err) < 0)) {
		dprintf(STDERR_FILENO, "slate: init: %s\n", err.msg);
		signal_all(s, SIGKILL);
		_exit(125);
	}
}

struct loop {
	int sfd;
	int first; /* our process that exited first, -1 while none */
	double kill_at; /* when stopping: SIGKILL deadline */
};

static void on_signal(struct init_spec *s, struct loop *l)
{
	struct signalfd_siginfo si;

	while (read(l->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			int first = reap(s);
			if (first >= 0 && l->first < 0) {
				l->first = first;
				signal_all(s, SIGTERM);
				l->kill_at = now() + s->grace_seconds;
			}
		} else {
			signal_all(s, (int)si.ssi_signo);
		}
	}
}

__attribute__((noreturn)) void init_run(struct init_spec *s)
{
	struct relay r = { { -1, -1 }, { -1, -1 } };
	struct loop l = { .first = -1, .kill_at = 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	l.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (l.sfd < 0 || (s->relay_output && setup_relay(&r) < 0) || start_all(s, &r) < 0) {
		signal_all(s, SIGKILL);
		_exit(125);
	}
	init_drop(s);
	while (!all_exited(s)) {
		struct pollfd p[3] = { { l.sfd, POLLIN, 0 }, { r.fd[0], POLLIN, 0 }, { r.fd[1], POLLIN, 0 } };
		int timeout = l.first >= 0 ? (int)((l.kill_at - now()) * 1000) + 1 : -1;
		if (l.first >= 0 && now() >= l.kill_at) {
			signal_all(s, SIGKILL);
			timeout = 100;
		}
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN)
			on_signal(s, &l);
		for (int k = 0; k < 2; k++) {
			if (p[k + 1].revents & POLLIN)
				relay_copy(r.fd[k], k ? STDERR_FILENO : STDOUT_FILENO);
			else if (p[k + 1].revents & (POLLHUP | POLLERR)) {
				close(r.fd[k]);
				r.fd[k] = -1;
			}
		}
	}
	for (int k = 0; k < 2; k++) /* what is left in the pipes */
		drain(r.fd[k], k ? STDERR_FILENO : STDOUT_FILENO);
	_exit(l.first >= 0 ? init_exit_code(s->procs[l.first].status) : 1);
}
