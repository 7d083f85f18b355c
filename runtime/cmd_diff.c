/* slate diff, slate verify: what a live instance wrote since it started, and
 * whether its read-only lower layer (the store copy) still matches the
 * signed manifest. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "app.h"
#include "control.h"
#include "diff.h"
#include "slate/hash.h"
#include "store.h"

static const char diff_usage[] = "slate [--root DIR] diff [--json] [--save FILE.tar] APP";
static const char diff_help[] =
	"usage: slate [--root DIR] diff [--json] [--save FILE.tar] APP\n\n"
	"What the app's live instance changed since it started: files added, changed and\n"
	"deleted (from its overlay's upper layer, compared with the signed manifest), with\n"
	"size and sha256. --save keeps them as a tar, for forensics, before a redeploy\n"
	"throws them away.\n";

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

static const char verify_usage[] = "slate [--root DIR] verify [--json] APP";
static const char verify_help[] =
	"usage: slate [--root DIR] verify [--json] APP\n\n"
	"Re-hash the app's lower layer (the store copy its instance runs from) against\n"
	"the signed manifest and report any drift: a missing, changed or unexpected\n"
	"entry. Exit 0 when it matches, 1 when it drifted.\n";

static void drift(json_t *list, const char *path, const char *what)
{
	json_array_append_new(list, json_pack("{s:s,s:s}", "path", path, "problem", what));
}

/* One entry of the store copy against its manifest entry, never following
 * a link out of the tree. */
static void check_entry(int rootfd, const struct slate_entry *e, json_t *list)
{
	struct open_how how = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	unsigned char digest[SLATE_SHA256_LEN];
	unsigned long long size = 0;
	slate_error_t err = { 0 };
	struct stat st;
	char target[4096];
	int fd;

	if (fstatat(rootfd, e->path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return drift(list, e->path, "missing");
	if ((e->type == SLATE_ENTRY_DIR && !S_ISDIR(st.st_mode)) ||
	    (e->type == SLATE_ENTRY_FILE && !S_ISREG(st.st_mode)) ||
	    (e->type == SLATE_ENTRY_SYMLINK && !S_ISLNK(st.st_mode)))
		return drift(list, e->path, "type changed");
	if (e->type != SLATE_ENTRY_SYMLINK && (st.st_mode & 07777) != e->mode)
		return drift(list, e->path, "mode changed");
	if (e->type == SLATE_ENTRY_SYMLINK) {
		ssize_t n = readlinkat(rootfd, e->path, target, sizeof(target) - 1);
		if (n < 0 || (target[n] = '\0', strcmp(target, e->target) != 0))
			drift(list, e->path, "link target changed");
		return;
	}
	if (e->type != SLATE_ENTRY_FILE)
		return;
	how.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC;
	fd = (int)syscall(SYS_openat2, rootfd, e->path, &how, sizeof(how));
	if (fd < 0)
		return drift(list, e->path, "unreadable");
	if (slate_sha256_fd(fd, e->path, digest, &size, &err) < 0 || size != e->size ||
	    memcmp(digest, e->sha256, SLATE_SHA256_LEN) != 0)
		drift(list, e->path, "content changed");
	close(fd);
}

int cmd_verify(struct slate_ctx *ctx, int argc, char **argv)
{
	struct slate_stored s = { 0 };
	slate_error_t err = { 0 };
	struct app_paths p;
	json_t *rel = NULL, *list = json_array();
	const char *id;
	bool as_json = false;
	int r = parse_json_flag(argc, argv, "verify", verify_usage, verify_help, &as_json), rootfd = -1;

	if (r >= 0) {
		json_decref(list);
		return r;
	}
	if (optind + 1 != argc || app_check_name(argv[optind], &err) < 0) {
		json_decref(list);
		return usage_error(verify_usage, "verify: needs APP");
	}
	app_paths(ctx, argv[optind], &p);
	rel = app_load(p.releases_json, &err);
	id = json_string_value(json_object_get(app_current_release(rel), "bundle"));
	if (id == NULL) {
		if (rel)
			slate_error_refuse(&err, "app `%s` has no release", argv[optind]);
		r = report(&err);
	} else if (slate_store_load_full(ctx->root, id, &s, &err) < 0 ||
		   (rootfd = open(s.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = report(err.kind ? &err : (slate_error_sys(&err, errno, "open `%s`", s.root), &err));
	} else {
		for (size_t i = 0; i < s.m.n_entries; i++)
			check_entry(rootfd, &s.m.entries[i], list);
		r = json_array_size(list) ? SLATE_EXIT_REFUSED : 0;
		if (as_json) {
			print_json(json_pack("{s:s,s:s,s:O,s:b}", "app", argv[optind], "bundle", id, "drift", list,
					     "ok", r == 0));
		} else {
			size_t i;
			json_t *v;
			json_array_foreach (list, i, v) {
				cleanup_free char *path =
					slate_escape_str(json_string_value(json_object_get(v, "path")));
				printf("%s: %s\n", path, json_string_value(json_object_get(v, "problem")));
			}
			printf("%s: %zu entries of bundle %.12s checked, %zu drifted\n", argv[optind], s.m.n_entries,
			       id, json_array_size(list));
		}
		audit_log(ctx, "verify", argv[optind], 0, id, r == 0 ? "ok" : "drift");
	}
	if (rootfd >= 0)
		close(rootfd);
	json_decref(list);
	json_decref(rel);
	slate_stored_free(&s);
	app_paths_free(&p);
	return r;
}
