/* slate-bundle: the subcommands (one cmd_<verb>.c each). Each returns the
 * process exit code (see include/slate/error.h). */
#ifndef SLATE_BUNDLER_COMMANDS_H
#define SLATE_BUNDLER_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "slate/cli.h"
#include "slate/error.h"
#include "slate/hash.h"
#include "slate/manifest.h"

int cmd_keygen(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_diff(int argc, char **argv);

/* Read a bundle's manifest without verifying it (inspect, diff). */
int open_manifest(const char *path, struct slate_manifest *m, char id[SLATE_SHA256_HEX], slate_error_t *err);

#endif
