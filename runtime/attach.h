/* slate: the operator's stdio, relayed to a command in an instance.
 *
 * Threat: a process of the instance takes the command's fds (pidfd_getfd,
 * or an open of /proc/PID/fd/N) and keeps them after the command returned.
 * Had the command been given slate's own fds 0-2, that process could read
 * what the operator types next, write escape sequences to the terminal, or
 * write into the file the operator redirected output to. So no host fd
 * enters an instance: the command gets pipes (or a pty of the instance's
 * own devpts, for -t) whose other ends only slate holds; slate copies
 * bytes between them and its own stdio while the command runs, and closes
 * its ends when it ends. What a grabbed fd can reach then is a pipe with
 * no reader, a pipe at EOF, or a pty without a master.
 *
 * The bytes are the operator's own command's: they go through unchanged
 * (binary data, no filtering), stdin's EOF is passed on, and the exit
 * status is the command's. */
#ifndef SLATE_RUNTIME_ATTACH_H
#define SLATE_RUNTIME_ATTACH_H

#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <termios.h>

#include "slate/error.h"

struct attach {
	bool with_stdin; /* relay slate's stdin; else the command's is the instance's /dev/null */
	bool tty; /* a pty in the instance (its master comes from the command's side) */
	int cmd[3]; /* the command's ends (pipes); -1: none (stdin: /dev/null) */
	int in, out, err; /* slate's ends: stdin's write end, stdout's and stderr's read ends */
	int master; /* -t: the pty's master */
	struct winsize ws; /* -t: the operator's window size, if stdin is a terminal */
	bool have_ws;
	struct termios saved; /* -t -i: the operator's terminal before raw mode */
	bool raw;
};

/* Pipes for the command (without tty) or nothing yet (tty: the master is
 * given later with attach_set_master); reads the window size for -t. */
int attach_init(struct attach *a, bool with_stdin, bool tty, slate_error_t *err);
/* Close slate's copies of the command's ends (after the fork). */
void attach_close_cmd(struct attach *a);
/* In a forked child: close slate's ends (only slate may hold them). */
void attach_close_relay(struct attach *a);
/* -t: the pty's master, received from the command's side; -t -i and a
 * terminal on stdin: the operator's terminal goes raw (restored by
 * attach_free, on every path). */
int attach_set_master(struct attach *a, int master, slate_error_t *err);
/* Copy until the process of pidfd exits, then what the command left in
 * the pipes (at most their capacity: a process that keeps writing into a
 * grabbed end cannot hold slate), then close slate's ends. */
int attach_relay(struct attach *a, int pidfd, slate_error_t *err);
void attach_free(struct attach *a);

/* The /dev/null of the mount namespace we are in (the instance's, once
 * inside it), checked to be the null device: what a command gets as stdin
 * when nothing is relayed. */
int attach_open_null(int flags, slate_error_t *err);

/* In the command's process, as its user, in the instance's mount
 * namespace: a new pty of the instance's devpts (/dev/pts/ptmx, checked),
 * its slave as stdio and controlling terminal of a new session, window
 * size ws (or none); returns the master for slate. */
int attach_pty_open(const struct winsize *ws, slate_error_t *err);

/* Over a SOCK_SEQPACKET socket: one fd (SCM_RIGHTS) or why there is
 * none; recv returns the fd, or -1 with that reason (or EOF's). */
int attach_send_fd(int sock, int fd, slate_error_t *err);
/* Send len bytes of msg with fd attached (SCM_RIGHTS), in one message:
 * 0, or -1 with errno set. */
int attach_send_msg_fd(int sock, const void *msg, size_t len, int fd);
void attach_send_error(int sock, const slate_error_t *e);
int attach_recv_fd(int sock, slate_error_t *err);

#endif
