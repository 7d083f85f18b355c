/* slate: instance environment (see env.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env.h"

static int check_key(const char *kv, size_t klen, slate_error_t *err)
{
	if (klen == 0)
		return slate_error_usage(err, "environment entry without a name (expected KEY=VALUE)");
	for (size_t i = 0; i < klen; i++) {
		char c = kv[i];
		bool ok =
			c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return slate_error_usage(err, "invalid environment name `%.*s`", (int)klen, kv);
	}
	return 0;
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
	for (size_t i = 0; i < env->n; i++) {
		if (strncmp(env->v[i], kv, klen + 1) == 0) {
			free(env->v[i]);
			env->v[i] = xstrdup(kv);
			return 0;
		}
	}
	slate_strv_push(env, kv);
	return 0;
}

int env_add_file(struct slate_strv *env, const char *path, slate_error_t *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	cleanup_free char *buf = NULL;
	struct stat st;
	char *line, *save = NULL;

	if (fd < 0)
		return slate_error_sys(err, errno, "open env file `%s`", path);
	if (fstat(fd, &st) < 0)
		return slate_error_sys(err, errno, "stat env file `%s`", path);
	if (!S_ISREG(st.st_mode))
		return slate_error_refuse(err, "env file `%s` is not a regular file", path);
	if (st.st_mode & S_IROTH)
		return slate_error_refuse(err, "env file `%s` is readable by everyone (mode %04o): chmod o-r it", path,
					  (unsigned)(st.st_mode & 07777));
	buf = slate_read_fd(fd, path, 1 << 20, NULL, err);
	if (buf == NULL)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t n = strlen(line);
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '\0' || *line == '#')
			continue;
		if (strncmp(line, "export ", 7) == 0)
			line += 7;
		if (env_add(env, line, err) < 0)
			return slate_error_wrap(err, "env file `%s`", path);
	}
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
