/* Unit tests for runtime/logfile.c: timestamped lines, partial lines,
 * the 16 KiB cut, escaping, rotation, `logs -n` across rotated files, and
 * `logs -f` following a writer in a child process through rotations until
 * it closes the log, or until the stop flag. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "slate/util.h"
#include "logfile.h"

#define STAMP_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

struct fixture {
	char dir[64];
	char *logs;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/slate-test-logfile-XXXXXX");
	*state = f;
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->logs = xasprintf("%s/logs", f->dir);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rm_tree(f->dir);
	free(f->logs);
	free(f);
	return 0;
}

static struct logfile *open_log(struct fixture *f, uint64_t max, int keep)
{
	slate_error_t err = { 0 };
	struct logfile *l = logfile_open(f->logs, max, keep, &err);

	if (l == NULL)
		fail_msg("logfile_open: %s", err.msg);
	return l;
}

static void put(struct logfile *l, const char *stream, const char *data, size_t len)
{
	slate_error_t err = { 0 };

	if (logfile_write(l, stream, data, len, &err) < 0)
		fail_msg("logfile_write: %s", err.msg);
}

static void puts_log(struct logfile *l, const char *stream, const char *s)
{
	put(l, stream, s, strlen(s));
}

static char *read_log(struct fixture *f, const char *name)
{
	cleanup_free char *path = xasprintf("%s/%s", f->logs, name);
	slate_error_t err = { 0 };
	char *s = slate_read_file(path, 1 << 26, NULL, &err);

	if (s == NULL)
		fail_msg("read %s: %s", name, err.msg);
	return s;
}

/* The text of each line (after "STAMP "), one string each. */
static size_t split_lines(char *s, char **v, size_t max)
{
	regex_t re;
	size_t n = 0;

	assert_int_equal(regcomp(&re, "^" STAMP_RE " ", REG_EXTENDED | REG_NOSUB), 0);
	for (char *line = s; *line;) {
		char *nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		if (regexec(&re, line, 0, NULL, 0) != 0)
			fail_msg("line without a timestamp: `%.80s`", line);
		assert_true(n < max);
		v[n++] = line + 25;
		line = nl + 1;
	}
	regfree(&re);
	return n;
}

static void test_lines_with_timestamps(void **state)
{
	struct fixture *f = *state;
	struct logfile *l = open_log(f, 0, 3);
	cleanup_free char *s = NULL;
	char *v[16];
	struct stat st;
	time_t now = time(NULL);
	struct tm tm;
	char year[8];

	puts_log(l, "out", "hello\nworld\n");
	puts_log(l, "err", "oops\n");
	assert_int_equal(logfile_note(l, "restart %d after %s", 3, "exit 1"), 0);
	logfile_close(l);
	s = read_log(f, "current.log");
	assert_int_equal(split_lines(s, v, 16), 4);
	assert_string_equal(v[0], "out hello");
	assert_string_equal(v[1], "out world");
	assert_string_equal(v[2], "err oops");
	assert_string_equal(v[3], "slate restart 3 after exit 1");
	/* UTC, now. */
	gmtime_r(&now, &tm);
	strftime(year, sizeof(year), "%Y", &tm);
	assert_memory_equal(s, year, 4);
	assert_int_equal(stat(f->logs, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_partial_lines_joined(void **state)
{
	struct fixture *f = *state;
	struct logfile *l = open_log(f, 0, 3);
	cleanup_free char *s = NULL;
	char *v[16];

	puts_log(l, "out", "par");
	puts_log(l, "err", "interleaved\n");
	puts_log(l, "out", "ti");
	puts_log(l, "out", "al\nnext");
	puts_log(l, "out", " line\r\n");
	/* Written only once complete. */
	s = read_log(f, "current.log");
	assert_int_equal(split_lines(s, v, 16), 3);
	assert_string_equal(v[0], "err interleaved");
	assert_string_equal(v[1], "out partial");
	assert_string_equal(v[2], "out next line");
	free(s);
	/* A partial line left at close is written. */
	puts_log(l, "err", "no newline");
	logfile_close(l);
	s = read_log(f, "current.log");
	assert_int_equal(split_lines(s, v, 16), 4);
	assert_string_equal(v[3], "err no newline");
}

static void test_long_line_cut_at_16k(void **state)
{
	struct fixture *f = *state;
	struct logfile *l = open_log(f, 0, 3);
	cleanup_free char *big = xmalloc(20 * 1024);
	cleanup_free char *s = NULL;
	char *v[8];

	memset(big, 'x', 20 * 1024);
	put(l, "out", big, 20 * 1024);
	/* The first 16 KiB went out as soon as more came, without waiting for a newline. */
	s = read_log(f, "current.log");
	assert_int_equal(split_lines(s, v, 8), 1);
	assert_int_equal(strlen(v[0]), 4 + LOGFILE_LINE_MAX);
	free(s);
	puts_log(l, "out", "\n");
	/* A line of exactly 16 KiB and its newline: one line, not two. */
	put(l, "out", big, LOGFILE_LINE_MAX);
	puts_log(l, "out", "\n");
	logfile_close(l);
	s = read_log(f, "current.log");
	assert_int_equal(split_lines(s, v, 8), 3);
	assert_int_equal(strlen(v[1]), 4 + 20 * 1024 - LOGFILE_LINE_MAX);
	assert_int_equal(strlen(v[2]), 4 + LOGFILE_LINE_MAX);
}

static void test_control_bytes_escaped(void **state)
{
	struct fixture *f = *state;
	struct logfile *l = open_log(f, 0, 3);
	cleanup_free char *s = NULL;
	char *v[8];

	puts_log(l, "out",
		 "a\x1b[2Jb\tc\x7f\rd \xc2\x9b"
		 "31m caf\xc3\xa9\r\n");
	put(l, "err", "nul\0byte\n", 9);
	logfile_close(l);
	s = read_log(f, "current.log");
	assert_int_equal(split_lines(s, v, 8), 2);
	assert_string_equal(v[0], "out a\\x1b[2Jb\tc\\x7f\\x0dd \\xc2\\x9b31m caf\xc3\xa9");
	assert_string_equal(v[1], "err nul\\x00byte");
}

static void test_refuses_symlink_and_bad_stream(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *cur = xasprintf("%s/current.log", f->logs);
	cleanup_free char *target = xasprintf("%s/elsewhere", f->dir);
	slate_error_t err = { 0 };
	struct logfile *l;
	struct stat st;

	assert_int_equal(mkdir(f->logs, 0700), 0);
	assert_int_equal(symlink(target, cur), 0);
	assert_null(logfile_open(f->logs, 0, 3, &err));
	assert_int_equal(err.errnum, ELOOP);
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(unlink(cur), 0);
	assert_int_equal(mkfifo(cur, 0600), 0);
	/* Neither hangs nor writes into a fifo. */
	memset(&err, 0, sizeof(err));
	assert_null(logfile_open(f->logs, 0, 3, &err));
	assert_true(err.errnum == ENXIO || err.kind == SLATE_EXIT_REFUSED);
	assert_int_equal(unlink(cur), 0);
	l = open_log(f, 0, 3);
	memset(&err, 0, sizeof(err));
	assert_int_equal(logfile_write(l, "", "x\n", 2, &err), -1);
	assert_int_equal(err.kind, SLATE_EXIT_USAGE);
	logfile_close(l);
	memset(&err, 0, sizeof(err));
	assert_null(logfile_open(f->logs, 0, -1, &err));
}

/* Lines "line 0000" ...: 39 bytes each with the stamp and stream. */
static void write_numbered(struct logfile *l, int from, int to)
{
	for (int i = from; i < to; i++) {
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "line %04d\n", i);
		put(l, "out", buf, (size_t)n);
	}
}

static bool exists(struct fixture *f, const char *name)
{
	cleanup_free char *p = xasprintf("%s/%s", f->logs, name);
	struct stat st;

	return lstat(p, &st) == 0;
}

static int numbered(const char *text)
{
	int i = -1;

	if (sscanf(text, "out line %d", &i) != 1)
		fail_msg("not a numbered line: `%s`", text);
	return i;
}

static void test_rotation_keeps_files(void **state)
{
	struct fixture *f = *state;
	struct logfile *l = open_log(f, 1000, 2);
	const char *names[] = { "current.log.2", "current.log.1", "current.log" };
	int next = -1;

	write_numbered(l, 0, 200); /* 7800 bytes: rotates 7 times */
	logfile_close(l);
	assert_true(exists(f, "current.log.2"));
	assert_false(exists(f, "current.log.3"));
	/* Each file at most max_bytes; together the newest lines, in order, no gap. */
	for (size_t k = 0; k < 3; k++) {
		cleanup_free char *s = read_log(f, names[k]);
		char *v[64];
		size_t n;
		assert_true(strlen(s) <= 1000);
		n = split_lines(s, v, 64);
		assert_true(n > 0);
		for (size_t i = 0; i < n; i++) {
			int got = numbered(v[i]);
			if (next >= 0)
				assert_int_equal(got, next);
			next = got + 1;
		}
	}
	assert_int_equal(next, 200);
	/* A smaller keep later: the surplus goes at the next rotation. */
	l = open_log(f, 1000, 1);
	write_numbered(l, 200, 230);
	logfile_close(l);
	assert_true(exists(f, "current.log.1"));
	assert_false(exists(f, "current.log.2"));
}

static char *tail(struct fixture *f, long n)
{
	slate_error_t err = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	if (logfile_tail(f->logs, n, false, NULL, out, &err) < 0)
		fail_msg("logfile_tail: %s", err.msg);
	assert_int_equal(fclose(out), 0);
	return buf;
}

static void check_numbered(char *s, int from, int to)
{
	char *v[512];
	size_t n = split_lines(s, v, 512);

	if (n != (size_t)(to - from))
		for (size_t i = 0; i < n; i++)
			print_message("# got %s\n", v[i]);
	assert_int_equal(n, (size_t)(to - from));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(numbered(v[i]), from + (int)i);
}

static void test_tail_across_rotated_files(void **state)
{
	struct fixture *f = *state;
	struct logfile *l = open_log(f, 1000, 3);
	char *s;

	write_numbered(l, 0, 100); /* 25 lines per file */
	/* The last 40 span current.log and current.log.1 */
	s = tail(f, 40);
	check_numbered(s, 60, 100);
	free(s);
	s = tail(f, 3);
	check_numbered(s, 97, 100);
	free(s);
	s = tail(f, 0);
	assert_string_equal(s, "");
	free(s);
	/* Everything kept: current.log and three rotated files. */
	s = tail(f, -1);
	{
		char *v[512];
		size_t n = split_lines(s, v, 512);
		assert_true(n > 60 && n <= 100);
		assert_int_equal(numbered(v[n - 1]), 99);
		assert_int_equal(numbered(v[0]), 100 - (int)n);
	}
	free(s);
	s = tail(f, 1000);
	assert_true(strlen(s) > 0);
	free(s);
	logfile_close(l);
}

static void test_tail_without_logs(void **state)
{
	struct fixture *f = *state;
	slate_error_t err = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_int_equal(logfile_tail(f->logs, 10, false, NULL, out, &err), -1);
	assert_int_equal(err.errnum, ENOENT);
	fclose(out);
	free(buf);
}

/* ---- follow ---- */

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The writer: a child that logs, rotates (sometimes twice between two
 * polls of the reader), and closes the log. */
static void writer_child(struct fixture *f, int ready)
{
	/* About 25 lines fill a file; 80 at once rotate three times. */
	static const struct {
		int from, to;
		long pause_ms;
	} batches[] = { { 10, 20, 30 },   { 20, 30, 170 },  { 30, 40, 30 },
			{ 40, 120, 170 }, { 120, 130, 30 }, { 130, 150, 170 } };
	slate_error_t err = { 0 };
	struct logfile *l = logfile_open(f->logs, 1000, 8, &err);
	char buf[32];

	if (l == NULL)
		_exit(1);
	for (int i = 0; i < 10; i++) {
		int n = snprintf(buf, sizeof(buf), "line %04d\n", i);
		if (logfile_write(l, "out", buf, (size_t)n, &err) < 0)
			_exit(1);
	}
	if (write(ready, "x", 1) != 1)
		_exit(1);
	close(ready);
	for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		sleep_ms(batches[b].pause_ms);
		for (int i = batches[b].from; i < batches[b].to; i++) {
			int n = snprintf(buf, sizeof(buf), "line %04d\n", i);
			if (logfile_write(l, "out", buf, (size_t)n, &err) < 0)
				_exit(1);
		}
	}
	sleep_ms(150);
	logfile_close(l);
	_exit(0);
}

static void test_follow_until_writer_gone(void **state)
{
	struct fixture *f = *state;
	slate_error_t err = { 0 };
	char *buf = NULL, c;
	size_t len = 0;
	FILE *out;
	int pfd[2], status = 0;
	struct timespec t0, t1;
	pid_t pid;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		alarm(10);
		writer_child(f, pfd[1]);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	out = open_memstream(&buf, &len);
	assert_non_null(out);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	alarm(20);
	if (logfile_tail(f->logs, -1, true, NULL, out, &err) < 0)
		fail_msg("logfile_tail: %s", err.msg);
	alarm(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(fclose(out), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Every line, once, in order: those before (however late the reader
	 * starts, none has rotated away: keep 8), then those after, across
	 * the writer's rotations. */
	check_numbered(buf, 0, 150);
	assert_true(t1.tv_sec - t0.tv_sec < 10);
	free(buf);
}

static volatile int stop_flag;

static void on_alarm(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void test_follow_until_stop(void **state)
{
	struct fixture *f = *state;
	struct itimerval it = { .it_value = { .tv_sec = 0, .tv_usec = 300000 } };
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct logfile *l = open_log(f, 0, 3); /* the writer stays */
	slate_error_t err = { 0 };
	struct timespec t0, t1;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	long ms;

	write_numbered(l, 0, 3);
	stop_flag = 0;
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(logfile_tail(f->logs, 10, true, &stop_flag, out, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	/* Stopped by the flag, within a poll interval or two of it. */
	assert_true(ms >= 250 && ms < 300 + 3 * LOGFILE_POLL_MS);
	assert_int_equal(fclose(out), 0);
	check_numbered(buf, 0, 3);
	free(buf);
	logfile_close(l);
}

/* The pump's rate limit (attack review item 13): within a window what
 * fits is taken, the rest of the window is dropped and counted; the next
 * window reports the drop once and takes again. */
static void test_rate_limit_window(void **state)
{
	struct logfile_rate r;
	uint64_t bytes = 0;

	(void)state;
	logfile_rate_init(&r, 100, 3);
	assert_int_equal(logfile_rate_tick(&r, 10.0, &bytes), 0); /* the first window opens */
	assert_true(logfile_rate_take(&r, "a\nb\n", 4));
	assert_false(logfile_rate_over(&r, 10.1));
	assert_false(logfile_rate_take(&r, "c\nd\n", 4)); /* 4 lines > 3 */
	assert_true(logfile_rate_over(&r, 10.2));
	assert_false(logfile_rate_take(&r, "e", 1)); /* the rest of the window too */
	assert_int_equal(r.dropped_lines, 3);
	assert_int_equal(r.dropped_bytes, 5);
	assert_int_equal(logfile_rate_tick(&r, 10.5, &bytes), 0); /* same window */
	assert_int_equal(logfile_rate_tick(&r, 11.0, &bytes), 3);
	assert_int_equal(bytes, 5);
	assert_int_equal(logfile_rate_tick(&r, 12.5, &bytes), 0); /* reported once */
	assert_false(logfile_rate_over(&r, 12.5));
	assert_true(logfile_rate_take(&r, "f\n", 2));
	{
		const char *big =
			"a line of more than the hundred bytes of this budget, which is dropped whole, even "
			"if it is a single line of text\n";
		assert_false(logfile_rate_take(&r, big, strlen(big)));
	}
	assert_int_equal(r.dropped_lines, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lines_with_timestamps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_lines_joined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_cut_at_16k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_bytes_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_symlink_and_bad_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_keeps_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_across_rotated_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_without_logs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follow_until_writer_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follow_until_stop, setup, teardown),
		cmocka_unit_test(test_rate_limit_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
