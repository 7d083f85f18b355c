/* slate: instance environment (see env.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env.h"

#define ENV_FILE_MAX (1 << 20)

static bool valid_name(const char *kv, size_t klen)
{
	for (size_t i = 0; i < klen; i++) {
		char c = kv[i];
		bool ok =
			c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return klen > 0;
}

static int check_key(const char *kv, size_t klen, slate_error_t *err)
{
	if (klen == 0)
		return slate_error_usage(err, "environment entry without a name (expected KEY=VALUE)");
	if (!valid_name(kv, klen))
		return slate_error_usage(err, "invalid environment name `%.*s`", (int)klen, kv);
	return 0;
}

static void env_set(struct slate_strv *env, const char *kv, size_t klen)
{
	for (size_t i = 0; i < env->n; i++) {
		if (strncmp(env->v[i], kv, klen + 1) == 0) {
			free(env->v[i]);
			env->v[i] = xstrdup(kv);
			return;
		}
	}
	slate_strv_push(env, kv);
}

int env_add(struct slate_strv *env, const char *kv, slate_error_t *err)
{
	const char *eq = strchr(kv, '=');
	size_t klen;

	if (eq == NULL)
		return slate_error_usage(err, "environment entry `%.64s` is not KEY=VALUE", kv);
	klen = (size_t)(eq - kv);
	if (check_key(kv, klen, err) < 0)
		return -1;
	env_set(env, kv, klen);
	return 0;
}

/* Open an env file without following any symbolic link, in any component
 * of its path: whoever can write a directory on the way must not be able
 * to point root at another file (a key, /etc/shadow) whose content would
 * then go into an instance. Each directory is opened O_PATH|O_NOFOLLOW
 * from the one before (openat2's RESOLVE_NO_SYMLINKS, but also where
 * openat2 is missing); the file itself O_NONBLOCK, so that a FIFO never
 * blocks us before the type check. */
static int open_no_links(const char *path, slate_error_t *err)
{
	cleanup_free char *copy = xstrdup(path);
	cleanup_close int dir = -1;
	char *name = copy, *slash;
	int fd;

	if (*name == '/') {
		dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dir < 0)
			return slate_error_sys(err, errno, "open `/`");
		while (*name == '/')
			name++;
	}
	while ((slash = strchr(name, '/')) != NULL) {
		*slash = '\0';
		if (*name != '\0') {
			fd = openat(dir < 0 ? AT_FDCWD : dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
				return slate_error_refuse(err,
							  "env file `%s`: `%s` is not a directory (a symbolic "
							  "link?): links are not followed",
							  path, copy);
			if (fd < 0)
				return slate_error_sys(err, errno, "open env file `%s`", path);
			if (dir >= 0)
				close(dir);
			dir = fd;
		}
		*slash = '/';
		name = slash + 1;
	}
	fd = openat(dir < 0 ? AT_FDCWD : dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP)
		return slate_error_refuse(err, "env file `%s` is a symbolic link: links are not followed", path);
	if (fd < 0)
		return slate_error_sys(err, errno, "open env file `%s`", path);
	return fd;
}

/* An env file holds secrets and decides what runs with them: root's own
 * file only. Refused: not a regular file; owned by another user (who could
 * change it between deploys); writable by the group or by everyone (the
 * same); readable by everyone (the secrets leak). */
static int check_env_file(const char *path, const struct stat *st, slate_error_t *err)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);

	if (!S_ISREG(st->st_mode))
		return slate_error_refuse(err, "env file `%s` is not a regular file", path);
	if (st->st_uid != 0)
		return slate_error_refuse(err, "env file `%s` is owned by uid %u, not root: chown root it", path,
					  (unsigned)st->st_uid);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return slate_error_refuse(err, "env file `%s` is writable by %s (mode %04o): chmod go-w it", path,
					  st->st_mode & S_IWOTH ? "everyone" : "its group", mode);
	if (st->st_mode & S_IROTH)
		return slate_error_refuse(err, "env file `%s` is readable by everyone (mode %04o): chmod o-r it", path,
					  mode);
	return 0;
}

/* One line of an env file (its own copy, NUL-terminated). Whatever is
 * wrong, the message never holds a byte of the line: a malformed line is
 * often a value (a key pasted on its own line) and messages go to logs. */
static int env_file_line(struct slate_strv *env, char *line, const char *path, size_t lineno, slate_error_t *err)
{
	size_t n = strlen(line);
	char *eq;

	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0' || *line == '#')
		return 0;
	if (strncmp(line, "export ", 7) == 0)
		line += 7;
	eq = strchr(line, '=');
	if (eq == NULL)
		return slate_error_usage(err, "env file `%s` line %zu is not KEY=VALUE (its content is not shown)",
					 path, lineno);
	if (!valid_name(line, (size_t)(eq - line)))
		return slate_error_usage(err,
					 "env file `%s` line %zu: the name before `=` is not letters, digits and _ "
					 "(its content is not shown)",
					 path, lineno);
	env_set(env, line, (size_t)(eq - line));
	return 0;
}

int env_add_file(struct slate_strv *env, const char *path, slate_error_t *err)
{
	cleanup_close int fd = open_no_links(path, err);
	cleanup_free char *buf = NULL;
	struct slate_strv add = { 0 };
	size_t len = 0, lineno = 1;
	struct stat st;
	char *line, *nl;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		return slate_error_sys(err, errno, "stat env file `%s`", path);
	if (check_env_file(path, &st, err) < 0)
		return -1;
	buf = slate_read_fd(fd, path, ENV_FILE_MAX, &len, err);
	if (buf == NULL)
		return -1;
	for (line = buf; line < buf + len; line = nl + 1, lineno++) {
		nl = memchr(line, '\n', (size_t)(buf + len - line));
		if (nl == NULL)
			nl = buf + len;
		*nl = '\0';
		if (strlen(line) != (size_t)(nl - line)) {
			slate_strv_free(&add);
			return slate_error_usage(err, "env file `%s` line %zu holds a NUL byte", path, lineno);
		}
		if (env_file_line(&add, line, path, lineno, err) < 0) {
			slate_strv_free(&add);
			return -1;
		}
	}
	/* All or nothing: a refused file adds no variable. */
	for (size_t i = 0; i < add.n; i++)
		env_set(env, add.v[i], (size_t)(strchr(add.v[i], '=') - add.v[i]));
	slate_strv_free(&add);
	return 0;
}

static void env_default(struct slate_strv *env, const char *key, const char *value)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < env->n; i++)
		if (strncmp(env->v[i], key, klen) == 0 && env->v[i][klen] == '=')
			return;
	slate_strv_push_owned(env, xasprintf("%s=%s", key, value));
}

void env_defaults(struct slate_strv *env, const char *hostname)
{
	env_default(env, "PATH", SLATE_DEFAULT_PATH);
	env_default(env, "HOME", "/");
	env_default(env, "HOSTNAME", hostname);
}
