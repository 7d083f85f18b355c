/* slate-bundle build: pack a project and its pinned runtime image into one
 * signed, reproducible bundle. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "dpkg.h"
#include "image.h"
#include "progress.h"
#include "project.h"
#include "slate/bundle.h"
#include "slate/policy.h"
#include "tree.h"

static const char usage[] =
	"slate-bundle build DIR --image IMAGEDIR --key KEYFILE -o OUT.slate [--name N] [--version V] "
	"[--sequence N] [--repin] [--dereference]";
static const char help[] =
	"usage: slate-bundle build DIR --image IMAGEDIR --key KEYFILE -o OUT.slate [OPTIONS]\n\n"
	"Pack project DIR (below /app) and the runtime image IMAGEDIR (at its usual\n"
	"absolute paths) into one zstd-compressed tar whose signed manifest lists every\n"
	"entry. The same inputs and key give a byte-identical bundle. Prints the bundle id.\n\n"
	"  --image IMAGEDIR  runtime image description (e.g. images/php-8.2)\n"
	"  --key KEYFILE     Ed25519 private key (slate-bundle keygen)\n"
	"  -o, --output OUT  the bundle to write (atomically: temp file, fsync, rename)\n"
	"  --name N          bundle name (default: slate.json's name, else DIR's name)\n"
	"  --version V       bundle version (default: unversioned)\n"
	"  --sequence N      build sequence, e.g. the CI build number; must grow from one\n"
	"                    build to the next (default: the created time)\n"
	"  --repin           accept the host's installed runtime: rewrite the pins in\n"
	"                    IMAGEDIR/image.json instead of refusing a difference\n"
	"  --dereference     pack symlinks that leave the project as their targets\n"
	"  --level N         zstd level (default 3)\n"
	"  --threads N       hashing and compression threads (default: online CPUs)\n\n"
	"created is SOURCE_DATE_EPOCH when set, else the newest file mtime.\n";

struct build_opts {
	const char *dir, *image, *key, *out, *name, *version;
	uint64_t sequence;
	bool have_sequence, repin, dereference;
	int level, threads;
};

static int parse_args(int argc, char **argv, struct build_opts *o)
{
	static const struct option opts[] = {
		{ "image", required_argument, NULL, 'i' },   { "key", required_argument, NULL, 'k' },
		{ "output", required_argument, NULL, 'o' },  { "name", required_argument, NULL, 'n' },
		{ "version", required_argument, NULL, 'V' }, { "sequence", required_argument, NULL, 's' },
		{ "repin", no_argument, NULL, 'R' },         { "dereference", no_argument, NULL, 'L' },
		{ "level", required_argument, NULL, 'l' },   { "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 }
	};
	slate_error_t err = { 0 };
	uint64_t v;
	int c;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': o->image = optarg; break;
		case 'k': o->key = optarg; break;
		case 'o': o->out = optarg; break;
		case 'n': o->name = optarg; break;
		case 'V': o->version = optarg; break;
		case 's':
			if (slate_parse_u64(optarg, &o->sequence, &err) < 0 || o->sequence > INT64_MAX)
				return usage_error(usage, "build: --sequence needs a number");
			o->have_sequence = true;
			break;
		case 'R': o->repin = true; break;
		case 'L': o->dereference = true; break;
		case 'l':
			if (slate_parse_u64(optarg, &v, &err) < 0 || v < 1 || v > 19)
				return usage_error(usage, "build: --level needs 1..19");
			o->level = (int)v;
			break;
		case 't':
			if (slate_parse_u64(optarg, &v, &err) < 0 || v < 1 || v > 64)
				return usage_error(usage, "build: --threads needs 1..64");
			o->threads = (int)v;
			break;
		case 'h': fputs(help, stdout); return -1;
		default: return usage_error(usage, "build: bad option `%s`", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return usage_error(usage, "build: needs exactly one project DIR");
	o->dir = argv[optind];
	if (!o->image || !o->key || !o->out)
		return usage_error(usage, "build: needs --image, --key and -o");
	return 0;
}

/* created: SOURCE_DATE_EPOCH (reproducible builds' convention), else the
 * newest input mtime; sequence defaults to created. */
static int set_times(struct slate_manifest *m, const struct tree *t, const struct build_opts *o, slate_error_t *err)
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	uint64_t v;

	m->created = t->newest_mtime;
	if (sde && *sde) {
		if (slate_parse_u64(sde, &v, err) < 0 || v > INT64_MAX)
			return slate_error_usage(err, "SOURCE_DATE_EPOCH `%s` is not a number of seconds", sde);
		m->created = (int64_t)v;
	}
	m->sequence = o->have_sequence ? (int64_t)o->sequence : m->created;
	return 0;
}

static char *default_name(const char *dir)
{
	cleanup_free char *real = realpath(dir, NULL);
	cleanup_free char *copy = xstrdup(real ? real : dir);

	return xstrdup(basename(copy));
}

static int collect(const struct build_opts *o, struct image *img, struct project *proj, struct tree *t,
		   slate_error_t *err)
{
	if (image_load(o->image, img, err) < 0 || image_check_pins(img, SLATE_DPKG_STATUS, o->repin, err) < 0)
		return -1;
	if (project_load(o->dir, proj, err) < 0)
		return -1;
	proj->dereference = o->dereference;
	if (image_collect(img, t, err) < 0 || project_collect(proj, t, err) < 0)
		return -1;
	t->m.name = xstrdup(o->name ? o->name : proj->name ? proj->name : "");
	if (t->m.name[0] == '\0') {
		free(t->m.name);
		t->m.name = default_name(o->dir);
	}
	t->m.version = xstrdup(o->version ? o->version : "unversioned");
	t->m.image = image_meta(img);
	t->m.settings = project_settings(proj);
	return 0;
}

static int build(const struct build_opts *o, char id[SLATE_SHA256_HEX], slate_error_t *err)
{
	struct image img = { 0 };
	struct project proj = { 0 };
	struct tree t;
	struct slate_key key = { 0 };
	struct slate_limits lim;
	struct progress_line line;
	struct slate_progress progress = { progress_update, &line };
	uint64_t bytes = 0;
	int r = -1;

	tree_init(&t);
	slate_limits_default(&lim);
	if (slate_key_load_private(o->key, &key, err) < 0 || collect(o, &img, &proj, &t, err) < 0)
		goto out;
	slate_manifest_sort(&t.m);
	if (slate_manifest_validate(&t.m, &lim, err) < 0 || slate_policy_check(&t.m, err) < 0 ||
	    tree_hash(&t, o->threads, err) < 0 || set_times(&t.m, &t, o, err) < 0)
		goto out;
	for (size_t i = 0; i < t.m.n_entries; i++)
		bytes += t.m.entries[i].size;
	progress_init(&line, "packing", t.m.n_entries, bytes);
	r = slate_bundle_write(o->out, &t.m, &key, o->level, o->threads, &progress, id, err);
out:
	slate_key_free(&key);
	image_free(&img);
	project_free(&proj);
	tree_free(&t);
	return r;
}

int cmd_build(int argc, char **argv)
{
	struct build_opts o = { .level = 3 };
	slate_error_t err = { 0 };
	char id[SLATE_SHA256_HEX];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int r = parse_args(argc, argv, &o);

	if (r != 0)
		return r < 0 ? 0 : r;
	if (o.threads == 0)
		o.threads = cpus > 0 ? (int)(cpus < 16 ? cpus : 16) : 1;
	if (build(&o, id, &err) < 0)
		return report(&err);
	printf("%s\n", id);
	return 0;
}
