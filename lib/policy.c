/* slate: the rules a bundle's image and settings obey (see
 * include/slate/policy.h).
 *
 * Threat: a signed manifest is trusted to be what the signer meant, not to
 * be harmless. A CI that signs `writable: ["../etc"]`, a process list that
 * is empty, or a link `web/env.txt -> ../../proc/self/environ` would make
 * the runtime turn the signer's mistake into a writable /etc or a served
 * process environment. These checks are pure functions of the manifest,
 * shared by the bundler (before signing) and the runtime (before unpacking
 * and before starting), so that the two can never disagree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slate/json.h"
#include "slate/path.h"
#include "slate/policy.h"
#include "slate/util.h"

const char *const slate_policy_mounts[] = { "proc", "dev", "sys", "tmp", "run", NULL };

/* Characters that the generated nginx rules (a `location ^~ /PATH/` per
 * writable path below the webroot) cannot carry safely. */
#define NGINX_UNSAFE "*?[]{};\"'\\$ "
/* The project directory that holds the dependencies' code. */
#define CODE_DIR "vendor"
#define MAX_LINK_HOPS 40

static int check_rel(const char *path, const char *what, slate_error_t *err)
{
	if (slate_path_check(path, SLATE_PATH_MAX_DEFAULT, SLATE_NAME_MAX_DEFAULT, err) < 0)
		return slate_error_wrap(err, "%s", what);
	if (slate_path_under(path, ".slate"))
		return slate_error_refuse(err, "%s `%s`: `.slate` is reserved for slate's own files", what, path);
	return 0;
}

static int check_webroot(const char *webroot, slate_error_t *err)
{
	if (check_rel(webroot, "webroot", err) < 0)
		return -1;
	if (strpbrk(webroot, NGINX_UNSAFE) != NULL)
		return slate_error_refuse(err, "webroot `%s` has characters nginx rules cannot carry", webroot);
	return 0;
}

/* A writable path is mounted read-write (noexec) over the code: it must
 * not hold the webroot (PHP would run from it) nor the dependencies' code
 * (an attacker's write would be included by PHP). */
static int check_writable(const char *w, const char *webroot, slate_error_t *err)
{
	if (check_rel(w, "writable", err) < 0)
		return -1;
	if (slate_path_under(webroot, w))
		return slate_error_refuse(err, "writable `%s` contains the webroot: PHP would run from a writable path",
					  w);
	if (slate_path_under(w, CODE_DIR) || slate_path_under(CODE_DIR, w))
		return slate_error_refuse(err, "writable `%s` overlaps the code in `%s`", w, CODE_DIR);
	if (strpbrk(w, NGINX_UNSAFE) != NULL)
		return slate_error_refuse(err, "writable `%s` has characters nginx rules cannot carry", w);
	return 0;
}

int slate_policy_check_settings(const json_t *settings, slate_error_t *err)
{
	static const char *const keys[] = { "webroot", "writable", "exclude", "allow_secrets", NULL };
	struct slate_strv writable = { 0 }, exclude = { 0 }, secrets = { 0 };
	const char *webroot = NULL;
	int r;

	r = slate_json_known_keys(settings, keys, "settings", err);
	if (r == 0)
		r = slate_json_get_string(settings, "webroot", false, &webroot, "settings", err);
	if (r == 0)
		r = slate_json_get_strv(settings, "writable", true, &writable, "settings", err);
	if (r == 0)
		r = slate_json_get_strv(settings, "exclude", true, &exclude, "settings", err);
	if (r == 0)
		r = slate_json_get_strv(settings, "allow_secrets", true, &secrets, "settings", err);
	if (r == 0)
		r = check_webroot(webroot, err);
	for (size_t i = 0; r == 0 && i < writable.n; i++)
		r = check_writable(writable.v[i], webroot, err);
	for (size_t i = 0; r == 0 && i < secrets.n; i++)
		r = check_rel(secrets.v[i], "allow_secrets", err);
	slate_strv_free(&writable);
	slate_strv_free(&exclude);
	slate_strv_free(&secrets);
	return r;
}

/* ---- image ---- */

/* The user processes run as: a name as in /etc/passwd, or UID[:GID]. */
static int check_user(const char *user, slate_error_t *err)
{
	size_t len = strlen(user), digits = strspn(user, "0123456789");

	if (len > 0 && digits > 0 && (user[digits] == '\0' || user[digits] == ':')) {
		const char *gid = user + digits + (user[digits] == ':');
		if (user[digits] == '\0' || (gid[0] != '\0' && strspn(gid, "0123456789") == strlen(gid)))
			return 0;
	} else if (len > 0 && len <= 32 && user[0] != '-' && digits == 0 &&
		   strspn(user, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len) {
		return 0;
	}
	return slate_error_refuse(err, "user `%s` is not NAME or UID[:GID]", user);
}

static int check_processes(const json_t *image, slate_error_t *err)
{
	static const char *const keys[] = { "name", "argv", NULL };
	json_t *procs = json_object_get(image, "processes"), *p;
	size_t i;

	if (!json_is_array(procs) || json_array_size(procs) == 0)
		return slate_error_refuse(err, "`processes` must be a non-empty list");
	json_array_foreach (procs, i, p) {
		struct slate_strv argv = { 0 };
		const char *name = NULL;
		int r = slate_json_known_keys(p, keys, "process", err);
		if (r == 0)
			r = slate_json_get_string(p, "name", false, &name, "process", err);
		if (r == 0)
			r = slate_json_get_strv(p, "argv", false, &argv, "process", err);
		if (r == 0 && (argv.n == 0 || argv.v[0][0] != '/'))
			r = slate_error_refuse(err, "process `%s` needs an absolute argv[0]", name);
		slate_strv_free(&argv);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* The path goes into the request line of the health check: printable
 * ASCII, no space. */
static int check_health(const json_t *image, slate_error_t *err)
{
	static const char *const keys[] = { "port", "path", "timeout", NULL };
	json_t *h = json_object_get(image, "health");
	const char *path = NULL;
	int64_t port = 0, timeout = 0;

	if (slate_json_known_keys(h, keys, "health", err) < 0 ||
	    slate_json_get_int(h, "port", false, &port, "health", err) < 0 ||
	    slate_json_get_string(h, "path", false, &path, "health", err) < 0 ||
	    slate_json_get_int(h, "timeout", true, &timeout, "health", err) < 0)
		return -1;
	if (port < 1 || port > 65535 || path[0] != '/')
		return slate_error_refuse(err, "health needs a port (1-65535) and an absolute path");
	for (const char *c = path; *c; c++)
		if (*c <= ' ' || *c >= 0x7f)
			return slate_error_refuse(err, "health path `%s` must be printable ASCII without spaces", path);
	return 0;
}

/* "proxy_protocol": {"80": 8080}: connections relayed to port 80 go to
 * 8080 instead, prefixed with a PROXY v1 line. */
static int check_proxy(const json_t *image, slate_error_t *err)
{
	json_t *p = json_object_get(image, "proxy_protocol"), *v;
	const char *key;

	if (p == NULL)
		return 0;
	if (!json_is_object(p))
		return slate_error_refuse(err, "`proxy_protocol` must map ports to ports");
	json_object_foreach (p, key, v) {
		char *end = NULL;
		long port = strtol(key, &end, 10);
		if (key[0] < '1' || key[0] > '9' || *end != '\0' || port > 65535 || !json_is_integer(v) ||
		    json_integer_value(v) < 1 || json_integer_value(v) > 65535)
			return slate_error_refuse(err, "`proxy_protocol` must map ports to ports");
	}
	return 0;
}

static int check_packages(const json_t *image, slate_error_t *err)
{
	json_t *pkgs = json_object_get(image, "packages"), *v;
	const char *key;

	if (!json_is_object(pkgs))
		return slate_error_refuse(err, "`packages` must be an object of package: version");
	json_object_foreach (pkgs, key, v)
		if (!json_is_string(v))
			return slate_error_refuse(err, "the pin of `%s` must be a version string", key);
	return 0;
}

int slate_policy_check_image(const json_t *image, slate_error_t *err)
{
	static const char *const keys[] = { "name",      "php",    "packages",       "user",
					    "processes", "health", "proxy_protocol", NULL };
	const char *name = NULL, *php = NULL, *user = NULL;

	if (slate_json_known_keys(image, keys, "image", err) < 0 ||
	    slate_json_get_string(image, "name", false, &name, "image", err) < 0 ||
	    slate_json_get_string(image, "php", false, &php, "image", err) < 0 ||
	    slate_json_get_string(image, "user", false, &user, "image", err) < 0)
		return -1;
	if (check_user(user, err) < 0 || check_packages(image, err) < 0 || check_processes(image, err) < 0 ||
	    check_health(image, err) < 0 || check_proxy(image, err) < 0)
		return -1;
	return 0;
}

/* ---- entries ---- */

struct tree_view {
	const struct slate_manifest *m;
	struct slate_pathmap index; /* path -> entry */
	struct slate_strv mounts; /* what the runtime mounts over */
};

static const struct slate_entry *find(const struct tree_view *t, const char *path)
{
	size_t i;

	return slate_pathmap_get(&t->index, path, &i) ? &t->m->entries[i] : NULL;
}

static int need_dir(const struct tree_view *t, const char *path, const char *what, slate_error_t *err)
{
	const struct slate_entry *e = find(t, path);

	if (e == NULL)
		return slate_error_refuse(err, "%s `/%s` is not in the bundle", what, path);
	if (e->type != SLATE_ENTRY_DIR)
		return slate_error_refuse(err, "%s `/%s` is a %s in the bundle, not a directory", what, path,
					  slate_entry_type_name(e->type));
	return 0;
}

/* The mounted-over path that p lies in or under, or NULL; except. */
static const char *mounted(const struct tree_view *t, const char *p, const char *except)
{
	for (size_t i = 0; i < t->mounts.n; i++)
		if (t->mounts.v[i] != except && slate_path_under(p, t->mounts.v[i]))
			return t->mounts.v[i];
	return NULL;
}

/* A mounted-over path at or below p (p is its ancestor), or NULL; except. */
static const char *mount_below(const struct tree_view *t, const char *p, const char *except)
{
	for (size_t i = 0; i < t->mounts.n; i++)
		if (t->mounts.v[i] != except && (p[0] == '\0' || slate_path_under(t->mounts.v[i], p)))
			return t->mounts.v[i];
	return NULL;
}

/* Append the components of rel to the pending list, before what is there. */
static void push_front(struct slate_strv *pending, const char *rel)
{
	struct slate_strv comps = { 0 };
	cleanup_free char *copy = xstrdup(rel);
	char *save = NULL;

	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
		slate_strv_push(&comps, c);
	for (size_t i = 0; i < pending->n; i++)
		slate_strv_push(&comps, pending->v[i]);
	slate_strv_free(pending);
	*pending = comps;
}

static char *pop_front(struct slate_strv *pending)
{
	char *c = pending->v[0];

	memmove(pending->v, pending->v + 1, pending->n * sizeof(*pending->v)); /* moves the NULL too */
	pending->n--;
	return c;
}

/* Where the link at e leads, resolved lexically the way the kernel will
 * resolve it in the instance: from the link's directory, `..` stopping at
 * the root, every manifest symlink met on the way (the last component
 * too) replaced by its target. Refused as soon as the walk enters a
 * mounted-over path (what lies there is the kernel's, not the bundle's:
 * /proc/self/environ, the app's own writes), and at the end if it leads to
 * a directory that holds one (the mount would be reachable through it).
 * A link that lies in a mounted-over path itself is hidden by the mount
 * (/tmp, /run) or lives among the app's own writes (a writable path), where
 * it may point within that same path. */
static int check_link(const struct tree_view *t, const struct slate_entry *e, slate_error_t *err)
{
	cleanup_free char *cur = slate_path_parent(e->path);
	const char *home = mounted(t, e->path, NULL), *hit = NULL;
	struct slate_strv pending = { 0 };
	int hops = 0, r = 0;

	if (home != NULL && !slate_path_under(home, SLATE_APP_DIR))
		return 0;
	push_front(&pending, e->target);
	while (r == 0 && pending.n > 0) {
		cleanup_free char *c = pop_front(&pending);
		const struct slate_entry *link;
		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0) {
			char *up = slate_path_parent(cur);
			free(cur);
			cur = up;
			continue;
		}
		char *next = cur[0] ? xasprintf("%s/%s", cur, c) : xstrdup(c);
		free(cur);
		cur = next;
		if ((hit = mounted(t, cur, home)) != NULL)
			break;
		link = find(t, cur);
		if (link == NULL || link->type != SLATE_ENTRY_SYMLINK)
			continue;
		if (++hops > MAX_LINK_HOPS) {
			r = slate_error_refuse(err, "symlink `%s`: too many levels of symlinks", e->path);
			break;
		}
		char *up = slate_path_parent(cur);
		free(cur);
		cur = up;
		push_front(&pending, link->target);
	}
	if (r == 0 && hit != NULL)
		r = slate_error_refuse(err, "symlink `%s` -> `%s` leads into `/%s`, which the runtime mounts over",
				       e->path, e->target, hit);
	else if (r == 0 && (hit = mount_below(t, cur, home)) != NULL)
		r = slate_error_refuse(err,
				       "symlink `%s` -> `%s` leads to `/%s`, which holds `/%s`, a path the runtime "
				       "mounts over",
				       e->path, e->target, cur, hit);
	slate_strv_free(&pending);
	return r;
}

static int check_writable_entries(const struct tree_view *t, const char *dir, slate_error_t *err)
{
	for (size_t i = 0; i < t->m->n_entries; i++) {
		const struct slate_entry *e = &t->m->entries[i];
		size_t len = strlen(e->path);
		if (e->type != SLATE_ENTRY_SYMLINK && len > 4 && strcmp(e->path + len - 4, ".php") == 0 &&
		    slate_path_under(e->path, dir) && strcmp(e->path, dir) != 0)
			return slate_error_refuse(err, "writable `/%s` holds PHP code `%s`", dir, e->path);
	}
	return 0;
}

static int check_tree(struct tree_view *t, slate_error_t *err)
{
	const json_t *settings = t->m->settings;
	const char *webroot = json_string_value(json_object_get(settings, "webroot"));
	cleanup_free char *web = xasprintf("%s/%s", SLATE_APP_DIR, webroot);
	size_t i;
	json_t *v;

	for (i = 0; slate_policy_mounts[i]; i++) {
		slate_strv_push(&t->mounts, slate_policy_mounts[i]);
		if (strcmp(slate_policy_mounts[i], "sys") != 0 &&
		    need_dir(t, slate_policy_mounts[i], "mount point", err) < 0)
			return -1;
	}
	if (need_dir(t, web, "webroot", err) < 0)
		return -1;
	json_array_foreach (json_object_get(settings, "writable"), i, v) {
		cleanup_free char *w = xasprintf("%s/%s", SLATE_APP_DIR, json_string_value(v));
		if (need_dir(t, w, "writable", err) < 0 || check_writable_entries(t, w, err) < 0)
			return -1;
		slate_strv_push(&t->mounts, w);
	}
	for (i = 0; i < t->m->n_entries; i++)
		if (t->m->entries[i].type == SLATE_ENTRY_SYMLINK && check_link(t, &t->m->entries[i], err) < 0)
			return -1;
	return 0;
}

int slate_policy_check_entries(const struct slate_manifest *m, slate_error_t *err)
{
	struct tree_view t = { .m = m };
	int r;

	slate_pathmap_init(&t.index);
	for (size_t i = 0; i < m->n_entries; i++)
		slate_pathmap_put(&t.index, m->entries[i].path, i);
	r = check_tree(&t, err);
	slate_pathmap_free(&t.index);
	slate_strv_free(&t.mounts);
	return r;
}

int slate_policy_check(const struct slate_manifest *m, slate_error_t *err)
{
	if (slate_policy_check_settings(m->settings, err) < 0)
		return slate_error_wrap(err, "bundle settings");
	if (slate_policy_check_image(m->image, err) < 0)
		return slate_error_wrap(err, "bundle image");
	if (m->n_entries > 0 && slate_policy_check_entries(m, err) < 0)
		return slate_error_wrap(err, "bundle");
	return 0;
}
