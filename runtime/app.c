/* slate: app state (see app.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "slate/json.h"
#include "slate/util.h"

int app_check_name(const char *name, slate_error_t *err)
{
	size_t n = strlen(name);

	if (n == 0 || n > 48 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != n || name[0] == '-')
		return slate_error_usage(err, "app name `%s`: use 1-48 lower-case letters, digits and dashes", name);
	return 0;
}

void app_paths(const struct slate_ctx *ctx, const char *name, struct app_paths *p)
{
	p->dir = xasprintf("%s/apps/%s", ctx->root, name);
	p->app_json = xasprintf("%s/app.json", p->dir);
	p->releases_json = xasprintf("%s/releases.json", p->dir);
	p->lock = xasprintf("%s/lock", p->dir);
	p->logs = xasprintf("%s/logs", p->dir);
	p->run = xasprintf("%s/%s", ctx->run_dir, name);
	p->sock = xasprintf("%s/monitor.sock", p->run);
	p->monitor_lock = xasprintf("%s/monitor.lock", p->run);
	p->running_json = xasprintf("%s/running.json", p->run);
}

void app_paths_free(struct app_paths *p)
{
	free(p->dir);
	free(p->app_json);
	free(p->releases_json);
	free(p->lock);
	free(p->logs);
	free(p->run);
	free(p->sock);
	free(p->monitor_lock);
	free(p->running_json);
	memset(p, 0, sizeof(*p));
}

static int mkdirs_0700(const char *path, slate_error_t *err)
{
	cleanup_free char *copy = xstrdup(path);

	for (char *c = copy + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST)
			return slate_error_sys(err, errno, "create `%s`", copy);
		*c = '/';
	}
	if (mkdir(copy, 0700) < 0 && errno != EEXIST)
		return slate_error_sys(err, errno, "create `%s`", copy);
	return 0;
}

/* The lock file fd is locked is still the one at its path: a failed first
 * deploy or `rm` removes the app's directory, lock file included, while
 * another command waits for the lock; that command then holds a lock on
 * an unlinked file, which excludes no one. */
static bool lock_current(int fd, const char *path)
{
	struct stat held, now;

	return fstat(fd, &held) == 0 && lstat(path, &now) == 0 && held.st_dev == now.st_dev &&
	       held.st_ino == now.st_ino;
}

int app_lock(const struct slate_ctx *ctx, const struct app_paths *p, slate_error_t *err)
{
	(void)ctx;
	for (int tries = 0; tries < 100; tries++) {
		int fd;

		if (mkdirs_0700(p->dir, err) < 0 || mkdirs_0700(p->logs, err) < 0 || mkdirs_0700(p->run, err) < 0)
			return -1;
		fd = open(p->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return slate_error_sys(err, errno, "open `%s`", p->lock);
		while (flock(fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				close(fd);
				return slate_error_sys(err, errno, "lock `%s`", p->lock);
			}
		}
		if (lock_current(fd, p->lock))
			return fd;
		close(fd); /* removed while we waited: take the new one */
	}
	return slate_error_fail(err, "lock `%s`: removed each time it was taken", p->lock);
}

bool app_exists(const struct app_paths *p)
{
	return access(p->app_json, F_OK) == 0;
}

json_t *app_load(const char *path, slate_error_t *err)
{
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return json_object();
	return slate_json_load_file(path, 16 << 20, err);
}

int app_save(const char *path, json_t *j, slate_error_t *err)
{
	cleanup_free char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	size_t len;

	if (text == NULL)
		return slate_error_fail(err, "cannot encode `%s`", path);
	len = strlen(text);
	text = xrealloc(text, len + 2);
	text[len] = '\n';
	return slate_write_file_atomic(path, text, len + 1, 0600, err);
}

json_t *app_release(json_t *releases, json_int_t number)
{
	json_t *list = json_object_get(releases, "releases");

	if (number < 1 || (size_t)number > json_array_size(list))
		return NULL;
	return json_array_get(list, (size_t)number - 1);
}

json_t *app_current_release(json_t *releases)
{
	return app_release(releases, json_integer_value(json_object_get(releases, "current")));
}

int app_list(const struct slate_ctx *ctx, struct slate_strv *names, slate_error_t *err)
{
	cleanup_free char *dir = xasprintf("%s/apps", ctx->root);
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return errno == ENOENT ? 0 : slate_error_sys(err, errno, "open `%s`", dir);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			slate_strv_push(names, de->d_name);
	closedir(d);
	slate_strv_sort(names);
	return 0;
}

void audit_log(const struct slate_ctx *ctx, const char *command, const char *app, json_int_t release,
	       const char *bundle, const char *result)
{
	cleanup_free char *path = xasprintf("%s/audit.log", ctx->root);
	cleanup_free char *line = NULL, *full = NULL;
	json_t *o = json_object();
	struct timespec ts;
	char when[64];
	struct tm tm;
	const char *sudo = getenv("SUDO_USER");
	int fd;

	clock_gettime(CLOCK_REALTIME, &ts);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&ts.tv_sec, &tm));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "uid", json_integer(getuid()));
	if (sudo)
		json_object_set_new(o, "sudo_user", json_string(sudo));
	json_object_set_new(o, "command", json_string(command));
	json_object_set_new(o, "app", app ? json_string(app) : json_null());
	json_object_set_new(o, "release", release > 0 ? json_integer(release) : json_null());
	json_object_set_new(o, "bundle", bundle ? json_string(bundle) : json_null());
	json_object_set_new(o, "result", json_string(result));
	line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	/* O_APPEND: one write per line, so concurrent commands never interleave. */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || line == NULL)
		goto out;
	full = xasprintf("%s\n", line);
	(void)!write(fd, full, strlen(full));
out:
	if (fd >= 0)
		close(fd);
}
