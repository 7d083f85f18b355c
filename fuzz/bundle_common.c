/* slate: what the two bundle harnesses share: the trusted key (the tests'
 * fixture, so seeds signed with it reach past the signature check) and
 * one full verification of a bundle held in memory. */
#include <stdlib.h>
#include <unistd.h>

#include "bundle_common.h"
#include "slate/bundle.h"
#include "slate/sign.h"

static struct slate_keyring keyring;
static int keyring_loaded;

static const struct slate_keyring *fuzz_keyring(void)
{
	slate_error_t err = { 0 };
	const char *path;

	if (keyring_loaded)
		return &keyring;
	path = getenv("SLATE_FUZZ_KEY");
	if (path == NULL)
		path = "tests/fixtures/test.key.pub";
	fuzz_check(slate_keyring_add_file(&keyring, path, &err) == 0, "the fuzz key loads (run from the project root)");
	keyring_loaded = 1;
	return &keyring;
}

static int count_data(void *ctx, const struct slate_entry *e, const void *buf, size_t len, slate_error_t *err)
{
	(void)e, (void)buf, (void)err;
	*(size_t *)ctx += len;
	return 0;
}

void fuzz_verify_bundle(const uint8_t *data, size_t size)
{
	struct slate_limits lim;
	struct slate_manifest m;
	char id[SLATE_SHA256_HEX];
	slate_error_t err = { 0 };
	size_t seen = 0;
	struct slate_bundle_visitor v = { .ctx = &seen, .data = count_data };
	int fd = fuzz_memfd(data, size);

	if (fd < 0)
		return;
	slate_limits_default(&lim);
	if (slate_bundle_verify_fd(fd, "fuzz", fuzz_keyring(), &lim, &v, &m, id, &err) == 0) {
		fuzz_check(seen == m.total_size, "a verified bundle streamed exactly its manifest's bytes");
		slate_manifest_free(&m);
	} else {
		fuzz_check(err.kind != 0 && err.msg[0] != '\0', "a refusal says why");
	}
	close(fd);
}
