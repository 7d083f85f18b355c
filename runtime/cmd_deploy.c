/* slate deploy, redeploy, rollback: a new instance, health checked, then a
 * zero-downtime switch done by the app's monitor. The CLI holds the app's
 * lock for the whole command; the release is recorded only once the new
 * instance serves. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "cgroup.h"
#include "control.h"
#include "env.h"
#include "instance.h"
#include "logfile.h"
#include "monitor.h"
#include "slate/unpack.h"
#include "store.h"

static const char deploy_usage[] =
	"slate [--root DIR] deploy [--key PUB | --keys DIR] APP BUNDLE [-p [HOSTIP:]HOSTPORT:PORT ...] "
	"[--connect [IP:]PORT=HOST:HOSTPORT ...] [--env-file F] [--env K=V ...] [--memory SIZE] [--pids N] [--cpus N] "
	"[--tmpfs-size SIZE] [--timeout SECONDS] [--drain-timeout SECONDS] [--allow-downgrade] [--on-tamper CMD] "
	"[--heal | --no-heal]";
static const char deploy_help[] =
	"usage: slate [--root DIR] deploy [OPTIONS] APP BUNDLE\n\n"
	"Verify and store BUNDLE, start a new instance of it, wait until it is healthy\n"
	"(the image's health check: HTTP GET / on port 80 answers below 500), then switch\n"
	"the published ports to it and stop the old instance once its connections finish.\n"
	"If the new instance is not healthy in time, the old one keeps serving and deploy\n"
	"exits 1 with the reason and the tail of the log. Prints the release number.\n"
	"The options are kept with the app; a later deploy changes only those it gives.\n\n"
	"  --key PUB, --keys DIR   trusted keys (default /etc/slate/keys/*.pub)\n"
	"  -p [HOSTIP:]HOSTPORT:PORT  publish PORT of the instance on the host (default HOSTIP 127.0.0.1)\n"
	"  --connect [IP:]PORT=HOST:HOSTPORT  grant one outbound service (e.g. 3306=127.0.0.1:3306)\n"
	"  --env-file F, --env K=V  the instance's environment (the file: root's, not a symbolic link,\n"
	"                          not writable by group or others, not readable by others)\n"
	"  --memory, --pids, --cpus, --tmpfs-size  limits (as for `slate run`)\n"
	"  --timeout SECONDS       how long the new instance has to become healthy (default 30)\n"
	"  --drain-timeout SECONDS  how long connections open at a switch may go on on the old\n"
	"                          instance before it is stopped (default 30; kept with the app)\n"
	"  --allow-downgrade       accept a bundle with a lower build sequence than the current one\n"
	"  --on-tamper CMD         on a tamper event, run CMD with /bin/sh -c on the host, the event as\n"
	"                          JSON on its stdin (\"\" removes it; kept with the app)\n"
	"  --heal, --no-heal       on a tamper event, redeploy the current release at once (at most\n"
	"                          once per 10 s; kept with the app)\n";

struct deploy_opts {
	struct slate_keyring kr;
	bool keys_given, allow_downgrade;
	json_t *set; /* options given on this command line */
	json_t *ports, *connects, *env;
	json_int_t timeout;
	const char *app, *bundle;
};

static int parse_limit(json_t *set, int c, const char *arg, slate_error_t *err)
{
	uint64_t v = 0;

	switch (c) {
	case 'm':
		if (slate_parse_size(arg, &v, err) < 0)
			return -1;
		return json_object_set_new(set, "memory", json_integer((json_int_t)v)), 0;
	case 'P':
		if (slate_parse_u64(arg, &v, err) < 0 || v == 0)
			return slate_error_usage(err, "--pids needs a positive number");
		return json_object_set_new(set, "pids", json_integer((json_int_t)v)), 0;
	case 'c':
		if (slate_parse_cpus(arg, &v, err) < 0)
			return -1;
		return json_object_set_new(set, "cpu_millis", json_integer((json_int_t)v)), 0;
	case 't':
		if (slate_parse_size(arg, &v, err) < 0 || v < (1 << 20))
			return slate_error_usage(err, "--tmpfs-size needs at least 1M");
		return json_object_set_new(set, "tmpfs_size", json_integer((json_int_t)v)), 0;
	}
	return slate_error_usage(err, "bad option");
}

static int parse_opt(struct deploy_opts *o, int c, const char *arg, slate_error_t *err)
{
	struct slate_strv scratch = { 0 };
	uint64_t v = 0;
	int r = 0;

	switch (c) {
	case 'k': o->keys_given = true; return slate_keyring_add_file(&o->kr, arg, err);
	case 'K': o->keys_given = true; return slate_keyring_add_dir(&o->kr, arg, err);
	case 'p':
	case 'C':
		if (monitor_check_spec(arg, err) < 0 || (c == 'p') != (strchr(arg, '=') == NULL))
			return err->kind
				       ? -1
				       : slate_error_usage(err, "`%s` is not a %s", arg, c == 'p' ? "port" : "connect");
		return json_array_append_new(c == 'p' ? o->ports : o->connects, json_string(arg)), 0;
	case 'e':
		r = env_add(&scratch, arg, err);
		if (r == 0)
			json_array_append_new(o->env, json_string(arg));
		break;
	case 'E':
		r = env_add_file(&scratch, arg, err);
		if (r == 0) {
			/* Kept as given, made absolute without resolving links:
			 * every start re-opens it with the same checks (no link
			 * on the path), as this one did. */
			cleanup_free char *cwd = arg[0] == '/' ? NULL : getcwd(NULL, 0);
			cleanup_free char *abs = arg[0] == '/' ? xstrdup(arg)
						 : cwd         ? xasprintf("%s/%s", cwd, arg)
							       : NULL;
			if (abs == NULL)
				return slate_error_sys(err, errno, "the working directory, to keep env file `%s`", arg);
			json_object_set_new(o->set, "env_file", json_string(abs));
		}
		break;
	case 'T':
		if (slate_parse_u64(arg, &v, err) < 0 || v == 0 || v > 3600)
			return slate_error_usage(err, "--timeout needs 1..3600 seconds");
		o->timeout = (json_int_t)v;
		break;
	case 'W':
		if (slate_parse_u64(arg, &v, err) < 0 || v == 0 || v > 86400)
			return slate_error_usage(err, "--drain-timeout needs 1..86400 seconds");
		json_object_set_new(o->set, "drain_timeout", json_integer((json_int_t)v));
		break;
	case 'D': o->allow_downgrade = true; break;
	case 'O':
		if (json_object_set_new(o->set, "on_tamper", json_string(arg)) < 0)
			return slate_error_usage(err, "--on-tamper: the command is not UTF-8");
		break;
	case 'H':
	case 'N': json_object_set_new(o->set, "heal", json_boolean(c == 'H')); break;
	default: r = parse_limit(o->set, c, arg, err);
	}
	slate_strv_free(&scratch);
	return r;
}

static int parse_args(int argc, char **argv, struct deploy_opts *o, int positional, slate_error_t *err)
{
	static const struct option opts[] = { { "key", required_argument, NULL, 'k' },
					      { "keys", required_argument, NULL, 'K' },
					      { "publish", required_argument, NULL, 'p' },
					      { "connect", required_argument, NULL, 'C' },
					      { "env", required_argument, NULL, 'e' },
					      { "env-file", required_argument, NULL, 'E' },
					      { "memory", required_argument, NULL, 'm' },
					      { "pids", required_argument, NULL, 'P' },
					      { "cpus", required_argument, NULL, 'c' },
					      { "tmpfs-size", required_argument, NULL, 't' },
					      { "timeout", required_argument, NULL, 'T' },
					      { "allow-downgrade", no_argument, NULL, 'D' },
					      { "drain-timeout", required_argument, NULL, 'W' },
					      { "on-tamper", required_argument, NULL, 'O' },
					      { "heal", no_argument, NULL, 'H' },
					      { "no-heal", no_argument, NULL, 'N' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	int c;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		if (c == 'h')
			return 1;
		if (c == '?')
			return slate_error_usage(err, "%s: bad option `%s`", argv[0], argv[optind - 1]);
		if (parse_opt(o, c, optarg, err) < 0)
			return -1;
	}
	if (argc - optind < 1 || argc - optind > positional)
		return slate_error_usage(err, "%s: wrong number of arguments", argv[0]);
	o->app = argv[optind];
	if (optind + 1 < argc)
		o->bundle = argv[optind + 1];
	return app_check_name(o->app, err);
}

/* Options kept with the app, overridden by what this command gives. */
static json_t *merge_options(json_t *app, struct deploy_opts *o)
{
	json_t *opts = json_deep_copy(json_object_get(app, "options"));

	if (opts == NULL)
		opts = json_object();
	json_object_update(opts, o->set);
	if (json_array_size(o->ports) > 0) {
		json_object_set(opts, "ports", o->ports);
		json_object_del(opts, "ports_off");
	}
	if (json_array_size(o->connects) > 0)
		json_object_set(opts, "connects", o->connects);
	if (json_array_size(o->env) > 0)
		json_object_set(opts, "env", o->env);
	return opts;
}

static void print_log_tail(const struct app_paths *p)
{
	slate_error_t ignore = { 0 };

	fprintf(stderr, "--- last lines of the log:\n");
	fflush(stderr);
	logfile_tail(p->logs, 20, false, NULL, stderr, &ignore);
}

/* Ask the monitor (started if needed) to run bundle as release number. */
static int ask_deploy(const struct slate_ctx *ctx, const struct app_paths *p, const char *app, const char *bundle,
		      json_int_t number, json_t *options, json_int_t timeout, slate_error_t *err)
{
	json_t *req, *reply;
	int r;

	if (monitor_spawn(ctx, app, err) < 0)
		return -1;
	req = json_pack("{s:s,s:s,s:I,s:O,s:I}", "cmd", "deploy", "bundle", bundle, "release", number, "options",
			options, "timeout", timeout);
	reply = control_call(p->sock, req, (int)(timeout + 60) * 1000, NULL, err);
	if (reply == NULL)
		return -1;
	r = control_result(reply, err);
	json_decref(reply);
	return r;
}

static int record_release(const struct app_paths *p, json_t *releases, json_int_t number, const struct slate_stored *s,
			  const char *kind, slate_error_t *err)
{
	json_t *list = json_object_get(releases, "releases");

	if (!json_is_array(list)) {
		list = json_array();
		json_object_set_new(releases, "releases", list);
	}
	if (number > (json_int_t)json_array_size(list))
		json_array_append_new(list,
				      json_pack("{s:I,s:s,s:I,s:s,s:s,s:I,s:s}", "number", number, "bundle", s->id,
						"sequence", (json_int_t)s->m.sequence, "name", s->m.name, "version",
						s->m.version, "deployed", (json_int_t)time(NULL), "kind", kind));
	json_object_set_new(releases, "current", json_integer(number));
	return app_save(p->releases_json, releases, err);
}

struct downgrade {
	json_t *releases;
	bool allow;
};

/* Called by the store on the verified head, before anything is unpacked. */
static int downgrade_check(void *ctx, const struct slate_manifest *m, slate_error_t *err)
{
	const struct downgrade *d = ctx;
	json_t *cur = app_current_release(d->releases);
	json_int_t seq = json_integer_value(json_object_get(cur, "sequence"));

	if (cur == NULL || d->allow || m->sequence >= seq)
		return 0;
	return slate_error_refuse(err,
				  "bundle sequence %lld is lower than the current release's %lld: refusing a "
				  "downgrade (a replayed old bundle?); use `slate rollback`, or --allow-downgrade",
				  (long long)m->sequence, (long long)seq);
}

/* A first deploy that failed leaves nothing: no monitor, no state (the app
 * exists only once a deploy succeeds), so that `status`, `ps` and `rm` never
 * meet an app they do not know. Called under the app's lock; the log's tail
 * has been shown. */
static void forget_first_deploy(const struct slate_ctx *ctx, const struct app_paths *p, const char *app)
{
	slate_error_t e = { 0 };

	if (monitor_stop(ctx, app, &e) < 0 || slate_remove_tree(p->dir, &e) < 0 || slate_remove_tree(p->run, &e) < 0)
		fprintf(stderr, "slate: %s (`slate rm %s` removes what is left)\n", e.msg, app);
}

/* The common path of deploy, redeploy and rollback, under the app lock. */
static int do_deploy(const struct slate_ctx *ctx, struct deploy_opts *o, const char *kind, json_int_t *number,
		     slate_error_t *err)
{
	struct app_paths p;
	struct slate_stored s = { 0 };
	json_t *app = NULL, *releases = NULL, *opts = NULL, *cur;
	int lock, r = -1;
	bool first = false;

	app_paths(ctx, o->app, &p);
	lock = app_lock(ctx, &p, err);
	if (lock < 0)
		goto out;
	first = !app_exists(&p);
	app = app_load(p.app_json, err);
	releases = app ? app_load(p.releases_json, err) : NULL;
	if (releases == NULL)
		goto out;
	cur = app_current_release(releases);
	if (strcmp(kind, "deploy") == 0) {
		struct downgrade d = { .releases = releases, .allow = o->allow_downgrade };
		if (keys_finish(&o->kr, o->keys_given, err) < 0 ||
		    slate_store_add(ctx->root, o->bundle, &o->kr, downgrade_check, &d, &s, err) < 0)
			goto out;
		*number = (json_int_t)json_array_size(json_object_get(releases, "releases")) + 1;
	} else {
		json_t *target = strcmp(kind, "redeploy") == 0 ? cur : app_release(releases, *number);
		if (target == NULL) {
			slate_error_refuse(err, "app `%s` has no release %s", o->app,
					   *number ? "like that" : "to redeploy");
			goto out;
		}
		if (slate_store_load(ctx->root, json_string_value(json_object_get(target, "bundle")), &s, err) < 0) {
			if (err->kind != SLATE_EXIT_REFUSED) /* a refusal: the copy drifted */
				slate_error_wrap(err, "the bundle of that release was garbage collected");
			err->kind = SLATE_EXIT_REFUSED;
			goto out;
		}
		*number = strcmp(kind, "redeploy") == 0
				  ? json_integer_value(json_object_get(cur, "number"))
				  : (json_int_t)json_array_size(json_object_get(releases, "releases")) + 1;
	}
	opts = merge_options(app, o);
	json_object_del(opts, "stopped");
	if (monitor_check_published(s.m.image, opts, err) < 0)
		goto out;
	if (ask_deploy(ctx, &p, o->app, s.id, *number, opts, o->timeout ? o->timeout : MONITOR_HEALTH_TIMEOUT, err) <
	    0) {
		if (err->kind == SLATE_EXIT_REFUSED)
			print_log_tail(&p);
		goto out;
	}
	/* The options are the app's once its release serves with them. */
	json_object_set(app, "options", opts);
	json_object_set_new(app, "name", json_string(o->app));
	r = app_save(p.app_json, app, err);
	if (r == 0)
		r = record_release(&p, releases, *number, &s, kind, err);
out:
	audit_log(ctx, kind, o->app, r == 0 ? *number : 0, s.id[0] ? s.id : NULL, r == 0 ? "ok" : err->msg);
	if (r < 0 && first)
		forget_first_deploy(ctx, &p, o->app);
	json_decref(app);
	json_decref(releases);
	json_decref(opts);
	slate_stored_free(&s);
	if (lock >= 0)
		close(lock);
	app_paths_free(&p);
	return r;
}

static int deploy_command(struct slate_ctx *ctx, int argc, char **argv, const char *kind, const char *usage,
			  const char *help, int positional)
{
	struct deploy_opts o = {
		.set = json_object(), .ports = json_array(), .connects = json_array(), .env = json_array()
	};
	slate_error_t err = { 0 };
	json_int_t number = 0;
	int r = parse_args(argc, argv, &o, positional, &err), code = 0;

	if (r > 0) {
		fputs(help, stdout);
		goto out;
	}
	if (r < 0 && (err.kind == SLATE_EXIT_REFUSED || err.kind == SLATE_EXIT_SYSTEM)) {
		code = report(&err); /* an env file or key refused: not a usage error */
		goto out;
	}
	if (r < 0 || (strcmp(kind, "deploy") == 0 && o.bundle == NULL)) {
		code = usage_error(usage, "%s", err.msg[0] ? err.msg : "deploy: needs APP and BUNDLE");
		goto out;
	}
	if (strcmp(kind, "rollback") == 0 && o.bundle) {
		uint64_t v = 0;
		if (slate_parse_u64(o.bundle, &v, &err) < 0 || v == 0) {
			code = usage_error(usage, "rollback: RELEASE is a release number");
			goto out;
		}
		number = (json_int_t)v;
	}
	if (strcmp(kind, "rollback") == 0 && number == 0) {
		struct app_paths p;
		app_paths(ctx, o.app, &p);
		json_t *rel = app_load(p.releases_json, &err);
		number = rel ? json_integer_value(json_object_get(rel, "current")) - 1 : 0;
		json_decref(rel);
		app_paths_free(&p);
		if (number < 1) {
			slate_error_refuse(&err, "app `%s` has no previous release", o.app);
			code = report(&err);
			goto out;
		}
	}
	if (do_deploy(ctx, &o, kind, &number, &err) < 0)
		code = report(&err);
	else
		printf("%lld\n", (long long)number);
out:
	slate_keyring_free(&o.kr);
	json_decref(o.set);
	json_decref(o.ports);
	json_decref(o.connects);
	json_decref(o.env);
	return code;
}

int cmd_deploy(struct slate_ctx *ctx, int argc, char **argv)
{
	return deploy_command(ctx, argc, argv, "deploy", deploy_usage, deploy_help, 2);
}

static const char redeploy_usage[] = "slate [--root DIR] redeploy [--timeout SECONDS] APP";
static const char redeploy_help[] =
	"usage: slate [--root DIR] redeploy [--timeout SECONDS] APP\n\n"
	"A new instance of the current release on a fresh filesystem: everything the\n"
	"old instance wrote is discarded (see `slate diff` first). Same health check and\n"
	"zero-downtime switch as deploy. Prints the release number.\n";

int cmd_redeploy(struct slate_ctx *ctx, int argc, char **argv)
{
	return deploy_command(ctx, argc, argv, "redeploy", redeploy_usage, redeploy_help, 1);
}

static const char rollback_usage[] = "slate [--root DIR] rollback [--timeout SECONDS] APP [RELEASE]";
static const char rollback_help[] =
	"usage: slate [--root DIR] rollback [--timeout SECONDS] APP [RELEASE]\n\n"
	"A new release pointing at the previous (or the named) release's bundle: the\n"
	"operator's deliberate way back (no downgrade check). Refused when that bundle was\n"
	"garbage collected. Prints the new release number.\n";

int cmd_rollback(struct slate_ctx *ctx, int argc, char **argv)
{
	return deploy_command(ctx, argc, argv, "rollback", rollback_usage, rollback_help, 2);
}
