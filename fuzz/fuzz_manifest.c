/* slate: fuzz the manifest parser (lib/manifest.c), the first parser to
 * see a manifest's bytes once its signature verified, and the one inspect
 * and diff run on unsigned ones.
 *
 * Property: a manifest that parses is canonical, so serializing what was
 * parsed gives back exactly the input bytes (one encoding only). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "slate/manifest.h"
#include "slate/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct slate_limits lim;
	struct slate_manifest m;
	slate_error_t err = { 0 };

	slate_limits_default(&lim);
	if (slate_manifest_parse((const char *)data, size, &lim, &m, &err) == 0) {
		size_t len = 0;
		char *again = slate_manifest_serialize(&m, &len, &err);

		fuzz_check(again != NULL, "a parsed manifest serializes");
		fuzz_check(len == size && memcmp(again, data, size) == 0,
			   "a parsed manifest round-trips byte for byte");
		fuzz_check(slate_manifest_validate(&m, &lim, &err) == 0, "a parsed manifest validates");
		free(again);
		slate_manifest_free(&m);
	}
	return 0;
}
