/* slate: an app's log, written by its monitor, read by `slate logs`.
 *
 *   DIR/current.log                the newest lines
 *   DIR/current.log.1 .. .<keep>   rotated when current.log would pass
 *                                  max_bytes (.1 the newest)
 *
 * One line per line of output, "2026-11-29T21:09:14.123Z out <line>"
 * (UTC, milliseconds; stream "out", "err", or "slate" for slate's own
 * notes). Lines come from an untrusted instance: control bytes (but tab),
 * DEL and C1 controls are written as \xHH, so that a line can neither
 * forge another line nor drive the terminal of whoever reads the log. A
 * line longer than LOGFILE_LINE_MAX bytes is cut into several.
 *
 * The writer holds a shared flock on DIR while it is open: `logs -f` knows
 * the writer is gone when it can take the lock exclusively. */
#ifndef SLATE_RUNTIME_LOGFILE_H
#define SLATE_RUNTIME_LOGFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "slate/error.h"

#define LOGFILE_LINE_MAX 16384
#define LOGFILE_POLL_MS 100

struct logfile;

/* Open (creating DIR 0700 and current.log 0640 when missing) for
 * appending. max_bytes 0: never rotate; keep: how many rotated files stay. */
struct logfile *logfile_open(const char *dir, uint64_t max_bytes, int keep, slate_error_t *err);

/* Append data read from a stream (a short name: "out", "err"; at most 4
 * streams per logfile), one timestamped line per line, buffering a partial
 * line until its newline; once more than LOGFILE_LINE_MAX bytes are
 * pending, the first LOGFILE_LINE_MAX go out as a line of their own. A
 * trailing \r before the newline is dropped. Writes with O_APPEND, one
 * write per call (two around a rotation). */
int logfile_write(struct logfile *l, const char *stream, const char *data, size_t len, slate_error_t *err);

/* A line from slate itself (restarts, switches): "... slate <text>".
 * Returns 0, or -1 with errno set. */
int logfile_note(struct logfile *l, const char *fmt, ...) SLATE_PRINTF(2, 3);

/* The log pump's rate limit (attack review item 13): an instance that
 * floods its output would otherwise cost its monitor as much CPU as it
 * spends itself, outside the instance's --cpus. Per one-second window, at
 * most bytes_max bytes and lines_max lines go to the log; what is over is
 * dropped and counted (the monitor notes the count in the log, once per
 * window, and reports the totals in `slate status`). */
#define LOGFILE_RATE_BYTES (1u << 20)
#define LOGFILE_RATE_LINES 5000

struct logfile_rate {
	uint64_t bytes_max, lines_max;
	double window; /* start of the current window, seconds */
	uint64_t bytes, lines; /* taken in this window */
	uint64_t window_dropped_lines, window_dropped_bytes;
	uint64_t dropped_lines, dropped_bytes; /* since the start */
};

void logfile_rate_init(struct logfile_rate *r, uint64_t bytes_max, uint64_t lines_max);
/* Opens a new window when now (seconds, monotonic) is past the current
 * one; returns the lines dropped in the window that ended (bytes in
 * *bytes), 0 when none. */
uint64_t logfile_rate_tick(struct logfile_rate *r, double now, uint64_t *bytes);
/* Does data still fit in this window (call logfile_rate_tick first)?
 * true: taken (charged); false: over, counted as dropped (a partial line
 * counts as one), and so is the rest of the window. */
bool logfile_rate_take(struct logfile_rate *r, const char *data, size_t len);
/* Over the budget for the current window already? */
bool logfile_rate_over(const struct logfile_rate *r, double now);

/* Write the partial lines still buffered, close. NULL is fine. */
void logfile_close(struct logfile *l);

/* For `slate logs`: print the last n lines (n < 0: all) across the rotated
 * files, oldest first, to out. With follow, keep printing new lines
 * (polling every LOGFILE_POLL_MS, following rotations, also several
 * between two polls) until *stop is set (stop may be NULL) or the writer
 * has closed the log (then whatever it wrote last is printed first). */
int logfile_tail(const char *dir, long n, bool follow, volatile int *stop, FILE *out, slate_error_t *err);

#endif
