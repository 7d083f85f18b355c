/* slate: path safety (see include/slate/path.h). */
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slate/path.h"
#include "slate/util.h"

/* One component: non-empty, not "." or "..", no control bytes, not too long. */
static int check_component(const char *path, const char *c, size_t len, size_t max_name, slate_error_t *err)
{
	if (len == 0)
		return slate_error_refuse(err, "unsafe path `%s`: empty component", path);
	if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
		return slate_error_refuse(err, "unsafe path `%s`: `%.*s` component", path, (int)len, c);
	if (len > max_name)
		return slate_error_refuse(err, "unsafe path `%.64s...`: name longer than %zu bytes", path, max_name);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)c[i];
		if (ch < 0x20 || ch == 0x7f)
			return slate_error_refuse(err, "unsafe path `%s`: control character", path);
	}
	return 0;
}

int slate_path_check(const char *path, size_t max_path, size_t max_name, slate_error_t *err)
{
	size_t len = strlen(path);
	const char *c = path;

	if (len == 0)
		return slate_error_refuse(err, "unsafe path: empty");
	if (path[0] == '/')
		return slate_error_refuse(err, "unsafe path `%s`: absolute", path);
	if (len > max_path)
		return slate_error_refuse(err, "unsafe path `%.64s...`: longer than %zu bytes", path, max_path);
	for (;;) {
		const char *slash = strchr(c, '/');
		size_t clen = slash ? (size_t)(slash - c) : strlen(c);
		if (check_component(path, c, clen, max_name, err) < 0)
			return -1;
		if (slash == NULL)
			return 0;
		c = slash + 1;
	}
}

char *slate_path_normalize(const char *name, slate_error_t *err)
{
	cleanup_free char *out = xmalloc(strlen(name) + 1);
	const char *c = name;
	size_t o = 0;

	if (name[0] == '/') {
		slate_error_refuse(err, "unsafe path `%s`: absolute", name);
		return NULL;
	}
	while (*c) {
		const char *slash = strchr(c, '/');
		size_t clen = slash ? (size_t)(slash - c) : strlen(c);
		if (clen == 2 && c[0] == '.' && c[1] == '.') {
			slate_error_refuse(err, "unsafe path `%s`: `..` component", name);
			return NULL;
		}
		if (clen > 0 && !(clen == 1 && c[0] == '.')) {
			if (o > 0)
				out[o++] = '/';
			memcpy(out + o, c, clen);
			o += clen;
		}
		c += clen + (slash ? 1 : 0);
	}
	out[o] = '\0';
	if (o == 0) {
		slate_error_refuse(err, "unsafe path `%s`: empty", name);
		return NULL;
	}
	return steal_pointer(&out);
}

int slate_path_check_link(const char *link, const char *target, slate_error_t *err)
{
	long depth = 0;
	const char *c;

	if (target[0] == '\0')
		return slate_error_refuse(err, "unsafe symlink `%s`: empty target", link);
	if (target[0] == '/')
		return slate_error_refuse(err, "unsafe symlink `%s`: absolute target `%s`", link, target);
	/* Depth of the link's directory below the root. */
	for (c = link; *c; c++)
		if (*c == '/')
			depth++;
	/* `..` only as a leading run: then no link can climb out through
	 * another link (a/s -> .., a/t -> s/../../x), by induction. */
	bool climbing = true;
	for (c = target; *c;) {
		const char *slash = strchr(c, '/');
		size_t clen = slash ? (size_t)(slash - c) : strlen(c);
		if (clen == 2 && c[0] == '.' && c[1] == '.') {
			if (!climbing)
				return slate_error_refuse(err, "unsafe symlink `%s`: `..` inside target `%s`", link,
							  target);
			if (--depth < 0)
				return slate_error_refuse(err, "unsafe symlink `%s`: target `%s` leaves the tree", link,
							  target);
		} else if (clen > 0 && !(clen == 1 && c[0] == '.')) {
			depth++;
			climbing = false;
		}
		c += clen + (slash ? 1 : 0);
	}
	return 0;
}

int slate_path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca == cb) {
			if (ca == '\0')
				return 0;
			continue;
		}
		/* '/' ends a component: it sorts before any other byte. */
		if (ca == '/')
			ca = 1;
		if (cb == '/')
			cb = 1;
		return ca < cb ? -1 : 1;
	}
}

bool slate_path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (n == 0)
		return true;
	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

char *slate_path_parent(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup("");
}

bool slate_glob_match(const char *pattern, const char *relpath)
{
	bool anchored = pattern[0] == '/';
	cleanup_free char *p = NULL;
	size_t n;

	while (pattern[0] == '/')
		pattern++;
	/* "cache/" means the directory cache: the match covers its contents anyway. */
	n = strlen(pattern);
	while (n > 0 && pattern[n - 1] == '/')
		n--;
	p = xstrndup(pattern, n);
	if (p[0] == '\0')
		return false;
	if (!anchored && strchr(p, '/') == NULL) {
		/* Any component of the path (a match on a directory covers its contents). */
		for (const char *c = relpath; c;) {
			const char *slash = strchr(c, '/');
			cleanup_free char *comp = slash ? xstrndup(c, (size_t)(slash - c)) : xstrdup(c);
			if (fnmatch(p, comp, FNM_PERIOD) == 0)
				return true;
			c = slash ? slash + 1 : NULL;
		}
		return false;
	}
	/* The path or one of its ancestors. */
	cleanup_free char *cur = xstrdup(relpath);
	for (;;) {
		char *slash;
		if (fnmatch(p, cur, FNM_PATHNAME | FNM_PERIOD) == 0)
			return true;
		slash = strrchr(cur, '/');
		if (slash == NULL)
			return false;
		*slash = '\0';
	}
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

void slate_pathmap_init(struct slate_pathmap *m)
{
	m->n = 0;
	m->cap = 64;
	m->keys = xcalloc(m->cap, sizeof(*m->keys));
	m->vals = xcalloc(m->cap, sizeof(*m->vals));
}

static void pathmap_grow(struct slate_pathmap *m)
{
	struct slate_pathmap bigger = { 0 };

	bigger.cap = m->cap * 2;
	bigger.keys = xcalloc(bigger.cap, sizeof(*bigger.keys));
	bigger.vals = xcalloc(bigger.cap, sizeof(*bigger.vals));
	for (size_t i = 0; i < m->cap; i++) {
		if (m->keys[i] == NULL)
			continue;
		size_t j = hash_str(m->keys[i]) & (bigger.cap - 1);
		while (bigger.keys[j] != NULL)
			j = (j + 1) & (bigger.cap - 1);
		bigger.keys[j] = m->keys[i];
		bigger.vals[j] = m->vals[i];
	}
	bigger.n = m->n;
	free(m->keys);
	free(m->vals);
	*m = bigger;
}

bool slate_pathmap_put(struct slate_pathmap *m, const char *key, size_t val)
{
	size_t j;

	if ((m->n + 1) * 2 > m->cap)
		pathmap_grow(m);
	j = hash_str(key) & (m->cap - 1);
	while (m->keys[j] != NULL) {
		if (strcmp(m->keys[j], key) == 0)
			return false;
		j = (j + 1) & (m->cap - 1);
	}
	m->keys[j] = xstrdup(key);
	m->vals[j] = val;
	m->n++;
	return true;
}

bool slate_pathmap_get(const struct slate_pathmap *m, const char *key, size_t *val)
{
	size_t j = hash_str(key) & (m->cap - 1);

	while (m->keys[j] != NULL) {
		if (strcmp(m->keys[j], key) == 0) {
			if (val)
				*val = m->vals[j];
			return true;
		}
		j = (j + 1) & (m->cap - 1);
	}
	return false;
}

void slate_pathmap_free(struct slate_pathmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->n = m->cap = 0;
}
