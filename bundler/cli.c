/* slate-bundle: how commands report usage errors and failures. */
#include <stdarg.h>
#include <stdio.h>

#include "commands.h"

int usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("slate-bundle: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	return SLATE_EXIT_USAGE;
}

int report(const slate_error_t *err)
{
	return slate_error_report("slate-bundle", err);
}
