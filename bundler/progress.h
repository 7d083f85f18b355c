/* slate-bundle: a progress line on stderr, only when stderr is a TTY. */
#ifndef SLATE_BUNDLER_PROGRESS_H
#define SLATE_BUNDLER_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "slate/bundle.h"

struct progress_line {
	bool enabled;
	const char *verb;
	uint64_t total_entries, total_bytes;
	double start, last;
};

void progress_init(struct progress_line *p, const char *verb, uint64_t entries, uint64_t bytes);
/* The callback for slate_progress. */
void progress_update(void *ctx, uint64_t entries, uint64_t bytes, int final);
double progress_now(void);

#endif
