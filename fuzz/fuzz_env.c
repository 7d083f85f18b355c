/* slate: fuzz the env file parser (runtime/env.c): the operator's file,
 * but one that may hold anything (pasted from elsewhere, CRLF, binary).
 *
 * Properties: every entry that comes out is KEY=VALUE with a valid key,
 * no key appears twice, and an entry read from a file holds no line
 * break. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env.h"
#include "fuzz.h"

static char file[64];

static int write_file(const uint8_t *data, size_t size)
{
	int fd;

	if (file[0] == '\0') {
		char dir[] = "/tmp/slate-fuzz-env.XXXXXX";
		fuzz_check(mkdtemp(dir) != NULL, "make a temporary directory");
		strcpy(file, dir);
		strcat(file, "/env");
	}
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	fuzz_check(fd >= 0, "write the env file");
	fuzz_check(size == 0 || write(fd, data, size) == (ssize_t)size, "write the env file");
	close(fd);
	return 0;
}

static void check_entries(const struct slate_strv *env, int from_file)
{
	for (size_t i = 0; i < env->n; i++) {
		const char *kv = env->v[i], *eq = strchr(kv, '=');
		fuzz_check(eq != NULL && eq > kv, "an entry has a key and `=`");
		fuzz_check(!from_file || strchr(kv, '\n') == NULL, "an entry from a file holds no line break");
		for (const char *c = kv; c < eq; c++)
			fuzz_check(*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
					   (c > kv && *c >= '0' && *c <= '9'),
				   "a key is a valid name");
		for (size_t j = 0; j < i; j++)
			fuzz_check(strncmp(env->v[j], kv, (size_t)(eq - kv) + 1) != 0, "no key appears twice");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct slate_strv env = { 0 };
	slate_error_t err = { 0 };
	char *s;

	write_file(data, size);
	if (env_add_file(&env, file, &err) == 0)
		check_entries(&env, 1);
	s = fuzz_cstring(data, size);
	/* --env K=V: a value may hold a line break (a PEM key). */
	if (s != NULL && env_add(&env, s, &err) == 0)
		check_entries(&env, 0);
	free(s);
	slate_strv_free(&env);
	return 0;
}
