/* slate: the bundle's byte stream, checked below the tar reader (see
 * zpipe.h). Three parts: the zstd decoder (one frame, then end of file),
 * the tar framer (block structure, end blocks, padding), and the hand-over
 * to libarchive, either on demand or from a decompressing thread. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "slate/util.h"
#include "zpipe.h"

#define ZPIPE_SLOTS 32
#define ZPIPE_CHUNK (256 * 1024) /* up to 8 MiB decompressed ahead */
#define TAR_BLOCK 512
#define PAX_MAX (64 * 1024)

/* The tar framing seen so far. */
struct framer {
	unsigned char blk[TAR_BLOCK];
	size_t blk_len;
	uint64_t data_left; /* data bytes of the current member still to come */
	uint64_t pad_left; /* then padding to the block boundary */
	char *pax; /* the pax extended header being collected */
	size_t pax_len;
	bool collecting; /* its data is being read */
	bool pax_pending; /* a pax header applies to the next member */
	int64_t pax_size; /* its `size` record, or -1 */
	int zero_blocks;
	uint64_t off, end_off;
	uint64_t members;
};

struct zpipe {
	int fd;
	char *name;
	ZSTD_DCtx *dctx;
	unsigned char *in;
	size_t in_cap, in_pos, in_len;
	bool started_frame, frame_done, file_eof;
	struct framer fr;
	/* Hand-over. */
	bool threaded;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *buf[ZPIPE_SLOTS];
	size_t len[ZPIPE_SLOTS];
	size_t head, count; /* filled slots: head .. head+count-1 */
	bool eof, stop, consumer_holds;
	slate_error_t err;
	bool failed;
};

/* ---- the tar framer ---- */

static bool is_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* A numeric header field: octal digits, optionally space-led, ended by
 * NUL or space. Stricter than libarchive (no base-256, no junk), so the
 * two never disagree on a size without one of them refusing. */
static bool parse_octal(const unsigned char *f, size_t n, uint64_t *out)
{
	size_t i = 0;
	uint64_t v = 0;
	bool digits = false;

	while (i < n && f[i] == ' ')
		i++;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v > (UINT64_MAX >> 3))
			return false;
		v = (v << 3) | (uint64_t)(f[i] - '0');
		digits = true;
	}
	for (; i < n; i++)
		if (f[i] != '\0' && f[i] != ' ')
			return false;
	*out = v;
	return digits;
}

/* The pax records `LEN key=value\n`; only `size` changes the framing. */
static int parse_pax(struct framer *fr, const char *name, slate_error_t *err)
{
	size_t at = 0;

	fr->pax[fr->pax_len] = '\0'; /* strtoull stops here at the latest */
	fr->pax_size = -1;
	while (at < fr->pax_len) {
		const char *rec = fr->pax + at, *end = fr->pax + fr->pax_len;
		char *sp = NULL, *eq;
		unsigned long long len;

		errno = 0;
		len = strtoull(rec, &sp, 10);
		if (errno || rec[0] < '0' || rec[0] > '9' || *sp != ' ' || len < 5 ||
		    len > (unsigned long long)(end - rec) || rec[len - 1] != '\n' ||
		    (eq = memchr(sp, '=', (size_t)(rec + len - sp))) == NULL)
			return slate_error_refuse(err, "corrupt archive `%s`: malformed pax header", name);
		if (eq - sp == 5 && memcmp(sp + 1, "size", 4) == 0) {
			char *e = NULL;
			unsigned long long v;
			errno = 0;
			v = strtoull(eq + 1, &e, 10);
			if (errno || e == eq + 1 || e != rec + len - 1 || eq[1] < '0' || eq[1] > '9' || v > INT64_MAX)
				return slate_error_refuse(err, "corrupt archive `%s`: malformed pax size", name);
			fr->pax_size = (int64_t)v;
		}
		at += len;
	}
	return 0;
}

static uint64_t pad_of(uint64_t size)
{
	return (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
}

/* One header block. The member types are those the format can hold, and
 * those the reader refuses by name (so that its message names them);
 * everything else, including a pax global header, is refused here. */
static int framer_header(struct framer *fr, const char *name, slate_error_t *err)
{
	const unsigned char *h = fr->blk;
	unsigned char type = h[156];
	uint64_t size;

	if (fr->zero_blocks == 1)
		return slate_error_refuse(err, "corrupt archive `%s`: a lone zero block before more members", name);
	if (memcmp(h + 257, "ustar", 6) != 0 || memcmp(h + 263, "00", 2) != 0)
		return slate_error_refuse(err, "corrupt archive `%s`: a header that is not POSIX ustar", name);
	if (!parse_octal(h + 124, 12, &size))
		return slate_error_refuse(err, "corrupt archive `%s`: a malformed size field", name);
	if (type == 'x') {
		if (fr->pax_pending || size > PAX_MAX)
			return slate_error_refuse(err, "corrupt archive `%s`: a malformed pax header", name);
		fr->pax = xrealloc(fr->pax, (size_t)size + 1);
		fr->pax_len = 0;
		fr->pax_pending = true;
		fr->collecting = size > 0;
		fr->data_left = size;
		fr->pad_left = pad_of(size);
		return fr->collecting ? 0 : parse_pax(fr, name, err);
	}
	if (type == 'g')
		return slate_error_refuse(err, "not a slate bundle `%s`: a pax global header", name);
	if (strchr("0123456", type) == NULL || type == '\0')
		return slate_error_refuse(err, "not a slate bundle `%s`: a member of unknown type flag 0x%02x", name,
					  type);
	if (fr->pax_pending && fr->pax_size >= 0)
		size = (uint64_t)fr->pax_size;
	if (type != '0' && size != 0)
		return slate_error_refuse(err, "corrupt archive `%s`: a member of type `%c` that carries data", name,
					  type);
	fr->pax_pending = false;
	fr->pax_size = -1;
	fr->members++;
	fr->data_left = size;
	fr->pad_left = pad_of(size);
	return 0;
}

static int framer_block(struct framer *fr, const char *name, slate_error_t *err)
{
	if (is_zero(fr->blk, TAR_BLOCK)) {
		if (fr->pax_pending)
			return slate_error_refuse(err, "corrupt archive `%s`: a pax header without its member", name);
		if (fr->zero_blocks++ == 0)
			fr->end_off = fr->off - TAR_BLOCK;
		return 0;
	}
	return framer_header(fr, name, err);
}

/* After the two end blocks: zeros only, at most one record of them. */
static int framer_tail(struct framer *fr, const char *name, const unsigned char *p, size_t n, slate_error_t *err)
{
	if (!is_zero(p, n))
		return slate_error_refuse(err, "not a slate bundle `%s`: data after the end of the archive", name);
	fr->off += n;
	if (fr->off - fr->end_off > 2 * TAR_BLOCK + ZPIPE_MAX_PADDING)
		return slate_error_refuse(err,
					  "not a slate bundle `%s`: more than one record of padding after the "
					  "end of the archive",
					  name);
	return 0;
}

/* Feed n decompressed bytes through the framer. */
static int framer_feed(struct framer *fr, const char *name, const unsigned char *p, size_t n, slate_error_t *err)
{
	while (n > 0) {
		size_t take;
		if (fr->zero_blocks >= 2)
			return framer_tail(fr, name, p, n, err);
		if (fr->data_left > 0) {
			take = n < fr->data_left ? n : (size_t)fr->data_left;
			if (fr->collecting) {
				memcpy(fr->pax + fr->pax_len, p, take);
				fr->pax_len += take;
			}
			fr->data_left -= take;
		} else if (fr->pad_left > 0) {
			take = n < fr->pad_left ? n : (size_t)fr->pad_left;
			fr->pad_left -= take;
		} else {
			take = n < TAR_BLOCK - fr->blk_len ? n : TAR_BLOCK - fr->blk_len;
			memcpy(fr->blk + fr->blk_len, p, take);
			fr->blk_len += take;
		}
		fr->off += take;
		p += take;
		n -= take;
		if (fr->blk_len == TAR_BLOCK) {
			fr->blk_len = 0;
			if (framer_block(fr, name, err) < 0)
				return -1;
		} else if (fr->collecting && fr->data_left == 0) {
			fr->collecting = false;
			if (parse_pax(fr, name, err) < 0)
				return -1;
		}
	}
	return 0;
}

/* The stream ended: it must have ended after the end blocks. */
static int framer_end(const struct framer *fr, const char *name, slate_error_t *err)
{
	if (fr->zero_blocks >= 2) {
		if (fr->off % TAR_BLOCK != 0)
			return slate_error_refuse(err,
						  "not a slate bundle `%s`: the archive does not end on a "
						  "block boundary",
						  name);
		return 0;
	}
	if (fr->blk_len > 0 || fr->data_left > 0 || fr->pad_left > 0 || fr->pax_pending)
		return slate_error_refuse(err, "truncated archive `%s`: the tar stream ends inside a member", name);
	return slate_error_refuse(err, "truncated archive `%s`: no end-of-archive blocks", name);
}

/* ---- the zstd decoder: one frame, then the end of the file ---- */

static int read_in(struct zpipe *z, slate_error_t *err)
{
	ssize_t n;

	do
		n = read(z->fd, z->in + z->in_len, z->in_cap - z->in_len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return slate_error_sys(err, errno, "read `%s`", z->name);
	if (n == 0)
		z->file_eof = true;
	z->in_len += (size_t)n;
	return 0;
}

/* The file must open with a zstd frame (not a skippable one). */
static int check_magic(struct zpipe *z, slate_error_t *err)
{
	static const unsigned char magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };

	while (z->in_len < sizeof(magic) && !z->file_eof)
		if (read_in(z, err) < 0)
			return -1;
	if (z->in_len < sizeof(magic) || memcmp(z->in, magic, sizeof(magic)) != 0)
		return slate_error_refuse(err, "not a slate bundle `%s`: not zstd-compressed", z->name);
	z->started_frame = true;
	return 0;
}

/* Decompress up to cap bytes; *got 0 only at the end (frame and file). */
static int decode(struct zpipe *z, unsigned char *out, size_t cap, size_t *got, slate_error_t *err)
{
	ZSTD_outBuffer ob = { out, cap, 0 };

	if (!z->started_frame && check_magic(z, err) < 0)
		return -1;
	while (ob.pos < ob.size && !(z->frame_done && z->file_eof)) {
		if (z->in_pos == z->in_len && !z->file_eof) {
			z->in_pos = z->in_len = 0;
			if (read_in(z, err) < 0)
				return -1;
		}
		if (z->frame_done) {
			if (z->in_pos < z->in_len)
				return slate_error_refuse(err, "not a slate bundle `%s`: data after the zstd frame",
							  z->name);
			continue;
		}
		ZSTD_inBuffer ib = { z->in, z->in_len, z->in_pos };
		size_t before = ob.pos, r = ZSTD_decompressStream(z->dctx, &ob, &ib);
		z->in_pos = ib.pos;
		if (ZSTD_isError(r))
			return slate_error_refuse(err, "corrupt archive `%s`: zstd: %s", z->name, ZSTD_getErrorName(r));
		if (r == 0)
			z->frame_done = true;
		else if (z->file_eof && ib.pos == ib.size && ob.pos == before)
			return slate_error_refuse(err, "truncated archive `%s`: the zstd frame does not end", z->name);
	}
	*got = ob.pos;
	return 0;
}

/* The next chunk of the tar stream, framed; *got 0 at its clean end. */
static int produce(struct zpipe *z, char *out, size_t cap, size_t *got, slate_error_t *err)
{
	if (decode(z, (unsigned char *)out, cap, got, err) < 0)
		return -1;
	if (*got == 0)
		return framer_end(&z->fr, z->name, err);
	return framer_feed(&z->fr, z->name, (const unsigned char *)out, *got, err);
}

/* ---- the hand-over ---- */

static void set_failed(struct zpipe *z, const slate_error_t *e)
{
	pthread_mutex_lock(&z->mu);
	z->err = *e;
	z->failed = true;
	z->eof = true;
	pthread_cond_broadcast(&z->cv);
	pthread_mutex_unlock(&z->mu);
}

/* Wait for a free slot; false when asked to stop. */
static bool producer_slot(struct zpipe *z, size_t *slot)
{
	pthread_mutex_lock(&z->mu);
	while (!z->stop && z->count + (z->consumer_holds ? 1 : 0) >= ZPIPE_SLOTS)
		pthread_cond_wait(&z->cv, &z->mu);
	*slot = (z->head + z->count) % ZPIPE_SLOTS;
	bool go = !z->stop;
	pthread_mutex_unlock(&z->mu);
	return go;
}

static void producer_push(struct zpipe *z, size_t len)
{
	pthread_mutex_lock(&z->mu);
	if (len > 0) {
		z->len[(z->head + z->count) % ZPIPE_SLOTS] = len;
		z->count++;
	}
	z->eof = len == 0;
	pthread_cond_broadcast(&z->cv);
	pthread_mutex_unlock(&z->mu);
}

/* A chunk that fails the framing is not handed on: the reader sees the
 * stream up to the chunk before, then the refusal. */
static void *producer(void *arg)
{
	struct zpipe *z = arg;
	slate_error_t e = { 0 };
	size_t slot, n = 0;

	for (;;) {
		if (!producer_slot(z, &slot))
			break;
		/* Slots are allocated on first use: small bundles stay small. */
		if (z->buf[slot] == NULL)
			z->buf[slot] = xmalloc(ZPIPE_CHUNK);
		if (produce(z, z->buf[slot], ZPIPE_CHUNK, &n, &e) < 0) {
			set_failed(z, &e);
			break;
		}
		producer_push(z, n);
		if (n == 0)
			break;
	}
	return NULL;
}

/* libarchive read callback: hand out the next filled slot. The previous
 * one is released first (libarchive is done with it once it asks again). */
static la_ssize_t read_threaded(struct archive *a, void *ctx, const void **out)
{
	struct zpipe *z = ctx;
	la_ssize_t n = 0;

	pthread_mutex_lock(&z->mu);
	if (z->consumer_holds) {
		z->head = (z->head + 1) % ZPIPE_SLOTS;
		z->count--;
		z->consumer_holds = false;
		pthread_cond_broadcast(&z->cv);
	}
	while (z->count == 0 && !z->eof)
		pthread_cond_wait(&z->cv, &z->mu);
	if (z->count > 0) {
		*out = z->buf[z->head];
		n = (la_ssize_t)z->len[z->head];
		z->consumer_holds = true;
	} else if (z->failed) {
		archive_set_error(a, EILSEQ, "%s", z->err.msg);
		n = -1;
	}
	pthread_mutex_unlock(&z->mu);
	return n;
}

/* libarchive read callback, on demand: one buffer, decoded when asked. */
static la_ssize_t read_sync(struct archive *a, void *ctx, const void **out)
{
	struct zpipe *z = ctx;
	slate_error_t e = { 0 };
	size_t n = 0;

	if (z->failed) {
		archive_set_error(a, EILSEQ, "%s", z->err.msg);
		return -1;
	}
	if (z->buf[0] == NULL)
		z->buf[0] = xmalloc(ZPIPE_CHUNK);
	if (produce(z, z->buf[0], ZPIPE_CHUNK, &n, &e) < 0) {
		set_failed(z, &e);
		archive_set_error(a, EILSEQ, "%s", z->err.msg);
		return -1;
	}
	*out = z->buf[0];
	return (la_ssize_t)n;
}

struct zpipe *zpipe_start(int fd, const char *name, bool threaded, slate_error_t *err)
{
	struct zpipe *z = xcalloc(1, sizeof(*z));

	z->fd = fd;
	z->name = xstrdup(name);
	z->threaded = threaded;
	z->fr.pax_size = -1;
	pthread_mutex_init(&z->mu, NULL);
	pthread_cond_init(&z->cv, NULL);
	z->dctx = ZSTD_createDCtx();
	if (z->dctx == NULL ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax, ZPIPE_WINDOW_LOG_MAX))) {
		slate_error_fail(err, "cannot set up a zstd decoder");
		zpipe_free(z);
		return NULL;
	}
	z->in_cap = ZSTD_DStreamInSize();
	z->in = xmalloc(z->in_cap);
	if (!threaded)
		return z;
	int e = pthread_create(&z->thread, NULL, producer, z);
	if (e != 0) {
		slate_error_sys(err, e, "start decompression thread");
		zpipe_free(z);
		return NULL;
	}
	z->started = true;
	return z;
}

int zpipe_open_archive(struct zpipe *z, struct archive *a)
{
	return archive_read_open(a, z, NULL, z->threaded ? read_threaded : read_sync, NULL);
}

int zpipe_error(struct zpipe *z, slate_error_t *err)
{
	int r = 0;

	pthread_mutex_lock(&z->mu);
	if (z->failed) {
		if (err)
			*err = z->err;
		r = -1;
	}
	pthread_mutex_unlock(&z->mu);
	return r;
}

/* Threaded: drop what the reader will not ask for, until the producer is
 * done (it stops at the first framing problem, and the framer bounds what
 * may follow the end, so this wait is short). */
static void drain_threaded(struct zpipe *z)
{
	pthread_mutex_lock(&z->mu);
	if (z->consumer_holds) {
		z->consumer_holds = false;
		z->head = (z->head + 1) % ZPIPE_SLOTS;
		z->count--;
	}
	for (;;) {
		z->head = (z->head + z->count) % ZPIPE_SLOTS;
		z->count = 0;
		pthread_cond_broadcast(&z->cv);
		if (z->eof)
			break;
		pthread_cond_wait(&z->cv, &z->mu);
	}
	pthread_mutex_unlock(&z->mu);
}

static void drain_sync(struct zpipe *z)
{
	slate_error_t e = { 0 };
	size_t n = 0;

	if (z->buf[0] == NULL)
		z->buf[0] = xmalloc(ZPIPE_CHUNK);
	while (!z->failed) {
		if (produce(z, z->buf[0], ZPIPE_CHUNK, &n, &e) < 0)
			set_failed(z, &e);
		else if (n == 0)
			break;
	}
}

int zpipe_finish(struct zpipe *z, uint64_t members, slate_error_t *err)
{
	if (z->threaded)
		drain_threaded(z);
	else
		drain_sync(z);
	if (zpipe_error(z, err) < 0)
		return -1;
	/* The producer is done: its framer is ours to read. */
	if (z->fr.members != members)
		return slate_error_refuse(err, "corrupt archive `%s`: %llu members in the tar stream, %llu read",
					  z->name, (unsigned long long)z->fr.members, (unsigned long long)members);
	return 0;
}

void zpipe_free(struct zpipe *z)
{
	if (z == NULL)
		return;
	if (z->started) {
		pthread_mutex_lock(&z->mu);
		z->stop = true;
		pthread_cond_broadcast(&z->cv);
		pthread_mutex_unlock(&z->mu);
		pthread_join(z->thread, NULL);
	}
	for (int i = 0; i < ZPIPE_SLOTS; i++)
		free(z->buf[i]);
	ZSTD_freeDCtx(z->dctx);
	free(z->in);
	free(z->fr.pax);
	pthread_mutex_destroy(&z->mu);
	pthread_cond_destroy(&z->cv);
	free(z->name);
	free(z);
}
