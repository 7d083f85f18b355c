/* slate: error values (see include/slate/error.h for the contract). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "slate/error.h"
#include "slate/util.h"

/* Messages are one line of safe text, whatever bytes a path or an untrusted
 * manifest put into them: formatted, then escaped (slate_escape) into
 * dst, so that a message is safe on a terminal, in a log and in JSON. */
static void escape_into(char *dst, size_t size, const char *fmt, va_list ap)
{
	char raw[SLATE_ERROR_MSG_MAX];

	vsnprintf(raw, sizeof(raw), fmt, ap);
	slate_escape_buf(dst, size, raw, strlen(raw));
}

static void error_vset(slate_error_t *err, int kind, int errnum, const char *fmt, va_list ap)
{
	if (err == NULL)
		return;
	err->kind = kind;
	err->errnum = errnum;
	escape_into(err->msg, sizeof(err->msg), fmt, ap);
}

int slate_error_set(slate_error_t *err, int kind, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, kind, errnum, fmt, ap);
	va_end(ap);
	return -1;
}

int slate_error_refuse(slate_error_t *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, SLATE_EXIT_REFUSED, 0, fmt, ap);
	va_end(ap);
	return -1;
}

int slate_error_usage(slate_error_t *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, SLATE_EXIT_USAGE, EINVAL, fmt, ap);
	va_end(ap);
	return -1;
}

int slate_error_fail(slate_error_t *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, SLATE_EXIT_SYSTEM, EIO, fmt, ap);
	va_end(ap);
	return -1;
}

int slate_error_sys(slate_error_t *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	error_vset(err, SLATE_EXIT_SYSTEM, errnum, fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	if (errnum != 0 && len < sizeof(err->msg))
		snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(errnum));
	return -1;
}

int slate_error_wrap(slate_error_t *err, const char *fmt, ...)
{
	char prefix[SLATE_ERROR_MSG_MAX];
	char old[SLATE_ERROR_MSG_MAX];
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	escape_into(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation of an over-long message is acceptable: keep the head. */
	size_t plen = strnlen(prefix, sizeof(err->msg) - 3);
	memcpy(err->msg, prefix, plen);
	memcpy(err->msg + plen, ": ", 2);
	size_t room = sizeof(err->msg) - plen - 3;
	size_t olen = strnlen(old, room);
	memcpy(err->msg + plen + 2, old, olen);
	err->msg[plen + 2 + olen] = '\0';
	if (err->kind == 0)
		err->kind = SLATE_EXIT_SYSTEM;
	return -1;
}

void slate_error_clear(slate_error_t *err)
{
	if (err == NULL)
		return;
	err->kind = 0;
	err->errnum = 0;
	err->msg[0] = '\0';
}

int slate_error_report(const char *prog, const slate_error_t *err)
{
	int kind = err->kind ? err->kind : SLATE_EXIT_SYSTEM;

	fprintf(stderr, "%s: %s\n", prog, err->msg[0] ? err->msg : "unknown error");
	return kind;
}
