/* slate-monitor: the per-app monitor as its own small executable, started
 * by `slate deploy` / `start` (monitor_spawn), never by hand. It holds only
 * what a monitor runs: no archive reading, no cryptography (the bundle was
 * verified when it was stored, and an instance start reads the store's
 * meta.json), linked statically, so that each running app costs little
 * memory (docs/BENCHMARKS.md, "monitor memory"). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "commands.h"
#include "monitor.h"
#include "slate/cli.h"
#include "slate/error.h"

static const char usage[] = "slate-monitor --root DIR --run-dir DIR APP";

static void help(FILE *f)
{
	fprintf(f,
		"usage: %s\n\n"
		"The monitor of one app (internal: `slate deploy` and `slate start` run it,\n"
		"detached). It owns the app's instance, restarts it when it dies, writes\n"
		"its logs, owns its published ports and granted services, and serves the\n"
		"CLI on RUN/APP/monitor.sock. It exits when `slate stop` asks it to.\n",
		usage);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "root", required_argument, NULL, 'r' },
					      { "run-dir", required_argument, NULL, 'R' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	struct slate_ctx ctx = { NULL, NULL };
	slate_error_t err = { 0 };
	int c;

	slate_prog = "slate-monitor";
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': ctx.root = optarg; break;
		case 'R': ctx.run_dir = optarg; break;
		case 'h': return help(stdout), 0;
		default: return usage_error(usage, "bad option `%s`", argv[optind - 1]);
		}
	}
	if (ctx.root == NULL || ctx.run_dir == NULL || optind != argc - 1)
		return usage_error(usage, "--root, --run-dir and one app name are needed");
	if (app_check_name(argv[optind], &err) < 0)
		return report(&err);
	if (geteuid() != 0) {
		fprintf(stderr, "slate-monitor: needs root\n");
		return SLATE_EXIT_USAGE;
	}
	return monitor_main(&ctx, argv[optind]);
}
