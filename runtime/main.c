/* slate: the host side. Verifies bundles and runs them as minimal
 * containers. This file is the command dispatcher. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "commands.h"
#include "slate/util.h"
#include "store.h"

enum { NEEDS_ROOT = 1, INTERNAL = 2 /* run by the monitor: not in the help */ };

struct command {
	const char *name;
	int (*fn)(struct slate_ctx *ctx, int argc, char **argv);
	int flags;
	const char *summary;
};

static const struct command commands[] = {
	{ "run", cmd_run, NEEDS_ROOT, "verify a bundle and run it (or a command in it) as an instance" },
	{ "deploy", cmd_deploy, NEEDS_ROOT,
	  "deploy a bundle to an app: new release, health check, zero-downtime switch" },
	{ "redeploy", cmd_redeploy, NEEDS_ROOT, "a fresh instance of the current release (a clean slate)" },
	{ "rollback", cmd_rollback, NEEDS_ROOT, "a new release with the previous (or a named) release's bundle" },
	{ "releases", cmd_releases, NEEDS_ROOT, "list an app's releases" },
	{ "ps", cmd_ps, NEEDS_ROOT, "list apps: state, release, bundle, uptime, restarts, ports" },
	{ "status", cmd_status, NEEDS_ROOT, "one app's state" },
	{ "logs", cmd_logs, NEEDS_ROOT, "an app's output, timestamped (-f to follow)" },
	{ "exec", cmd_exec, NEEDS_ROOT, "run a command inside an app's live instance" },
	{ "diff", cmd_diff, NEEDS_ROOT, "what an app's instance wrote since it started" },
	{ "verify", cmd_verify, NEEDS_ROOT, "re-hash an app's lower layer against its signed manifest" },
	{ "stop", cmd_stop, NEEDS_ROOT, "stop an app" },
	{ "start", cmd_start, NEEDS_ROOT, "start an app again (--all: every app, at boot)" },
	{ "rm", cmd_rm, NEEDS_ROOT, "stop and remove an app" },
	{ "port", cmd_port, NEEDS_ROOT, "switch an app's published ports on or off" },
	{ "connect", cmd_connect, NEEDS_ROOT, "switch an app's granted services on or off" },
	{ "gc", cmd_gc, NEEDS_ROOT, "remove stored bundles no recent release uses" },
	{ "audit", cmd_audit, NEEDS_ROOT, "show the audit log" },
	{ "events", cmd_events, NEEDS_ROOT, "an app's tamper events (-f to follow)" },
	{ "save-upper", cmd_save_upper, INTERNAL, "keep what a crashed instance wrote (the monitor runs it)" },
};

static const char usage[] = "slate [--root DIR] [--run-dir DIR] COMMAND [OPTIONS]";

static void help(FILE *out)
{
	fprintf(out, "usage: %s\n\ncommands:\n", usage);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!(commands[i].flags & INTERNAL))
			fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("\nglobal options:\n"
	      "  --root DIR     state and store (default " SLATE_DEFAULT_ROOT
	      ")\n"
	      "  --run-dir DIR  runtime sockets and locks (default " SLATE_DEFAULT_RUN_DIR
	      ")\n\n"
	      "'slate COMMAND --help' describes a command.\n"
	      "exit codes: 0 ok, 1 refused (verification, policy), 2 usage, 3 system error;\n"
	      "`slate run` exits with the instance's own status (128+N for a signal N).\n",
	      out);
}

/* ROOT/mnt/<name>.<pid>: mount points of instances (their tmpfs lives
 * in the instance's own mount namespace). Empty once that is gone. */
static void clean_scratch(const char *root)
{
	cleanup_free char *mnt = xasprintf("%s/mnt", root);
	DIR *d = opendir(mnt);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		const char *dot = strrchr(de->d_name, '.');
		if (de->d_name[0] == '.' || dot == NULL)
			continue;
		if (kill(atoi(dot + 1), 0) == 0 || errno != ESRCH)
			continue;
		(void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

void cleanup_leftovers(const struct slate_ctx *ctx)
{
	slate_error_t ignore = { 0 };
	int removed = 0;

	slate_cgroup_cleanup_stale(SLATE_CGROUP_ROOT, &removed, &ignore);
	slate_store_clean_stale(ctx->root, &ignore);
	clean_scratch(ctx->root);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "root", required_argument, NULL, 'r' },
					      { "run-dir", required_argument, NULL, 'R' },
					      { "help", no_argument, NULL, 'h' },
					      { "version", no_argument, NULL, 'V' },
					      { NULL, 0, NULL, 0 } };
	struct slate_ctx ctx = { SLATE_DEFAULT_ROOT, SLATE_DEFAULT_RUN_DIR };
	int c;

	slate_prog = "slate";
	opterr = 0;
	/* Global options stop at the command name. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': ctx.root = optarg; break;
		case 'R': ctx.run_dir = optarg; break;
		case 'h': return help(stdout), 0;
		case 'V': return puts("slate 0.1"), 0;
		default: return usage_error(usage, "bad option `%s`", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return help(stderr), SLATE_EXIT_USAGE;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *cmd = &commands[i];
		char **cargv = argv + optind;
		int cargc = argc - optind;
		if (strcmp(argv[optind], cmd->name) != 0)
			continue;
		for (int k = 1; k < cargc && strcmp(cargv[k], "--") != 0; k++)
			if (strcmp(cargv[k], "--help") == 0 || strcmp(cargv[k], "-h") == 0)
				return cmd->fn(&ctx, 2, (char *[]){ cargv[0], "--help", NULL });
		if ((cmd->flags & NEEDS_ROOT) && geteuid() != 0) {
			fprintf(stderr, "slate: `%s` needs root\n", cmd->name);
			return SLATE_EXIT_USAGE;
		}
		if (cmd->flags & NEEDS_ROOT)
			cleanup_leftovers(&ctx);
		return cmd->fn(&ctx, cargc, cargv);
	}
	fprintf(stderr, "slate: unknown command `%s`\n", argv[optind]);
	help(stderr);
	return SLATE_EXIT_USAGE;
}
