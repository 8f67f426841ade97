/*
 * The ECDSA P-256 check behind tern_cose_sign1_verify(), on one of two backends chosen at
 * build time like SHA-256 (Makefile CRYPTO=): OpenSSL's libcrypto (es256_libcrypto.c,
 * the default on Linux: about 20x faster than mbedtls 2.28 here, which matters when one
 * process checks a thousand devices' signatures) or mbedtls (es256_mbedtls.c, for boards
 * without OpenSSL). Both refuse exactly the same signatures (tests/unit/test_sign.c and
 * the COSE WG vectors run on both).
 */
#ifndef TERN_ES256_PRIV_H
#define TERN_ES256_PRIV_H

#include "tern/tern_cose.h"
#include "tern/tern_sha256.h"

#include <stdint.h>

/*
 * Checks @sig (raw r || s) over @digest with the public key @point (uncompressed, already
 * validated on the curve when it was loaded). Returns 0, TERN_E_BAD_SIGNATURE, or
 * TERN_E_CRYPTO when the backend could not run (out of memory, a point it refuses).
 */
int tern_es256_verify(const uint8_t point[TERN_P256_POINT_LEN],
		      const uint8_t digest[TERN_SHA256_LEN], const uint8_t sig[TERN_ES256_SIG_LEN]);

/* "libcrypto" or "mbedtls". */
const char *tern_es256_backend(void);

#endif
