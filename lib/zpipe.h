/* slate: the bundle's byte stream, checked below the tar reader.
 *
 * zpipe decompresses the bundle with libzstd's streaming API and hands the
 * tar bytes to libarchive (tar format only, no filters), optionally from a
 * second thread that decompresses ahead into a small ring of buffers, so
 * that decompression and verification overlap on two cores, as
 * `zstd -dc | tar` overlap in two processes.
 *
 * Threat: libarchive stops at the first end-of-archive block and never
 * looks at what follows, accepts a tar without end blocks, skips pax global
 * headers and reads unknown type flags as regular files; libzstd would go
 * on into a second frame. Stock tools read all of these differently (GNU
 * `tar -i` extracts a member hidden after the end). So zpipe checks the
 * framing itself, on the bytes libarchive is given: exactly one zstd frame
 * (window at most 8 MiB), ending exactly where the file ends; inside it, a
 * sequence of ustar headers of the known types (regular file, directory,
 * symlink, pax extended header, and the hard link, device and fifo types
 * the reader refuses by name) with their data, then two zero blocks, then
 * zero padding only (at most one tar record), ending on a block boundary.
 * Private to lib/. */
#ifndef SLATE_ZPIPE_H
#define SLATE_ZPIPE_H

#include <stdbool.h>
#include <stdint.h>

#include <archive.h>

#include "slate/error.h"

/* The largest zstd window a bundle may need: zstd levels 1..19 (what
 * `slate-bundle build --level` takes) use at most 2^23. */
#define ZPIPE_WINDOW_LOG_MAX 23
/* Zero padding after the two end blocks: at most one 10240-byte record. */
#define ZPIPE_MAX_PADDING 10240

struct zpipe;

/* Start reading fd (from its current offset). threaded: decompress ahead
 * on a second thread (for reading every member); otherwise decompress on
 * demand (for reading only the two .slate members). */
struct zpipe *zpipe_start(int fd, const char *name, bool threaded, slate_error_t *err);
/* Open archive a (tar reader, no filters) on the decompressed stream. */
int zpipe_open_archive(struct zpipe *z, struct archive *a);
/* zpipe's own refusal or error (not zstd, a corrupt or truncated frame, a
 * framing problem, a read error), if any: copied to err, returns -1;
 * else 0. */
int zpipe_error(struct zpipe *z, slate_error_t *err);
/* Once the tar reader has seen the end of the archive after `members`
 * members: read the rest of the stream and refuse unless its framing is
 * clean to the end of the file and holds exactly that many members. */
int zpipe_finish(struct zpipe *z, uint64_t members, slate_error_t *err);
/* Stop the thread (if still running) and free everything. */
void zpipe_free(struct zpipe *z);

#endif
