/* slate events: an app's tamper events (see tamper.h), and save-upper, the
 * monitor's helper that keeps what a crashed instance wrote. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "diff.h"
#include "store.h"
#include "tamper.h"

static const char events_usage[] = "slate [--root DIR] events [-f] [--json] APP";
static const char events_help[] =
	"usage: slate [--root DIR] events [-f] [--json] APP\n\n"
	"The app's tamper events, oldest first: a file that could execute or change\n"
	"execution written by its instance (kind tamper: reason, path, sha256, the\n"
	"evidence kept), what a crashed instance wrote (crash), and the alarm's own\n"
	"notices (overflow, watch-limit, suppressed). -f keeps printing new events;\n"
	"--json prints each as one JSON object per line (see docs/SECURITY.md).\n";

#define EVENT_LINE_MAX 65536

static volatile sig_atomic_t events_stop;

static void events_on_signal(int sig)
{
	(void)sig;
	events_stop = 1;
}

/* The events file is the monitor's (root's), its strings already escaped;
 * printed text still never carries a control byte to the terminal. */
/* A field of an event, as the one escaper shows it ("-" when absent). */
static void put_text(const char *s, FILE *out)
{
	slate_fputs_escaped(s ? s : "-", out);
}

static void print_event(const char *line, bool as_json, FILE *out)
{
	json_t *ev = json_loads(line, 0, NULL);
	const char *kind, *sha;

	if (ev == NULL)
		return;
	if (as_json) {
		char *s = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		if (s)
			fprintf(out, "%s\n", s);
		free(s);
		json_decref(ev);
		return;
	}
	kind = json_string_value(json_object_get(ev, "kind"));
	put_text(json_string_value(json_object_get(ev, "time")), out);
	fputs("  ", out);
	put_text(kind, out);
	fputs("  ", out);
	if (kind && strcmp(kind, "tamper") == 0) {
		put_text(json_string_value(json_object_get(ev, "reason")), out);
		fputs("  ", out);
		put_text(json_string_value(json_object_get(ev, "path")), out);
		sha = json_string_value(json_object_get(ev, "sha256"));
		if (sha) {
			fputs("  sha256:", out);
			put_text(sha, out);
		}
		fputs("  heal=", out);
		put_text(json_string_value(json_object_get(ev, "heal")), out);
	} else if (json_object_get(ev, "evidence")) {
		put_text(json_string_value(json_object_get(ev, "evidence")), out);
	} else {
		put_text(json_string_value(json_object_get(ev, "message")), out);
	}
	fputc('\n', out);
	json_decref(ev);
}

struct reader {
	char buf[EVENT_LINE_MAX];
	size_t used;
};

/* Print the complete lines read from fd; a partial line waits for the rest. */
static void print_from(int fd, struct reader *r, bool as_json)
{
	ssize_t n;

	while ((n = read(fd, r->buf + r->used, sizeof(r->buf) - 1 - r->used)) > 0) {
		char *start = r->buf, *nl;
		r->used += (size_t)n;
		r->buf[r->used] = '\0';
		while ((nl = memchr(start, '\n', r->used - (size_t)(start - r->buf))) != NULL) {
			*nl = '\0';
			print_event(start, as_json, stdout);
			start = nl + 1;
		}
		r->used -= (size_t)(start - r->buf);
		memmove(r->buf, start, r->used);
		if (r->used == sizeof(r->buf) - 1)
			r->used = 0; /* not a line of ours: dropped */
	}
	fflush(stdout);
}

static int open_events(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 && fstat(fd, st) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int show_events(const char *dir, bool follow, bool as_json)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, TAMPER_EVENTS_FILE);
	cleanup_free char *old = xasprintf("%s.1", path);
	struct reader *r = xcalloc(1, sizeof(*r));
	struct stat st, now;
	int fd = open_events(old, &st);

	if (fd >= 0) {
		print_from(fd, r, as_json);
		close(fd);
	}
	r->used = 0;
	fd = open_events(path, &st);
	if (fd >= 0)
		print_from(fd, r, as_json);
	while (follow && !events_stop) {
		usleep(100000);
		if (fd >= 0)
			print_from(fd, r, as_json);
		/* Rotated (or created): the rest of the old file, then the new one. */
		if (stat(path, &now) == 0 && (fd < 0 || now.st_ino != st.st_ino)) {
			if (fd >= 0)
				close(fd);
			r->used = 0;
			fd = open_events(path, &st);
			if (fd >= 0)
				print_from(fd, r, as_json);
		}
	}
	if (fd >= 0)
		close(fd);
	free(r);
	return 0;
}

int cmd_events(struct slate_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "follow", no_argument, NULL, 'f' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	slate_error_t err = { 0 };
	struct app_paths p;
	bool follow = false, as_json = false;
	int c;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		if (c == 'h')
			return fputs(events_help, stdout), 0;
		if (c == 'f')
			follow = true;
		else if (c == 'j')
			as_json = true;
		else
			return usage_error(events_usage, "events: bad option `%s`", argv[optind - 1]);
	}
	if (optind + 1 != argc || app_check_name(argv[optind], &err) < 0)
		return usage_error(events_usage, "events: needs APP");
	app_paths(ctx, argv[optind], &p);
	if (!app_exists(&p)) {
		app_paths_free(&p);
		slate_error_refuse(&err, "no app `%s`", argv[optind]);
		return report(&err);
	}
	signal(SIGINT, events_on_signal);
	signal(SIGTERM, events_on_signal);
	show_events(p.dir, follow, as_json);
	app_paths_free(&p);
	return 0;
}

/* ---- save-upper: run by the monitor when an instance crashed ---- */

static const char save_usage[] = "slate [--root DIR] save-upper --fd N --max BYTES BUNDLE OUT.tar";

/* The added and changed entries, files while their bytes fit in max. */
static void bounded(const struct diff_result *d, uint64_t max, struct diff_result *out)
{
	uint64_t total = 0;

	out->v = xcalloc(d->n + 1, sizeof(*out->v));
	out->n = 0;
	for (size_t i = 0; i < d->n; i++) {
		const struct diff_entry *e = &d->v[i];
		if (e->type == 'f' && e->kind != DIFF_DELETED) {
			if (e->size > max - total)
				continue;
			total += e->size;
		}
		out->v[out->n++] = *e;
	}
}

/* The fd is the dead instance's tmpfs, inherited from the monitor: its
 * upper is diffed against the signed manifest and kept as a tar, as
 * `slate diff --save` does, with at most max bytes of file content. */
int cmd_save_upper(struct slate_ctx *ctx, int argc, char **argv)
{
	struct slate_stored s = { 0 };
	struct diff_result d = { 0 }, kept = { 0 };
	slate_error_t err = { 0 };
	uint64_t fd = 0, max = 0;
	cleanup_close int upper = -1;
	int code = 0;

	if (argc != 7 || strcmp(argv[1], "--fd") != 0 || strcmp(argv[3], "--max") != 0 ||
	    slate_parse_u64(argv[2], &fd, &err) < 0 || slate_parse_u64(argv[4], &max, &err) < 0 || fd > 1024)
		return usage_error(save_usage, "save-upper: bad arguments");
	if (slate_store_load_full(ctx->root, argv[5], &s, &err) < 0)
		goto fail;
	upper = openat((int)fd, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (upper < 0) {
		slate_error_sys(&err, errno, "open the instance's upper layer");
		goto fail;
	}
	if (diff_upper(upper, &s.m, &d, &err) < 0)
		goto fail;
	bounded(&d, max, &kept);
	if (diff_save_tar(upper, &kept, argv[6], &err) < 0)
		goto fail;
	goto out;
fail:
	code = report(&err);
out:
	free(kept.v);
	diff_result_free(&d);
	slate_stored_free(&s);
	return code;
}
