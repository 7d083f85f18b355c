/* slate-bundle: build, sign and check slate bundles. Runs unprivileged
 * (in CI); never runs what it packs. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "keygen", cmd_keygen, "make an Ed25519 signing key pair" },
	{ "build", cmd_build, "pack a project and its runtime image into a signed bundle" },
	{ "verify", cmd_verify, "check a bundle's signature and every entry" },
	{ "inspect", cmd_inspect, "show a bundle's metadata" },
	{ "diff", cmd_diff, "compare the entries of two bundles" },
};

static void help(FILE *out)
{
	fputs("usage: slate-bundle COMMAND [OPTIONS]\n\ncommands:\n", out);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\n'slate-bundle COMMAND --help' describes a command.\n"
	      "exit codes: 0 ok, 1 refused (verification, policy), 2 usage, 3 system error\n",
	      out);
}

int main(int argc, char **argv)
{
	slate_prog = "slate-bundle";
	if (argc < 2)
		return help(stderr), SLATE_EXIT_USAGE;
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
		return help(stdout), 0;
	if (strcmp(argv[1], "--version") == 0)
		return puts("slate-bundle 0.1"), 0;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "slate-bundle: unknown command `%s`\n", argv[1]);
	help(stderr);
	return SLATE_EXIT_USAGE;
}
