/* slate-bundle: progress line (see progress.h). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"
#include "slate/util.h"

double progress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_init(struct progress_line *p, const char *verb, uint64_t entries, uint64_t bytes)
{
	p->enabled = isatty(STDERR_FILENO) == 1;
	p->verb = verb;
	p->total_entries = entries;
	p->total_bytes = bytes;
	p->start = p->last = progress_now();
}

void progress_update(void *ctx, uint64_t entries, uint64_t bytes, int final)
{
	struct progress_line *p = ctx;
	double now = progress_now(), secs;
	char done[32], total[32], rate[32];

	if (!p->enabled || (!final && now - p->last < 0.1))
		return;
	p->last = now;
	secs = now - p->start > 1e-3 ? now - p->start : 1e-3;
	fprintf(stderr, "\r\033[K%s: %llu/%llu entries, %s/%s, %s/s", p->verb, (unsigned long long)entries,
		(unsigned long long)p->total_entries, slate_human_bytes(bytes, done, sizeof(done)),
		slate_human_bytes(p->total_bytes, total, sizeof(total)),
		slate_human_bytes((unsigned long long)((double)bytes / secs), rate, sizeof(rate)));
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}
