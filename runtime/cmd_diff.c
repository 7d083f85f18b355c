/* slate diff, slate verify: what a live instance wrote since it started, and
 * whether its read-only lower layer (the store copy) still matches the
 * signed manifest. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "control.h"
#include "diff.h"
#include "store.h"

static const char diff_usage[] = "slate [--root DIR] diff [--json] [--save FILE.tar] APP";
static const char diff_help[] =
	"usage: slate [--root DIR] diff [--json] [--save FILE.tar] APP\n\n"
	"What the app's live instance changed since it started: files added, changed and\n"
	"deleted (from its overlay's upper layer, compared with the signed manifest), with\n"
	"size and sha256. --save keeps them as a tar, for forensics, before a redeploy\n"
	"throws them away.\n\n"
	"Bounded by the instance's tmpfs: what would take more than its size to hash is\n"
	"listed \"not hashed\", a subtree too deep to list is one entry \"too deep\", and\n"
	"the tar stores holes as sparse, hard links as links, and leaves out (naming it\n"
	"in .slate-diff/not-saved.txt) what would pass the tmpfs size.\n";

/* The current bundle id and the instance tmpfs fd, from the monitor. */
static int live_instance(const struct slate_ctx *ctx, const char *app, int *scratch, char id[SLATE_SHA256_HEX],
			 slate_error_t *err)
{
	struct app_paths p;
	json_t *reply;
	const char *bundle;
	int r = -1;

	app_paths(ctx, app, &p);
	reply = control_call(p.sock, json_pack("{s:s}", "cmd", "scratch"), 5000, scratch, err);
	if (reply && control_result(reply, err) == 0 && *scratch >= 0) {
		json_decref(reply);
		reply = control_call(p.sock, json_pack("{s:s}", "cmd", "status"), 5000, NULL, err);
		bundle = reply ? json_string_value(json_object_get(reply, "bundle")) : NULL;
		if (bundle && strlen(bundle) == SLATE_SHA256_HEX - 1) {
			memcpy(id, bundle, SLATE_SHA256_HEX);
			r = 0;
		} else if (reply) {
			slate_error_refuse(err, "app `%s` has no running instance", app);
		}
	}
	json_decref(reply);
	app_paths_free(&p);
	return r;
}

int cmd_diff(struct slate_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "save", required_argument, NULL, 's' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	struct slate_stored s = { 0 };
	struct diff_result d = { 0 };
	slate_error_t err = { 0 };
	char id[SLATE_SHA256_HEX];
	const char *save = NULL;
	bool as_json = false;
	int c, scratch = -1, upper = -1, code = 0;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h')
			return fputs(diff_help, stdout), 0;
		if (c == 'j')
			as_json = true;
		else if (c == 's')
			save = optarg;
		else
			return usage_error(diff_usage, "diff: bad option `%s`", argv[optind - 1]);
	}
	if (optind + 1 != argc || app_check_name(argv[optind], &err) < 0)
		return usage_error(diff_usage, "diff: needs APP");
	if (live_instance(ctx, argv[optind], &scratch, id, &err) < 0 ||
	    slate_store_load_full(ctx->root, id, &s, &err) < 0)
		goto fail;
	upper = openat(scratch, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (upper < 0) {
		slate_error_sys(&err, errno, "open the instance's upper layer");
		goto fail;
	}
	if (diff_upper(upper, &s.m, &d, &err) < 0 || (save && diff_save_tar(upper, &d, save, &err) < 0))
		goto fail;
	if (as_json)
		print_json(diff_to_json(&d));
	else
		diff_print(&d, stdout);
	audit_log(ctx, "diff", argv[optind], 0, id, save ? "saved" : "ok");
	goto out;
fail:
	code = report(&err);
out:
	if (scratch >= 0)
		close(scratch);
	if (upper >= 0)
		close(upper);
	diff_result_free(&d);
	slate_stored_free(&s);
	return code;
}

/* ---- verify ---- */

static const char verify_usage[] =
	"slate [--root DIR] verify [--json] APP | verify --repair [--key PUB | --keys DIR] APP BUNDLE";
static const char verify_help[] =
	"usage: slate [--root DIR] verify [--json] APP\n"
	"       slate [--root DIR] verify --repair [--key PUB | --keys DIR] [--json] APP BUNDLE\n\n"
	"Re-hash the app's lower layer (the store copy its instance runs from) against\n"
	"the signed manifest and report any drift: a missing, changed or added entry.\n"
	"Exit 0 when it matches, 1 when it drifted. A drifted copy is never used again:\n"
	"redeploy and start refuse it; deploy and run of the bundle file unpack it afresh.\n\n"
	"  --repair BUNDLE  unpack BUNDLE (which must verify, and be the app's current\n"
	"                   bundle) afresh as the store copy, then verify it; the old copy\n"
	"                   is kept aside until `slate gc`. A running instance keeps its\n"
	"                   copy until the next redeploy.\n"
	"  --key PUB, --keys DIR  trusted keys for --repair (default /etc/slate/keys/*.pub)\n";

struct verify_opts {
	struct slate_keyring kr;
	bool keys_given, repair, as_json;
	const char *app, *bundle;
};

static void drift(void *ctx, const char *path, const char *what)
{
	json_array_append_new(ctx, json_pack("{s:s,s:s}", "path", path, "problem", what));
}

/* 1: --help; 0: parsed; -1: usage error (err). */
static int verify_args(int argc, char **argv, struct verify_opts *o, slate_error_t *err)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },      { "repair", no_argument, NULL, 'r' },
		{ "key", required_argument, NULL, 'k' }, { "keys", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },      { NULL, 0, NULL, 0 }
	};
	int c;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': return 1;
		case 'j': o->as_json = true; break;
		case 'r': o->repair = true; break;
		case 'k':
			o->keys_given = true;
			if (slate_keyring_add_file(&o->kr, optarg, err) < 0)
				return -1;
			break;
		case 'K':
			o->keys_given = true;
			if (slate_keyring_add_dir(&o->kr, optarg, err) < 0)
				return -1;
			break;
		default: return slate_error_usage(err, "verify: bad option `%s`", argv[optind - 1]);
		}
	}
	if (argc - optind != (o->repair ? 2 : 1) || (o->keys_given && !o->repair))
		return slate_error_usage(err,
					 o->repair ? "verify --repair: needs APP and BUNDLE" : "verify: needs APP");
	o->app = argv[optind];
	o->bundle = o->repair ? argv[optind + 1] : NULL;
	return app_check_name(o->app, err);
}

static void verify_print(const struct verify_opts *o, const char *id, size_t n_entries, json_t *list)
{
	size_t i;
	json_t *v;

	if (o->as_json) {
		print_json(json_pack("{s:s,s:s,s:O,s:b}", "app", o->app, "bundle", id, "drift", list, "ok",
				     json_array_size(list) == 0));
		return;
	}
	json_array_foreach (list, i, v) {
		cleanup_free char *path = slate_escape_str(json_string_value(json_object_get(v, "path")));
		printf("%s: %s\n", path, json_string_value(json_object_get(v, "problem")));
	}
	printf("%s: %zu entries of bundle %.12s checked, %zu drifted\n", o->app, n_entries, id, json_array_size(list));
}

/* Repair (with --repair), then check the current bundle's copy. */
static int verify_app(const struct slate_ctx *ctx, const struct verify_opts *o, const char *id, slate_error_t *err)
{
	struct slate_stored s = { 0 };
	json_t *list = json_array();
	size_t n = 0;
	int r = -1;

	if (o->repair && slate_store_repair(ctx->root, id, o->bundle, &o->kr, err) < 0)
		goto out;
	if (slate_store_load_full(ctx->root, id, &s, err) < 0 || slate_store_check(&s, drift, list, &n, err) < 0)
		goto out;
	verify_print(o, id, s.m.n_entries, list);
	r = n ? SLATE_EXIT_REFUSED : 0;
	audit_log(ctx, o->repair ? "repair" : "verify", o->app, 0, id, r == 0 ? "ok" : "drift");
out:
	if (r < 0 && o->repair)
		audit_log(ctx, "repair", o->app, 0, id, err->msg);
	json_decref(list);
	slate_stored_free(&s);
	return r;
}

int cmd_verify(struct slate_ctx *ctx, int argc, char **argv)
{
	struct verify_opts o = { 0 };
	slate_error_t err = { 0 };
	struct app_paths p;
	json_t *rel = NULL;
	const char *id;
	int r = verify_args(argc, argv, &o, &err);

	if (r != 0) {
		slate_keyring_free(&o.kr);
		return r > 0 ? (fputs(verify_help, stdout), 0) : usage_error(verify_usage, "%s", err.msg);
	}
	app_paths(ctx, o.app, &p);
	rel = app_load(p.releases_json, &err);
	id = json_string_value(json_object_get(app_current_release(rel), "bundle"));
	if (id == NULL) {
		if (rel)
			slate_error_refuse(&err, "app `%s` has no release", o.app);
		r = report(&err);
	} else if ((o.repair && keys_finish(&o.kr, o.keys_given, &err) < 0) ||
		   (r = verify_app(ctx, &o, id, &err)) < 0) {
		r = report(&err);
	}
	json_decref(rel);
	app_paths_free(&p);
	slate_keyring_free(&o.kr);
	return r;
}
