/* slate: CLI <-> monitor protocol (see control.h). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "slate/util.h"

#define CONTROL_LINE_MAX (1 << 20)

int control_send(int sock, json_t *j, int fd, slate_error_t *err)
{
	cleanup_free char *text = json_dumps(j, JSON_COMPACT);
	cleanup_free char *line = NULL;
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t len, off = 0;

	if (text == NULL)
		return slate_error_fail(err, "cannot encode a control message");
	line = xasprintf("%s\n", text);
	len = strlen(line);
	if (fd >= 0) {
		struct cmsghdr *c;
		mh.msg_control = ctl;
		mh.msg_controllen = sizeof(ctl);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (off < len) {
		iov.iov_base = line + off;
		iov.iov_len = len - off;
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return slate_error_sys(err, errno, "send to the monitor");
		off += (size_t)n;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
	}
	return 0;
}

static void take_fd(struct msghdr *mh, int *fd)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		int got;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
			continue;
		memcpy(&got, CMSG_DATA(c), sizeof(int));
		if (fd && *fd < 0)
			*fd = got;
		else
			close(got);
	}
}

json_t *control_recv(int sock, int timeout_ms, int *fd, slate_error_t *err)
{
	cleanup_free char *buf = xmalloc(CONTROL_LINE_MAX);
	size_t used = 0;
	json_error_t jerr;
	json_t *j;

	if (fd)
		*fd = -1;
	while (used == 0 || buf[used - 1] != '\n') {
		char ctl[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { buf + used, CONTROL_LINE_MAX - used - 1 };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
		};
		struct pollfd p = { sock, POLLIN, 0 };
		int pr = poll(&p, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0) {
			slate_error_fail(err, "the monitor did not answer in time");
			return NULL;
		}
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			slate_error_fail(err, "the monitor closed the connection");
			return NULL;
		}
		take_fd(&mh, fd);
		used += (size_t)n;
		if (used >= CONTROL_LINE_MAX - 1) {
			slate_error_fail(err, "control message too long");
			return NULL;
		}
	}
	j = json_loadb(buf, used, 0, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		slate_error_fail(err, "malformed control message");
		return NULL;
	}
	return j;
}

json_t *control_call(const char *path, json_t *req, int timeout_ms, int *fd, slate_error_t *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	json_t *reply = NULL;

	if (sock < 0 || strlen(path) >= sizeof(sa.sun_path)) {
		json_decref(req);
		return sock < 0 ? (slate_error_sys(err, errno, "socket"), NULL)
				: (slate_error_fail(err, "socket path `%s` too long", path), NULL);
	}
	strcpy(sa.sun_path, path);
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		slate_error_sys(err, errno, "connect to the monitor at `%s` (is the app running?)", path);
	else if (control_send(sock, req, -1, err) == 0)
		reply = control_recv(sock, timeout_ms, fd, err);
	json_decref(req);
	return reply;
}

json_t *control_error(const slate_error_t *e)
{
	return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", e->msg, "kind", e->kind ? e->kind : SLATE_EXIT_SYSTEM);
}

json_t *control_ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

/* A reply's kind becomes slate's exit code: only the three failure codes
 * are taken as they are (a kind of 256 would exit 0), and a reply without
 * a message still says something. */
int control_result(json_t *reply, slate_error_t *err)
{
	json_int_t kind = json_integer_value(json_object_get(reply, "kind"));
	const char *msg = json_string_value(json_object_get(reply, "error"));

	if (json_is_true(json_object_get(reply, "ok")))
		return 0;
	if (kind != SLATE_EXIT_REFUSED && kind != SLATE_EXIT_USAGE && kind != SLATE_EXIT_SYSTEM)
		kind = SLATE_EXIT_SYSTEM;
	return slate_error_set(err, (int)kind, 0, "%s", msg && *msg ? msg : "the monitor failed");
}
