/* slate: the manifest: build, serialise, parse and validate.
 *
 * parse() is the gate for untrusted bytes: a manifest is trusted only after
 * its signature checked, but it is validated in full anyway so that a
 * signer's mistake (or a stolen key) cannot make the unpacker write outside
 * the tree, through a symlink, or with set-id bits. */
#include <stdlib.h>
#include <string.h>

#include "slate/json.h"
#include "slate/manifest.h"
#include "slate/path.h"
#include "slate/util.h"

void slate_limits_default(struct slate_limits *lim)
{
	lim->max_entries = 1000000;
	lim->max_total_bytes = 16ULL << 30;
	lim->max_file_bytes = 4ULL << 30;
	/* The manifest is held whole, unverified, while its signature is
	 * checked. A file entry is ~120 bytes of JSON around its path: a
	 * Craft vendor tree of 20,000 files (paths of ~80 bytes) with the
	 * image's few thousand entries is ~5 MB; 16 MiB leaves 3x room, or
	 * 20,000 entries whose paths average 700 bytes. */
	lim->max_manifest_bytes = 16ULL << 20;
	lim->max_path = SLATE_PATH_MAX_DEFAULT;
	lim->max_name = SLATE_NAME_MAX_DEFAULT;
}

void slate_manifest_init(struct slate_manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->format = SLATE_FORMAT_VERSION;
}

void slate_manifest_free(struct slate_manifest *m)
{
	for (size_t i = 0; i < m->n_entries; i++) {
		struct slate_entry *e = &m->entries[i];
		free(e->path);
		free(e->target);
		free(e->source);
		free(e->data);
	}
	free(m->entries);
	free(m->name);
	free(m->version);
	free(m->signer);
	json_decref(m->image);
	json_decref(m->settings);
	memset(m, 0, sizeof(*m));
}

const char *slate_entry_type_name(enum slate_entry_type t)
{
	switch (t) {
	case SLATE_ENTRY_FILE: return "file";
	case SLATE_ENTRY_DIR: return "dir";
	case SLATE_ENTRY_SYMLINK: return "symlink";
	}
	return "?";
}

bool slate_entry_is_app(const struct slate_entry *e)
{
	return slate_path_under(e->path, SLATE_APP_DIR);
}

struct slate_entry *slate_manifest_add(struct slate_manifest *m)
{
	if (m->n_entries == m->cap_entries) {
		m->cap_entries = m->cap_entries ? m->cap_entries * 2 : 256;
		m->entries = xrealloc(m->entries, m->cap_entries * sizeof(*m->entries));
	}
	memset(&m->entries[m->n_entries], 0, sizeof(struct slate_entry));
	return &m->entries[m->n_entries++];
}

int slate_entry_order_cmp(const struct slate_entry *a, const struct slate_entry *b)
{
	bool aa = slate_entry_is_app(a), ba = slate_entry_is_app(b);

	if (aa != ba)
		return aa ? 1 : -1;
	return slate_path_cmp(a->path, b->path);
}

static int entry_qsort_cmp(const void *a, const void *b)
{
	return slate_entry_order_cmp(a, b);
}

void slate_manifest_sort(struct slate_manifest *m)
{
	if (m->n_entries > 1)
		qsort(m->entries, m->n_entries, sizeof(*m->entries), entry_qsort_cmp);
}

static json_t *entry_to_json(const struct slate_entry *e)
{
	char hex[SLATE_SHA256_HEX];
	json_t *o = json_object();

	json_object_set_new(o, "path", json_string(e->path));
	json_object_set_new(o, "type", json_string(slate_entry_type_name(e->type)));
	json_object_set_new(o, "mode", json_integer(e->mode));
	if (e->type == SLATE_ENTRY_FILE) {
		slate_hex(e->sha256, SLATE_SHA256_LEN, hex);
		json_object_set_new(o, "size", json_integer((json_int_t)e->size));
		json_object_set_new(o, "sha256", json_string(hex));
	} else if (e->type == SLATE_ENTRY_SYMLINK) {
		json_object_set_new(o, "target", json_string(e->target));
	}
	return o;
}

char *slate_manifest_serialize(const struct slate_manifest *m, size_t *len, slate_error_t *err)
{
	json_t *root = json_object(), *entries = json_array();
	char *out;

	for (size_t i = 0; i < m->n_entries; i++) {
		json_t *e = entry_to_json(&m->entries[i]);
		/* json_string() returns NULL for invalid UTF-8: refuse, never drop. */
		if (json_object_get(e, "path") == NULL ||
		    (m->entries[i].type == SLATE_ENTRY_SYMLINK && json_object_get(e, "target") == NULL)) {
			json_decref(e);
			json_decref(entries);
			json_decref(root);
			slate_error_refuse(err, "path `%s` is not valid UTF-8", m->entries[i].path);
			return NULL;
		}
		json_array_append_new(entries, e);
	}
	json_object_set_new(root, "format", json_integer(m->format));
	json_object_set_new(root, "name", json_string(m->name ? m->name : ""));
	json_object_set_new(root, "version", json_string(m->version ? m->version : ""));
	json_object_set_new(root, "created", json_integer(m->created));
	json_object_set_new(root, "sequence", json_integer(m->sequence));
	json_object_set_new(root, "signer", json_string(m->signer ? m->signer : ""));
	json_object_set_new(root, "image", m->image ? json_incref(m->image) : json_object());
	json_object_set_new(root, "settings", m->settings ? json_incref(m->settings) : json_object());
	json_object_set_new(root, "entries", entries);
	out = slate_json_canonical(root, len, err);
	json_decref(root);
	return out;
}

static int parse_type(const char *s, enum slate_entry_type *t)
{
	if (strcmp(s, "file") == 0)
		*t = SLATE_ENTRY_FILE;
	else if (strcmp(s, "dir") == 0)
		*t = SLATE_ENTRY_DIR;
	else if (strcmp(s, "symlink") == 0)
		*t = SLATE_ENTRY_SYMLINK;
	else
		return -1;
	return 0;
}

static int entry_from_json(json_t *o, struct slate_entry *e, slate_error_t *err)
{
	static const char *const file_keys[] = { "mode", "path", "sha256", "size", "type", NULL };
	static const char *const dir_keys[] = { "mode", "path", "type", NULL };
	static const char *const link_keys[] = { "mode", "path", "target", "type", NULL };
	const char *path = NULL, *type = NULL, *hex = NULL, *target = NULL;
	int64_t mode = 0, size = 0;

	if (!json_is_object(o))
		return slate_error_refuse(err, "manifest: entry is not an object");
	if (slate_json_get_string(o, "path", false, &path, "manifest entry", err) < 0 ||
	    slate_json_get_string(o, "type", false, &type, "manifest entry", err) < 0 ||
	    slate_json_get_int(o, "mode", false, &mode, "manifest entry", err) < 0)
		return -1;
	e->path = xstrdup(path);
	if (parse_type(type, &e->type) < 0)
		return slate_error_refuse(err, "manifest: entry `%s` has unknown type `%s`", path, type);
	if (mode > 07777)
		return slate_error_refuse(err, "manifest: entry `%s` has invalid mode", path);
	e->mode = (unsigned)mode;
	switch (e->type) {
	case SLATE_ENTRY_FILE:
		if (slate_json_known_keys(o, file_keys, "manifest entry", err) < 0 ||
		    slate_json_get_int(o, "size", false, &size, "manifest entry", err) < 0 ||
		    slate_json_get_string(o, "sha256", false, &hex, "manifest entry", err) < 0)
			return -1;
		if (slate_unhex(hex, e->sha256, SLATE_SHA256_LEN) < 0)
			return slate_error_refuse(err, "manifest: entry `%s` has a malformed sha256", path);
		e->size = (uint64_t)size;
		return 0;
	case SLATE_ENTRY_DIR: return slate_json_known_keys(o, dir_keys, "manifest entry", err);
	case SLATE_ENTRY_SYMLINK:
		if (slate_json_known_keys(o, link_keys, "manifest entry", err) < 0 ||
		    slate_json_get_string(o, "target", false, &target, "manifest entry", err) < 0)
			return -1;
		e->target = xstrdup(target);
		return 0;
	}
	return -1;
}

static int parse_meta(json_t *root, struct slate_manifest *m, slate_error_t *err)
{
	static const char *const keys[] = { "created",  "entries",  "format", "image",   "name",
					    "sequence", "settings", "signer", "version", NULL };
	const char *name = NULL, *version = NULL, *signer = NULL;
	int64_t format = 0;

	if (slate_json_known_keys(root, keys, "manifest", err) < 0 ||
	    slate_json_get_int(root, "format", false, &format, "manifest", err) < 0)
		return -1;
	if (format != SLATE_FORMAT_VERSION)
		return slate_error_refuse(err, "manifest: unsupported format version %lld", (long long)format);
	if (slate_json_get_string(root, "name", false, &name, "manifest", err) < 0 ||
	    slate_json_get_string(root, "version", false, &version, "manifest", err) < 0 ||
	    slate_json_get_string(root, "signer", false, &signer, "manifest", err) < 0 ||
	    slate_json_get_int(root, "created", false, &m->created, "manifest", err) < 0 ||
	    slate_json_get_int(root, "sequence", false, &m->sequence, "manifest", err) < 0)
		return -1;
	m->format = (int)format;
	m->name = xstrdup(name);
	m->version = xstrdup(version);
	m->signer = xstrdup(signer);
	m->image = json_incref(json_object_get(root, "image"));
	m->settings = json_incref(json_object_get(root, "settings"));
	if (!json_is_object(m->image) || !json_is_object(m->settings))
		return slate_error_refuse(err, "manifest: `image` and `settings` must be objects");
	return 0;
}

/* Canonical manifests hold integers only. */
static int reject_reals(json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_real(j))
		return -1;
	if (json_is_object(j)) {
		json_object_foreach (j, key, v)
			if (reject_reals(v) < 0)
				return -1;
	} else if (json_is_array(j)) {
		json_array_foreach (j, i, v)
			if (reject_reals(v) < 0)
				return -1;
	}
	return 0;
}

int slate_manifest_parse(const char *buf, size_t len, const struct slate_limits *lim, struct slate_manifest *m,
			 slate_error_t *err)
{
	json_error_t jerr;
	json_t *root, *entries, *item;
	cleanup_free char *again = NULL;
	size_t i, again_len = 0;
	int r = -1;

	slate_manifest_init(m);
	if (len > lim->max_manifest_bytes)
		return slate_error_refuse(err, "manifest larger than the limit (%llu bytes)",
					  (unsigned long long)lim->max_manifest_bytes);
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return slate_error_refuse(err, "manifest: invalid JSON: %s", jerr.text);
	if (parse_meta(root, m, err) < 0)
		goto out;
	entries = json_object_get(root, "entries");
	if (!json_is_array(entries)) {
		slate_error_refuse(err, "manifest: `entries` must be a list");
		goto out;
	}
	if (json_array_size(entries) > lim->max_entries) {
		slate_error_refuse(err, "manifest: %zu entries, more than the limit of %llu", json_array_size(entries),
				   (unsigned long long)lim->max_entries);
		goto out;
	}
	json_array_foreach (entries, i, item) {
		if (entry_from_json(item, slate_manifest_add(m), err) < 0)
			goto out;
	}
	/* One encoding only: the canonical dump of what was parsed must be
	 * the bytes that were signed (known keys and types are checked above,
	 * so nothing unparsed can hide in it). */
	again = slate_json_canonical(root, &again_len, err);
	if (again == NULL)
		goto out;
	if (again_len != len || memcmp(again, buf, len) != 0) {
		slate_error_refuse(err, "manifest is not in canonical form");
		goto out;
	}
	if (reject_reals(root) < 0) {
		slate_error_refuse(err, "manifest: numbers must be integers");
		goto out;
	}
	r = slate_manifest_validate(m, lim, err);
	for (i = 0; r == 0 && i < m->n_entries; i++)
		m->total_size += m->entries[i].size;
out:
	json_decref(root);
	if (r < 0)
		slate_manifest_free(m);
	return r;
}

/* The parent of e must be listed before it, as a directory (not a symlink:
 * nothing is ever written through a link). */
static int check_parent(const struct slate_manifest *m, const struct slate_pathmap *seen, const struct slate_entry *e,
			slate_error_t *err)
{
	cleanup_free char *parent = slate_path_parent(e->path);
	size_t idx;

	if (parent[0] == '\0')
		return 0;
	if (!slate_pathmap_get(seen, parent, &idx))
		return slate_error_refuse(err, "unsafe path `%s`: parent directory not listed before it", e->path);
	if (m->entries[idx].type == SLATE_ENTRY_SYMLINK)
		return slate_error_refuse(err, "unsafe path `%s`: goes through symlink `%s`", e->path, parent);
	if (m->entries[idx].type != SLATE_ENTRY_DIR)
		return slate_error_refuse(err, "unsafe path `%s`: parent `%s` is not a directory", e->path, parent);
	return 0;
}

static int check_entry(const struct slate_entry *e, const struct slate_limits *lim, slate_error_t *err)
{
	if (slate_path_check(e->path, lim->max_path, lim->max_name, err) < 0)
		return -1;
	if (e->mode & ~0777u)
		return slate_error_refuse(err, "entry `%s` has set-id or sticky bits (mode %04o)", e->path, e->mode);
	if (e->type == SLATE_ENTRY_FILE && e->size > lim->max_file_bytes)
		return slate_error_refuse(err, "entry `%s` is larger than the limit of %llu bytes", e->path,
					  (unsigned long long)lim->max_file_bytes);
	if (e->type == SLATE_ENTRY_SYMLINK)
		return slate_path_check_link(e->path, e->target, err);
	return 0;
}

int slate_manifest_validate(const struct slate_manifest *m, const struct slate_limits *lim, slate_error_t *err)
{
	struct slate_pathmap seen;
	uint64_t total = 0;
	int r = 0;

	if (m->n_entries > lim->max_entries)
		return slate_error_refuse(err, "%zu entries, more than the limit of %llu", m->n_entries,
					  (unsigned long long)lim->max_entries);
	slate_pathmap_init(&seen);
	for (size_t i = 0; i < m->n_entries && r == 0; i++) {
		const struct slate_entry *e = &m->entries[i];
		if (check_entry(e, lim, err) < 0 || check_parent(m, &seen, e, err) < 0) {
			r = -1;
			break;
		}
		if (i > 0 && slate_entry_order_cmp(&m->entries[i - 1], e) >= 0) {
			r = strcmp(m->entries[i - 1].path, e->path) == 0
				    ? slate_error_refuse(err, "duplicate entry `%s`", e->path)
				    : slate_error_refuse(err, "entry `%s` out of order", e->path);
			break;
		}
		total += e->size;
		if (total > lim->max_total_bytes)
			r = slate_error_refuse(err, "bundle content larger than the limit of %llu bytes",
					       (unsigned long long)lim->max_total_bytes);
		slate_pathmap_put(&seen, e->path, i);
	}
	slate_pathmap_free(&seen);
	return r;
}
