/* slate-bundle inspect: show a bundle's metadata (read, not verified: every
 * string is escaped, and --json is ASCII). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "slate/bundle.h"
#include "slate/json.h"
#include "slate/util.h"

static const char usage[] = "slate-bundle inspect BUNDLE [--json]";
static const char help[] =
	"usage: slate-bundle inspect BUNDLE [--json]\n\n"
	"Show the bundle id, name, version, created time, build sequence, signer key\n"
	"id, image and pinned versions, entry count, total size and project settings.\n"
	"This reads the manifest only: use `slate-bundle verify` to check the bundle.\n";

int open_manifest(const char *path, struct slate_manifest *m, char id[SLATE_SHA256_HEX], slate_error_t *err)
{
	struct slate_limits lim;
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	slate_limits_default(&lim);
	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", path);
	return slate_bundle_read_manifest(fd, path, &lim, m, id, err);
}

static json_t *inspect_json(const struct slate_manifest *m, const char *id)
{
	json_t *o = json_object();
	size_t files = 0, image = 0;

	for (size_t i = 0; i < m->n_entries; i++) {
		files += m->entries[i].type == SLATE_ENTRY_FILE;
		image += !slate_entry_is_app(&m->entries[i]);
	}
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "name", json_string(m->name));
	json_object_set_new(o, "version", json_string(m->version));
	json_object_set_new(o, "created", json_integer(m->created));
	json_object_set_new(o, "sequence", json_integer(m->sequence));
	json_object_set_new(o, "signer", json_string(m->signer));
	json_object_set_new(o, "format", json_integer(m->format));
	json_object_set_new(o, "entries", json_integer((json_int_t)m->n_entries));
	json_object_set_new(o, "files", json_integer((json_int_t)files));
	json_object_set_new(o, "image_entries", json_integer((json_int_t)image));
	json_object_set_new(o, "size", json_integer((json_int_t)m->total_size));
	json_object_set(o, "image", m->image);
	json_object_set(o, "settings", m->settings);
	return o;
}

/* Every string of an unverified manifest is the forger's: escaped. */
static void print_field(const char *label, const char *value)
{
	cleanup_free char *safe = slate_escape_str(value ? value : "-");

	printf("%-12s %s\n", label, safe);
}

static void print_list(const char *label, json_t *arr)
{
	size_t i;
	json_t *v;

	printf("%-12s", label);
	if (json_array_size(arr) == 0)
		fputs(" -", stdout);
	json_array_foreach (arr, i, v) {
		fputs(i ? ", " : " ", stdout);
		slate_fputs_escaped(json_string_value(v), stdout);
	}
	putchar('\n');
}

static void inspect_text(const struct slate_manifest *m, const char *id)
{
	char created[64], size[32];
	time_t t = (time_t)m->created;
	struct tm tm;
	const char *pkg;
	json_t *v;

	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	printf("id           %s\n", id);
	print_field("name", m->name);
	print_field("version", m->version);
	printf("created      %s (%lld)\nsequence     %lld\n", created, (long long)m->created, (long long)m->sequence);
	cleanup_free char *signer = xasprintf("%s (not verified: use slate-bundle verify)", m->signer);
	print_field("signer", signer);
	cleanup_free char *image = xasprintf("%s, PHP %s", json_string_value(json_object_get(m->image, "name")) ?: "-",
					     json_string_value(json_object_get(m->image, "php")) ?: "-");
	print_field("image", image);
	json_object_foreach (json_object_get(m->image, "packages"), pkg, v) {
		cleanup_free char *pin = xasprintf("%s %s", pkg, json_string_value(v) ?: "-");
		print_field("  pin", pin);
	}
	printf("entries      %zu\nsize         %s (%llu bytes)\n", m->n_entries,
	       slate_human_bytes(m->total_size, size, sizeof(size)), (unsigned long long)m->total_size);
	print_field("webroot", json_string_value(json_object_get(m->settings, "webroot")));
	print_list("writable", json_object_get(m->settings, "writable"));
	print_list("exclude", json_object_get(m->settings, "exclude"));
	print_list("allow_secrets", json_object_get(m->settings, "allow_secrets"));
}

int cmd_inspect(int argc, char **argv)
{
	struct slate_manifest m;
	slate_error_t err = { 0 };
	char id[SLATE_SHA256_HEX];
	bool as_json = false;
	int r = parse_json_flag(argc, argv, "inspect", usage, help, &as_json);

	if (r >= 0)
		return r;
	if (optind + 1 != argc)
		return usage_error(usage, "inspect: needs exactly one BUNDLE");
	if (open_manifest(argv[optind], &m, id, &err) < 0)
		return report(&err);
	if (as_json) {
		print_json(inspect_json(&m, id));
	} else {
		inspect_text(&m, id);
	}
	slate_manifest_free(&m);
	return 0;
}
