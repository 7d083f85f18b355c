/* slate: shared by fuzz_bundle.c and fuzz_bundle_tar.c. */
#ifndef SLATE_FUZZ_BUNDLE_COMMON_H
#define SLATE_FUZZ_BUNDLE_COMMON_H

#include "fuzz.h"

/* Verify data as a whole bundle file, with the fuzz key trusted. */
void fuzz_verify_bundle(const uint8_t *data, size_t size);

#endif
