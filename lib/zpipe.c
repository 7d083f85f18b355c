/* slate: decompress ahead (see zpipe.h). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <archive_entry.h>

#include "slate/util.h"
#include "zpipe.h"

#define ZPIPE_SLOTS 128
#define ZPIPE_CHUNK (256 * 1024) /* up to 32 MiB decompressed ahead */

struct zpipe {
	int fd;
	char *name;
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

static void producer_fail(struct zpipe *z, struct archive *raw, const char *what)
{
	const char *msg = raw ? archive_error_string(raw) : NULL;
	int e = raw ? archive_errno(raw) : 0;

	pthread_mutex_lock(&z->mu);
	if (e == EIO || e == EBADF || e == EISDIR || e == EACCES || e == ENOMEM)
		slate_error_sys(&z->err, e, "read `%s`", z->name);
	else if (what)
		slate_error_refuse(&z->err, "%s", what);
	else
		slate_error_refuse(&z->err, "truncated or corrupt archive `%s`: %s", z->name,
				   msg ? msg : "decompression failed");
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

static void producer_push(struct zpipe *z, size_t len, bool eof)
{
	pthread_mutex_lock(&z->mu);
	if (len > 0) {
		z->len[(z->head + z->count) % ZPIPE_SLOTS] = len;
		z->count++;
	}
	z->eof = eof;
	pthread_cond_broadcast(&z->cv);
	pthread_mutex_unlock(&z->mu);
}

static void *producer(void *arg)
{
	struct zpipe *z = arg;
	struct archive *raw = archive_read_new();
	struct archive_entry *ae;
	size_t slot;

	if (raw == NULL || archive_read_support_filter_zstd(raw) != ARCHIVE_OK ||
	    archive_read_support_format_raw(raw) != ARCHIVE_OK ||
	    archive_read_open_fd(raw, z->fd, 1 << 17) != ARCHIVE_OK ||
	    archive_read_next_header(raw, &ae) != ARCHIVE_OK) {
		producer_fail(z, raw, NULL);
		goto out;
	}
	if (archive_filter_code(raw, 0) != ARCHIVE_FILTER_ZSTD) {
		cleanup_free char *msg = xasprintf("not a slate bundle `%s`: not zstd-compressed", z->name);
		producer_fail(z, NULL, msg);
		goto out;
	}
	for (;;) {
		if (!producer_slot(z, &slot))
			break;
		/* Slots are allocated on first use: small bundles stay small. */
		if (z->buf[slot] == NULL)
			z->buf[slot] = xmalloc(ZPIPE_CHUNK);
		la_ssize_t n = archive_read_data(raw, z->buf[slot], ZPIPE_CHUNK);
		if (n < 0) {
			producer_fail(z, raw, NULL);
			break;
		}
		producer_push(z, (size_t)n, n == 0);
		if (n == 0)
			break;
	}
out:
	if (raw)
		archive_read_free(raw);
	return NULL;
}

/* libarchive read callback: hand out the next filled slot. The previous
 * one is released first (libarchive is done with it once it asks again). */
static la_ssize_t zpipe_read(struct archive *a, void *ctx, const void **out)
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

struct zpipe *zpipe_start(int fd, const char *name, slate_error_t *err)
{
	struct zpipe *z = xcalloc(1, sizeof(*z));

	z->fd = fd;
	z->name = xstrdup(name);
	pthread_mutex_init(&z->mu, NULL);
	pthread_cond_init(&z->cv, NULL);
	if (pthread_create(&z->thread, NULL, producer, z) != 0) {
		slate_error_sys(err, errno, "start decompression thread");
		zpipe_free(z);
		return NULL;
	}
	z->started = true;
	return z;
}

int zpipe_open_archive(struct zpipe *z, struct archive *a)
{
	return archive_read_open(a, z, NULL, zpipe_read, NULL);
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
	pthread_mutex_destroy(&z->mu);
	pthread_cond_destroy(&z->cv);
	free(z->name);
	free(z);
}
