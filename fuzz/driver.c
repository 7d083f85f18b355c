/* slate: replay driver for the fuzz harnesses, for builds without
 * libFuzzer (make test). Runs the harness over every file in
 * fuzz/corpus/NAME and fuzz/regress/NAME (from the project root) and
 * prints one TAP line per input; a harness that aborts fails the run. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME names the harness"
#endif

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rbe");
	unsigned char *buf = NULL;
	size_t cap = 0, n;

	*len = 0;
	if (f == NULL)
		return NULL;
	do {
		if (*len == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			fuzz_check(buf != NULL, "allocate");
		}
		n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
	} while (n > 0);
	fclose(f);
	return buf;
}

static int replay_dir(const char *dir, int *count)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);

	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		char path[4096];
		size_t len;
		unsigned char *buf;

		if (names[i]->d_name[0] == '.') {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		buf = slurp(path, &len);
		if (buf != NULL || len == 0) {
			/* An abort() kills the process: the driver's exit
			 * status fails the run, and the last line names it. */
			printf("# %s\n", path);
			fflush(stdout);
			LLVMFuzzerTestOneInput(buf ? buf : (unsigned char *)"", len);
			printf("ok %d - " FUZZ_NAME " %s\n", ++*count, names[i]->d_name);
		}
		free(buf);
		free(names[i]);
	}
	free(names);
	return 0;
}

int main(void)
{
	int count = 0;

	replay_dir("fuzz/corpus/" FUZZ_NAME, &count);
	replay_dir("fuzz/regress/" FUZZ_NAME, &count);
	printf("1..%d\n", count);
	if (count == 0) {
		printf("not ok 1 - no input for " FUZZ_NAME " (run from the project root)\n");
		return 1;
	}
	return 0;
}
