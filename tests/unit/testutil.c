/* Helpers the unit tests share; see testutil.h. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

int rm_tree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *make_tmpdir(void)
{
	const char *name = program_invocation_short_name;
	char *dir;

	if (strncmp(name, "test_", 5) == 0)
		name += 5;
	dir = xasprintf("/tmp/slate-test-%s-XXXXXX", name);
	if (mkdtemp(dir) == NULL) {
		free(dir);
		return NULL;
	}
	return dir;
}

int tmpdir_setup(void **state)
{
	char *dir = make_tmpdir();

	if (dir == NULL)
		return -1;
	*state = dir;
	return 0;
}

int tmpdir_teardown(void **state)
{
	rm_tree(*state);
	free(*state);
	return 0;
}

char *path_join(const char *dir, const char *rel)
{
	return xasprintf("%s/%s", dir, rel);
}

void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

char *read_text(const char *path)
{
	slate_error_t err = { 0 };
	char *s = slate_read_file(path, 1 << 26, NULL, &err);

	if (s == NULL)
		fail_msg("read `%s`: %s", path, err.msg);
	return s;
}

size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

struct slate_entry *add_entry(struct slate_manifest *m, const char *path, enum slate_entry_type type, unsigned mode)
{
	struct slate_entry *e = slate_manifest_add(m);

	e->path = xstrdup(path);
	e->type = type;
	e->mode = mode;
	return e;
}

void add_link(struct slate_manifest *m, const char *path, const char *target)
{
	add_entry(m, path, SLATE_ENTRY_SYMLINK, 0777)->target = xstrdup(target);
}

const char test_image_json[] =
	"{\"name\":\"php-8.2\",\"php\":\"8.2.36\",\"packages\":{\"nginx\":\"1.22\"},\"user\":\"www-data\","
	"\"processes\":[{\"name\":\"php-fpm\",\"argv\":[\"/usr/sbin/php-fpm8.2\",\"--nodaemonize\"]},"
	"{\"name\":\"nginx\",\"argv\":[\"/usr/sbin/nginx\"]}],"
	"\"health\":{\"port\":80,\"path\":\"/\",\"timeout\":30},\"proxy_protocol\":{\"80\":8080}}";
const char test_settings_json[] =
	"{\"webroot\":\"web\",\"writable\":[\"storage\",\"web/cpresources\"],\"exclude\":[\"*.log\"],"
	"\"allow_secrets\":[]}";
