/* slate: the CLI <-> monitor protocol: one JSON object per line over the
 * app's unix stream socket (RUN/<app>/monitor.sock, in a 0700 directory,
 * so only root can talk to a monitor). A reply may carry one file
 * descriptor (SCM_RIGHTS). Requests: {"cmd": "status"}, {"cmd": "deploy",
 * ...}, {"cmd": "stop"}, {"cmd": "port", ...}, {"cmd": "connect", ...},
 * {"cmd": "scratch"} (the instance tmpfs fd, for diff), {"cmd": "pidfd"}
 * (the instance init, for exec). Every reply has "ok" (bool) and, when
 * false, "error" (one line) and "kind" (exit code). */
#ifndef SLATE_RUNTIME_CONTROL_H
#define SLATE_RUNTIME_CONTROL_H

#include <jansson.h>

#include "slate/error.h"

/* Send j as one line, with fd attached when fd >= 0. */
int control_send(int sock, json_t *j, int fd, slate_error_t *err);
/* Read one line (blocking, up to timeout_ms; -1 none) and parse it; an fd
 * that came with it goes to *fd (or is closed when fd is NULL). */
json_t *control_recv(int sock, int timeout_ms, int *fd, slate_error_t *err);
/* Connect, send req (the reference is taken), read the reply. */
json_t *control_call(const char *path, json_t *req, int timeout_ms, int *fd, slate_error_t *err);
/* An error reply / ok reply. */
json_t *control_error(const slate_error_t *e);
json_t *control_ok(void);
/* Turn a reply into 0 or a filled err. */
int control_result(json_t *reply, slate_error_t *err);

#endif
