/* slate: fuzz the verifying bundle reader (lib/bundle_read.c, lib/zpipe.c)
 * on whole bundle files: the zstd frame, the tar stream, the manifest and
 * signature members, and every member after them. */
#include "bundle_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_verify_bundle(data, size);
	return 0;
}
