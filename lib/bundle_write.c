/* slate: the bundle writer.
 *
 * Reproducible by construction: entries in manifest order, every member's
 * mtime set to the manifest's `created`, uid/gid 0 with no user or group
 * names, modes as normalised in the manifest, pax headers only where a
 * name needs them, and zstd at a fixed level (multi-threaded zstd output
 * does not depend on the number of worker threads). The output appears at
 * its final name only once complete (temporary file, fsync, rename). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "slate/bundle.h"
#include "slate/util.h"

struct writer {
	struct archive *a;
	int fd;
	uint64_t written, synced;
	struct archive_entry *ae;
	int64_t mtime;
	const struct slate_progress *progress;
	uint64_t entries, bytes;
};

static int archive_fail(struct writer *w, const char *what, slate_error_t *err)
{
	int e = archive_errno(w->a);
	const char *msg = archive_error_string(w->a);

	if (e > 0 && e < 1000)
		return slate_error_sys(err, e, "write bundle (%s)", what);
	return slate_error_fail(err, "write bundle (%s): %s", what, msg ? msg : "libarchive error");
}

/* Output: start writeback every few MiB, so that the final fsync (the
 * bundle must be durable before it is renamed into place) has little left
 * to wait for. */
#define WRITEBACK_STEP (8u << 20)

static la_ssize_t out_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct writer *w = ctx;
	const char *p = buf;
	size_t left = len;

	while (left > 0) {
		ssize_t n = write(w->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			archive_set_error(a, errno, "write");
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	w->written += len;
	if (w->written - w->synced >= WRITEBACK_STEP) {
		(void)sync_file_range(w->fd, (off64_t)w->synced, (off64_t)(w->written - w->synced),
				      SYNC_FILE_RANGE_WRITE);
		w->synced = w->written;
	}
	return (la_ssize_t)len;
}

static int writer_open(struct writer *w, int fd, int level, int threads, slate_error_t *err)
{
	char buf[32];

	w->a = archive_write_new();
	w->ae = archive_entry_new();
	if (w->a == NULL || w->ae == NULL)
		return slate_error_fail(err, "cannot allocate an archive writer");
	if (archive_write_add_filter_zstd(w->a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK)
		return archive_fail(w, "zstd/pax", err);
	snprintf(buf, sizeof(buf), "%d", level);
	if (archive_write_set_filter_option(w->a, "zstd", "compression-level", buf) != ARCHIVE_OK)
		return archive_fail(w, "compression level", err);
	snprintf(buf, sizeof(buf), "%d", threads);
	if (threads > 0 && archive_write_set_filter_option(w->a, "zstd", "threads", buf) != ARCHIVE_OK)
		return archive_fail(w, "zstd threads", err);
	w->fd = fd;
	if (archive_write_set_bytes_per_block(w->a, 1 << 20) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
	    archive_write_open2(w->a, w, NULL, out_write, NULL, NULL) != ARCHIVE_OK)
		return archive_fail(w, "open", err);
	return 0;
}

static void header_init(struct writer *w, const char *path, mode_t type, unsigned mode, uint64_t size)
{
	struct archive_entry *ae = w->ae;

	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, path);
	archive_entry_set_filetype(ae, type);
	archive_entry_set_perm(ae, mode);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	archive_entry_set_mtime(ae, w->mtime, 0);
	archive_entry_set_size(ae, (la_int64_t)size);
}

static int write_buf(struct writer *w, const char *path, const void *buf, size_t len, slate_error_t *err)
{
	la_ssize_t n = archive_write_data(w->a, buf, len);

	if (n < 0 || (size_t)n != len)
		return archive_fail(w, path, err);
	return 0;
}

static int write_member_mem(struct writer *w, const char *path, const void *buf, size_t len, slate_error_t *err)
{
	header_init(w, path, AE_IFREG, 0644, len);
	if (archive_write_header(w->a, w->ae) != ARCHIVE_OK)
		return archive_fail(w, path, err);
	return write_buf(w, path, buf, len, err);
}

/* Copy a source file into the member; it must still have the size that
 * was hashed (a file that changed since is an error, not a silent bad
 * bundle). */
static int write_file_source(struct writer *w, const struct slate_entry *e, slate_error_t *err)
{
	static unsigned char buf[1 << 17];
	cleanup_close int fd = open(e->source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	uint64_t left = e->size;
	struct stat st;

	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", e->source);
	if (fstat(fd, &st) < 0)
		return slate_error_sys(err, errno, "stat `%s`", e->source);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size)
		return slate_error_fail(err, "`%s` changed while it was being packed", e->source);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (left > 0) {
		ssize_t r = read(fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return slate_error_sys(err, errno, "read `%s`", e->source);
		if (r == 0)
			return slate_error_fail(err, "`%s` changed while it was being packed", e->source);
		if (write_buf(w, e->path, buf, (size_t)r, err) < 0)
			return -1;
		left -= (uint64_t)r;
		w->bytes += (uint64_t)r;
	}
	return 0;
}

static int write_entry(struct writer *w, const struct slate_entry *e, slate_error_t *err)
{
	switch (e->type) {
	case SLATE_ENTRY_DIR: header_init(w, e->path, AE_IFDIR, e->mode, 0); break;
	case SLATE_ENTRY_SYMLINK:
		header_init(w, e->path, AE_IFLNK, 0777, 0);
		archive_entry_set_symlink(w->ae, e->target);
		break;
	case SLATE_ENTRY_FILE: header_init(w, e->path, AE_IFREG, e->mode, e->size); break;
	}
	if (archive_write_header(w->a, w->ae) != ARCHIVE_OK)
		return archive_fail(w, e->path, err);
	if (e->type != SLATE_ENTRY_FILE)
		return 0;
	if (e->data != NULL) {
		w->bytes += e->size;
		return write_buf(w, e->path, e->data, e->size, err);
	}
	if (e->source == NULL)
		return slate_error_fail(err, "entry `%s` has no content source", e->path);
	return write_file_source(w, e, err);
}

static int write_all(struct writer *w, const struct slate_manifest *m, const char *manifest, size_t mlen,
		     const unsigned char *sig, slate_error_t *err)
{
	if (write_member_mem(w, SLATE_MEMBER_MANIFEST, manifest, mlen, err) < 0 ||
	    write_member_mem(w, SLATE_MEMBER_SIG, sig, SLATE_SIG_MEMBER_LEN, err) < 0)
		return -1;
	for (size_t i = 0; i < m->n_entries; i++) {
		if (write_entry(w, &m->entries[i], err) < 0)
			return -1;
		w->entries++;
		if (w->progress && w->progress->update && (w->entries & 63) == 0)
			w->progress->update(w->progress->ctx, w->entries, w->bytes, 0);
	}
	if (archive_write_close(w->a) != ARCHIVE_OK)
		return archive_fail(w, "close", err);
	if (w->progress && w->progress->update)
		w->progress->update(w->progress->ctx, w->entries, w->bytes, 1);
	return 0;
}

int slate_bundle_write(const char *out_path, struct slate_manifest *m, const struct slate_key *key, int level,
		       int threads, const struct slate_progress *progress, char id[SLATE_SHA256_HEX],
		       slate_error_t *err)
{
	struct slate_atomic out = { .fd = -1 };
	struct writer w = { .mtime = m->created, .progress = progress };
	unsigned char sig[SLATE_SIG_LEN], member[SLATE_SIG_MEMBER_LEN], digest[SLATE_SHA256_LEN];
	cleanup_free char *manifest = NULL;
	struct slate_limits lim;
	size_t mlen = 0;
	int r = -1;

	free(m->signer);
	m->signer = xstrdup(key->id);
	manifest = slate_manifest_serialize(m, &mlen, err);
	if (manifest == NULL)
		return -1;
	/* Hosts refuse a manifest over the default limit: so does the writer. */
	slate_limits_default(&lim);
	if (mlen > lim.max_manifest_bytes)
		return slate_error_refuse(err, "manifest of %zu bytes is larger than the limit of %llu bytes", mlen,
					  (unsigned long long)lim.max_manifest_bytes);
	if (slate_sign_manifest(key, manifest, mlen, sig, err) < 0 || slate_sha256_buf(manifest, mlen, digest, err) < 0)
		return -1;
	slate_sig_member(key, sig, member);
	if (slate_atomic_open(&out, out_path, 0644, err) < 0)
		return -1;
	if (writer_open(&w, out.fd, level, threads, err) == 0 && write_all(&w, m, manifest, mlen, member, err) == 0)
		r = 0;
	if (w.a)
		archive_write_free(w.a);
	if (w.ae)
		archive_entry_free(w.ae);
	if (r == 0)
		r = slate_atomic_commit(&out, err);
	else
		slate_atomic_abort(&out);
	if (r == 0)
		slate_hex(digest, SLATE_SHA256_LEN, id);
	return r;
}
