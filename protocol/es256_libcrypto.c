/*
 * ES256 verification on OpenSSL's libcrypto (es256_priv.h). The EC_KEY/ECDSA_SIG calls
 * are deprecated in OpenSSL 3.0 but build a key from a raw point without the
 * OSSL_PARAM/decoder round trip of the EVP API, which costs more than the verify itself.
 */
#define OPENSSL_API_COMPAT 0x10100000L
#include "es256_priv.h"

#include "tern/tern_err.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

int tern_es256_verify(const uint8_t point[TERN_P256_POINT_LEN],
		      const uint8_t digest[TERN_SHA256_LEN], const uint8_t sig[TERN_ES256_SIG_LEN])
{
	int rc = TERN_E_CRYPTO;
	EC_KEY *key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL);
	BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
	if (!key || !es || !r || !s || EC_KEY_oct2key(key, point, TERN_P256_POINT_LEN, NULL) != 1 ||
	    ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by es now */
	/* 1 valid, 0 invalid; -1 also for r or s out of range: a refusal either way. */
	rc = ECDSA_do_verify(digest, TERN_SHA256_LEN, es, key) == 1 ? 0 : TERN_E_BAD_SIGNATURE;
out:
	BN_free(s);
	BN_free(r);
	ECDSA_SIG_free(es);
	EC_KEY_free(key);
	ERR_clear_error(); /* no refusal left in this thread's OpenSSL error queue */
	return rc;
}

const char *tern_es256_backend(void)
{
	return "libcrypto";
}
