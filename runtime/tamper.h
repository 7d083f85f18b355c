/* slate: the tamper alarm, run by an app's monitor.
 *
 * Threat: an attacker who can write to an instance's writable paths (a
 * file upload bug, a vulnerable plugin) drops something that executes or
 * changes execution: a webshell (`x.php`, or `x.txt` starting with
 * `<?php` for an include), an `.htaccess` or `.user.ini`, an ELF or a
 * script. Such a write raises a tamper event at once: a line in the app's
 * log and in the audit log, a JSON line in the app's events file, a copy
 * of the file with its SHA-256 under the app's evidence directory, the
 * event as JSON on the stdin of the operator's hook (--on-tamper), and with
 * --heal a fresh generation of the current release right away.
 *
 * The monitor watches each generation's overlay upper (its tmpfs, reached
 * through the fd the instance hands over) with ONE inotify instance for
 * all of them (they are charged to host root): a watch per directory, new
 * directories watched as they appear, a queue overflow answered by a
 * rescan, at most TAMPER_MAX_WATCHES watches per app (beyond: a periodic
 * rescan, and an event saying so).
 *
 * Everything in the upper is the attacker's: names (printed escaped),
 * sizes, types, and timing (a rename after create). Files are opened
 * O_NOFOLLOW | O_NONBLOCK relative to a directory fd in the upper, read at
 * most TAMPER_EVIDENCE_FILE_MAX bytes; the events, the evidence, the hook
 * and the heals are all bounded and rate-limited, so a flood of files
 * costs the host a bounded amount of disk and keeps the monitor serving. */
#ifndef SLATE_RUNTIME_TAMPER_H
#define SLATE_RUNTIME_TAMPER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "commands.h"
#include "logfile.h"

#define TAMPER_HEAD 8192 /* bytes searched for `<?php` / `<?=` */
#define TAMPER_EVIDENCE_FILE_MAX (1u << 20)
#define TAMPER_EVIDENCE_FILES 64
#define TAMPER_EVIDENCE_BYTES (16u << 20)
#define TAMPER_CRASH_TARS 4
#define TAMPER_CRASH_TAR_MAX (32u << 20) /* bytes of files in one crash tar */
#define TAMPER_EVENTS_MAX (1u << 20) /* events.jsonl, then rotated to .1 */
#define TAMPER_WINDOW_SECONDS 10
#define TAMPER_WINDOW_EVENTS 50 /* recorded in full per window; the rest counted */
#define TAMPER_MAX_WATCHES 1024
/* Deepest directory watched or scanned (a walk holds an fd per level). */
#define TAMPER_DEPTH 64
#define TAMPER_RESCAN_SECONDS 5
#define TAMPER_SCAN_MAX 100000 /* entries visited by one rescan */
#define TAMPER_HEAL_SECONDS 10
#define TAMPER_HOOK_TIMEOUT 10
#define TAMPER_HOOK_QUEUE 16

/* What makes a new or changed file a tamper event, or NULL for none: its
 * name (".php" and PHP's other handler extensions in any case,
 * ".htaccess", ".user.ini") or its first bytes ("<?php" or "<?=" within
 * them, or "#!" or "\x7fELF" at the start). type: 'f' file (head holds
 * its first n bytes), 'l' symlink, 'd' directory, 'o' other (name only). */
const char *tamper_classify(const char *name, char type, const unsigned char *head, size_t n);

struct tamper;

struct tamper_hooks {
	/* Start a fresh generation of the current release, switching to it
	 * as a redeploy does; 0 when started. */
	int (*heal)(void *arg, unsigned gen, slate_error_t *err);
	void *arg;
};

struct tamper *tamper_new(const struct slate_ctx *ctx, const char *app, const char *app_dir, struct logfile *log,
			  const struct tamper_hooks *hooks, slate_error_t *err);
void tamper_free(struct tamper *t);
/* The app's options (json "on_tamper", "heal") as they are now. */
void tamper_configure(struct tamper *t, json_t *options);
/* Watch generation gen's upper (scratch_fd: its tmpfs, upper/ inside). */
int tamper_watch(struct tamper *t, unsigned gen, int scratch_fd, long long release, const char *bundle,
		 slate_error_t *err);
void tamper_unwatch(struct tamper *t, unsigned gen);
/* Before an automatic restart: keep what the crashed generation wrote
 * (diff --save, by `slate` in a child holding the tmpfs) under evidence/. */
void tamper_crash(struct tamper *t, unsigned gen, int scratch_fd, long long release, const char *bundle);

/* The poll loop: fds to watch for POLLIN (i = 0..TAMPER_NFDS-1, -1 when
 * none), what to do when one is ready, the timers, and the children. */
#define TAMPER_NFDS 2
int *tamper_fd(struct tamper *t, size_t i);
void tamper_dispatch(struct tamper *t, size_t i);
void tamper_tick(struct tamper *t);
bool tamper_reaped(struct tamper *t, pid_t pid, int status);

/* For `slate events`: the files, oldest first. */
#define TAMPER_EVENTS_FILE "events.jsonl"
#define TAMPER_EVIDENCE_DIR "evidence"

#endif
