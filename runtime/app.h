/* slate: apps on a host. State is small JSON, written atomically (temp,
 * fsync, rename), under a per-app lock; commands on one app are serialized,
 * commands on different apps are not.
 *
 *   ROOT/apps/<app>/app.json       options kept with the app (ports, connects,
 *                                  env file, limits, keys), desired state
 *   ROOT/apps/<app>/releases.json  the release history and the current release
 *   ROOT/apps/<app>/lock           flock: one command at a time
 *   ROOT/apps/<app>/logs/          the instance's output (the monitor writes it)
 *   ROOT/audit.log                 append-only: time, uid, command, app, release, bundle, result
 *   RUN/<app>/monitor.sock         the monitor's control socket (RUN is 0700)
 *   RUN/<app>/monitor.lock         held by the live monitor
 *   RUN/<app>/running.json         what the monitor runs now (written by it) */
#ifndef SLATE_RUNTIME_APP_H
#define SLATE_RUNTIME_APP_H

#include <jansson.h>

#include "commands.h"
#include "slate/error.h"
#include "slate/util.h"

struct app_paths {
	char *dir, *app_json, *releases_json, *lock, *logs;
	char *run, *sock, *monitor_lock, *running_json;
};

int app_check_name(const char *name, slate_error_t *err);
void app_paths(const struct slate_ctx *ctx, const char *name, struct app_paths *p);
void app_paths_free(struct app_paths *p);
/* Create the app's directories (0700) and take its lock; returns the fd. */
int app_lock(const struct slate_ctx *ctx, const struct app_paths *p, slate_error_t *err);
bool app_exists(const struct app_paths *p);
/* Load a JSON state file; a missing file gives an empty object. */
json_t *app_load(const char *path, slate_error_t *err);
int app_save(const char *path, json_t *j, slate_error_t *err);
/* The current release object (releases[current-1]) or NULL. */
json_t *app_current_release(json_t *releases);
json_t *app_release(json_t *releases, json_int_t number);
/* Names of every app (sorted). */
int app_list(const struct slate_ctx *ctx, struct slate_strv *names, slate_error_t *err);

/* One line of the audit log. */
void audit_log(const struct slate_ctx *ctx, const char *command, const char *app, json_int_t release,
	       const char *bundle, const char *result);

#endif
