/* SHA-256 through mbedtls, for builds without libcrypto (small boards). */
#include "tern/tern_sha256.h"

#include <mbedtls/sha256.h>

_Static_assert(sizeof(mbedtls_sha256_context) <= sizeof(((struct tern_sha256 *)0)->opaque),
	       "mbedtls_sha256_context fits the opaque state");

static mbedtls_sha256_context *ctx(struct tern_sha256 *h)
{
	return (mbedtls_sha256_context *)(void *)h->opaque;
}

/* The _ret variants cannot fail for SHA-256 in software; a hardware port would check. */
void tern_sha256_init(struct tern_sha256 *h)
{
	mbedtls_sha256_init(ctx(h));
	(void)mbedtls_sha256_starts_ret(ctx(h), 0);
}

void tern_sha256_update(struct tern_sha256 *h, const void *data, size_t len)
{
	(void)mbedtls_sha256_update_ret(ctx(h), data, len);
}

void tern_sha256_final(struct tern_sha256 *h, uint8_t out[TERN_SHA256_LEN])
{
	(void)mbedtls_sha256_finish_ret(ctx(h), out);
	mbedtls_sha256_free(ctx(h));
}

void tern_sha256(const void *data, size_t len, uint8_t out[TERN_SHA256_LEN])
{
	(void)mbedtls_sha256_ret(data, len, out, 0);
}

const char *tern_sha256_backend(void)
{
	return "mbedtls";
}
