/* slate: fuzz harnesses.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput for one parser of
 * untrusted bytes. `make fuzz` links each with libFuzzer (clang,
 * -fsanitize=fuzzer,address,undefined) and runs it for FUZZ_SECONDS on
 * fuzz/corpus/<name> plus seeds made from a freshly built bundle. The same
 * harnesses are linked with driver.c into build/tests/test_fuzz_<name>,
 * which `make test` runs over fuzz/corpus/<name> and fuzz/regress/<name>:
 * every input that ever crashed a harness stays a regression test.
 *
 * A harness calls abort() when a property fails (a round trip that does
 * not round-trip, an escaper whose output is not safe): libFuzzer reports
 * it as a crash, the driver as a failed case. */
#ifndef SLATE_FUZZ_H
#define SLATE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a NUL-terminated string (to free); NULL if it holds a NUL. */
char *fuzz_cstring(const uint8_t *data, size_t size);
/* A sealed memfd holding data, positioned at 0; -1 on failure. */
int fuzz_memfd(const uint8_t *data, size_t size);
/* Abort with a message when a property does not hold. */
void fuzz_check(int ok, const char *what);

#endif
