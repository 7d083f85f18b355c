/* slate: the tamper alarm (see tamper.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "slate/hash.h"
#include "slate/path.h"
#include "slate/util.h"

#include "tamper.h"

#define TAMPER_GENS 8
#define TAMPER_RECENT 64
#define TAMPER_CRASH_HELPERS 2
#define WATCH_MASK (IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_EXCL_UNLINK | IN_ONLYDIR)

/* ---- the classifier ---- */

static bool ends_with_ci(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* Names a web server or PHP treats as code or as configuration: PHP's
 * handler extensions (Debian's and the historical ones), per-directory
 * configuration read by Apache (.htaccess) and by PHP-FPM (.user.ini). */
static const char *classify_name(const char *name)
{
	static const char *const php[] = { ".php",  ".phtml", ".phar", ".pht",  ".phps", ".php3",
					   ".php4", ".php5",  ".php7", ".php8", ".inc" };

	if (strcasecmp(name, ".htaccess") == 0)
		return "htaccess";
	if (strcasecmp(name, ".user.ini") == 0)
		return "user-ini";
	for (size_t i = 0; i < sizeof(php) / sizeof(php[0]); i++)
		if (ends_with_ci(name, php[i]))
			return "php-name";
	return NULL;
}

static bool contains_ci(const unsigned char *h, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; i + k <= n; i++)
		if (strncasecmp((const char *)h + i, needle, k) == 0)
			return true;
	return false;
}

/* Content: a PHP open tag anywhere in the head (a GIF header before it is
 * the classic polyglot: PHP runs whatever follows the tag when the file is
 * included), or an executable's magic at the start. */
const char *tamper_classify(const char *name, char type, const unsigned char *head, size_t n)
{
	const char *by_name = classify_name(name);

	if (by_name || type != 'f')
		return type == 'd' ? NULL : by_name;
	if (n >= 4 && memcmp(head,
			     "\x7f"
			     "ELF",
			     4) == 0)
		return "elf";
	if (n >= 2 && head[0] == '#' && head[1] == '!')
		return "shebang";
	if (n > 0 && (contains_ci(head, n, "<?php") || contains_ci(head, n, "<?=")))
		return "php-code";
	return NULL;
}

/* ---- state ---- */

struct watch {
	int wd, dirfd;
	unsigned gen;
	ino_t ino;
	char *rel; /* "app/web/cpresources" below the upper ("" for the upper) */
};

struct tgen {
	unsigned id; /* 0: free slot */
	int upper;
	long long release;
	char bundle[65];
	bool overcap;
	double next_rescan, last_scan; /* monotonic; realtime */
};

struct tamper {
	const struct slate_ctx *ctx;
	char *app, *dir, *events, *evidence;
	struct logfile *log;
	struct tamper_hooks hooks;
	int ino;
	struct watch *w;
	size_t nw;
	struct tgen gens[TAMPER_GENS];
	char *on_tamper;
	bool heal;
	double window_start, last_heal, last_drain_rt;
	unsigned window_n, suppressed, evidence_dropped;
	char *recent[TAMPER_RECENT];
	size_t recent_next;
	/* the operator's hook: one at a time, a bounded queue of events */
	pid_t hook_pid;
	int hook_out;
	double hook_deadline;
	char *queue[TAMPER_HOOK_QUEUE];
	size_t nq;
	pid_t crash_pid[TAMPER_CRASH_HELPERS];
	char *crash_out[TAMPER_CRASH_HELPERS];
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double realtime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void utc_now(char buf[32])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", gmtime_r(&ts.tv_sec, &tm));
	snprintf(buf + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static struct tgen *gen_find(struct tamper *t, unsigned id)
{
	for (int i = 0; i < TAMPER_GENS; i++)
		if (t->gens[i].id == id && id != 0)
			return &t->gens[i];
	return NULL;
}

static struct watch *watch_find(struct tamper *t, int wd)
{
	for (size_t i = 0; i < t->nw; i++)
		if (t->w[i].wd == wd)
			return &t->w[i];
	return NULL;
}

static void watch_drop(struct tamper *t, size_t i)
{
	close(t->w[i].dirfd);
	free(t->w[i].rel);
	t->w[i] = t->w[--t->nw];
}

struct tamper *tamper_new(const struct slate_ctx *ctx, const char *app, const char *app_dir, struct logfile *log,
			  const struct tamper_hooks *hooks, slate_error_t *err)
{
	struct tamper *t = xcalloc(1, sizeof(*t));

	t->ctx = ctx;
	t->app = xstrdup(app);
	t->dir = xstrdup(app_dir);
	t->events = xasprintf("%s/%s", app_dir, TAMPER_EVENTS_FILE);
	t->evidence = xasprintf("%s/%s", app_dir, TAMPER_EVIDENCE_DIR);
	t->log = log;
	t->hooks = *hooks;
	t->hook_out = -1;
	t->w = xcalloc(TAMPER_MAX_WATCHES, sizeof(*t->w));
	t->window_start = mono();
	t->last_heal = -1e9;
	t->last_drain_rt = realtime();
	t->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (t->ino < 0) {
		slate_error_sys(err, errno, "inotify_init1");
		tamper_free(t);
		return NULL;
	}
	return t;
}

void tamper_free(struct tamper *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < TAMPER_GENS; i++)
		if (t->gens[i].id)
			tamper_unwatch(t, t->gens[i].id);
	for (size_t i = 0; i < t->nq; i++)
		free(t->queue[i]);
	for (int i = 0; i < TAMPER_RECENT; i++)
		free(t->recent[i]);
	for (int i = 0; i < TAMPER_CRASH_HELPERS; i++)
		free(t->crash_out[i]);
	if (t->hook_out >= 0)
		close(t->hook_out);
	if (t->ino >= 0)
		close(t->ino);
	free(t->w);
	free(t->on_tamper);
	free(t->app);
	free(t->dir);
	free(t->events);
	free(t->evidence);
	free(t);
}

void tamper_configure(struct tamper *t, json_t *options)
{
	const char *cmd = json_string_value(json_object_get(options, "on_tamper"));

	free(t->on_tamper);
	t->on_tamper = cmd && cmd[0] ? xstrdup(cmd) : NULL;
	t->heal = json_is_true(json_object_get(options, "heal"));
}

/* ---- events ---- */

/* Append one JSON line to events.jsonl (0600), rotating it to .1 before
 * it would pass TAMPER_EVENTS_MAX: at most twice that on disk. */
static void events_append(struct tamper *t, json_t *ev)
{
	cleanup_free char *line = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
	cleanup_free char *old = xasprintf("%s.1", t->events);
	cleanup_free char *full = NULL;
	struct stat st;
	int fd;

	if (line == NULL)
		return;
	full = xasprintf("%s\n", line);
	if (stat(t->events, &st) == 0 && (uint64_t)st.st_size + strlen(full) > TAMPER_EVENTS_MAX)
		(void)rename(t->events, old);
	fd = open(t->events, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	(void)!write(fd, full, strlen(full));
	close(fd);
}

static json_t *event_new(struct tamper *t, const char *kind, const struct tgen *g)
{
	char when[32];
	json_t *ev = json_object();

	utc_now(when);
	json_object_set_new(ev, "time", json_string(when));
	json_object_set_new(ev, "app", json_string(t->app));
	json_object_set_new(ev, "kind", json_string(kind));
	if (g) {
		json_object_set_new(ev, "release", json_integer(g->release));
		json_object_set_new(ev, "bundle", json_string(g->bundle));
		json_object_set_new(ev, "generation", json_integer(g->id));
	}
	return ev;
}

/* A notice (overflow, watch limit, suppressed events): the events file
 * and the log. */
static void notice(struct tamper *t, const struct tgen *g, const char *kind, const char *text)
{
	json_t *ev = event_new(t, kind, g);

	json_object_set_new(ev, "message", json_string(text));
	events_append(t, ev);
	json_decref(ev);
	if (t->log)
		logfile_note(t->log, "tamper: %s", text);
}

/* The count of what a window did not record one by one, once it ends. */
static void window_flush(struct tamper *t)
{
	if (mono() - t->window_start < TAMPER_WINDOW_SECONDS)
		return;
	if (t->suppressed) {
		cleanup_free char *msg =
			xasprintf("%u more tamper events in %d s were not recorded one by one (at most %d per window)",
				  t->suppressed, TAMPER_WINDOW_SECONDS, TAMPER_WINDOW_EVENTS);
		json_t *ev = event_new(t, "suppressed", NULL);
		json_object_set_new(ev, "count", json_integer(t->suppressed));
		json_object_set_new(ev, "message", json_string(msg));
		events_append(t, ev);
		json_decref(ev);
		if (t->log)
			logfile_note(t->log, "tamper: %s", msg);
		audit_log(t->ctx, "tamper", t->app, 0, NULL, msg);
	}
	t->window_start = mono();
	t->window_n = t->suppressed = 0;
}

/* Full records per window; beyond, a count. */
static bool window_admit(struct tamper *t)
{
	window_flush(t);
	if (t->window_n >= TAMPER_WINDOW_EVENTS) {
		t->suppressed++;
		return false;
	}
	t->window_n++;
	return true;
}

/* One event per generation, path and content: a file that raised an
 * event at its creation and again at its close with the same bytes is
 * recorded once. */
static bool seen_recently(struct tamper *t, unsigned gen, const char *path, const char *sha)
{
	cleanup_free char *key = xasprintf("%u:%s:%s", gen, sha, path);

	for (int i = 0; i < TAMPER_RECENT; i++)
		if (t->recent[i] && strcmp(t->recent[i], key) == 0)
			return true;
	free(t->recent[t->recent_next]);
	t->recent[t->recent_next] = steal_pointer(&key);
	t->recent_next = (t->recent_next + 1) % TAMPER_RECENT;
	return false;
}

/* ---- evidence ---- */

struct ev_file {
	char name[80];
	time_t mtime;
	off_t size;
};

static int ev_cmp(const void *a, const void *b)
{
	const struct ev_file *x = a, *y = b;

	return x->mtime != y->mtime ? (x->mtime < y->mtime ? -1 : 1) : strcmp(x->name, y->name);
}

/* Drop the oldest files of the evidence directory whose names start with
 * prefix until keep_files more fit (and add_bytes more, if max_bytes). */
static unsigned evidence_prune(struct tamper *t, int dfd, bool crash, size_t keep_files, uint64_t add_bytes,
			       uint64_t max_bytes)
{
	struct ev_file *v = NULL;
	size_t n = 0, cap = 0, first = 0;
	uint64_t total = 0;
	unsigned dropped = 0;
	int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct stat st;

	(void)t;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || (strncmp(de->d_name, "crash-", 6) == 0) != crash ||
		    strlen(de->d_name) >= sizeof(v->name) || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n == cap)
			v = xrealloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));
		memcpy(v[n].name, de->d_name, strlen(de->d_name) + 1); /* length checked above */
		v[n].mtime = st.st_mtime;
		v[n].size = st.st_size;
		total += (uint64_t)st.st_size;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), ev_cmp);
	while (first < n && (n - first + 1 > keep_files || (max_bytes && total + add_bytes > max_bytes))) {
		if (unlinkat(dfd, v[first].name, 0) == 0)
			dropped++;
		total -= (uint64_t)v[first].size;
		first++;
	}
	free(v);
	return dropped;
}

static int evidence_dir(struct tamper *t)
{
	if (mkdir(t->evidence, 0700) < 0 && errno != EEXIST)
		return -1;
	return open(t->evidence, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Keep the bytes as evidence/<sha256> (0600, content-addressed: the same
 * bytes are kept once), dropping the oldest files beyond the bounds. */
static bool evidence_save(struct tamper *t, const char *buf, size_t n, const char *sha)
{
	cleanup_close int dfd = evidence_dir(t);
	cleanup_free char *tmp = xasprintf(".tmp-%s", sha);
	cleanup_close int fd = -1;

	if (dfd < 0)
		return false;
	if (faccessat(dfd, sha, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return true;
	t->evidence_dropped +=
		evidence_prune(t, dfd, false, TAMPER_EVIDENCE_FILES, (uint64_t)n, (uint64_t)TAMPER_EVIDENCE_BYTES);
	(void)unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n || renameat(dfd, tmp, dfd, sha) < 0) {
		(void)unlinkat(dfd, tmp, 0);
		return false;
	}
	return true;
}

/* ---- the operator's hook: /bin/sh -c CMD outside the instance, the
 * event on its stdin, its output to the app's log; one at a time, killed
 * (with its process group) after TAMPER_HOOK_TIMEOUT seconds ---- */

static void hook_child(const char *cmd, int in, int out, const char *app) __attribute__((noreturn));
static void hook_child(const char *cmd, int in, int out, const char *app)
{
	cleanup_free char *env_app = xasprintf("SLATE_APP=%s", app);
	char *envp[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", env_app, NULL };
	sigset_t none;

	sigemptyset(&none);
	if (setsid() < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execle("/bin/sh", "sh", "-c", cmd, (char *)NULL, envp);
	_exit(127);
}

static void hook_start(struct tamper *t)
{
	cleanup_close int in = -1;
	int out[2] = { -1, -1 };
	char *line;
	pid_t pid;

	if (t->hook_pid > 0 || t->nq == 0)
		return;
	line = t->queue[0];
	memmove(t->queue, t->queue + 1, (--t->nq) * sizeof(char *));
	if (t->on_tamper == NULL)
		return free(line);
	in = memfd_create("slate-tamper-event", MFD_CLOEXEC);
	if (in < 0 || write(in, line, strlen(line)) != (ssize_t)strlen(line) || lseek(in, 0, SEEK_SET) < 0 ||
	    pipe2(out, O_CLOEXEC) < 0) {
		if (t->log)
			logfile_note(t->log, "tamper: cannot run the hook: %s", strerror(errno));
		return free(line);
	}
	free(line);
	pid = fork();
	if (pid == 0)
		hook_child(t->on_tamper, in, out[1], t->app);
	close(out[1]);
	if (pid < 0) {
		close(out[0]);
		if (t->log)
			logfile_note(t->log, "tamper: cannot run the hook: %s", strerror(errno));
		return;
	}
	if (t->hook_out >= 0)
		close(t->hook_out);
	(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	t->hook_out = out[0];
	t->hook_pid = pid;
	t->hook_deadline = mono() + TAMPER_HOOK_TIMEOUT;
}

static const char *hook_enqueue(struct tamper *t, const char *line)
{
	if (t->on_tamper == NULL)
		return "off";
	if (t->nq == TAMPER_HOOK_QUEUE)
		return "dropped: the hook's queue is full";
	t->queue[t->nq++] = xasprintf("%s\n", line);
	return "queued";
}

static void hook_output(struct tamper *t)
{
	char buf[4096];
	slate_error_t ignore = { 0 };
	ssize_t n = read(t->hook_out, buf, sizeof(buf));

	if (n > 0) {
		if (t->log)
			logfile_write(t->log, "hook", buf, (size_t)n, &ignore);
		return;
	}
	if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(t->hook_out);
		t->hook_out = -1;
	}
}

/* ---- a tamper event ---- */

struct found {
	const char *reason;
	char type;
	char *path; /* escaped, absolute in the instance */
	unsigned long long size;
	char sha[65];
	bool truncated, saved;
	char *target; /* symlinks, escaped */
};

static const char *heal_now(struct tamper *t, const struct tgen *g, char *buf, size_t len)
{
	slate_error_t e = { 0 };

	if (!t->heal)
		return "off";
	if (mono() - t->last_heal < TAMPER_HEAL_SECONDS)
		return "suppressed: at most one heal per 10 s";
	if (t->hooks.heal == NULL || t->hooks.heal(t->hooks.arg, g->id, &e) < 0) {
		snprintf(buf, len, "not started: %.200s", e.msg[0] ? e.msg : "no heal");
		return buf;
	}
	t->last_heal = mono();
	return "started";
}

static void record(struct tamper *t, struct tgen *g, struct found *f)
{
	char heal_buf[300];
	const char *heal = heal_now(t, g, heal_buf, sizeof(heal_buf)), *hook;
	json_t *ev = event_new(t, "tamper", g);
	cleanup_free char *line = NULL, *audit = NULL;

	json_object_set_new(ev, "reason", json_string(f->reason));
	json_object_set_new(ev, "path", json_string(f->path));
	json_object_set_new(ev, "type", json_string(f->type == 'f' ? "file" : f->type == 'l' ? "symlink" : "other"));
	if (f->type == 'f') {
		json_object_set_new(ev, "size", json_integer((json_int_t)f->size));
		json_object_set_new(ev, "sha256", json_string(f->sha));
		json_object_set_new(ev, "truncated", json_boolean(f->truncated));
		json_object_set_new(ev, "evidence",
				    f->saved ? json_sprintf("%s/%s", TAMPER_EVIDENCE_DIR, f->sha) : json_null());
	}
	if (f->target)
		json_object_set_new(ev, "target", json_string(f->target));
	if (t->evidence_dropped)
		json_object_set_new(ev, "evidence_dropped", json_integer(t->evidence_dropped));
	json_object_set_new(ev, "heal", json_string(heal));
	line = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
	hook = line ? hook_enqueue(t, line) : "off";
	json_object_set_new(ev, "hook", json_string(hook));
	events_append(t, ev);
	json_decref(ev);
	audit = xasprintf("%s %s%s%s heal=%s", f->reason, f->path, f->type == 'f' ? " sha256:" : "",
			  f->type == 'f' ? f->sha : "", heal);
	audit_log(t->ctx, "tamper", t->app, g->release, g->bundle, audit);
	if (t->log)
		logfile_note(t->log, "tamper: %s", audit);
	hook_start(t);
}

/* Read what the file holds now (at most TAMPER_EVIDENCE_FILE_MAX bytes,
 * one pass: the hash is of the bytes kept) and keep it. */
static void take_content(struct tamper *t, int fd, const struct stat *st, struct found *f)
{
	size_t cap = TAMPER_EVIDENCE_FILE_MAX, n = 0;
	cleanup_free char *buf = xmalloc(cap);
	ssize_t r;

	while (n < cap && (r = pread(fd, buf + n, cap - n, (off_t)n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n += (size_t)r;
	}
	f->size = (unsigned long long)st->st_size;
	f->truncated = (unsigned long long)n < f->size;
	slate_sha256_hex(buf, n, f->sha);
	f->saved = evidence_save(t, buf, n, f->sha);
}

/* A new or changed name in a watched directory: open it (never following
 * a link, never blocking on a fifo), classify, and raise if it could run. */
static void examine(struct tamper *t, struct tgen *g, int dirfd, const char *rel, const char *name)
{
	unsigned char head[TAMPER_HEAD];
	char target[PATH_MAX];
	cleanup_close int fd = -1;
	cleanup_free char *raw = NULL;
	struct found f = { 0 };
	struct stat st;
	ssize_t n = 0;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
		return; /* gone already (its new name raises its own event) */
	f.type = S_ISREG(st.st_mode) ? 'f' : S_ISLNK(st.st_mode) ? 'l' : 'o';
	if (f.type == 'f') {
		fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			return;
		n = pread(fd, head, sizeof(head), 0);
		if (n < 0)
			n = 0;
	}
	f.reason = tamper_classify(name, f.type, head, (size_t)n);
	if (f.reason == NULL)
		return;
	raw = rel[0] ? xasprintf("/%s/%s", rel, name) : xasprintf("/%s", name);
	f.path = slate_escape_name(raw, NULL);
	if (f.type == 'l') {
		ssize_t k = readlinkat(dirfd, name, target, sizeof(target) - 1);
		target[k > 0 ? k : 0] = '\0';
		f.target = slate_escape_name(target, NULL);
	}
	if (!window_admit(t)) {
		/* Not recorded one by one, but still healed (rate-limited too). */
		char buf[300];
		heal_now(t, g, buf, sizeof(buf));
	} else if (f.type == 'f') {
		take_content(t, fd, &st, &f);
		if (!seen_recently(t, g->id, f.path, f.sha))
			record(t, g, &f);
	} else if (!seen_recently(t, g->id, f.path, f.type == 'l' ? f.target : "")) {
		record(t, g, &f);
	}
	free(f.path);
	free(f.target);
}

/* ---- watching ---- */

static void watch_limit(struct tamper *t, struct tgen *g)
{
	if (g->overcap)
		return;
	g->overcap = true;
	g->next_rescan = mono() + TAMPER_RESCAN_SECONDS;
	cleanup_free char *msg = xasprintf(
		"more than %d directories (or deeper than %d): the rest is rescanned "
		"every %d s, not watched",
		TAMPER_MAX_WATCHES, TAMPER_DEPTH, TAMPER_RESCAN_SECONDS);
	notice(t, g, "watch-limit", msg);
}

struct scan {
	struct tamper *t;
	struct tgen *g;
	double since; /* examine names whose ctime is at or after (realtime); < 0: none */
	bool on_event; /* a directory created or moved in, not a rescan */
	size_t visited;
};

static void scan_dir(struct scan *s, int dirfd, const char *rel, int depth);

/* Watch directory dirfd (ours) at rel, if not yet watched and under the
 * cap; then visit it. */
static void watch_dir(struct scan *s, int dirfd, const char *rel, int depth)
{
	struct tamper *t = s->t;
	struct stat st;
	char proc[32];
	int wd;

	if (fstat(dirfd, &st) < 0)
		return (void)close(dirfd);
	for (size_t i = 0; i < t->nw; i++)
		if (t->w[i].gen == s->g->id && t->w[i].ino == st.st_ino) {
			/* Known (renamed, or a rescan): its name now. A rename
			 * moves nothing that was not examined already: no
			 * rescan, so renaming a big tree back and forth costs
			 * the monitor nothing. */
			if (strcmp(t->w[i].rel, rel) != 0) {
				free(t->w[i].rel);
				t->w[i].rel = xstrdup(rel);
			}
			if (!s->on_event)
				scan_dir(s, dirfd, rel, depth);
			return (void)close(dirfd);
		}
	if (t->nw == TAMPER_MAX_WATCHES) {
		watch_limit(t, s->g);
		scan_dir(s, dirfd, rel, depth);
		return (void)close(dirfd);
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
	wd = inotify_add_watch(t->ino, proc, WATCH_MASK);
	if (wd < 0) {
		if (t->log)
			logfile_note(t->log, "tamper: cannot watch a directory: %s", strerror(errno));
		scan_dir(s, dirfd, rel, depth);
		return (void)close(dirfd);
	}
	t->w[t->nw++] =
		(struct watch){ .wd = wd, .dirfd = dirfd, .gen = s->g->id, .ino = st.st_ino, .rel = xstrdup(rel) };
	scan_dir(s, dirfd, rel, depth);
}

/* Every entry of a directory: subdirectories watched (and visited), the
 * other names examined if they changed since s->since. Bounded in depth
 * and in entries. */
static void scan_dir(struct scan *s, int dirfd, const char *rel, int depth)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct stat st;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL && s->visited < TAMPER_SCAN_MAX) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		s->visited++;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			cleanup_free char *sub = rel[0] ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
			int sfd = depth < TAMPER_DEPTH
					  ? openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
					  : -1;
			if (sfd >= 0)
				watch_dir(s, sfd, sub, depth + 1);
			else if (depth >= TAMPER_DEPTH)
				watch_limit(s->t, s->g);
		} else if (s->since >= 0 && (double)st.st_ctim.tv_sec + (double)st.st_ctim.tv_nsec / 1e9 >= s->since) {
			examine(s->t, s->g, dirfd, rel, de->d_name);
		}
	}
	closedir(d);
}

static void rescan(struct tamper *t, struct tgen *g, double since)
{
	struct scan s = { .t = t, .g = g, .since = since };
	double started = realtime();
	int fd = openat(g->upper, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		watch_dir(&s, fd, "", 0);
	g->last_scan = started;
}

int tamper_watch(struct tamper *t, unsigned gen, int scratch_fd, long long release, const char *bundle,
		 slate_error_t *err)
{
	struct tgen *g = gen_find(t, 0);

	for (int i = 0; i < TAMPER_GENS && g == NULL; i++)
		if (t->gens[i].id == 0)
			g = &t->gens[i];
	if (g == NULL)
		return slate_error_fail(err, "too many generations to watch");
	*g = (struct tgen){ .id = gen, .release = release };
	snprintf(g->bundle, sizeof(g->bundle), "%s", bundle);
	g->upper = openat(scratch_fd, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (g->upper < 0) {
		g->id = 0;
		return slate_error_sys(err, errno, "open the instance's upper layer");
	}
	/* What is there at the start came from slate (the copied-up writable
	 * trees): watched, not examined. */
	rescan(t, g, -1);
	return 0;
}

void tamper_unwatch(struct tamper *t, unsigned gen)
{
	struct tgen *g = gen_find(t, gen);

	for (size_t i = 0; i < t->nw;) {
		if (t->w[i].gen == gen) {
			(void)inotify_rm_watch(t->ino, t->w[i].wd);
			watch_drop(t, i);
		} else {
			i++;
		}
	}
	if (g) {
		close(g->upper);
		g->id = 0;
	}
}

/* ---- the inotify queue ---- */

static void on_event(struct tamper *t, const struct inotify_event *ev)
{
	struct watch *w;
	struct tgen *g;

	if (ev->mask & IN_Q_OVERFLOW) {
		for (int i = 0; i < TAMPER_GENS; i++)
			if (t->gens[i].id) {
				notice(t, &t->gens[i], "overflow", "the watch queue overflowed: rescanning");
				rescan(t, &t->gens[i], t->last_drain_rt - 1);
			}
		return;
	}
	w = watch_find(t, ev->wd);
	if (w == NULL)
		return;
	if (ev->mask & IN_IGNORED)
		return watch_drop(t, (size_t)(w - t->w));
	g = gen_find(t, w->gen);
	if (g == NULL || ev->len == 0)
		return;
	if (ev->mask & IN_ISDIR) {
		cleanup_free char *sub = w->rel[0] ? xasprintf("%s/%s", w->rel, ev->name) : xstrdup(ev->name);
		struct scan s = { .t = t, .g = g, .since = 0, .on_event = true };
		int fd = openat(w->dirfd, ev->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* A new directory: watch it, and look at what it already holds
		 * (written before the watch existed). */
		int depth = 1;
		for (const char *c = sub; *c; c++)
			depth += *c == '/';
		if (fd >= 0)
			watch_dir(&s, fd, sub, depth);
		return;
	}
	examine(t, g, w->dirfd, w->rel, ev->name);
}

static void drain(struct tamper *t)
{
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));

	/* A bounded number of reads per round: the loop stays responsive
	 * under a flood; the rest waits in the queue (or overflows, and is
	 * rescanned). */
	for (int round = 0; round < 8; round++) {
		double started = realtime();
		ssize_t n = read(t->ino, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			on_event(t, ev);
			p += sizeof(*ev) + ev->len;
		}
		t->last_drain_rt = started;
	}
}

int *tamper_fd(struct tamper *t, size_t i)
{
	return i == 0 ? &t->ino : i == 1 ? &t->hook_out : NULL;
}

void tamper_dispatch(struct tamper *t, size_t i)
{
	if (i == 0)
		drain(t);
	else if (i == 1)
		hook_output(t);
}

void tamper_tick(struct tamper *t)
{
	if (t->hook_pid > 0 && mono() > t->hook_deadline) {
		kill(-t->hook_pid, SIGKILL);
		kill(t->hook_pid, SIGKILL);
		if (t->log)
			logfile_note(t->log, "tamper: the hook ran longer than %d s: killed", TAMPER_HOOK_TIMEOUT);
		t->hook_deadline = mono() + 3600;
	}
	for (int i = 0; i < TAMPER_GENS; i++) {
		struct tgen *g = &t->gens[i];
		if (g->id && g->overcap && mono() >= g->next_rescan) {
			g->next_rescan = mono() + TAMPER_RESCAN_SECONDS;
			rescan(t, g, g->last_scan - 1);
		}
	}
	window_flush(t);
}

bool tamper_reaped(struct tamper *t, pid_t pid, int status)
{
	if (pid == t->hook_pid) {
		if (t->log)
			logfile_note(t->log, "tamper: the hook exited with status %d",
				     WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		while (t->hook_out >= 0) {
			char buf[4096];
			slate_error_t ignore = { 0 };
			ssize_t n = read(t->hook_out, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (t->log)
				logfile_write(t->log, "hook", buf, (size_t)n, &ignore);
		}
		t->hook_pid = 0;
		hook_start(t);
		return true;
	}
	for (int i = 0; i < TAMPER_CRASH_HELPERS; i++) {
		if (t->crash_pid[i] != pid || pid <= 0)
			continue;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			cleanup_free char *msg =
				xasprintf("the evidence of a crash was not saved (`%s`: status %d)", t->crash_out[i],
					  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			notice(t, NULL, "crash-evidence-failed", msg);
		}
		t->crash_pid[i] = 0;
		free(t->crash_out[i]);
		t->crash_out[i] = NULL;
		return true;
	}
	return false;
}

/* ---- a crashed generation ---- */

/* `slate`, beside this slate-monitor. */
static char *slate_exe(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	cleanup_free char *dir = NULL;

	if (n < 0)
		return NULL;
	self[n] = '\0';
	dir = slate_path_parent(self);
	return xasprintf("%s/slate", dir);
}

/* The helper keeps the dead generation's tmpfs alive through the fd it
 * holds, so the restart need not wait for the copy: what is saved is
 * exactly what the crashed instance left (nothing writes there any more). */
void tamper_crash(struct tamper *t, unsigned gen, int scratch_fd, long long release, const char *bundle)
{
	cleanup_free char *exe = slate_exe(), *name = NULL, *out = NULL, *max = NULL;
	cleanup_close int dfd = evidence_dir(t);
	struct tgen g = { .id = gen, .release = release };
	char when[32];
	int slot = -1;
	json_t *ev;
	pid_t pid;

	for (int i = 0; i < TAMPER_CRASH_HELPERS && slot < 0; i++)
		if (t->crash_pid[i] == 0)
			slot = i;
	utc_now(when);
	for (char *c = when; *c; c++)
		if (*c == ':')
			*c = '-';
	name = xasprintf("crash-%s-r%lld-g%u.tar", when, release, gen);
	out = xasprintf("%s/%s", t->evidence, name);
	snprintf(g.bundle, sizeof(g.bundle), "%s", bundle);
	ev = event_new(t, "crash", &g);
	if (exe == NULL || dfd < 0 || slot < 0 || scratch_fd < 0) {
		json_object_set_new(ev, "evidence", json_null());
		json_object_set_new(ev, "message",
				    json_string(slot < 0 ? "evidence skipped: savers still busy"
							 : "evidence skipped: no evidence directory"));
		goto out;
	}
	evidence_prune(t, dfd, true, TAMPER_CRASH_TARS, 0, 0);
	max = xasprintf("%u", TAMPER_CRASH_TAR_MAX);
	pid = fork();
	if (pid == 0) {
		sigset_t none;
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
		    (scratch_fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(scratch_fd, 3)) < 0)
			_exit(127);
		execl(exe, "slate", "--root", t->ctx->root, "--run-dir", t->ctx->run_dir, "save-upper", "--fd", "3",
		      "--max", max, bundle, out, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		json_object_set_new(ev, "evidence", json_null());
		json_object_set_new(ev, "message", json_string("evidence skipped: fork failed"));
		goto out;
	}
	t->crash_pid[slot] = pid;
	t->crash_out[slot] = xstrdup(name);
	json_object_set_new(ev, "evidence", json_sprintf("%s/%s", TAMPER_EVIDENCE_DIR, name));
out:
	events_append(t, ev);
	json_decref(ev);
	if (t->log)
		logfile_note(t->log, "crash: what the instance wrote is kept as %s/%s", TAMPER_EVIDENCE_DIR,
			     slot >= 0 ? name : "(nothing: savers busy)");
}
