/* slate: the host side. Verifies bundles and runs them as minimal
 * containers. This file is the command dispatcher. */
#include <stdio.h>
#include <string.h>

#include "slate/error.h"

static void help(FILE *out)
{
	fputs("usage: slate [--root DIR] COMMAND [OPTIONS]\n\n"
	      "The runtime commands (run, deploy, ...) are being built; this binary\n"
	      "currently only reports its version.\n",
	      out);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return help(stdout), 0;
	if (argc >= 2 && strcmp(argv[1], "--version") == 0)
		return puts("slate 0.1"), 0;
	help(stderr);
	return SLATE_EXIT_USAGE;
}
