/* slate: the verifying bundle reader.
 *
 * Threat: the archive is attacker-controlled until proven otherwise. So:
 * libarchive reads the tar format only, from zpipe (zstd and the tar
 * framing, checked below it: one frame, nothing after the end blocks); the
 * first two members must be the manifest and its signature, and no byte of
 * the manifest is parsed before the signature verified (the signature
 * member names its key); then every member must be the next manifest
 * entry, with the same type, mode, size, link target and SHA-256, nothing
 * the manifest cannot express (hard links, devices, fifos, sockets,
 * xattrs, ACLs, sparse files) is accepted, and the stream must end cleanly
 * after the last one. The first problem stops the read; the caller sees
 * one message naming it.
 *
 * Memory: before the signature verified, one copy of the manifest (at most
 * the manifest limit), the 72-byte signature member, zpipe's ring and the
 * zstd window (both fixed); nothing grows with what the manifest says. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "slate/bundle.h"
#include "slate/path.h"
#include "slate/util.h"
#include "zpipe.h"

struct reader {
	struct archive *a;
	struct zpipe *z;
	const char *name;
	const struct slate_limits *lim;
	struct slate_manifest m;
	bool have_manifest;
	char *msg; /* SLATE_SIGN_PREFIX || manifest (the one copy) */
	const char *manifest; /* inside msg */
	size_t manifest_len;
	unsigned char sig[SLATE_SIG_MEMBER_LEN];
	size_t sig_len;
	char id[SLATE_SHA256_HEX];
};

static int archive_refuse(struct reader *r, const char *what, slate_error_t *err)
{
	const char *msg = archive_error_string(r->a);
	int e = archive_errno(r->a);

	/* The decompressing thread's own error is the real cause. */
	if (r->z && zpipe_error(r->z, err) < 0)
		return -1;

	/* A failed read(2) is a system error; anything else is the archive's fault. */
	if (e == EIO || e == ENOMEM || e == EBADF || e == EISDIR || e == EACCES)
		return slate_error_sys(err, e, "read `%s`", r->name);
	return slate_error_refuse(err, "truncated or corrupt archive `%s` (%s): %s", r->name, what,
				  msg ? msg : "unknown error");
}

/* pipelined: decompress ahead on a second thread (for reading members);
 * reading only the two .slate members does not need it. */
static int reader_open(struct reader *r, int fd, const char *name, const struct slate_limits *lim, bool pipelined,
		       slate_error_t *err)
{
	memset(r, 0, sizeof(*r));
	r->name = name;
	r->lim = lim;
	r->a = archive_read_new();
	if (r->a == NULL)
		return slate_error_fail(err, "cannot allocate an archive reader");
	if (archive_read_support_format_tar(r->a) != ARCHIVE_OK)
		return slate_error_fail(err, "libarchive lacks tar support");
	r->z = zpipe_start(fd, name, pipelined, err);
	if (r->z == NULL)
		return -1;
	if (zpipe_open_archive(r->z, r->a) != ARCHIVE_OK)
		return archive_refuse(r, "open", err);
	return 0;
}

static void reader_close(struct reader *r)
{
	if (r->a)
		archive_read_free(r->a);
	zpipe_free(r->z);
	r->z = NULL;
	free(r->msg);
	if (r->have_manifest)
		slate_manifest_free(&r->m);
	r->a = NULL;
}

/* Next header; EOF is an error here (the two .slate members are required). */
static int next_header(struct reader *r, struct archive_entry **ae, const char *what, slate_error_t *err)
{
	int s = archive_read_next_header(r->a, ae);

	if (s == ARCHIVE_EOF)
		return slate_error_refuse(err, "not a slate bundle `%s`: missing %s", r->name, what);
	if (s != ARCHIVE_OK)
		return archive_refuse(r, what, err);
	return 0;
}

/* Read the whole data of a small member (at most max bytes), after the
 * `prefix` bytes of prefix: the buffer holds prefix || data, NUL-ended;
 * *len counts the data only. The size is checked before anything is
 * allocated. */
static char *read_small(struct reader *r, struct archive_entry *ae, const char *prefix, size_t plen, uint64_t max,
			size_t *len, slate_error_t *err)
{
	int64_t size = archive_entry_size(ae);
	cleanup_free char *mem = NULL;
	char *buf;
	size_t got = 0;

	if (!archive_entry_size_is_set(ae) || size < 0) {
		slate_error_refuse(err, "bundle `%s`: `%s` has an invalid size", r->name, archive_entry_pathname(ae));
		return NULL;
	}
	if ((uint64_t)size > max) {
		slate_error_refuse(err, "bundle `%s`: `%s` is larger than the limit of %llu bytes", r->name,
				   archive_entry_pathname(ae), (unsigned long long)max);
		return NULL;
	}
	mem = xmalloc(plen + (size_t)size + 1);
	memcpy(mem, prefix, plen);
	buf = mem + plen;
	while (got < (size_t)size) {
		la_ssize_t n = archive_read_data(r->a, buf + got, (size_t)size - got);
		if (n < 0) {
			archive_refuse(r, archive_entry_pathname(ae), err);
			return NULL;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != (size_t)size) {
		slate_error_refuse(err, "truncated archive `%s`: `%s` is short", r->name, archive_entry_pathname(ae));
		return NULL;
	}
	buf[got] = '\0';
	*len = got;
	return steal_pointer(&mem);
}

static int expect_member(struct reader *r, struct archive_entry *ae, const char *want, slate_error_t *err)
{
	const char *p = archive_entry_pathname(ae);

	if (p == NULL || strcmp(p, want) != 0 || archive_entry_filetype(ae) != AE_IFREG ||
	    archive_entry_hardlink(ae) != NULL)
		return slate_error_refuse(err, "not a slate bundle `%s`: member `%s` where `%s` must be", r->name,
					  p ? p : "", want);
	return 0;
}

/* Read the two .slate members as bytes (no trust, no parsing). The
 * manifest is read once, straight after the signing prefix, so that the
 * signature is checked over it in place. */
static int read_head(struct reader *r, slate_error_t *err)
{
	struct archive_entry *ae;
	cleanup_free char *sig = NULL;
	unsigned char digest[SLATE_SHA256_LEN];

	if (next_header(r, &ae, SLATE_MEMBER_MANIFEST, err) < 0 || expect_member(r, ae, SLATE_MEMBER_MANIFEST, err) < 0)
		return -1;
	r->msg = read_small(r, ae, SLATE_SIGN_PREFIX, SLATE_SIGN_PREFIX_LEN, r->lim->max_manifest_bytes,
			    &r->manifest_len, err);
	if (r->msg == NULL)
		return -1;
	r->manifest = r->msg + SLATE_SIGN_PREFIX_LEN;
	if (next_header(r, &ae, SLATE_MEMBER_SIG, err) < 0 || expect_member(r, ae, SLATE_MEMBER_SIG, err) < 0)
		return -1;
	sig = read_small(r, ae, "", 0, 4096, &r->sig_len, err);
	if (sig == NULL)
		return -1;
	memcpy(r->sig, sig, r->sig_len < sizeof(r->sig) ? r->sig_len : sizeof(r->sig));
	if (slate_sha256_buf(r->manifest, r->manifest_len, digest, err) < 0)
		return -1;
	slate_hex(digest, SLATE_SHA256_LEN, r->id);
	return 0;
}

static int parse_manifest(struct reader *r, slate_error_t *err)
{
	if (slate_manifest_parse(r->manifest, r->manifest_len, r->lim, &r->m, err) < 0)
		return -1;
	r->have_manifest = true;
	return 0;
}

/* The kinds of member the manifest cannot express are refused by name. */
static int check_member_kind(const char *path, struct archive_entry *ae, slate_error_t *err)
{
	mode_t ft = archive_entry_filetype(ae);

	if (archive_entry_hardlink(ae) != NULL)
		return slate_error_refuse(err, "member `%s` is a hard link", path);
	if (ft == AE_IFCHR || ft == AE_IFBLK)
		return slate_error_refuse(err, "member `%s` is a device node", path);
	if (ft == AE_IFIFO)
		return slate_error_refuse(err, "member `%s` is a fifo", path);
	if (ft == AE_IFSOCK)
		return slate_error_refuse(err, "member `%s` is a socket", path);
	if (ft != AE_IFREG && ft != AE_IFDIR && ft != AE_IFLNK)
		return slate_error_refuse(err, "member `%s` has an unsupported type", path);
	if (archive_entry_mode(ae) & 07000)
		return slate_error_refuse(err, "member `%s` has set-id or sticky bits", path);
	if (archive_entry_xattr_count(ae) > 0)
		return slate_error_refuse(err, "member `%s` carries extended attributes", path);
	if (archive_entry_acl_count(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS | ARCHIVE_ENTRY_ACL_TYPE_DEFAULT |
						ARCHIVE_ENTRY_ACL_TYPE_NFS4) > 0)
		return slate_error_refuse(err, "member `%s` carries ACLs", path);
	if (archive_entry_sparse_count(ae) > 0)
		return slate_error_refuse(err, "member `%s` is sparse", path);
	return 0;
}

static enum slate_entry_type member_type(struct archive_entry *ae)
{
	switch (archive_entry_filetype(ae)) {
	case AE_IFDIR: return SLATE_ENTRY_DIR;
	case AE_IFLNK: return SLATE_ENTRY_SYMLINK;
	default: return SLATE_ENTRY_FILE;
	}
}

/* Header of member against its entry: type, mode, size, link target. */
static int check_member_header(const struct slate_entry *e, struct archive_entry *ae, slate_error_t *err)
{
	enum slate_entry_type t = member_type(ae);
	unsigned mode = archive_entry_mode(ae) & 07777;
	const char *target;

	if (t != e->type)
		return slate_error_refuse(err, "member `%s` is a %s, the manifest says %s", e->path,
					  slate_entry_type_name(t), slate_entry_type_name(e->type));
	if (t != SLATE_ENTRY_SYMLINK && mode != e->mode)
		return slate_error_refuse(err, "mode of `%s` does not match the manifest (%04o, not %04o)", e->path,
					  mode, e->mode);
	if (t == SLATE_ENTRY_FILE && (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0 ||
				      (uint64_t)archive_entry_size(ae) != e->size))
		return slate_error_refuse(err, "size of `%s` does not match the manifest", e->path);
	if (t == SLATE_ENTRY_SYMLINK) {
		target = archive_entry_symlink(ae);
		if (target == NULL || strcmp(target, e->target) != 0)
			return slate_error_refuse(err, "symlink target of `%s` does not match the manifest", e->path);
	}
	if (t != SLATE_ENTRY_FILE && archive_entry_size_is_set(ae) && archive_entry_size(ae) != 0)
		return slate_error_refuse(err, "member `%s` carries data", e->path);
	return 0;
}

/* Stream a file member's data through the hash (and the visitor). */
static int check_member_data(struct reader *r, const struct slate_entry *e, const struct slate_bundle_visitor *v,
			     slate_error_t *err)
{
	unsigned char digest[SLATE_SHA256_LEN];
	slate_sha256_t h;
	uint64_t got = 0;
	int ret = -1;

	if (slate_sha256_init(&h, err) < 0)
		return -1;
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int s = archive_read_data_block(r->a, &buf, &len, &off);
		if (s == ARCHIVE_EOF)
			break;
		if (s != ARCHIVE_OK) {
			archive_refuse(r, e->path, err);
			goto out;
		}
		if (off < 0 || (uint64_t)off != got || len > e->size - got) {
			slate_error_refuse(err, "content of `%s` does not match the manifest (size)", e->path);
			goto out;
		}
		got += len;
		if (slate_sha256_update(&h, buf, len, err) < 0 ||
		    (v && v->data && v->data(v->ctx, e, buf, len, err) < 0))
			goto out;
	}
	if (got != e->size) {
		slate_error_refuse(err, "truncated archive `%s`: `%s` is short", r->name, e->path);
		goto out;
	}
	ret = slate_sha256_final(&h, digest, err);
	if (ret == 0 && memcmp(digest, e->sha256, SLATE_SHA256_LEN) != 0)
		ret = slate_error_refuse(err, "content of `%s` does not match the manifest", e->path);
out:
	slate_sha256_free(&h);
	return ret;
}

/* Find the entry a member claims to be; it must be the next one. */
static const struct slate_entry *match_member(struct reader *r, const struct slate_pathmap *map, bool *seen,
					      size_t next, struct archive_entry *ae, slate_error_t *err)
{
	const char *raw = archive_entry_pathname(ae);
	cleanup_free char *path = NULL;
	size_t idx;

	if (raw == NULL) {
		slate_error_refuse(err, "member without a name");
		return NULL;
	}
	path = slate_path_normalize(raw, err);
	if (path == NULL || slate_path_check(path, r->lim->max_path, r->lim->max_name, err) < 0 ||
	    check_member_kind(path, ae, err) < 0)
		return NULL;
	if (!slate_pathmap_get(map, path, &idx)) {
		slate_error_refuse(err, "member `%s` not in manifest", path);
		return NULL;
	}
	if (seen[idx]) {
		slate_error_refuse(err, "duplicate member `%s`", path);
		return NULL;
	}
	/* Every entry before `next` was seen, so an unseen one is listed
	 * later: the entries between are not where they must be. */
	if (idx != next) {
		slate_error_refuse(err, "member `%s` missing (the archive has `%s` in its place)",
				   r->m.entries[next].path, path);
		return NULL;
	}
	seen[idx] = true;
	return &r->m.entries[idx];
}

static int stream_members(struct reader *r, const struct slate_bundle_visitor *v, slate_error_t *err)
{
	struct slate_pathmap map;
	cleanup_free bool *seen = xcalloc(r->m.n_entries + 1, sizeof(bool));
	size_t next = 0;
	int ret = -1;

	slate_pathmap_init(&map);
	for (size_t i = 0; i < r->m.n_entries; i++)
		slate_pathmap_put(&map, r->m.entries[i].path, i);
	for (;;) {
		struct archive_entry *ae;
		const struct slate_entry *e;
		int s = archive_read_next_header(r->a, &ae);
		if (s == ARCHIVE_EOF)
			break;
		if (s != ARCHIVE_OK) {
			archive_refuse(r, next < r->m.n_entries ? r->m.entries[next].path : "end", err);
			goto out;
		}
		e = match_member(r, &map, seen, next, ae, err);
		if (e == NULL || check_member_header(e, ae, err) < 0 || (v && v->begin && v->begin(v->ctx, e, err) < 0))
			goto out;
		if (e->type == SLATE_ENTRY_FILE && check_member_data(r, e, v, err) < 0)
			goto out;
		if (v && v->end && v->end(v->ctx, e, err) < 0)
			goto out;
		next++;
	}
	if (next < r->m.n_entries) {
		slate_error_refuse(err, "member `%s` missing (truncated archive?)", r->m.entries[next].path);
		goto out;
	}
	/* The tar reader stopped at the end blocks; what follows them, and
	 * the end of the frame and the file, are zpipe's to check. */
	if (zpipe_finish(r->z, r->m.n_entries + 2, err) < 0)
		goto out;
	ret = 0;
out:
	slate_pathmap_free(&map);
	return ret;
}

static void hand_out(struct reader *r, struct slate_manifest *out, char id[SLATE_SHA256_HEX])
{
	if (id)
		memcpy(id, r->id, SLATE_SHA256_HEX);
	if (out) {
		*out = r->m;
		r->have_manifest = false;
	}
}

/* The signature is checked over the raw bytes, with the trusted key the
 * signature member names, before anything in the manifest is parsed; a
 * refusal names that key from the member, never from the manifest. */
static int check_head(struct reader *r, const struct slate_keyring *kr, bool parse, slate_error_t *err)
{
	const struct slate_key *signer = NULL;

	if (read_head(r, err) < 0)
		return -1;
	if (slate_verify_manifest(kr, r->msg, SLATE_SIGN_PREFIX_LEN + r->manifest_len, r->sig, r->sig_len, &signer,
				  err) < 0)
		return slate_error_wrap(err, "bundle `%s`", r->name);
	if (!parse)
		return 0;
	if (parse_manifest(r, err) < 0)
		return slate_error_wrap(err, "bundle `%s`", r->name);
	if (strcmp(r->m.signer, signer->id) != 0)
		return slate_error_refuse(err, "bad signature: manifest names signer %s but was signed by key %s",
					  r->m.signer, signer->id);
	return 0;
}

int slate_bundle_verify_fd(int fd, const char *name, const struct slate_keyring *kr, const struct slate_limits *lim,
			   const struct slate_bundle_visitor *v, struct slate_manifest *out, char id[SLATE_SHA256_HEX],
			   slate_error_t *err)
{
	struct reader r;
	int ret = -1;

	if (reader_open(&r, fd, name, lim, true, err) < 0 || check_head(&r, kr, true, err) < 0)
		goto out;
	if (v && v->manifest && v->manifest(v->ctx, &r.m, r.id, err) < 0)
		goto out;
	if (stream_members(&r, v, err) < 0)
		goto out;
	hand_out(&r, out, id);
	ret = 0;
out:
	reader_close(&r);
	return ret;
}

int slate_bundle_verify_head(int fd, const char *name, const struct slate_keyring *kr, const struct slate_limits *lim,
			     struct slate_manifest *out, char id[SLATE_SHA256_HEX], slate_error_t *err)
{
	struct reader r;
	int ret = -1;

	if (reader_open(&r, fd, name, lim, false, err) == 0 && check_head(&r, kr, out != NULL, err) == 0) {
		hand_out(&r, out, id);
		ret = 0;
	}
	reader_close(&r);
	return ret;
}

int slate_bundle_read_manifest(int fd, const char *name, const struct slate_limits *lim, struct slate_manifest *out,
			       char id[SLATE_SHA256_HEX], slate_error_t *err)
{
	struct reader r;
	int ret = -1;

	if (reader_open(&r, fd, name, lim, false, err) < 0 || read_head(&r, err) < 0)
		goto out;
	if (parse_manifest(&r, err) < 0) {
		slate_error_wrap(err, "bundle `%s`", name);
		goto out;
	}
	hand_out(&r, out, id);
	ret = 0;
out:
	reader_close(&r);
	return ret;
}
