/* slate: errors.
 *
 * How errors travel (read this before writing a function that can fail):
 *
 * - A function that can fail returns int (0 ok, -1 on failure) or a pointer
 *   (NULL on failure) and takes `slate_error_t *err` as its last argument.
 *   On failure it fills *err; on success it leaves *err untouched.
 * - An error has a kind, which is also the process exit code that main()
 *   uses: SLATE_EXIT_REFUSED (1) for a verification or policy refusal,
 *   SLATE_EXIT_USAGE (2) for bad arguments, SLATE_EXIT_SYSTEM (3) for a
 *   failed system call or library call. Scripts rely on these numbers.
 * - The message is one line, starts lower-case, says what failed and on
 *   what object ("open `%s` for writing"), never contains key bytes or
 *   environment values. slate_error_sys() appends ": strerror(errno)".
 * - Callers add context on the way up with slate_error_wrap(), which
 *   prefixes "context: " to the message.
 * - Only main() prints and exits. A forked child that cannot return writes
 *   its error to its parent (see runtime/) and _exit()s.
 */
#ifndef SLATE_ERROR_H
#define SLATE_ERROR_H

#include <stddef.h>

enum slate_exit {
	SLATE_EXIT_OK = 0,
	SLATE_EXIT_REFUSED = 1,
	SLATE_EXIT_USAGE = 2,
	SLATE_EXIT_SYSTEM = 3,
};

#define SLATE_ERROR_MSG_MAX 1024

typedef struct slate_error {
	int kind; /* enum slate_exit; 0 while no error was set */
	int errnum; /* errno-style status, 0 when not from a system call */
	char msg[SLATE_ERROR_MSG_MAX];
} slate_error_t;

#define SLATE_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Each returns -1 so that `return slate_error_...(err, ...);` reads well. */
int slate_error_refuse(slate_error_t *err, const char *fmt, ...) SLATE_PRINTF(2, 3);
int slate_error_usage(slate_error_t *err, const char *fmt, ...) SLATE_PRINTF(2, 3);
int slate_error_sys(slate_error_t *err, int errnum, const char *fmt, ...) SLATE_PRINTF(3, 4);
int slate_error_fail(slate_error_t *err, const char *fmt, ...) SLATE_PRINTF(2, 3);
int slate_error_set(slate_error_t *err, int kind, int errnum, const char *fmt, ...) SLATE_PRINTF(4, 5);
/* Prefix "context: " to an error already set; returns -1. */
int slate_error_wrap(slate_error_t *err, const char *fmt, ...) SLATE_PRINTF(2, 3);
void slate_error_clear(slate_error_t *err);
/* Print "PROG: message" on stderr and return the exit code for err. */
int slate_error_report(const char *prog, const slate_error_t *err);

#endif
