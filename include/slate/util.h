/* slate: small shared helpers: cleanup attributes, allocation that aborts
 * on out-of-memory (x* functions), string vectors, whole-file I/O and
 * atomic file replacement. */
#ifndef SLATE_UTIL_H
#define SLATE_UTIL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "slate/error.h"

void slate_cleanup_freep(void *p);
void slate_cleanup_closep(int *fd);
void slate_cleanup_fclosep(FILE **f);

#define cleanup_free __attribute__((cleanup(slate_cleanup_freep)))
#define cleanup_close __attribute__((cleanup(slate_cleanup_closep)))
#define cleanup_fclose __attribute__((cleanup(slate_cleanup_fclosep)))

/* Hand ownership on: `return steal_pointer(&p);` */
#define steal_pointer(pp)                                                                                              \
	({                                                                                                             \
		__typeof__(*(pp)) steal_tmp_ = *(pp);                                                                  \
		*(pp) = NULL;                                                                                          \
		steal_tmp_;                                                                                            \
	})
#define steal_fd(fdp)                                                                                                  \
	({                                                                                                             \
		int steal_fd_ = *(fdp);                                                                                \
		*(fdp) = -1;                                                                                           \
		steal_fd_;                                                                                             \
	})

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) SLATE_PRINTF(1, 2);

/* A growable NULL-terminated vector of owned strings. */
struct slate_strv {
	char **v;
	size_t n;
	size_t cap;
};
void slate_strv_push(struct slate_strv *sv, const char *s);
void slate_strv_push_owned(struct slate_strv *sv, char *s);
bool slate_strv_contains(const struct slate_strv *sv, const char *s);
void slate_strv_sort(struct slate_strv *sv);
void slate_strv_free(struct slate_strv *sv);

/* Read a whole regular file (at most max bytes; refuses larger). The result
 * is NUL-terminated; *len excludes the NUL. */
char *slate_read_file(const char *path, size_t max, size_t *len, slate_error_t *err);
char *slate_read_fd(int fd, const char *name, size_t max, size_t *len, slate_error_t *err);
int slate_write_all(int fd, const void *buf, size_t len, const char *name, slate_error_t *err);

/* Atomic replacement of `path`: create a temporary file beside it
 * (O_EXCL, mode), the caller writes to the returned fd, then commit fsyncs,
 * renames over path and fsyncs the directory. abort unlinks the temporary.
 * Nothing half-written is ever visible at `path`. */
struct slate_atomic {
	int fd;
	char *path;
	char *tmp;
};
int slate_atomic_open(struct slate_atomic *a, const char *path, mode_t mode, slate_error_t *err);
int slate_atomic_commit(struct slate_atomic *a, slate_error_t *err);
void slate_atomic_abort(struct slate_atomic *a);
int slate_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, slate_error_t *err);

/* A directory stream on a duplicate of fd (fd stays the caller's). */
DIR *slate_opendir_fd(int fd, const char *what, slate_error_t *err);

/* Parse "123", "64M", "1G" (binary units) into bytes. */
int slate_parse_size(const char *s, uint64_t *out, slate_error_t *err);
int slate_parse_u64(const char *s, uint64_t *out, slate_error_t *err);

/* Make any bytes safe to show on a terminal, in a log line or a JSON
 * string: C0 controls (ESC included), DEL and invalid UTF-8 bytes (so raw
 * C1 bytes 0x80-0x9f too) become "\xNN"; the C1 controls U+0080-U+009F
 * and the bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E,
 * U+2066-U+2069) become "\uNNNN". Everything else is kept as is, backslashes too (PHP
 * class names in logs stay readable). The one
 * escaper for everything slate prints from a bundle or an instance.
 * slate_escape_buf writes at most size bytes (NUL included), never a
 * partial escape, and returns the length written. */
size_t slate_escape_buf(char *out, size_t size, const void *buf, size_t len);
char *slate_escape(const void *buf, size_t len);
char *slate_escape_str(const char *s);
void slate_fputs_escaped(const char *s, FILE *f);
/* The same for a file name that must stay unambiguous (slate diff, its
 * tar's lists): backslashes doubled too; *escaped (may be NULL) tells
 * whether anything changed. */
char *slate_escape_name(const char *s, bool *escaped);
/* Bytes from an instance (a log) as lines: each line escaped, its '\n'
 * kept. 0, or -1 with errno set by stdio. */
int slate_write_escaped_lines(FILE *f, const void *buf, size_t len);

/* Format a byte count as "12.3 MiB" into buf. */
const char *slate_human_bytes(unsigned long long n, char *buf, size_t len);

#endif
