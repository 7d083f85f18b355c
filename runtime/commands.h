/* slate: the subcommands (one cmd_<verb>.c each), dispatched from main.c.
 * Each returns the process exit code (see include/slate/error.h). */
#ifndef SLATE_RUNTIME_COMMANDS_H
#define SLATE_RUNTIME_COMMANDS_H

#include "slate/cli.h"
#include "slate/sign.h"

#define SLATE_DEFAULT_ROOT "/var/lib/slate"
#define SLATE_DEFAULT_RUN_DIR "/run/slate"
#define SLATE_DEFAULT_KEYS "/etc/slate/keys"

struct slate_ctx {
	const char *root; /* --root: state and store */
	const char *run_dir; /* --run-dir: sockets, locks of running apps */
};

int cmd_run(struct slate_ctx *ctx, int argc, char **argv);
int cmd_deploy(struct slate_ctx *ctx, int argc, char **argv);
int cmd_redeploy(struct slate_ctx *ctx, int argc, char **argv);
int cmd_rollback(struct slate_ctx *ctx, int argc, char **argv);
int cmd_releases(struct slate_ctx *ctx, int argc, char **argv);
int cmd_ps(struct slate_ctx *ctx, int argc, char **argv);
int cmd_status(struct slate_ctx *ctx, int argc, char **argv);
int cmd_logs(struct slate_ctx *ctx, int argc, char **argv);
int cmd_stop(struct slate_ctx *ctx, int argc, char **argv);
int cmd_start(struct slate_ctx *ctx, int argc, char **argv);
int cmd_rm(struct slate_ctx *ctx, int argc, char **argv);
int cmd_exec(struct slate_ctx *ctx, int argc, char **argv);
int cmd_diff(struct slate_ctx *ctx, int argc, char **argv);
int cmd_verify(struct slate_ctx *ctx, int argc, char **argv);
int cmd_gc(struct slate_ctx *ctx, int argc, char **argv);
int cmd_audit(struct slate_ctx *ctx, int argc, char **argv);
int cmd_port(struct slate_ctx *ctx, int argc, char **argv);
int cmd_connect(struct slate_ctx *ctx, int argc, char **argv);
int cmd_events(struct slate_ctx *ctx, int argc, char **argv);
int cmd_save_upper(struct slate_ctx *ctx, int argc, char **argv);

/* --key PUB / --keys DIR handling shared by the commands that verify:
 * with neither, the default directory; an empty result is refused. */
int keys_finish(struct slate_keyring *kr, bool given, slate_error_t *err);

/* Remove what killed runs left behind (cgroups, scratch dirs, partial
 * unpacks). Called at the start of every command that needs root. */
void cleanup_leftovers(const struct slate_ctx *ctx);

#endif
