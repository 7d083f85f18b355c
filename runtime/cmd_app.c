/* slate ps, status, releases, logs, stop, start, rm, port, connect, audit,
 * gc: everyday app commands. Listing commands take --json. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "control.h"
#include "logfile.h"
#include "monitor.h"
#include "slate/unpack.h"
#include "store.h"

/* One live view of an app: state files, corrected by its monitor. */
static json_t *app_view(const struct slate_ctx *ctx, const char *name)
{
	struct app_paths p;
	slate_error_t e = { 0 };
	json_t *o = json_object(), *rel, *cur, *st = NULL;
	bool alive = monitor_alive(ctx, name);

	app_paths(ctx, name, &p);
	rel = app_load(p.releases_json, &e);
	cur = rel ? app_current_release(rel) : NULL;
	json_object_set_new(o, "app", json_string(name));
	json_object_set(o, "release", json_object_get(cur, "number") ? json_object_get(cur, "number") : json_null());
	json_object_set(o, "bundle", json_object_get(cur, "bundle") ? json_object_get(cur, "bundle") : json_null());
	json_object_set(o, "version", json_object_get(cur, "version") ? json_object_get(cur, "version") : json_null());
	if (alive)
		st = control_call(p.sock, json_pack("{s:s}", "cmd", "status"), 3000, NULL, &e);
	if (st && json_is_true(json_object_get(st, "ok"))) {
		bool up = json_object_get(st, "instance_pid") != NULL;
		json_object_set_new(o, "state", json_string(up ? "running" : "restarting"));
		json_object_set(o, "serving_release", json_object_get(st, "release"));
		json_object_set(o, "uptime", json_object_get(st, "uptime"));
		json_object_set(o, "restarts", json_object_get(st, "restarts"));
		json_object_set(o, "monitor_pid", json_object_get(st, "pid"));
		if (up)
			json_object_set(o, "instance_pid", json_object_get(st, "instance_pid"));
		json_object_set(o, "connections", json_object_get(st, "connections"));
		if (json_object_get(st, "monitor"))
			json_object_set(o, "monitor", json_object_get(st, "monitor"));
	} else {
		json_object_set_new(o, "state", json_string(rel && cur ? "stopped" : "new"));
		json_object_set_new(o, "restarts", json_integer(0));
	}
	/* What listens now, as the live monitor reports it (bound addresses);
	 * nothing when no monitor answers. */
	json_t *ports = json_object_get(st, "ports");
	json_object_set_new(o, "ports", json_is_array(ports) ? json_incref(ports) : json_array());
	json_decref(st);
	json_decref(rel);
	app_paths_free(&p);
	return o;
}

static void print_view_line(json_t *v)
{
	const char *bundle = json_string_value(json_object_get(v, "bundle"));
	char rel[32] = "-", up[32] = "-", ports[256] = "";
	json_t *pv;
	size_t i;

	if (json_is_integer(json_object_get(v, "release")))
		snprintf(rel, sizeof(rel), "%lld", (long long)json_integer_value(json_object_get(v, "release")));
	if (json_is_integer(json_object_get(v, "uptime")))
		snprintf(up, sizeof(up), "%llds", (long long)json_integer_value(json_object_get(v, "uptime")));
	json_array_foreach (json_object_get(v, "ports"), i, pv) {
		size_t n = strlen(ports);
		snprintf(ports + n, sizeof(ports) - n, "%s%s", n ? "," : "", json_string_value(pv));
	}
	printf("%-20s %-10s %-7s %-12.12s %-8s %-8lld %s\n", json_string_value(json_object_get(v, "app")),
	       json_string_value(json_object_get(v, "state")), rel, bundle ? bundle : "-", up,
	       (long long)json_integer_value(json_object_get(v, "restarts")), ports[0] ? ports : "-");
}

static const char ps_usage[] = "slate [--root DIR] ps [--json]";
static const char ps_help[] =
	"usage: slate [--root DIR] ps [--json]\n\n"
	"Every app: state, release, bundle id, uptime, restarts, published ports.\n";

int cmd_ps(struct slate_ctx *ctx, int argc, char **argv)
{
	struct slate_strv names = { 0 };
	slate_error_t err = { 0 };
	bool as_json = false;
	json_t *all = json_array();
	int r = parse_json_flag(argc, argv, "ps", ps_usage, ps_help, &as_json);

	if (r >= 0 || (r = 0, app_list(ctx, &names, &err) < 0)) {
		json_decref(all);
		return r > 0 || err.kind == 0 ? r : report(&err);
	}
	for (size_t i = 0; i < names.n; i++)
		json_array_append_new(all, app_view(ctx, names.v[i]));
	if (as_json) {
		print_json(all);
	} else {
		printf("%-20s %-10s %-7s %-12s %-8s %-8s %s\n", "APP", "STATE", "RELEASE", "BUNDLE", "UPTIME",
		       "RESTARTS", "PORTS");
		size_t i;
		json_t *v;
		json_array_foreach (all, i, v)
			print_view_line(v);
		json_decref(all);
	}
	slate_strv_free(&names);
	return 0;
}

/* APP as the only positional argument, with --json/--help. */
static int one_app(int argc, char **argv, const char *name, const char *usage, const char *help, bool *as_json,
		   const char **app)
{
	slate_error_t err = { 0 };
	int r = parse_json_flag(argc, argv, name, usage, help, as_json);

	if (r >= 0)
		return r;
	if (optind + 1 != argc)
		return usage_error(usage, "%s: needs APP", name);
	*app = argv[optind];
	if (app_check_name(*app, &err) < 0)
		return usage_error(usage, "%s", err.msg);
	return -1;
}

static int require_app(const struct slate_ctx *ctx, const char *app, slate_error_t *err)
{
	struct app_paths p;
	bool ok;

	app_paths(ctx, app, &p);
	ok = app_exists(&p);
	app_paths_free(&p);
	return ok ? 0 : slate_error_refuse(err, "no app `%s`", app);
}

static const char status_usage[] = "slate [--root DIR] status [--json] APP";
static const char status_help[] =
	"usage: slate [--root DIR] status [--json] APP\n\n"
	"One app: state, release, bundle, uptime, restarts, ports, open connections.\n";

int cmd_status(struct slate_ctx *ctx, int argc, char **argv)
{
	const char *app = NULL;
	bool as_json = false;
	slate_error_t err = { 0 };
	int r = one_app(argc, argv, "status", status_usage, status_help, &as_json, &app);
	json_t *v;

	if (r >= 0)
		return r;
	if (require_app(ctx, app, &err) < 0)
		return report(&err);
	v = app_view(ctx, app);
	if (as_json) {
		print_json(v);
		return 0;
	}
	const char *key;
	json_t *val;
	json_object_foreach (v, key, val) {
		cleanup_free char *text = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
		printf("%-16s %s\n", key, text ? text : "");
	}
	json_decref(v);
	return 0;
}

static const char releases_usage[] = "slate [--root DIR] releases [--json] APP";
static const char releases_help[] =
	"usage: slate [--root DIR] releases [--json] APP\n\n"
	"The app's releases, newest last; * marks the current one.\n";

int cmd_releases(struct slate_ctx *ctx, int argc, char **argv)
{
	const char *app = NULL;
	bool as_json = false;
	slate_error_t err = { 0 };
	struct app_paths p;
	json_t *rel, *v;
	size_t i;
	int r = one_app(argc, argv, "releases", releases_usage, releases_help, &as_json, &app);

	if (r >= 0)
		return r;
	if (require_app(ctx, app, &err) < 0)
		return report(&err);
	app_paths(ctx, app, &p);
	rel = app_load(p.releases_json, &err);
	app_paths_free(&p);
	if (rel == NULL)
		return report(&err);
	if (as_json) {
		print_json(rel);
		return 0;
	}
	json_int_t cur = json_integer_value(json_object_get(rel, "current"));
	printf("  %-7s %-12s %-10s %-9s %-20s %s\n", "RELEASE", "BUNDLE", "SEQUENCE", "KIND", "DEPLOYED", "VERSION");
	json_array_foreach (json_object_get(rel, "releases"), i, v) {
		time_t t = (time_t)json_integer_value(json_object_get(v, "deployed"));
		char when[32];
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		json_int_t n = json_integer_value(json_object_get(v, "number"));
		/* The version is the signer's text: escaped. */
		cleanup_free char *version = slate_escape_str(json_string_value(json_object_get(v, "version")));
		printf("%c %-7lld %-12.12s %-10lld %-9s %-20s %s\n", n == cur ? '*' : ' ', (long long)n,
		       json_string_value(json_object_get(v, "bundle")),
		       (long long)json_integer_value(json_object_get(v, "sequence")),
		       json_string_value(json_object_get(v, "kind")), when, version);
	}
	json_decref(rel);
	return 0;
}

/* The new value of an option, computed from the app's options under its lock. */
typedef json_t *(*option_fn)(json_t *opts, const void *arg);

/* Persist a change of the app's options (ports off, connects off, stopped). */
static int update_option_with(const struct slate_ctx *ctx, const char *app, const char *key, option_fn fn,
			      const void *arg, slate_error_t *err)
{
	struct app_paths p;
	json_t *a = NULL, *opts;
	int lock, r = -1;

	app_paths(ctx, app, &p);
	lock = app_lock(ctx, &p, err);
	if (lock >= 0 && (a = app_load(p.app_json, err)) != NULL) {
		opts = json_object_get(a, "options");
		if (!json_is_object(opts)) {
			opts = json_object();
			json_object_set_new(a, "options", opts);
		}
		json_object_set_new(opts, key, fn(opts, arg));
		r = app_save(p.app_json, a, err);
	}
	json_decref(a);
	if (lock >= 0)
		close(lock);
	app_paths_free(&p);
	return r;
}

static json_t *option_value(json_t *opts, const void *arg)
{
	(void)opts;
	return json_incref((json_t *)arg);
}

static int update_options(const struct slate_ctx *ctx, const char *app, const char *key, json_t *value,
			  slate_error_t *err)
{
	int r = update_option_with(ctx, app, key, option_value, value, err);

	json_decref(value);
	return r;
}

struct port_switch {
	bool on;
	json_int_t port; /* 0: every published port */
};

/* The host ports that stay closed after `port APP on|off [HOSTPORT]`, by
 * number, so that a restarted monitor (`start`, a reboot) keeps them closed. */
static json_t *ports_off_after(json_t *opts, const void *arg)
{
	const struct port_switch *sw = arg;
	json_t *off = json_array(), *v;
	size_t i;

	if (sw->port == 0) {
		if (!sw->on)
			json_array_foreach (json_object_get(opts, "ports"), i, v)
				json_array_append_new(off,
						      json_integer(monitor_spec_host_port(json_string_value(v) ?: "")));
		return off;
	}
	json_array_foreach (json_object_get(opts, "ports_off"), i, v)
		if (json_integer_value(v) != sw->port && json_integer_value(v) != 0)
			json_array_append(off, v);
	if (!sw->on)
		json_array_append_new(off, json_integer(sw->port));
	return off;
}

static int call_monitor(const struct slate_ctx *ctx, const char *app, json_t *req, int timeout_ms, slate_error_t *err)
{
	struct app_paths p;
	json_t *reply;
	int r;

	app_paths(ctx, app, &p);
	reply = control_call(p.sock, req, timeout_ms, NULL, err);
	r = reply ? control_result(reply, err) : -1;
	json_decref(reply);
	app_paths_free(&p);
	return r;
}

/* Ask the monitor to stop, then wait (at most 10 s) until it has exited:
 * it answers before it releases its lock, and a `start` or `rm` right
 * after must not see it alive. */
static int stop_monitor(const struct slate_ctx *ctx, const char *app, slate_error_t *err)
{
	int r = call_monitor(ctx, app, json_pack("{s:s}", "cmd", "stop"), 60000, err);

	for (int i = 0; i < 1000 && monitor_alive(ctx, app); i++)
		usleep(10000);
	return r;
}

static const char stop_usage[] = "slate [--root DIR] stop APP";
static const char stop_help[] =
	"usage: slate [--root DIR] stop APP\n\n"
	"Stop the app's instance and its monitor (published ports close). The release\n"
	"history and options stay; `slate start` brings it back.\n";

int cmd_stop(struct slate_ctx *ctx, int argc, char **argv)
{
	const char *app = NULL;
	bool j = false;
	slate_error_t err = { 0 };
	int r = one_app(argc, argv, "stop", stop_usage, stop_help, &j, &app);

	if (r >= 0)
		return r;
	if (require_app(ctx, app, &err) < 0 || update_options(ctx, app, "stopped", json_true(), &err) < 0)
		return report(&err);
	if (monitor_alive(ctx, app) && stop_monitor(ctx, app, &err) < 0 && monitor_alive(ctx, app))
		return report(&err);
	audit_log(ctx, "stop", app, 0, NULL, "ok");
	return 0;
}

static const char start_usage[] = "slate [--root DIR] start APP | start --all [--json]";
static const char start_help[] =
	"usage: slate [--root DIR] start APP\n"
	"       slate [--root DIR] start --all [--json]\n\n"
	"Start the app's monitor, which runs the current release again (after `stop`,\n"
	"a reboot, or a killed monitor).\n\n"
	"  --all   every app with a release whose monitor is not running, except the\n"
	"          apps `slate stop` stopped, which stay stopped: what a boot unit\n"
	"          runs (contrib/slate.service). One line per app, `APP: started`,\n"
	"          `running`, `stopped`, `new` (no release yet) or `failed: WHY`\n"
	"          (--json: a list of {app, result, error}); exit 1 if any app\n"
	"          failed, after trying them all.\n";

/* What `start --all` does with one app: started, running, stopped (by
 * `slate stop`: left so), new (no release yet), or -1 (failed: err). */
static int start_one_of_all(const struct slate_ctx *ctx, const char *app, const char **result, slate_error_t *err)
{
	struct app_paths p;
	json_t *conf = NULL, *rel = NULL;
	int r = 0, lock;

	if (monitor_alive(ctx, app)) {
		*result = "running";
		return 0;
	}
	app_paths(ctx, app, &p);
	/* Under the app's lock, which also makes the run directory (a reboot
	 * empties /run). */
	lock = app_lock(ctx, &p, err);
	conf = lock >= 0 ? app_load(p.app_json, err) : NULL;
	rel = conf ? app_load(p.releases_json, err) : NULL;
	if (rel == NULL)
		r = -1;
	else if (json_is_true(json_object_get(json_object_get(conf, "options"), "stopped")))
		*result = "stopped";
	else if (app_current_release(rel) == NULL)
		*result = "new";
	else if ((r = monitor_spawn(ctx, app, err)) == 0)
		*result = "started";
	json_decref(conf);
	json_decref(rel);
	if (lock >= 0)
		close(lock);
	app_paths_free(&p);
	return r;
}

static int start_all(struct slate_ctx *ctx, bool as_json)
{
	struct slate_strv names = { 0 };
	slate_error_t err = { 0 };
	json_t *all = json_array();
	int failed = 0;

	if (app_list(ctx, &names, &err) < 0) {
		json_decref(all);
		return report(&err);
	}
	for (size_t i = 0; i < names.n; i++) {
		const char *result = "failed";
		slate_error_t e = { 0 };
		bool ok = start_one_of_all(ctx, names.v[i], &result, &e) == 0;

		failed += !ok;
		json_array_append_new(all, json_pack("{s:s,s:s,s:s?}", "app", names.v[i], "result", result, "error",
						     ok ? NULL : e.msg));
		if (!as_json) {
			printf(ok ? "%s: %s\n" : "%s: failed: %s\n", names.v[i], ok ? result : e.msg);
			fflush(stdout);
		}
		audit_log(ctx, "start", names.v[i], 0, NULL, ok ? result : e.msg);
	}
	if (as_json)
		print_json(all);
	else
		json_decref(all);
	slate_strv_free(&names);
	return failed ? SLATE_EXIT_REFUSED : 0;
}

int cmd_start(struct slate_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	const char *app;
	bool all = false, as_json = false;
	slate_error_t err = { 0 };
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': all = true; break;
		case 'j': as_json = true; break;
		case 'h': return fputs(start_help, stdout), 0;
		default: return usage_error(start_usage, "start: bad option `%s`", argv[optind - 1]);
		}
	}
	if (all)
		return optind == argc ? start_all(ctx, as_json) : usage_error(start_usage, "start: --all takes no APP");
	if (optind + 1 != argc)
		return usage_error(start_usage, "start: needs APP, or --all");
	app = argv[optind];
	if (app_check_name(app, &err) < 0)
		return usage_error(start_usage, "%s", err.msg);
	if (require_app(ctx, app, &err) < 0 || update_options(ctx, app, "stopped", json_false(), &err) < 0 ||
	    monitor_spawn(ctx, app, &err) < 0)
		return report(&err);
	audit_log(ctx, "start", app, 0, NULL, "ok");
	return 0;
}

static const char rm_usage[] = "slate [--root DIR] rm APP";
static const char rm_help[] =
	"usage: slate [--root DIR] rm APP\n\n"
	"Stop the app and remove its state, releases and logs (stored bundles stay\n"
	"until `slate gc`); also whatever a killed deploy left of an app that never\n"
	"was (a directory, a monitor). A command on the app in progress (a deploy)\n"
	"finishes first.\n";

/* An app, or what a killed first deploy left of one: its directory, its
 * run directory, a live monitor. */
static bool app_or_leftover(const struct slate_ctx *ctx, const char *app)
{
	struct app_paths p;
	bool any;

	app_paths(ctx, app, &p);
	any = access(p.dir, F_OK) == 0 || access(p.run, F_OK) == 0 || monitor_alive(ctx, app);
	app_paths_free(&p);
	return any;
}

int cmd_rm(struct slate_ctx *ctx, int argc, char **argv)
{
	const char *app = NULL;
	bool j = false;
	slate_error_t err = { 0 };
	struct app_paths p;
	int lock = -1, r = one_app(argc, argv, "rm", rm_usage, rm_help, &j, &app);

	if (r >= 0)
		return r;
	if (!app_or_leftover(ctx, app) && require_app(ctx, app, &err) < 0)
		return report(&err);
	/* Under the app's lock: a deploy in progress finishes first (and a
	 * deploy waiting for the lock finds no app afterwards). */
	app_paths(ctx, app, &p);
	lock = app_lock(ctx, &p, &err);
	if (lock < 0 || monitor_stop(ctx, app, &err) < 0) {
		r = report(&err);
		goto out;
	}
	r = slate_remove_tree(p.dir, &err) < 0 || slate_remove_tree(p.run, &err) < 0 ? report(&err) : 0;
	audit_log(ctx, "rm", app, 0, NULL, r == 0 ? "ok" : err.msg);
out:
	if (lock >= 0)
		close(lock);
	app_paths_free(&p);
	return r;
}

static const char port_usage[] = "slate [--root DIR] port APP on|off [HOSTPORT]";
static const char port_help[] =
	"usage: slate [--root DIR] port APP on|off [HOSTPORT]\n\n"
	"Open or close the app's published ports (all, or one) without a redeploy.\n";
static const char connect_usage[] = "slate [--root DIR] connect APP on|off";
static const char connect_help[] =
	"usage: slate [--root DIR] connect APP on|off\n\n"
	"Open or close the app's granted outbound services without a redeploy.\n";

static int switch_command(struct slate_ctx *ctx, int argc, char **argv, bool is_port)
{
	const char *usage = is_port ? port_usage : connect_usage;
	slate_error_t err = { 0 };
	uint64_t port = 0;
	bool on;
	int r = parse_json_flag(argc, argv, argv[0], usage, is_port ? port_help : connect_help, &on);

	if (r >= 0)
		return r;
	if (argc - optind < 2 || argc - optind > (is_port ? 3 : 2) ||
	    (strcmp(argv[optind + 1], "on") != 0 && strcmp(argv[optind + 1], "off") != 0) ||
	    app_check_name(argv[optind], &err) < 0 ||
	    (argc - optind == 3 && (slate_parse_u64(argv[optind + 2], &port, &err) < 0 || port == 0 || port > 65535)))
		return usage_error(usage, "%s: needs APP on|off%s", argv[0], is_port ? " [HOSTPORT]" : "");
	const char *app = argv[optind];
	on = strcmp(argv[optind + 1], "on") == 0;
	if (require_app(ctx, app, &err) < 0)
		return report(&err);
	if (is_port) {
		struct port_switch sw = { .on = on, .port = (json_int_t)port };
		r = update_option_with(ctx, app, "ports_off", ports_off_after, &sw, &err);
	} else {
		r = update_options(ctx, app, "connects_off", json_boolean(!on), &err);
	}
	if (r == 0 && monitor_alive(ctx, app))
		r = call_monitor(ctx, app,
				 json_pack("{s:s,s:b,s:I}", "cmd", is_port ? "port" : "connect", "on", on, "port",
					   (json_int_t)port),
				 5000, &err);
	audit_log(ctx, is_port ? "port" : "connect", app, 0, NULL, r == 0 ? (on ? "on" : "off") : err.msg);
	return r < 0 ? report(&err) : 0;
}

int cmd_port(struct slate_ctx *ctx, int argc, char **argv)
{
	return switch_command(ctx, argc, argv, true);
}

int cmd_connect(struct slate_ctx *ctx, int argc, char **argv)
{
	return switch_command(ctx, argc, argv, false);
}

static const char logs_usage[] = "slate [--root DIR] logs [-f] [-n N] APP";
static const char logs_help[] =
	"usage: slate [--root DIR] logs [-f] [-n N] APP\n\n"
	"stdout and stderr of the app's processes, timestamped (and slate's own notes:\n"
	"restarts, switches). -n: the last N lines (default 50); -f: keep following.\n";
static volatile int logs_stop;

static void logs_on_signal(int sig)
{
	(void)sig;
	logs_stop = 1;
}

int cmd_logs(struct slate_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "follow", no_argument, NULL, 'f' },
					      { "lines", required_argument, NULL, 'n' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	slate_error_t err = { 0 };
	struct app_paths p;
	bool follow = false;
	uint64_t n = 50;
	int c, r;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "fn:h", opts, NULL)) != -1) {
		if (c == 'h')
			return fputs(logs_help, stdout), 0;
		if (c == 'f')
			follow = true;
		else if (c != 'n' || slate_parse_u64(optarg, &n, &err) < 0)
			return usage_error(logs_usage, "logs: bad option `%s`", argv[optind - 1]);
	}
	if (optind + 1 != argc || app_check_name(argv[optind], &err) < 0)
		return usage_error(logs_usage, "logs: needs APP");
	if (require_app(ctx, argv[optind], &err) < 0)
		return report(&err);
	signal(SIGINT, logs_on_signal);
	signal(SIGTERM, logs_on_signal);
	app_paths(ctx, argv[optind], &p);
	r = logfile_tail(p.logs, (long)n, follow, &logs_stop, stdout, &err);
	app_paths_free(&p);
	return r < 0 ? report(&err) : 0;
}

static const char audit_usage[] = "slate [--root DIR] audit [--json] [APP]";
static const char audit_help[] =
	"usage: slate [--root DIR] audit [--json] [APP]\n\n"
	"The append-only audit log: time, uid, command, app, release, bundle, result.\n";

int cmd_audit(struct slate_ctx *ctx, int argc, char **argv)
{
	bool as_json = false;
	cleanup_free char *path = xasprintf("%s/audit.log", ctx->root);
	cleanup_fclose FILE *f = NULL;
	char line[8192];
	int r = parse_json_flag(argc, argv, "audit", audit_usage, audit_help, &as_json);
	const char *app;

	if (r >= 0)
		return r;
	if (argc - optind > 1)
		return usage_error(audit_usage, "audit: at most one APP");
	app = optind < argc ? argv[optind] : NULL;
	f = fopen(path, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : (fprintf(stderr, "slate: open `%s`: %s\n", path, strerror(errno)), 3);
	while (fgets(line, sizeof(line), f)) {
		json_t *o = json_loads(line, 0, NULL);
		const char *a = json_string_value(json_object_get(o, "app"));
		if (o && (app == NULL || (a && strcmp(a, app) == 0))) {
			if (as_json) {
				fputs(line, stdout);
			} else {
				char rel[24] = "-";
				if (json_is_integer(json_object_get(o, "release")))
					snprintf(rel, sizeof(rel), "%lld",
						 (long long)json_integer_value(json_object_get(o, "release")));
				printf("%s uid=%lld %-9s %-16s release=%s bundle=%.12s %s\n",
				       json_string_value(json_object_get(o, "time")),
				       (long long)json_integer_value(json_object_get(o, "uid")),
				       json_string_value(json_object_get(o, "command")), a ? a : "-", rel,
				       json_string_value(json_object_get(o, "bundle")) ?: "-",
				       json_string_value(json_object_get(o, "result")));
			}
		}
		json_decref(o);
	}
	return 0;
}

static const char gc_usage[] = "slate [--root DIR] gc [--keep N]";
static const char gc_help[] =
	"usage: slate [--root DIR] gc [--keep N]\n\n"
	"Remove stored bundles that no release among the last N (default 5) of any app\n"
	"uses; the current release of every app and what its monitor serves are kept,\n"
	"and so is any bundle in use (an instance, `slate run`, a deploy in progress).\n"
	"Store copies found drifted (kept aside as evidence) go once no instance uses them.\n";

static void keep_app(const struct slate_ctx *ctx, const char *app, uint64_t keep, struct slate_strv *ids)
{
	struct app_paths p;
	slate_error_t e = { 0 };
	json_t *rel, *list, *cur, *running;
	size_t n;

	app_paths(ctx, app, &p);
	rel = app_load(p.releases_json, &e);
	list = json_object_get(rel, "releases");
	n = json_array_size(list);
	for (size_t i = n > keep ? n - keep : 0; i < n; i++)
		slate_strv_push(ids, json_string_value(json_object_get(json_array_get(list, i), "bundle")) ?: "");
	cur = app_current_release(rel);
	if (cur)
		slate_strv_push(ids, json_string_value(json_object_get(cur, "bundle")) ?: "");
	running = app_load(p.running_json, &e);
	if (json_string_value(json_object_get(running, "bundle")))
		slate_strv_push(ids, json_string_value(json_object_get(running, "bundle")));
	json_decref(running);
	json_decref(rel);
	app_paths_free(&p);
}

static void gc_removed(const char *name)
{
	printf("removed %s\n", name);
}

static void gc_in_use(const char *name)
{
	printf("in use, kept %s\n", name);
}

int cmd_gc(struct slate_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "keep", required_argument, NULL, 'k' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	struct slate_strv apps = { 0 }, keep = { 0 };
	slate_error_t err = { 0 };
	uint64_t n = 5;
	int c, removed = 0, r;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h')
			return fputs(gc_help, stdout), 0;
		if (c != 'k' || slate_parse_u64(optarg, &n, &err) < 0)
			return usage_error(gc_usage, "gc: bad option `%s`", argv[optind - 1]);
	}
	if (optind != argc)
		return usage_error(gc_usage, "gc: no arguments besides --keep");
	if (app_list(ctx, &apps, &err) < 0)
		return report(&err);
	for (size_t i = 0; i < apps.n; i++)
		keep_app(ctx, apps.v[i], n, &keep);
	/* The store skips whatever an instance or a deploy pins. */
	r = slate_store_gc(ctx->root, &keep, gc_removed, gc_in_use, &removed, &err);
	cleanup_free char *result =
		r < 0 ? xasprintf("removed %d, then: %s", removed, err.msg) : xasprintf("removed %d", removed);
	audit_log(ctx, "gc", NULL, 0, NULL, result);
	slate_strv_free(&apps);
	slate_strv_free(&keep);
	return r < 0 ? report(&err) : 0;
}
