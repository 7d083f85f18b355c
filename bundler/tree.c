/* slate-bundle: the tree being packed (see tree.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slate/util.h"
#include "tree.h"

void tree_init(struct tree *t)
{
	slate_manifest_init(&t->m);
	slate_pathmap_init(&t->map);
	t->newest_mtime = 0;
}

void tree_free(struct tree *t)
{
	slate_manifest_free(&t->m);
	slate_pathmap_free(&t->map);
}

struct slate_entry *tree_get(struct tree *t, const char *path)
{
	size_t idx;

	return slate_pathmap_get(&t->map, path, &idx) ? &t->m.entries[idx] : NULL;
}

unsigned tree_mode(enum slate_entry_type type, mode_t st_mode)
{
	switch (type) {
	case SLATE_ENTRY_DIR: return 0755;
	case SLATE_ENTRY_SYMLINK: return 0777;
	case SLATE_ENTRY_FILE: return (st_mode & 0111) ? 0755 : 0644;
	}
	return 0644;
}

void tree_note_mtime(struct tree *t, int64_t mtime)
{
	if (mtime > t->newest_mtime)
		t->newest_mtime = mtime;
}

static int ensure_parents(struct tree *t, const char *path, slate_error_t *err)
{
	cleanup_free char *parent = slate_path_parent(path);

	if (parent[0] == '\0')
		return 0;
	return tree_add_dir(t, parent, err);
}

/* A fresh entry at path, or the existing one when replace allows it. */
static struct slate_entry *tree_slot(struct tree *t, const char *path, enum slate_entry_type type, bool replace,
				     slate_error_t *err)
{
	struct slate_entry *e;

	if (slate_path_check(path, SLATE_PATH_MAX_DEFAULT, SLATE_NAME_MAX_DEFAULT, err) < 0)
		return NULL;
	if (ensure_parents(t, path, err) < 0)
		return NULL;
	e = tree_get(t, path);
	if (e != NULL) {
		if (!replace && !(e->type == type && type == SLATE_ENTRY_DIR)) {
			slate_error_refuse(err, "`%s` is added twice", path);
			return NULL;
		}
		if (e->type == SLATE_ENTRY_DIR && type != SLATE_ENTRY_DIR) {
			slate_error_refuse(err, "`%s` is a directory and cannot be replaced by a %s", path,
					   slate_entry_type_name(type));
			return NULL;
		}
		free(e->target);
		free(e->source);
		free(e->data);
		e->target = e->source = e->data = NULL;
		return e;
	}
	slate_pathmap_put(&t->map, path, t->m.n_entries);
	e = slate_manifest_add(&t->m);
	e->path = xstrdup(path);
	return e;
}

int tree_add_dir(struct tree *t, const char *path, slate_error_t *err)
{
	struct slate_entry *e = tree_get(t, path);

	if (e != NULL) {
		if (e->type == SLATE_ENTRY_DIR)
			return 0;
		return slate_error_refuse(err, "`%s` is a %s, not a directory (a path through a symlink?)", path,
					  slate_entry_type_name(e->type));
	}
	e = tree_slot(t, path, SLATE_ENTRY_DIR, false, err);
	if (e == NULL)
		return -1;
	e->type = SLATE_ENTRY_DIR;
	e->mode = 0755;
	return 0;
}

int tree_add_file(struct tree *t, const char *path, const char *source, unsigned mode, uint64_t size, bool replace,
		  slate_error_t *err)
{
	struct slate_entry *e = tree_slot(t, path, SLATE_ENTRY_FILE, replace, err);

	if (e == NULL)
		return -1;
	e->type = SLATE_ENTRY_FILE;
	e->mode = mode;
	e->size = size;
	e->source = xstrdup(source);
	return 0;
}

int tree_add_data(struct tree *t, const char *path, const char *data, size_t len, bool replace, slate_error_t *err)
{
	struct slate_entry *e = tree_slot(t, path, SLATE_ENTRY_FILE, replace, err);

	if (e == NULL)
		return -1;
	e->type = SLATE_ENTRY_FILE;
	e->mode = 0644;
	e->size = len;
	e->data = xmalloc(len + 1);
	memcpy(e->data, data, len);
	e->data[len] = '\0';
	return 0;
}

int tree_add_symlink(struct tree *t, const char *path, const char *target, bool replace, slate_error_t *err)
{
	struct slate_entry *e;

	if (slate_path_check_link(path, target, err) < 0)
		return -1;
	e = tree_slot(t, path, SLATE_ENTRY_SYMLINK, replace, err);
	if (e == NULL)
		return -1;
	e->type = SLATE_ENTRY_SYMLINK;
	e->mode = 0777;
	e->size = 0;
	e->target = xstrdup(target);
	return 0;
}

/* Length of the leading run of whole components that a and b share. */
static size_t common_components(const char *a, const char *b)
{
	size_t common = 0, i = 0;

	for (;; i++) {
		bool aend = a[i] == '\0' || a[i] == '/', bend = b[i] == '\0' || b[i] == '/';
		if (aend && bend && i > 0)
			common = i;
		if (a[i] == '\0' || b[i] == '\0' || a[i] != b[i])
			return common;
	}
}

char *tree_relative(const char *from_dir, const char *to)
{
	size_t common = common_components(from_dir, to);
	const char *up = from_dir + common, *rest = to + common;
	size_t ups = 0, len;
	char *out;

	while (*up == '/')
		up++;
	while (*rest == '/')
		rest++;
	for (const char *c = up; *c; c++)
		if (c == up || *c == '/')
			ups++;
	len = ups * 3 + strlen(rest) + 2;
	out = xcalloc(len, 1);
	for (size_t k = 0; k < ups; k++)
		strcat(out, k ? "/.." : "..");
	if (rest[0] != '\0') {
		if (ups)
			strcat(out, "/");
		strcat(out, rest);
	}
	if (out[0] == '\0')
		strcpy(out, ".");
	return out;
}

/* Small files are kept in memory after hashing, so that writing the bundle
 * does not open and read them a second time (most of a vendor/ tree). */
#define KEEP_FILE_MAX (1u << 20)
#define KEEP_TOTAL_MAX (512ull << 20)

struct hash_job {
	struct tree *t;
	atomic_ullong kept;
	atomic_size_t next;
	atomic_int failed;
	pthread_mutex_t lock;
	slate_error_t *err;
};

/* Read a small file whole, once: the buffer is hashed and kept. */
static int hash_keep(struct slate_entry *e, int fd, slate_error_t *err)
{
	size_t len = 0;
	/* One byte more than expected tells a grown file from a full read. */
	char *buf = xmalloc(e->size + 1);

	while (len < e->size + 1) {
		ssize_t r = read(fd, buf + len, e->size + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return slate_error_sys(err, errno, "read `%s`", e->source);
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len != e->size) {
		free(buf);
		return slate_error_fail(err, "`%s` changed while it was being packed", e->source);
	}
	if (slate_sha256_buf(buf, len, e->sha256, err) < 0) {
		free(buf);
		return -1;
	}
	e->data = buf;
	return 0;
}

static int hash_entry(struct hash_job *job, struct slate_entry *e, slate_error_t *err)
{
	unsigned long long size = 0;
	cleanup_close int fd = -1;

	if (e->data != NULL)
		return slate_sha256_buf(e->data, e->size, e->sha256, err);
	fd = open(e->source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", e->source);
	if (e->size <= KEEP_FILE_MAX && atomic_fetch_add(&job->kept, e->size) + e->size <= KEEP_TOTAL_MAX)
		return hash_keep(e, fd, err);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (slate_sha256_fd(fd, e->source, e->sha256, &size, err) < 0)
		return -1;
	if (size != e->size)
		return slate_error_fail(err, "`%s` changed while it was being packed", e->source);
	return 0;
}

static void *hash_worker(void *arg)
{
	struct hash_job *job = arg;
	slate_error_t local = { 0 };

	while (!atomic_load(&job->failed)) {
		size_t i = atomic_fetch_add(&job->next, 1);
		if (i >= job->t->m.n_entries)
			break;
		struct slate_entry *e = &job->t->m.entries[i];
		if (e->type != SLATE_ENTRY_FILE || hash_entry(job, e, &local) == 0)
			continue;
		pthread_mutex_lock(&job->lock);
		if (!atomic_exchange(&job->failed, 1) && job->err)
			*job->err = local;
		pthread_mutex_unlock(&job->lock);
	}
	return NULL;
}

int tree_hash(struct tree *t, int threads, slate_error_t *err)
{
	struct hash_job job = { .t = t, .err = err };
	pthread_t tids[64];
	int started = 0;

	pthread_mutex_init(&job.lock, NULL);
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	for (int i = 1; i < threads; i++) {
		if (pthread_create(&tids[started], NULL, hash_worker, &job) != 0)
			break;
		started++;
	}
	hash_worker(&job);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_destroy(&job.lock);
	return atomic_load(&job.failed) ? -1 : 0;
}
