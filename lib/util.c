/* slate: small shared helpers (see include/slate/util.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slate/util.h"

void slate_cleanup_freep(void *p)
{
	free(*(void **)p);
}

void slate_cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

void slate_cleanup_fclosep(FILE **f)
{
	if (*f != NULL)
		fclose(*f);
}

static void *oom(void)
{
	fputs("slate: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom();
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	return p ? p : oom();
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	return q ? q : oom();
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	return p ? p : oom();
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	return p ? p : oom();
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&p, fmt, ap);
	va_end(ap);
	return r < 0 ? oom() : p;
}

void slate_strv_push_owned(struct slate_strv *sv, char *s)
{
	if (sv->n + 1 >= sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = xrealloc(sv->v, sv->cap * sizeof(*sv->v));
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void slate_strv_push(struct slate_strv *sv, const char *s)
{
	slate_strv_push_owned(sv, xstrdup(s));
}

bool slate_strv_contains(const struct slate_strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return true;
	return false;
}

static int strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void slate_strv_sort(struct slate_strv *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof(*sv->v), strv_cmp);
}

void slate_strv_free(struct slate_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

char *slate_read_fd(int fd, const char *name, size_t max, size_t *len, slate_error_t *err)
{
	cleanup_free char *buf = NULL;
	size_t used = 0, cap = 4096;
	ssize_t r;

	buf = xmalloc(cap);
	for (;;) {
		if (used + 1 >= cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		r = read(fd, buf + used, cap - used - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			slate_error_sys(err, errno, "read `%s`", name);
			return NULL;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > max) {
			slate_error_refuse(err, "`%s` is larger than %zu bytes", name, max);
			return NULL;
		}
	}
	buf[used] = '\0';
	if (len)
		*len = used;
	return steal_pointer(&buf);
}

char *slate_read_file(const char *path, size_t max, size_t *len, slate_error_t *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		slate_error_sys(err, errno, "open `%s`", path);
		return NULL;
	}
	return slate_read_fd(fd, path, max, len, err);
}

int slate_write_all(int fd, const void *buf, size_t len, const char *name, slate_error_t *err)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return slate_error_sys(err, errno, "write `%s`", name);
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path, slate_error_t *err)
{
	cleanup_free char *copy = xstrdup(path);
	const char *dir = dirname(copy);
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return slate_error_sys(err, errno, "open directory `%s`", dir);
	if (fsync(fd) < 0 && errno != EINVAL)
		return slate_error_sys(err, errno, "fsync directory `%s`", dir);
	return 0;
}

int slate_atomic_open(struct slate_atomic *a, const char *path, mode_t mode, slate_error_t *err)
{
	cleanup_free char *copy = xstrdup(path);
	char *base = basename(copy);
	size_t dirlen = (size_t)(base - copy);

	a->fd = -1;
	a->tmp = NULL;
	a->path = xstrdup(path);
	for (int tries = 0; tries < 100; tries++) {
		unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)tries * 40503u ^ (unsigned)(uintptr_t)a;
		free(a->tmp);
		a->tmp = xasprintf("%.*s.%s.tmp%08x", (int)dirlen, path, base, r);
		a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (a->fd >= 0 || errno != EEXIST)
			break;
	}
	if (a->fd < 0) {
		slate_error_sys(err, errno, "create temporary file for `%s`", path);
		free(a->path);
		free(a->tmp);
		a->path = a->tmp = NULL;
		return -1;
	}
	if (fchmod(a->fd, mode) < 0) {
		slate_error_sys(err, errno, "chmod `%s`", a->tmp);
		slate_atomic_abort(a);
		return -1;
	}
	return 0;
}

int slate_atomic_commit(struct slate_atomic *a, slate_error_t *err)
{
	int r = 0;

	if (fsync(a->fd) < 0)
		r = slate_error_sys(err, errno, "fsync `%s`", a->tmp);
	else if (close(a->fd) < 0)
		r = slate_error_sys(err, errno, "close `%s`", a->tmp);
	a->fd = -1;
	if (r == 0 && rename(a->tmp, a->path) < 0)
		r = slate_error_sys(err, errno, "rename `%s` to `%s`", a->tmp, a->path);
	if (r == 0)
		r = fsync_dir_of(a->path, err);
	if (r < 0) {
		slate_atomic_abort(a);
		return -1;
	}
	free(a->tmp);
	free(a->path);
	a->tmp = a->path = NULL;
	return 0;
}

void slate_atomic_abort(struct slate_atomic *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	if (a->tmp)
		unlink(a->tmp);
	free(a->tmp);
	free(a->path);
	a->tmp = a->path = NULL;
}

int slate_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, slate_error_t *err)
{
	struct slate_atomic a = { .fd = -1 };

	if (slate_atomic_open(&a, path, mode, err) < 0)
		return -1;
	if (slate_write_all(a.fd, buf, len, a.tmp, err) < 0) {
		slate_atomic_abort(&a);
		return -1;
	}
	return slate_atomic_commit(&a, err);
}

int slate_parse_u64(const char *s, uint64_t *out, slate_error_t *err)
{
	char *end = NULL;
	uint64_t v;

	if (s == NULL || *s < '0' || *s > '9')
		return slate_error_usage(err, "`%s` is not a number", s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return slate_error_usage(err, "`%s` is not a number", s);
	*out = v;
	return 0;
}

int slate_parse_size(const char *s, uint64_t *out, slate_error_t *err)
{
	char *end = NULL;
	unsigned long long v, mult = 1;

	if (s == NULL || *s < '0' || *s > '9')
		return slate_error_usage(err, "`%s` is not a size", s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return slate_error_usage(err, "`%s` is not a size", s);
	switch (*end) {
	case '\0': break;
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1ULL << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1ULL << 30;
		end++;
		break;
	case 't':
	case 'T':
		mult = 1ULL << 40;
		end++;
		break;
	default: return slate_error_usage(err, "`%s` is not a size (use K, M, G)", s);
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end != '\0' || (v != 0 && mult > ~0ULL / v))
		return slate_error_usage(err, "`%s` is not a size (use K, M, G)", s);
	*out = v * mult;
	return 0;
}

const char *slate_human_bytes(unsigned long long n, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

DIR *slate_opendir_fd(int fd, const char *what, slate_error_t *err)
{
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;

	if (d == NULL) {
		slate_error_sys(err, errno, "read directory %s", what);
		if (dup >= 0)
			close(dup);
	}
	return d;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes) and its code
 * point, or 0 if it is not one: overlong forms, surrogates and code points
 * above U+10FFFF are invalid too (RFC 3629). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f, min = 0x80;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f, min = 0x800;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Code points a terminal acts on rather than shows: C1 controls, and the
 * bidirectional controls that reorder what follows them (Trojan Source). */
static bool escape_code_point(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) || c == 0x061c || c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
	       (c >= 0x2066 && c <= 0x2069);
}

/* One unit of input at s: its escaped form into unit (NUL-terminated),
 * returns the number of input bytes it covers. */
static size_t escape_unit(const unsigned char *s, size_t n, bool backslash, char unit[8])
{
	uint32_t cp = 0;
	size_t len = utf8_decode(s, n, &cp);

	if (len == 0 || (len == 1 && (cp < 0x20 || cp == 0x7f))) {
		snprintf(unit, 8, "\\x%02x", s[0]);
		return 1;
	}
	if (backslash && cp == '\\') {
		memcpy(unit, "\\\\", 3);
		return 1;
	}
	if (escape_code_point(cp)) {
		snprintf(unit, 8, "\\u%04x", (unsigned)cp);
		return len;
	}
	memcpy(unit, s, len);
	unit[len] = '\0';
	return len;
}

/* The escaper: at most size bytes (NUL included) into out; *changed tells
 * whether the result differs from the input. */
static size_t escape(char *out, size_t size, const void *buf, size_t len, bool backslash, bool *changed)
{
	const unsigned char *s = buf;
	size_t o = 0;

	if (size == 0)
		return 0;
	for (size_t i = 0; i < len;) {
		char unit[8];
		size_t used = escape_unit(s + i, len - i, backslash, unit), ulen = strlen(unit);
		if (o + ulen >= size)
			break;
		if (changed && (ulen != used || memcmp(unit, s + i, used) != 0))
			*changed = true;
		memcpy(out + o, unit, ulen);
		o += ulen;
		i += used;
	}
	out[o] = '\0';
	return o;
}

size_t slate_escape_buf(char *out, size_t size, const void *buf, size_t len)
{
	return escape(out, size, buf, len, false, NULL);
}

char *slate_escape(const void *buf, size_t len)
{
	/* Worst case: 4 output bytes per input byte ("\x1b"). */
	size_t size = len * 4 + 1;
	char *out = xmalloc(size);

	slate_escape_buf(out, size, buf, len);
	return out;
}

char *slate_escape_str(const char *s)
{
	return slate_escape(s, s ? strlen(s) : 0);
}

char *slate_escape_name(const char *s, bool *escaped)
{
	size_t len = strlen(s), size = len * 4 + 1;
	char *out = xmalloc(size);

	if (escaped)
		*escaped = false;
	escape(out, size, s, len, true, escaped);
	return out;
}

int slate_write_escaped_lines(FILE *f, const void *buf, size_t len)
{
	const char *p = buf, *end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		cleanup_free char *e = slate_escape(p, n);
		if (fputs(e, f) == EOF || (nl && fputc('\n', f) == EOF))
			return -1;
		p += n + (nl ? 1 : 0);
	}
	return 0;
}

void slate_fputs_escaped(const char *s, FILE *f)
{
	cleanup_free char *e = slate_escape_str(s);

	fputs(e, f);
}
