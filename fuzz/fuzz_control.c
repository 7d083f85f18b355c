/* slate: fuzz the CLI <-> monitor protocol's framing and replies
 * (runtime/control.c): what one side reads from the other's socket.
 *
 * Properties: a line that parses gives a JSON object or a refusal, and a
 * failed reply turns into an error with a message and a failure exit code
 * (1, 2 or 3: never one that the shell would read as success). */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2], fd = -1;
	slate_error_t err = { 0 };
	json_t *j;

	/* A socket buffer holds what the harness sends before the read. */
	if (size > 65536)
		return 0;
	fuzz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	if (size > 0)
		fuzz_check(write(sv[1], data, size) == (ssize_t)size, "write the input");
	shutdown(sv[1], SHUT_WR);
	j = control_recv(sv[0], 1000, &fd, &err);
	if (j != NULL) {
		slate_error_t r = { 0 };
		if (control_result(j, &r) < 0) {
			fuzz_check(r.msg[0] != '\0', "a failed reply says why");
			fuzz_check(r.kind >= 1 && r.kind <= 3, "a failed reply's kind is a failure exit code");
		}
		json_decref(j);
	}
	fuzz_check(fd < 0, "no fd arrives with plain bytes");
	close(sv[0]);
	close(sv[1]);
	return 0;
}
