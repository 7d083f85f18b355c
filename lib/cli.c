/* slate: how the commands of both programs report usage errors and failures. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

#include "slate/cli.h"

const char *slate_prog = "slate";

int usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", slate_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	return SLATE_EXIT_USAGE;
}

int report(const slate_error_t *err)
{
	return slate_error_report(slate_prog, err);
}

int parse_json_flag(int argc, char **argv, const char *name, const char *usage, const char *help, bool *as_json)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	int c;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': *as_json = true; break;
		case 'h': return fputs(help, stdout), 0;
		default: return usage_error(usage, "%s: bad option `%s`", name, argv[optind - 1]);
		}
	}
	return -1;
}

void print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	putchar('\n');
	json_decref(o);
}
