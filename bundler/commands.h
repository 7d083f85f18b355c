/* slate-bundle: the subcommands (one cmd_<verb>.c each). Each returns the
 * process exit code (see include/slate/error.h). */
#ifndef SLATE_BUNDLER_COMMANDS_H
#define SLATE_BUNDLER_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "slate/error.h"
#include "slate/hash.h"
#include "slate/manifest.h"

int cmd_keygen(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_diff(int argc, char **argv);

/* Print "slate-bundle CMD: usage: ..." for a usage error and return 2. */
int usage_error(const char *usage, const char *fmt, ...) SLATE_PRINTF(2, 3);
/* Parse a command line of only --json and --help: -1 to go on, else the
 * exit code (0 after --help, 2 for a bad option). */
int parse_json_flag(int argc, char **argv, const char *name, const char *usage, const char *help, bool *as_json);
/* Print o indented with sorted keys, and release it. */
void print_json(json_t *o);
/* Report err as "slate-bundle: msg" and return its exit code. */
int report(const slate_error_t *err);

/* Read a bundle's manifest without verifying it (inspect, diff). */
int open_manifest(const char *path, struct slate_manifest *m, char id[SLATE_SHA256_HEX], slate_error_t *err);

#endif
