/* slate: command-line conventions shared by slate and slate-bundle: a
 * usage error prints one line naming the problem, then the usage, and
 * exits 2; any other failure prints "PROG: message" and exits with the
 * error's kind (1 refused, 3 system). */
#ifndef SLATE_CLI_H
#define SLATE_CLI_H

#include <stdbool.h>

#include <jansson.h>

#include "slate/error.h"

/* The program name in messages; each main() sets it. */
extern const char *slate_prog;

/* Print "PROG: message" and "usage: ..." for a usage error; returns 2. */
int usage_error(const char *usage, const char *fmt, ...) SLATE_PRINTF(2, 3);
/* Report err as "PROG: msg" and return its exit code. */
int report(const slate_error_t *err);
/* Parse a command line of only --json and --help: -1 to go on, else the
 * exit code (0 after --help, 2 for a bad option). */
int parse_json_flag(int argc, char **argv, const char *name, const char *usage, const char *help, bool *as_json);
/* Print o indented with sorted keys, and release it. */
void print_json(json_t *o);

#endif
