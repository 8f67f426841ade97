/* SHA-256 behind one small interface: libcrypto on Linux builds, mbedtls elsewhere. */
#ifndef TERN_SHA256_H
#define TERN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define TERN_SHA256_LEN 32

/*
 * Hash state, kept by the caller (no heap). The backend's own context lives in the
 * opaque storage; each backend checks at compile time that it fits.
 */
struct tern_sha256 {
	_Alignas(8) unsigned char opaque[128];
};

void tern_sha256_init(struct tern_sha256 *h);
void tern_sha256_update(struct tern_sha256 *h, const void *data, size_t len);
/* Writes the digest to @out and leaves @h unusable until the next init. */
void tern_sha256_final(struct tern_sha256 *h, uint8_t out[TERN_SHA256_LEN]);

/* One-shot digest of @len bytes at @data. */
void tern_sha256(const void *data, size_t len, uint8_t out[TERN_SHA256_LEN]);

/* Names the backend compiled in: "libcrypto" or "mbedtls". */
const char *tern_sha256_backend(void);

#endif
