/* CRYPTO=mbedtls: tern_es256_sign() is the mbedtls reference itself (tern_sign.h). */
#include "tern/tern_sign.h"

int tern_es256_sign(const uint8_t d[32], const uint8_t digest[TERN_SHA256_LEN],
		    uint8_t sig[TERN_ES256_SIG_LEN])
{
	return tern_es256_sign_mbedtls(d, digest, sig);
}

const char *tern_es256_sign_backend(void)
{
	return "mbedtls";
}
