/* SHA-256 through OpenSSL's libcrypto (uses the CPU's SHA or AVX2 code paths). */
#define OPENSSL_API_COMPAT 0x10100000L /* SHA256_* are deprecated in 3.0 but need no heap */
#include "tern/tern_sha256.h"

#include <openssl/sha.h>

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((struct tern_sha256 *)0)->opaque),
	       "SHA256_CTX fits the opaque state");

void tern_sha256_init(struct tern_sha256 *h)
{
	SHA256_Init((SHA256_CTX *)(void *)h->opaque);
}

void tern_sha256_update(struct tern_sha256 *h, const void *data, size_t len)
{
	SHA256_Update((SHA256_CTX *)(void *)h->opaque, data, len);
}

void tern_sha256_final(struct tern_sha256 *h, uint8_t out[TERN_SHA256_LEN])
{
	SHA256_Final(out, (SHA256_CTX *)(void *)h->opaque);
}

void tern_sha256(const void *data, size_t len, uint8_t out[TERN_SHA256_LEN])
{
	SHA256(data, len, out);
}

const char *tern_sha256_backend(void)
{
	return "libcrypto";
}
