/* slate-bundle diff: entries added, removed and changed between two
 * bundles, and whether the runtime part changed. */
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include "commands.h"
#include "slate/bundle.h"
#include "slate/json.h"
#include "slate/path.h"
#include "slate/util.h"

static const char usage[] = "slate-bundle diff A B [--json]";
static const char help[] =
	"usage: slate-bundle diff A B [--json]\n\n"
	"Compare the manifests of bundles A and B: entries added (+), removed (-) and\n"
	"changed (~, with what changed), and whether the runtime image part changed.\n"
	"Exit 0 either way; 1 if a bundle cannot be read.\n";

struct diff {
	json_t *added, *removed, *changed;
	bool runtime_changed;
};

/* What differs between two entries of one path, or NULL. */
static char *entry_change(const struct slate_entry *a, const struct slate_entry *b)
{
	if (a->type != b->type)
		return xasprintf("type %s -> %s", slate_entry_type_name(a->type), slate_entry_type_name(b->type));
	if (a->type == SLATE_ENTRY_SYMLINK && strcmp(a->target, b->target) != 0)
		return xasprintf("target %s -> %s", a->target, b->target);
	if (a->type == SLATE_ENTRY_FILE && memcmp(a->sha256, b->sha256, SLATE_SHA256_LEN) != 0)
		return xasprintf("content (%llu -> %llu bytes)", (unsigned long long)a->size,
				 (unsigned long long)b->size);
	if (a->mode != b->mode)
		return xasprintf("mode %04o -> %04o", a->mode, b->mode);
	return NULL;
}

static void note(struct diff *d, json_t *list, const struct slate_entry *e, char *what)
{
	json_t *o = json_object();

	json_object_set_new(o, "path", json_string(e->path));
	json_object_set_new(o, "type", json_string(slate_entry_type_name(e->type)));
	if (what)
		json_object_set_new(o, "change", json_string(what));
	json_array_append_new(list, o);
	if (!slate_entry_is_app(e))
		d->runtime_changed = true;
	free(what);
}

static void compare(const struct slate_manifest *a, const struct slate_manifest *b, struct diff *d)
{
	struct slate_pathmap ma;
	size_t idx;
	char *what;

	slate_pathmap_init(&ma);
	for (size_t i = 0; i < a->n_entries; i++)
		slate_pathmap_put(&ma, a->entries[i].path, i);
	for (size_t i = 0; i < b->n_entries; i++) {
		const struct slate_entry *e = &b->entries[i];
		if (!slate_pathmap_get(&ma, e->path, &idx))
			note(d, d->added, e, NULL);
		else if ((what = entry_change(&a->entries[idx], e)) != NULL)
			note(d, d->changed, e, what);
	}
	slate_pathmap_free(&ma);
	slate_pathmap_init(&ma);
	for (size_t i = 0; i < b->n_entries; i++)
		slate_pathmap_put(&ma, b->entries[i].path, i);
	for (size_t i = 0; i < a->n_entries; i++)
		if (!slate_pathmap_get(&ma, a->entries[i].path, NULL))
			note(d, d->removed, &a->entries[i], NULL);
	slate_pathmap_free(&ma);
	if (!json_equal(a->image, b->image))
		d->runtime_changed = true;
}

static void print_text(const struct diff *d)
{
	static const char marks[] = "+-~";
	json_t *lists[] = { d->added, d->removed, d->changed };
	size_t i;
	json_t *o;

	for (int k = 0; k < 3; k++) {
		json_array_foreach (lists[k], i, o) {
			const char *what = json_string_value(json_object_get(o, "change"));
			/* Paths of unverified manifests: escaped (bidi controls pass the format). */
			cleanup_free char *path = slate_escape_str(json_string_value(json_object_get(o, "path")));
			printf("%c %s%s%s%s\n", marks[k], path, what ? " (" : "", what ? what : "", what ? ")" : "");
		}
	}
	printf("%zu added, %zu removed, %zu changed; runtime %s\n", json_array_size(d->added),
	       json_array_size(d->removed), json_array_size(d->changed), d->runtime_changed ? "changed" : "unchanged");
}

int cmd_diff(int argc, char **argv)
{
	struct slate_manifest a, b;
	struct diff d = { json_array(), json_array(), json_array(), false };
	slate_error_t err = { 0 };
	char ida[SLATE_SHA256_HEX], idb[SLATE_SHA256_HEX];
	bool as_json = false;
	int c = parse_json_flag(argc, argv, "diff", usage, help, &as_json);

	if (c >= 0)
		goto done;
	if (optind + 2 != argc) {
		c = usage_error(usage, "diff: needs two bundles");
		goto done;
	}
	if (open_manifest(argv[optind], &a, ida, &err) < 0) {
		c = report(&err);
		goto done;
	}
	if (open_manifest(argv[optind + 1], &b, idb, &err) < 0) {
		slate_manifest_free(&a);
		c = report(&err);
		goto done;
	}
	compare(&a, &b, &d);
	if (as_json) {
		json_t *o = json_pack("{s:s,s:s,s:O,s:O,s:O,s:b}", "a", ida, "b", idb, "added", d.added, "removed",
				      d.removed, "changed", d.changed, "runtime_changed", d.runtime_changed);
		print_json(o);
	} else {
		print_text(&d);
	}
	slate_manifest_free(&a);
	slate_manifest_free(&b);
	c = 0;
done:
	json_decref(d.added);
	json_decref(d.removed);
	json_decref(d.changed);
	return c;
}
