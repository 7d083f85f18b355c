/* slate: fuzz the one escaper (lib/util.c) that everything slate prints
 * from a bundle or an instance goes through: log lines, file names,
 * manifest paths, error messages.
 *
 * Properties: the output of slate_escape, of a truncated slate_escape_buf
 * and of slate_escape_name is valid UTF-8 holding no C0 control, no DEL,
 * no C1 control and no bidirectional control; and slate_escape_name can be
 * undone (no two names look alike). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "slate/util.h"

static bool forbidden(unsigned long cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x61c || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* One UTF-8 sequence at s (strict: no overlong forms, no surrogates);
 * its length, or 0. */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned long *cp)
{
	static const unsigned long min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len = s[0] < 0x80             ? 1
		     : (s[0] & 0xe0) == 0xc0 ? 2
		     : (s[0] & 0xf0) == 0xe0 ? 3
		     : (s[0] & 0xf8) == 0xf0 ? 4
					     : 0;

	if (len == 0 || len > n)
		return 0;
	*cp = len == 1 ? s[0] : s[0] & (0x3f >> (len - 1));
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	if (*cp < min[len] || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return len;
}

static void check_safe(const char *out, size_t n)
{
	const unsigned char *s = (const unsigned char *)out;

	fuzz_check(strlen(out) == n, "no NUL inside the output");
	for (size_t i = 0; i < n;) {
		unsigned long cp = 0;
		size_t len = utf8_next(s + i, n - i, &cp);
		fuzz_check(len > 0, "the output is valid UTF-8");
		fuzz_check(!forbidden(cp), "the output holds no control or bidi character");
		i += len;
	}
}

static int hex(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

static unsigned long hexn(const char *s, size_t n)
{
	unsigned long v = 0;

	for (size_t i = 0; i < n; i++) {
		fuzz_check(hex(s[i]) >= 0, "an escape holds hex digits");
		v = v * 16 + (unsigned long)hex(s[i]);
	}
	return v;
}

/* Undo slate_escape_name: "\\\\", "\\xNN", "\\uNNNN". */
static char *unescape_name(const char *e)
{
	size_t n = strlen(e), o = 0;
	char *out = malloc(n + 1);

	fuzz_check(out != NULL, "allocate");
	for (size_t i = 0; i < n;) {
		if (e[i] != '\\') {
			out[o++] = e[i++];
			continue;
		}
		fuzz_check(i + 1 < n, "no lone backslash at the end");
		if (e[i + 1] == '\\') {
			out[o++] = '\\';
			i += 2;
		} else if (e[i + 1] == 'x') {
			fuzz_check(i + 4 <= n, "a whole \\x escape");
			out[o++] = (char)hexn(e + i + 2, 2);
			i += 4;
		} else {
			unsigned long cp;
			fuzz_check(e[i + 1] == 'u' && i + 6 <= n, "a whole \\u escape");
			cp = hexn(e + i + 2, 4);
			if (cp < 0x800) {
				out[o++] = (char)(0xc0 | cp >> 6);
			} else {
				out[o++] = (char)(0xe0 | cp >> 12);
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			}
			out[o++] = (char)(0x80 | (cp & 0x3f));
			i += 6;
		}
	}
	out[o] = '\0';
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *e = slate_escape(data, size), small[17], *s, *name, *back;
	size_t n;

	check_safe(e, strlen(e));
	free(e);
	n = slate_escape_buf(small, sizeof(small), data, size);
	fuzz_check(n < sizeof(small) && small[n] == '\0', "a truncated escape fits its buffer");
	check_safe(small, n);
	s = fuzz_cstring(data, size);
	if (s == NULL)
		return 0;
	name = slate_escape_name(s, NULL);
	check_safe(name, strlen(name));
	back = unescape_name(name);
	fuzz_check(strcmp(back, s) == 0, "an escaped name can be undone");
	free(back);
	free(name);
	free(s);
	return 0;
}
