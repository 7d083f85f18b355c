/* slate: SHA-256 helpers (see include/slate/hash.h). */
/* Before any OpenSSL header: slate_sha256_buf uses the block functions. */
#define OPENSSL_API_COMPAT 10101
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "slate/hash.h"
#include "slate/util.h"

/* Fetch the implementation once: OpenSSL 3 looks it up again on every
 * init given EVP_sha256(), a cost that shows with many small files. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

int slate_sha256_init(slate_sha256_t *h, slate_error_t *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex2(ctx, sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		h->ctx = NULL;
		return slate_error_fail(err, "sha256: cannot initialise digest");
	}
	h->ctx = ctx;
	return 0;
}

int slate_sha256_update(slate_sha256_t *h, const void *buf, size_t len, slate_error_t *err)
{
	if (len > 0 && EVP_DigestUpdate(h->ctx, buf, len) != 1)
		return slate_error_fail(err, "sha256: digest update failed");
	return 0;
}

int slate_sha256_final(slate_sha256_t *h, unsigned char out[SLATE_SHA256_LEN], slate_error_t *err)
{
	unsigned int n = 0;
	int ok = EVP_DigestFinal_ex(h->ctx, out, &n);

	slate_sha256_free(h);
	if (ok != 1 || n != SLATE_SHA256_LEN)
		return slate_error_fail(err, "sha256: digest final failed");
	return 0;
}

void slate_sha256_free(slate_sha256_t *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

/* One buffer: OpenSSL's SHA-256 block functions (SHA-NI where the CPU has
 * it, as with EVP), not the EVP layer: no context to allocate, and
 * slate-monitor, linked statically with only what it calls, hashes tamper
 * evidence without pulling in the provider machinery. Deprecated as an API
 * in OpenSSL 3, not removed; this is the one place that uses them. */
int slate_sha256_buf(const void *buf, size_t len, unsigned char out[SLATE_SHA256_LEN], slate_error_t *err)
{
	SHA256_CTX c;

	if (SHA256_Init(&c) != 1 || SHA256_Update(&c, buf, len) != 1 || SHA256_Final(out, &c) != 1)
		return slate_error_fail(err, "sha256: digest failed");
	return 0;
}

void slate_sha256_hex(const void *buf, size_t len, char out[SLATE_SHA256_HEX])
{
	unsigned char d[SLATE_SHA256_LEN] = { 0 };
	slate_error_t ignore = { 0 };

	(void)slate_sha256_buf(buf, len, d, &ignore);
	slate_hex(d, sizeof(d), out);
}

int slate_sha256_fd(int fd, const char *name, unsigned char out[SLATE_SHA256_LEN], unsigned long long *size,
		    slate_error_t *err)
{
	static __thread unsigned char buf[1 << 17];
	slate_sha256_t h;
	unsigned long long total = 0;

	if (slate_sha256_init(&h, err) < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			slate_sha256_free(&h);
			return slate_error_sys(err, errno, "read `%s`", name);
		}
		if (r == 0)
			break;
		total += (unsigned long long)r;
		if (slate_sha256_update(&h, buf, (size_t)r, err) < 0) {
			slate_sha256_free(&h);
			return -1;
		}
	}
	if (size)
		*size = total;
	return slate_sha256_final(&h, out, err);
}

void slate_hex(const unsigned char *bin, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int slate_unhex(const char *hex, unsigned char *out, size_t len)
{
	if (strlen(hex) != 2 * len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}
