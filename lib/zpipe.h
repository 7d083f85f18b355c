/* slate: decompress ahead. A thread decompresses the bundle's zstd stream
 * (libarchive's zstd filter, raw format) into a small ring of buffers while
 * the caller's tar reader parses, hashes and writes: decompression and
 * verification overlap on two cores, as `zstd -dc | tar` overlap in two
 * processes. Private to lib/. */
#ifndef SLATE_ZPIPE_H
#define SLATE_ZPIPE_H

#include <archive.h>

#include "slate/error.h"

struct zpipe;

/* Start decompressing fd (from its current offset). */
struct zpipe *zpipe_start(int fd, const char *name, slate_error_t *err);
/* Open archive a (tar reader, no filters) on the decompressed stream. */
int zpipe_open_archive(struct zpipe *z, struct archive *a);
/* The producer's own error (not zstd, corrupt or truncated stream, read
 * error), if any: copied to err, returns -1; else 0. */
int zpipe_error(struct zpipe *z, slate_error_t *err);
/* Stop the thread (if still running) and free everything. */
void zpipe_free(struct zpipe *z);

#endif
