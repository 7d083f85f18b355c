/* slate-bundle: runtime images (see image.h).
 *
 * Nothing here runs a packed binary: versions come from dpkg's status
 * file, libraries from the ELF headers (elf.c). Host paths are captured the
 * way the loader will see them inside the instance: each symlink on the
 * way is recorded as a relative link and followed, so /lib64/ld-linux...
 * resolves in the bundle exactly as it does on the host. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpkg.h"
#include "elfdeps.h"
#include "image.h"
#include "slate/json.h"
#include "slate/manifest.h"
#include "slate/policy.h"

#define CAPTURE_MAX_LINKS 40

static int load_fields(struct image *img, slate_error_t *err)
{
	static const char *const keys[] = { "name", "php",       "packages", "paths",          "dirs", "rootfs",
					    "user", "processes", "health",   "proxy_protocol", NULL };
	const char *what = img->desc_path, *rootfs = NULL;
	json_t *d = img->desc;

	if (slate_json_known_keys(d, keys, what, err) < 0 ||
	    slate_json_get_string(d, "name", false, &img->name, what, err) < 0 ||
	    slate_json_get_string(d, "php", false, &img->php, what, err) < 0 ||
	    slate_json_get_string(d, "user", false, &img->user, what, err) < 0 ||
	    slate_json_get_string(d, "rootfs", true, &rootfs, what, err) < 0 ||
	    slate_json_get_strv(d, "paths", false, &img->paths, what, err) < 0 ||
	    slate_json_get_strv(d, "dirs", true, &img->dirs, what, err) < 0)
		return -1;
	img->packages = json_object_get(d, "packages");
	/* What goes into the manifest obeys the runtime's rules (lib/policy.c). */
	json_t *meta = image_meta(img);
	int r = slate_policy_check_image(meta, err);
	json_decref(meta);
	if (r < 0)
		return slate_error_wrap(err, "%s", what);
	if (rootfs) {
		if (strchr(rootfs, '/') != NULL || rootfs[0] == '.')
			return slate_error_refuse(err, "%s: `rootfs` must name a directory beside image.json", what);
		img->rootfs = xasprintf("%s/%s", img->dir, rootfs);
	}
	for (size_t i = 0; i < img->paths.n; i++)
		if (img->paths.v[i][0] != '/')
			return slate_error_refuse(err, "%s: path `%s` is not absolute", what, img->paths.v[i]);
	for (size_t i = 0; i < img->dirs.n; i++)
		if (img->dirs.v[i][0] != '/')
			return slate_error_refuse(err, "%s: dir `%s` is not absolute", what, img->dirs.v[i]);
	return 0;
}

int image_load(const char *dir, struct image *img, slate_error_t *err)
{
	memset(img, 0, sizeof(*img));
	img->dir = xstrdup(dir);
	img->desc_path = xasprintf("%s/image.json", dir);
	img->desc = slate_json_load_file(img->desc_path, 1 << 20, err);
	if (img->desc == NULL)
		return -1;
	return load_fields(img, err);
}

void image_free(struct image *img)
{
	free(img->dir);
	free(img->desc_path);
	free(img->rootfs);
	json_decref(img->desc);
	slate_strv_free(&img->paths);
	slate_strv_free(&img->dirs);
	memset(img, 0, sizeof(*img));
}

/* Append "what: installed X, pinned Y" to the list of differences. */
static void note_diff(struct slate_strv *diffs, const char *what, const char *have, const char *pin)
{
	slate_strv_push_owned(diffs, xasprintf("%s %s installed, %s pinned", what, have ? have : "not", pin));
}

static int rewrite_pins(struct image *img, json_t *installed, const char *php_have, slate_error_t *err)
{
	const char *pkg;
	json_t *v;
	cleanup_free char *text = NULL;

	json_object_foreach (img->packages, pkg, v) {
		json_t *have = json_object_get(installed, pkg);
		if (have == NULL)
			return slate_error_refuse(err, "cannot repin: pinned package `%s` is not installed", pkg);
		json_object_set(img->packages, pkg, have);
	}
	json_object_set_new(img->desc, "php", json_string(php_have));
	text = json_dumps(img->desc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text == NULL)
		return slate_error_fail(err, "cannot encode `%s`", img->desc_path);
	size_t len = strlen(text);
	text = xrealloc(text, len + 2);
	text[len] = '\n';
	text[len + 1] = '\0';
	if (slate_write_file_atomic(img->desc_path, text, len + 1, 0644, err) < 0)
		return -1;
	return slate_json_get_string(img->desc, "php", false, &img->php, img->desc_path, err);
}

int image_check_pins(struct image *img, const char *dpkg_status, bool repin, slate_error_t *err)
{
	json_t *installed = dpkg_installed(dpkg_status, err), *v;
	struct slate_strv diffs = { 0 };
	cleanup_free char *php_have = NULL, *list = NULL;
	const char *pkg, *common;
	int r = 0;

	if (installed == NULL)
		return -1;
	json_object_foreach (img->packages, pkg, v) {
		const char *have = json_string_value(json_object_get(installed, pkg));
		if (!json_is_string(v)) {
			r = slate_error_refuse(err, "%s: the pin of `%s` must be a version string", img->desc_path,
					       pkg);
			goto out;
		}
		if (have == NULL || strcmp(have, json_string_value(v)) != 0)
			note_diff(&diffs, pkg, have, json_string_value(v));
	}
	common = json_string_value(json_object_get(installed, "php8.2-common"));
	php_have = common ? dpkg_upstream_version(common) : NULL;
	if (php_have == NULL || strcmp(php_have, img->php) != 0)
		note_diff(&diffs, "PHP", php_have, img->php);
	if (diffs.n == 0)
		goto out;
	if (repin && php_have != NULL) {
		for (size_t i = 0; i < diffs.n; i++)
			fprintf(stderr, "slate-bundle: repin: %s\n", diffs.v[i]);
		r = rewrite_pins(img, installed, php_have, err);
		goto out;
	}
	list = xstrdup(diffs.v[0]);
	for (size_t i = 1; i < diffs.n; i++) {
		char *longer = xasprintf("%s; %s", list, diffs.v[i]);
		free(list);
		list = longer;
	}
	r = slate_error_refuse(err,
			       "installed runtime differs from the pins in `%s`: %s (rebuild with --repin to accept)",
			       img->desc_path, list);
out:
	slate_strv_free(&diffs);
	json_decref(installed);
	return r;
}

struct capture {
	struct tree *t;
	struct slate_strv files; /* absolute host paths of captured files (ELF roots) */
	struct slate_pathmap walked; /* directories captured recursively */
};

static int capture_path(struct capture *c, const char *abs, int links, slate_error_t *err);

/* A directory given as an image path: all of it, in name order. */
static int capture_dir_contents(struct capture *c, const char *rel, slate_error_t *err)
{
	cleanup_free char *host = xasprintf("/%s", rel);
	struct dirent **names = NULL;
	int n, r = 0;

	if (!slate_pathmap_put(&c->walked, rel, 0))
		return 0;
	n = scandir(host, &names, NULL, alphasort);
	if (n < 0)
		return slate_error_sys(err, errno, "read image directory `%s`", host);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		if (r == 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
			cleanup_free char *child = xasprintf("%s/%s", host, name);
			r = capture_path(c, child, 0, err);
		}
		free(names[i]);
	}
	free(names);
	return r;
}

/* Record the link at rel (relative target) and continue at what it points to. */
static int capture_link(struct capture *c, const char *rel, const char *rest, int links, slate_error_t *err)
{
	cleanup_free char *host = xasprintf("/%s", rel);
	cleanup_free char *parent = slate_path_parent(rel);
	cleanup_free char *target = NULL, *next = NULL;
	char buf[PATH_MAX];
	ssize_t n = readlink(host, buf, sizeof(buf) - 1);

	if (n < 0)
		return slate_error_sys(err, errno, "readlink `%s`", host);
	buf[n] = '\0';
	if (buf[0] == '/') {
		cleanup_free char *norm = slate_path_normalize(buf + 1, err);
		if (norm == NULL)
			return slate_error_wrap(err, "image symlink `%s`", host);
		target = tree_relative(parent, norm);
		next = xasprintf("%s%s%s", buf, rest[0] ? "/" : "", rest);
	} else {
		target = xstrdup(buf);
		next = xasprintf("/%s%s%s%s%s", parent, parent[0] ? "/" : "", buf, rest[0] ? "/" : "", rest);
	}
	if (tree_get(c->t, rel) == NULL && tree_add_symlink(c->t, rel, target, false, err) < 0)
		return slate_error_wrap(err, "image symlink `%s`", host);
	return capture_path(c, next, links + 1, err);
}

static int capture_leaf(struct capture *c, const char *rel, const struct stat *st, slate_error_t *err)
{
	cleanup_free char *host = xasprintf("/%s", rel);

	if (S_ISDIR(st->st_mode))
		return tree_add_dir(c->t, rel, err) < 0 ? -1 : capture_dir_contents(c, rel, err);
	if (!S_ISREG(st->st_mode))
		return slate_error_refuse(err, "image path `%s` is not a file, directory or symlink", host);
	if (tree_get(c->t, rel) != NULL)
		return 0;
	tree_note_mtime(c->t, st->st_mtim.tv_sec);
	slate_strv_push(&c->files, host);
	return tree_add_file(c->t, rel, host, tree_mode(SLATE_ENTRY_FILE, st->st_mode), (uint64_t)st->st_size, false,
			     err);
}

/* Walk abs one component at a time; every symlink met is recorded and
 * followed (capture_link restarts the walk at its target). */
static int capture_path(struct capture *c, const char *abs, int links, slate_error_t *err)
{
	cleanup_free char *copy = xstrdup(abs), *resolved = xstrdup("");
	char *save = NULL;

	if (links > CAPTURE_MAX_LINKS)
		return slate_error_refuse(err, "image path `%s`: too many levels of symlinks", abs);
	for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		struct stat st;
		char *next;
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			char *p = slate_path_parent(resolved);
			free(resolved);
			resolved = p;
			continue;
		}
		next = xasprintf("%s%s%s", resolved, resolved[0] ? "/" : "", comp);
		free(resolved);
		resolved = next;
		cleanup_free char *host = xasprintf("/%s", resolved);
		if (slate_path_under(resolved, SLATE_APP_DIR))
			return slate_error_refuse(err, "image path `%s` collides with the project at /app", host);
		if (lstat(host, &st) < 0)
			return slate_error_sys(err, errno, "image path `%s` (from `%s`)", host, abs);
		const char *rest = save && *save ? save : "";
		if (S_ISLNK(st.st_mode))
			return capture_link(c, resolved, rest, links, err);
		if (rest[0] == '\0')
			return capture_leaf(c, resolved, &st, err);
		if (!S_ISDIR(st.st_mode))
			return slate_error_sys(err, ENOTDIR, "image path `%s`", abs);
		if (tree_add_dir(c->t, resolved, err) < 0)
			return -1;
	}
	if (resolved[0] == '\0')
		return 0;
	return tree_add_dir(c->t, resolved, err) < 0 ? -1 : 0;
}

/* The rootfs overlay: the image's own files, at the same paths, winning
 * over captured ones. Only relative links staying inside the tree. */
static int overlay_dir(struct tree *t, const char *host_dir, const char *rel, slate_error_t *err)
{
	struct dirent **names = NULL;
	int n = scandir(host_dir, &names, NULL, alphasort), r = 0;

	if (n < 0)
		return slate_error_sys(err, errno, "read `%s`", host_dir);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		cleanup_free char *host = xasprintf("%s/%s", host_dir, name);
		cleanup_free char *path = xasprintf("%s%s%s", rel, rel[0] ? "/" : "", name);
		struct stat st;
		char buf[PATH_MAX];
		ssize_t len;

		if (r < 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			goto next;
		if (lstat(host, &st) < 0) {
			r = slate_error_sys(err, errno, "stat `%s`", host);
		} else if (S_ISDIR(st.st_mode)) {
			r = tree_add_dir(t, path, err);
			if (r == 0)
				r = overlay_dir(t, host, path, err);
		} else if (S_ISREG(st.st_mode)) {
			tree_note_mtime(t, st.st_mtim.tv_sec);
			r = tree_add_file(t, path, host, tree_mode(SLATE_ENTRY_FILE, st.st_mode), (uint64_t)st.st_size,
					  true, err);
		} else if (S_ISLNK(st.st_mode) && (len = readlink(host, buf, sizeof(buf) - 1)) >= 0) {
			buf[len] = '\0';
			r = tree_add_symlink(t, path, buf, true, err);
		} else {
			r = slate_error_refuse(err, "image rootfs `%s`: unsupported file type", host);
		}
	next:
		free(names[i]);
	}
	free(names);
	return r;
}

static int capture_closure(struct capture *c, slate_error_t *err)
{
	struct slate_strv libs = { 0 };
	int r;

	r = slate_elf_closure("/", (const char *const *)c->files.v, c->files.n, &libs, err);
	for (size_t i = 0; r == 0 && i < libs.n; i++)
		r = capture_path(c, libs.v[i], 0, err);
	slate_strv_free(&libs);
	return r;
}

int image_collect(struct image *img, struct tree *t, slate_error_t *err)
{
	struct capture c = { .t = t };
	int r = 0;

	slate_pathmap_init(&c.walked);
	for (size_t i = 0; r == 0 && i < img->paths.n; i++)
		r = capture_path(&c, img->paths.v[i], 0, err);
	if (r == 0)
		r = capture_closure(&c, err);
	for (size_t i = 0; r == 0 && i < img->dirs.n; i++) {
		cleanup_free char *rel = slate_path_normalize(img->dirs.v[i] + 1, err);
		r = rel ? tree_add_dir(t, rel, err) : -1;
	}
	if (r == 0 && img->rootfs)
		r = overlay_dir(t, img->rootfs, "", err);
	slate_strv_free(&c.files);
	slate_pathmap_free(&c.walked);
	return r;
}

json_t *image_meta(const struct image *img)
{
	json_t *meta = json_object();

	json_object_set_new(meta, "name", json_string(img->name));
	json_object_set_new(meta, "php", json_string(img->php));
	json_object_set(meta, "packages", img->packages);
	json_object_set_new(meta, "user", json_string(img->user));
	json_object_set(meta, "processes", json_object_get(img->desc, "processes"));
	json_object_set(meta, "health", json_object_get(img->desc, "health"));
	if (json_object_get(img->desc, "proxy_protocol"))
		json_object_set(meta, "proxy_protocol", json_object_get(img->desc, "proxy_protocol"));
	return meta;
}
