/* slate: fuzz the -p ([HOSTIP:]HOSTPORT:PORT) and --connect
 * ([IP:]PORT=HOST:HOSTPORT) spec parser (runtime/monitor.c), which reads
 * the operator's flags and the specs kept with an app on disk.
 *
 * Property: a spec with a host port accepted is accepted as a spec, and
 * the port is in 1..65535. */
#include <stdlib.h>

#include "fuzz.h"
#include "monitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	slate_error_t err = { 0 };
	char *s = fuzz_cstring(data, size);
	int ok, port;

	if (s == NULL)
		return 0;
	ok = monitor_check_spec(s, &err) == 0;
	port = monitor_spec_host_port(s);
	fuzz_check(port >= 0 && port <= 65535, "a host port is a port");
	fuzz_check(port == 0 || ok, "a spec with a host port is a valid spec");
	free(s);
	return 0;
}
