/* slate: an app's log (see logfile.h).
 *
 * The log directory is the host's (root-owned, 0700 under the run or state
 * dir); only the bytes come from the instance. Every file is opened from the
 * directory fd with O_NOFOLLOW (and O_NONBLOCK, then checked to be a
 * regular file), so a planted symlink or fifo cannot redirect the writer or
 * hang the reader. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "slate/util.h"
#include "logfile.h"

#define CURRENT "current.log"
#define STREAMS 4
#define STREAM_NAME_MAX 15
/* "2026-11-29T21:09:14.123Z " (longer only for years past 9999) */
#define STAMP_MAX 64

struct pending {
	char name[STREAM_NAME_MAX + 1]; /* "" = free slot */
	char *buf; /* LOGFILE_LINE_MAX bytes */
	size_t len;
	struct timespec since; /* when the line's first byte came */
};

struct logfile {
	char *dir;
	int dirfd; /* holds the writer's shared flock */
	int fd; /* current.log, O_APPEND */
	uint64_t size, max_bytes;
	int keep;
	struct pending streams[STREAMS];
	char *out; /* lines formatted, not yet written */
	size_t out_len, out_cap;
};

/* ---- writing ---- */

static int open_current(struct logfile *l, slate_error_t *err)
{
	struct stat st;

	l->fd = openat(l->dirfd, CURRENT,
		       O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0640);
	if (l->fd < 0)
		return slate_error_sys(err, errno, "open `%s/" CURRENT "`", l->dir);
	if (fstat(l->fd, &st) < 0)
		return slate_error_sys(err, errno, "stat `%s/" CURRENT "`", l->dir);
	if (!S_ISREG(st.st_mode))
		return slate_error_refuse(err, "`%s/" CURRENT "` is not a regular file", l->dir);
	l->size = (uint64_t)st.st_size;
	return 0;
}

struct logfile *logfile_open(const char *dir, uint64_t max_bytes, int keep, slate_error_t *err)
{
	struct logfile *l = NULL;

	if (keep < 0 || keep > 1000) {
		slate_error_usage(err, "log rotation: keep %d files? (0 to 1000)", keep);
		return NULL;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		slate_error_sys(err, errno, "create log directory `%s`", dir);
		return NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->dir = xstrdup(dir);
	l->fd = -1;
	l->max_bytes = max_bytes;
	l->keep = keep;
	l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (l->dirfd < 0)
		slate_error_sys(err, errno, "open log directory `%s`", dir);
	else if (flock(l->dirfd, LOCK_SH) < 0)
		slate_error_sys(err, errno, "lock log directory `%s`", dir);
	else if (open_current(l, err) == 0)
		return l;
	logfile_close(l);
	return NULL;
}

static char *rotated_name(int i)
{
	return xasprintf(CURRENT ".%d", i);
}

/* current.log -> .1 -> .2 ... -> .keep; what is older goes (also files
 * left beyond a keep that was larger before). */
static int rotate(struct logfile *l, slate_error_t *err)
{
	if (l->fd >= 0 && close(l->fd) < 0) {
		l->fd = -1;
		return slate_error_sys(err, errno, "close `%s/" CURRENT "`", l->dir);
	}
	l->fd = -1;
	for (int i = l->keep + 1;; i++) {
		cleanup_free char *old = rotated_name(i);
		if (unlinkat(l->dirfd, old, 0) < 0) {
			if (errno == ENOENT)
				break;
			return slate_error_sys(err, errno, "remove `%s/%s`", l->dir, old);
		}
	}
	for (int i = l->keep - 1; i >= 1; i--) {
		cleanup_free char *from = rotated_name(i);
		cleanup_free char *to = rotated_name(i + 1);
		if (renameat(l->dirfd, from, l->dirfd, to) < 0 && errno != ENOENT)
			return slate_error_sys(err, errno, "rotate `%s/%s`", l->dir, from);
	}
	if (l->keep > 0 && renameat(l->dirfd, CURRENT, l->dirfd, CURRENT ".1") < 0 && errno != ENOENT)
		return slate_error_sys(err, errno, "rotate `%s/" CURRENT "`", l->dir);
	if (l->keep == 0 && unlinkat(l->dirfd, CURRENT, 0) < 0 && errno != ENOENT)
		return slate_error_sys(err, errno, "remove `%s/" CURRENT "`", l->dir);
	return open_current(l, err);
}

static int flush_out(struct logfile *l, slate_error_t *err)
{
	int r;

	if (l->out_len == 0)
		return 0;
	if (l->fd < 0 && open_current(l, err) < 0)
		return -1;
	r = slate_write_all(l->fd, l->out, l->out_len, CURRENT, err);
	/* On failure what went out is unknown: drop the batch, count again. */
	if (r == 0) {
		l->size += l->out_len;
	} else {
		struct stat st;
		if (fstat(l->fd, &st) == 0)
			l->size = (uint64_t)st.st_size;
	}
	l->out_len = 0;
	return r;
}

static void out_reserve(struct logfile *l, size_t n)
{
	if (l->out_len + n <= l->out_cap)
		return;
	while (l->out_len + n > l->out_cap)
		l->out_cap = l->out_cap ? l->out_cap * 2 : 64 * 1024;
	l->out = xrealloc(l->out, l->out_cap);
}

static size_t format_stamp(const struct timespec *ts, char buf[STAMP_MAX])
{
	struct tm tm;
	size_t n;

	if (gmtime_r(&ts->tv_sec, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	n = strftime(buf, STAMP_MAX - 6, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, STAMP_MAX - n, ".%03uZ ", (unsigned)(ts->tv_nsec / 1000000) % 1000);
	return n;
}

/* Append "STAMP STREAM line\n" to the batch, escaping what a terminal or a
 * line-based reader would take for more than text. */
static void format_line(struct logfile *l, const struct timespec *ts, const char *stream, const char *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)data;
	char stamp[STAMP_MAX];
	size_t slen = strlen(stream), stamp_len = format_stamp(ts, stamp);
	char *o;

	if (len > 0 && p[len - 1] == '\r')
		len--;
	out_reserve(l, stamp_len + slen + 2 + 4 * len);
	o = l->out + l->out_len;
	memcpy(o, stamp, stamp_len);
	o += stamp_len;
	memcpy(o, stream, slen);
	o += slen;
	*o++ = ' ';
	for (size_t i = 0, c1 = 0; i < len; i++) {
		/* C1 controls, U+0080..U+009F: both bytes. */
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			c1 = 2;
		if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f || c1 > 0) {
			c1 -= c1 > 0;
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[p[i] >> 4];
			*o++ = hex[p[i] & 15];
		} else {
			*o++ = (char)p[i];
		}
	}
	*o++ = '\n';
	l->out_len = (size_t)(o - l->out);
}

/* One line into the batch; the batch goes out first if the line would
 * carry current.log past max_bytes (then current.log rotates). */
static int emit(struct logfile *l, const struct timespec *ts, const char *stream, const char *data, size_t len,
		slate_error_t *err)
{
	size_t before = l->out_len, line_len;

	format_line(l, ts, stream, data, len);
	line_len = l->out_len - before;
	if (l->max_bytes == 0 || l->size + l->out_len <= l->max_bytes || l->size + before == 0)
		return 0;
	/* Write what fits, rotate, keep the new line for the new file. */
	l->out_len = before;
	if (flush_out(l, err) < 0)
		return -1;
	memmove(l->out, l->out + before, line_len);
	l->out_len = line_len;
	return rotate(l, err);
}

static struct pending *stream_slot(struct logfile *l, const char *stream, slate_error_t *err)
{
	struct pending *free_slot = NULL;

	if (strlen(stream) == 0 || strlen(stream) > STREAM_NAME_MAX) {
		slate_error_usage(err, "log stream name `%s`: 1 to %d bytes", stream, STREAM_NAME_MAX);
		return NULL;
	}
	for (int i = 0; i < STREAMS; i++) {
		if (strcmp(l->streams[i].name, stream) == 0)
			return &l->streams[i];
		if (free_slot == NULL && l->streams[i].name[0] == '\0')
			free_slot = &l->streams[i];
	}
	if (free_slot == NULL) {
		slate_error_usage(err, "more than %d log streams", STREAMS);
		return NULL;
	}
	strcpy(free_slot->name, stream);
	free_slot->buf = xmalloc(LOGFILE_LINE_MAX);
	return free_slot;
}

/* Split data into lines: complete ones go out (joined to what was
 * pending), the rest waits, a full buffer goes out as a line. */
static int split_lines(struct logfile *l, struct pending *p, const struct timespec *now, const char *data, size_t len,
		       slate_error_t *err)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		size_t room = LOGFILE_LINE_MAX - p->len;
		bool complete = nl && take <= room;
		bool full = !complete && take > room;

		if (p->len == 0)
			p->since = *now;
		if (full)
			take = room;
		if (p->len == 0 && (complete || full)) {
			/* The common case: a whole line in data, no copy. */
			if (emit(l, now, p->name, data, take, err) < 0)
				return -1;
		} else {
			memcpy(p->buf + p->len, data, take);
			p->len += take;
			if ((complete || full) && emit(l, &p->since, p->name, p->buf, p->len, err) < 0)
				return -1;
		}
		if (complete || full)
			p->len = 0;
		data += take;
		len -= take;
		if (complete) {
			data++;
			len--;
		}
	}
	return 0;
}

int logfile_write(struct logfile *l, const char *stream, const char *data, size_t len, slate_error_t *err)
{
	struct pending *p = stream_slot(l, stream, err);
	struct timespec now;

	if (p == NULL)
		return -1;
	clock_gettime(CLOCK_REALTIME, &now);
	if (split_lines(l, p, &now, data, len, err) < 0) {
		l->out_len = 0;
		return slate_error_wrap(err, "log of `%s`", l->dir);
	}
	if (flush_out(l, err) < 0)
		return slate_error_wrap(err, "log of `%s`", l->dir);
	return 0;
}

int logfile_note(struct logfile *l, const char *fmt, ...)
{
	cleanup_free char *text = NULL;
	slate_error_t err = { 0 };
	struct timespec now;
	const char *p;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -1;
	clock_gettime(CLOCK_REALTIME, &now);
	for (p = text;;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (emit(l, &now, "slate", p, n, &err) < 0)
			break;
		if (nl == NULL || nl[1] == '\0')
			break;
		p = nl + 1;
	}
	if (err.kind == 0 && flush_out(l, &err) == 0)
		return 0;
	l->out_len = 0;
	errno = err.errnum ? err.errnum : EIO;
	return -1;
}

void logfile_close(struct logfile *l)
{
	slate_error_t err = { 0 };

	if (l == NULL)
		return;
	for (int i = 0; i < STREAMS; i++) {
		struct pending *p = &l->streams[i];
		if (p->len > 0 && l->fd >= 0 && err.kind == 0)
			(void)emit(l, &p->since, p->name, p->buf, p->len, &err);
		free(p->buf);
	}
	if (l->fd >= 0)
		(void)flush_out(l, &err);
	if (l->fd >= 0)
		close(l->fd);
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l->out);
	free(l->dir);
	free(l);
}

/* ---- the pump's rate limit ---- */

void logfile_rate_init(struct logfile_rate *r, uint64_t bytes_max, uint64_t lines_max)
{
	*r = (struct logfile_rate){ .bytes_max = bytes_max, .lines_max = lines_max };
}

uint64_t logfile_rate_tick(struct logfile_rate *r, double now, uint64_t *bytes)
{
	uint64_t lines = r->window_dropped_lines;

	*bytes = 0;
	if (now < r->window + 1.0)
		return 0;
	*bytes = r->window_dropped_bytes;
	r->window = now;
	r->bytes = r->lines = 0;
	r->window_dropped_lines = r->window_dropped_bytes = 0;
	return lines;
}

static uint64_t count_lines(const char *data, size_t len)
{
	uint64_t n = 0;

	for (const char *p = data, *end = data + len; p < end; n++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return n + 1;
		p = nl + 1;
	}
	return n;
}

bool logfile_rate_over(const struct logfile_rate *r, double now)
{
	return now < r->window + 1.0 && (r->bytes >= r->bytes_max || r->lines >= r->lines_max);
}

bool logfile_rate_take(struct logfile_rate *r, const char *data, size_t len)
{
	uint64_t lines = count_lines(data, len);

	if (r->bytes + len > r->bytes_max || r->lines + lines > r->lines_max) {
		r->window_dropped_lines += lines;
		r->window_dropped_bytes += len;
		r->dropped_lines += lines;
		r->dropped_bytes += len;
		r->bytes = r->bytes_max; /* the rest of the window is over, too */
		return false;
	}
	r->bytes += len;
	r->lines += lines;
	return true;
}

/* ---- reading ---- */

struct tail_file {
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t start; /* first byte to print */
};

static int open_log(int dirfd, const char *name, struct tail_file *tf)
{
	struct stat st;

	tf->fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (tf->fd < 0)
		return -1;
	if (fstat(tf->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(tf->fd);
		tf->fd = -1;
		errno = EINVAL;
		return -1;
	}
	tf->dev = st.st_dev;
	tf->ino = st.st_ino;
	tf->start = 0;
	return 0;
}

/* The indexes N of the current.log.N files, ascending (newest first). */
static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int list_rotated(int dirfd, const char *dir, int **out, size_t *n, slate_error_t *err)
{
	int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	size_t cap = 0;
	struct dirent *de;

	*out = NULL;
	*n = 0;
	if (d == NULL) {
		if (dup >= 0)
			close(dup);
		return slate_error_sys(err, errno, "read log directory `%s`", dir);
	}
	/* The dup shares dirfd's offset: start from the top every time. */
	rewinddir(d);
	while ((errno = 0, de = readdir(d)) != NULL) {
		const char *num = de->d_name + strlen(CURRENT ".");
		char *end = NULL;
		long v;
		if (strncmp(de->d_name, CURRENT ".", strlen(CURRENT ".")) != 0 || num[0] < '1' || num[0] > '9')
			continue;
		v = strtol(num, &end, 10);
		if (*end != '\0' || v > 100000)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		(*out)[(*n)++] = (int)v;
	}
	if (errno != 0) {
		int e = errno;
		closedir(d);
		return slate_error_sys(err, e, "read log directory `%s`", dir);
	}
	closedir(d);
	if (*n > 1)
		qsort(*out, *n, sizeof(**out), cmp_int);
	return 0;
}

/* Where the last `need` lines of f begin (a last line without its
 * newline counts); *found: how many lines that is (fewer: the whole file). */
static int find_tail(struct tail_file *f, long need, long *found, slate_error_t *err)
{
	static char buf[1 << 16];
	struct stat st;
	uint64_t pos;
	long lines = 0;

	if (fstat(f->fd, &st) < 0)
		return slate_error_sys(err, errno, "stat a log file");
	pos = (uint64_t)st.st_size;
	f->start = 0;
	*found = 0;
	if (pos == 0)
		return 0;
	while (pos > 0) {
		size_t chunk = pos < sizeof(buf) ? (size_t)pos : sizeof(buf);
		ssize_t r = pread(f->fd, buf, chunk, (off_t)(pos - chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return slate_error_sys(err, errno, "read a log file");
		if ((size_t)r != chunk)
			return slate_error_fail(err, "a log file shrank while it was read");
		for (size_t i = chunk; i-- > 0;) {
			uint64_t off = pos - chunk + i;
			if (buf[i] != '\n' || off == (uint64_t)st.st_size - 1)
				continue;
			if (++lines == need) {
				f->start = off + 1;
				*found = need;
				return 0;
			}
		}
		pos -= chunk;
	}
	*found = lines + 1;
	return 0;
}

/* Copy f from its position to its end, each line escaped (the instance
 * wrote it: slate_escape); *last: the last byte copied. */
static int drain(int fd, FILE *out, char *last, slate_error_t *err)
{
	static char buf[1 << 16];

	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return slate_error_sys(err, errno, "read a log file");
		if (r == 0)
			break;
		if (slate_write_escaped_lines(out, buf, (size_t)r) < 0)
			return slate_error_sys(err, errno ? errno : EIO, "write the log");
		*last = buf[r - 1];
	}
	if (fflush(out) != 0)
		return slate_error_sys(err, errno, "write the log");
	return 0;
}

#define TAIL_SEEN 16

struct tail {
	const char *dir;
	int dirfd;
	struct tail_file cur;
	FILE *out;
	char last; /* last byte printed */
	/* How far each file (by inode) was printed: a file met again under
	 * another name, after rotations raced with us, continues there. */
	struct {
		dev_t dev;
		ino_t ino;
		off_t off;
	} seen[TAIL_SEEN];
	size_t n_seen, next_slot;
};

static void seen_note(struct tail *t, const struct tail_file *f)
{
	off_t off = lseek(f->fd, 0, SEEK_CUR);
	size_t i;

	if (f->fd < 0 || off < 0)
		return;
	for (i = 0; i < t->n_seen; i++)
		if (t->seen[i].dev == f->dev && t->seen[i].ino == f->ino)
			break;
	if (i == t->n_seen) {
		if (t->n_seen < TAIL_SEEN)
			t->n_seen++;
		else
			i = t->next_slot++ % TAIL_SEEN; /* full: the oldest slot */
	}
	t->seen[i].dev = f->dev;
	t->seen[i].ino = f->ino;
	t->seen[i].off = off;
}

static void seen_seek(const struct tail *t, const struct tail_file *f)
{
	for (size_t i = 0; f->fd >= 0 && i < t->n_seen; i++)
		if (t->seen[i].dev == f->dev && t->seen[i].ino == f->ino)
			(void)lseek(f->fd, t->seen[i].off, SEEK_SET);
}

/* Print what is new in f, from where it was left, and remember how far. */
static int drain_file(struct tail *t, const struct tail_file *f, slate_error_t *err)
{
	int r;

	seen_seek(t, f);
	r = drain(f->fd, t->out, &t->last, err);
	seen_note(t, f);
	return r;
}

static void tail_files_close(struct tail_file *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].fd >= 0)
			close(v[i].fd);
}

/* Index of the file with f's inode in v, or n. */
static size_t find_inode(const struct tail_file *v, size_t n, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].fd >= 0 && v[i].dev == dev && v[i].ino == ino)
			return i;
	return n;
}

/* Open current.log.1, .2 ... (newest first) into v after the n already
 * there, each inode once: a rotation while we open shifts the names, and
 * an inode seen twice is the same file. */
static int open_rotated(struct tail *t, struct tail_file **v, size_t *n, slate_error_t *err)
{
	cleanup_free int *idx = NULL;
	size_t n_idx = 0;

	if (list_rotated(t->dirfd, t->dir, &idx, &n_idx, err) < 0)
		return -1;
	*v = xrealloc(*v, (*n + n_idx + 1) * sizeof(**v));
	for (size_t i = 0; i < n_idx; i++) {
		cleanup_free char *name = rotated_name(idx[i]);
		struct tail_file f;
		if (open_log(t->dirfd, name, &f) < 0)
			continue;
		if (find_inode(*v, *n, f.dev, f.ino) < *n)
			close(f.fd);
		else
			(*v)[(*n)++] = f;
	}
	return 0;
}

/* The first print: the last n lines, from the oldest file that has any. */
static int print_history(struct tail *t, long n, slate_error_t *err)
{
	cleanup_free struct tail_file *files = NULL;
	size_t n_files = 0, upto = 0;
	long need = n;
	int r = 0;

	t->cur.fd = -1;
	if (open_log(t->dirfd, CURRENT, &t->cur) < 0 && errno != ENOENT)
		return slate_error_sys(err, errno, "open `%s/" CURRENT "`", t->dir);
	/* Newest first: current.log, then .1, .2 ...; a file that rotated
	 * since we opened current.log is the same inode: skipped. */
	files = xcalloc(1, sizeof(*files));
	files[n_files++] = t->cur;
	if (open_rotated(t, &files, &n_files, err) < 0)
		return -1;
	/* files[0, upto) hold the last n lines. */
	for (size_t i = 0; i < n_files && need != 0 && r == 0; i++) {
		long found = 0;
		if (files[i].fd < 0)
			continue;
		r = find_tail(&files[i], need, &found, err);
		upto = i + 1;
		if (need > 0)
			need -= found;
	}
	for (size_t i = upto; r == 0 && i-- > 0;) {
		struct tail_file *f = &files[i];
		if (f->fd < 0)
			continue;
		if (lseek(f->fd, (off_t)f->start, SEEK_SET) < 0)
			r = slate_error_sys(err, errno, "seek in a log file of `%s`", t->dir);
		else
			r = drain(f->fd, t->out, &t->last, err);
		seen_note(t, f);
	}
	if (n == 0 && t->cur.fd >= 0 && lseek(t->cur.fd, 0, SEEK_END) < 0)
		r = slate_error_sys(err, errno, "seek in `%s/" CURRENT "`", t->dir);
	tail_files_close(files + 1, n_files - 1);
	return r;
}

/* current.log is another file now: print what ours got last, then the
 * rotated files between ours and the new current.log (oldest first), and
 * switch to the new one. Files are told apart by inode, not by name:
 * names shift with every rotation, even while we look. A file newer than
 * the current.log we opened waits for the next poll. */
static int follow_rotation(struct tail *t, slate_error_t *err)
{
	cleanup_free struct tail_file *files = NULL;
	size_t n_files = 0, newest = 0, ours;
	struct tail_file next;
	int r = 0;

	if (open_log(t->dirfd, CURRENT, &next) < 0)
		return errno == ENOENT ? 0 : slate_error_sys(err, errno, "open `%s/" CURRENT "`", t->dir);
	if (t->cur.fd >= 0 && next.dev == t->cur.dev && next.ino == t->cur.ino) {
		close(next.fd);
		return 0;
	}
	if ((t->cur.fd >= 0 && drain_file(t, &t->cur, err) < 0) || open_rotated(t, &files, &n_files, err) < 0) {
		close(next.fd);
		tail_files_close(files, n_files);
		return -1;
	}
	/* files: newest first. Between next (if it rotated already) and ours
	 * (all older ones are gone when ours is; none when we had none). */
	ours = t->cur.fd >= 0 ? find_inode(files, n_files, t->cur.dev, t->cur.ino) : 0;
	newest = find_inode(files, n_files, next.dev, next.ino);
	newest = newest < n_files ? newest + 1 : 0;
	for (size_t i = ours; r == 0 && i-- > newest;)
		r = drain_file(t, &files[i], err);
	tail_files_close(files, n_files);
	if (r < 0) {
		close(next.fd);
		return -1;
	}
	if (t->cur.fd >= 0)
		close(t->cur.fd);
	t->cur = next;
	return drain_file(t, &t->cur, err);
}

static bool writer_gone(int dirfd)
{
	if (flock(dirfd, LOCK_EX | LOCK_NB) < 0)
		return false;
	(void)flock(dirfd, LOCK_UN);
	return true;
}

static int follow(struct tail *t, volatile int *stop, slate_error_t *err)
{
	const struct timespec interval = { .tv_sec = 0, .tv_nsec = LOGFILE_POLL_MS * 1000000L };

	for (;;) {
		bool gone = writer_gone(t->dirfd);
		/* Once the writer is gone, one more pass gets its last lines. */
		if (t->cur.fd >= 0 && drain_file(t, &t->cur, err) < 0)
			return -1;
		if (follow_rotation(t, err) < 0)
			return -1;
		if (gone || (stop && *stop))
			return 0;
		(void)nanosleep(&interval, NULL);
	}
}

int logfile_tail(const char *dir, long n, bool follow_mode, volatile int *stop, FILE *out, slate_error_t *err)
{
	struct tail t = { .dir = dir, .out = out, .last = '\n' };
	int r;

	t.cur.fd = -1;
	t.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (t.dirfd < 0)
		return slate_error_sys(err, errno, "open log directory `%s`", dir);
	r = print_history(&t, n, err);
	if (r == 0 && follow_mode)
		r = follow(&t, stop, err);
	/* A line cut by a crash of the writer still ends the output cleanly. */
	if (r == 0 && t.last != '\n' && (fputc('\n', out) == EOF || fflush(out) != 0))
		r = slate_error_sys(err, errno, "write the log");
	if (t.cur.fd >= 0)
		close(t.cur.fd);
	close(t.dirfd);
	return r;
}
