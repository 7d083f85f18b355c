/* slate: an instance's environment: only what --env and --env-file give,
 * plus a documented minimal set (PATH, HOME, HOSTNAME). Values are never
 * written to the store or to logs. */
#ifndef SLATE_RUNTIME_ENV_H
#define SLATE_RUNTIME_ENV_H

#include "slate/error.h"
#include "slate/util.h"

#define SLATE_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Add "K=V" (later values of a key replace earlier ones). */
int env_add(struct slate_strv *env, const char *kv, slate_error_t *err);
/* Read K=V lines (# comments and blank lines skipped, no quoting), all or
 * nothing. Refused (exit 1): a symbolic link anywhere in its path, not a
 * regular file, not owned by root, writable by the group or everyone,
 * readable by everyone. A malformed line is named by file and line number,
 * never by its content (exit 2). */
int env_add_file(struct slate_strv *env, const char *path, slate_error_t *err);
/* The defaults for what is not set yet. */
void env_defaults(struct slate_strv *env, const char *hostname);

#endif
