/* slate: PID 1 of an instance (slate's own small init, running in the
 * instance, not a file of the bundle). It starts the processes, reaps every
 * zombie, forwards SIGTERM, SIGINT and SIGHUP, and when one of its
 * processes exits it stops the others (SIGTERM, then SIGKILL after a grace
 * period) and exits with that process's status (128+N for a signal N). */
#ifndef SLATE_RUNTIME_INIT_H
#define SLATE_RUNTIME_INIT_H

#include <sys/types.h>

#include "privs.h"
#include "seccomp.h"

struct init_proc {
	const char *name;
	char **argv;
	struct identity id;
	pid_t pid;
	int status; /* wait status once exited */
	bool exited;
};

struct init_spec {
	struct init_proc *procs;
	size_t n;
	char **env;
	const char *cwd;
	const struct slate_seccomp *seccomp;
	bool relay_output; /* give the processes pipes and copy them to init's stdout/stderr */
	int grace_seconds;
};

/* Never returns. */
__attribute__((noreturn)) void init_run(struct init_spec *s);

/* The exit code for a wait status: the exit code, or 128+signal. */
int init_exit_code(int status);

#endif
