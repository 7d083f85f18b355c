/* slate: SHA-256 through OpenSSL's EVP interface (SHA-NI where the CPU has it). */
#ifndef SLATE_HASH_H
#define SLATE_HASH_H

#include <stddef.h>

#include "slate/error.h"

#define SLATE_SHA256_LEN 32
#define SLATE_SHA256_HEX 65

typedef struct slate_sha256 {
	void *ctx; /* EVP_MD_CTX */
} slate_sha256_t;

int slate_sha256_init(slate_sha256_t *h, slate_error_t *err);
int slate_sha256_update(slate_sha256_t *h, const void *buf, size_t len, slate_error_t *err);
int slate_sha256_final(slate_sha256_t *h, unsigned char out[SLATE_SHA256_LEN], slate_error_t *err);
void slate_sha256_free(slate_sha256_t *h);

int slate_sha256_buf(const void *buf, size_t len, unsigned char out[SLATE_SHA256_LEN], slate_error_t *err);
/* The same as 64 hex digits and a NUL (all zeros if OpenSSL failed). */
void slate_sha256_hex(const void *buf, size_t len, char out[SLATE_SHA256_HEX]);
/* Hash an open file from its current offset to EOF; *size gets the byte count. */
int slate_sha256_fd(int fd, const char *name, unsigned char out[SLATE_SHA256_LEN], unsigned long long *size,
		    slate_error_t *err);

void slate_hex(const unsigned char *bin, size_t len, char *out);
/* Parse exactly 2*len lower-case hex digits; -1 if not. */
int slate_unhex(const char *hex, unsigned char *out, size_t len);

#endif
