/*
 * Deterministic ES256 signing on OpenSSL's libcrypto (tern_sign.h). OpenSSL 3.0 has no
 * RFC 6979 nonce, so it is computed here (RFC 6979 section 3.2 with HMAC-SHA256, as
 * mbedtls_ecdsa_sign_det_ext() does); r = x(kG) mod n and k^-1 come from libcrypto's
 * constant-time scalar multiplication and exponentiation, and ECDSA_do_sign_ex() makes
 * s = k^-1 (e + r d) mod n with the key's constant-time Montgomery code. The EC_KEY and
 * ECDSA_do_sign_ex() calls are deprecated in OpenSSL 3.0 but the EVP API has no way to
 * hand it a nonce. The bytes equal mbedtls's (tests/unit/test_sign.c compares them).
 */
#define OPENSSL_API_COMPAT 0x10100000L
#include "tern/tern_err.h"
#include "tern/tern_sign.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <string.h>

/* The order n of the P-256 group, big-endian. */
static const uint8_t p256_n[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/* @a as a 256-bit big-endian number: 1 if 0 < a < n. */
static int in_range(const uint8_t a[32])
{
	uint8_t any = 0;
	for (size_t i = 0; i < 32; i++)
		any |= a[i];
	return any && memcmp(a, p256_n, 32) < 0;
}

/* bits2octets (RFC 6979 2.3.4) for a 256-bit digest: @h mod n into @out (h < 2n). */
static void reduce_once(const uint8_t h[32], uint8_t out[32])
{
	if (memcmp(h, p256_n, 32) < 0) {
		memcpy(out, h, 32);
		return;
	}
	unsigned borrow = 0;
	for (size_t i = 32; i-- > 0;) {
		unsigned v = (unsigned)h[i] - p256_n[i] - borrow;
		out[i] = (uint8_t)v;
		borrow = (v >> 8) & 1u;
	}
}

/* out = HMAC-SHA256(key, data); @out may not overlap @key. */
static int hmac(const uint8_t key[32], const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int olen = 0;
	return HMAC(EVP_sha256(), key, 32, data, len, out, &olen) && olen == 32 ? 0 : -1;
}

/* K = HMAC_K(V || @b || x || h1); V = HMAC_K(V) (RFC 6979 3.2 d-g). @buf holds V at 0,
 * then x || h1 at 33; the new V is written back there. */
static int seed_step(uint8_t k[32], uint8_t buf[97], uint8_t b)
{
	uint8_t t[32];
	buf[32] = b;
	if (hmac(k, buf, 97, t))
		return -1;
	memcpy(k, t, 32);
	if (hmac(k, buf, 32, t))
		return -1;
	memcpy(buf, t, 32);
	OPENSSL_cleanse(t, sizeof(t));
	return 0;
}

/* The RFC 6979 nonce for private key @x and reduced digest @h1 (qlen = hlen = 256). */
static int rfc6979_k(const uint8_t x[32], const uint8_t h1[32], uint8_t kout[32])
{
	uint8_t key[32], buf[97], t[32];
	int rc = -1;
	memset(buf, 0x01, 32); /* V */
	memset(key, 0x00, 32); /* K */
	memcpy(buf + 33, x, 32);
	memcpy(buf + 65, h1, 32);
	if (seed_step(key, buf, 0x00) || seed_step(key, buf, 0x01))
		goto out;
	/* mbedtls gives up after 30 draws outside [1, n-1]; each has probability 2^-32. */
	for (int tries = 0; tries < 30; tries++) {
		if (hmac(key, buf, 32, t))
			goto out;
		memcpy(buf, t, 32); /* V = HMAC_K(V); T = V */
		if (in_range(buf)) {
			memcpy(kout, buf, 32);
			rc = 0;
			goto out;
		}
		buf[32] = 0x00; /* K = HMAC_K(V || 0x00); V = HMAC_K(V) */
		if (hmac(key, buf, 33, t))
			goto out;
		memcpy(key, t, 32);
		if (hmac(key, buf, 32, t))
			goto out;
		memcpy(buf, t, 32);
	}
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(t, sizeof(t));
	return rc;
}

int tern_es256_sign(const uint8_t d[32], const uint8_t digest[TERN_SHA256_LEN],
		    uint8_t sig[TERN_ES256_SIG_LEN])
{
	int rc = TERN_E_CRYPTO;
	uint8_t e[32], kb[32];
	EC_KEY *key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *k = BN_new(), *kinv = BN_new(), *r = BN_new(), *x = BN_new(), *nm2 = BN_new(),
	       *dn = BN_new();
	EC_POINT *kg = NULL;
	ECDSA_SIG *es = NULL;
	const EC_GROUP *group = key ? EC_KEY_get0_group(key) : NULL;
	if (!group || !ctx || !k || !kinv || !r || !x || !nm2 || !dn || !in_range(d))
		goto out;
	BN_set_flags(k, BN_FLG_CONSTTIME);
	BN_set_flags(kinv, BN_FLG_CONSTTIME);
	BN_set_flags(dn, BN_FLG_CONSTTIME);
	reduce_once(digest, e); /* e = bits2int(H(m)) mod n, also RFC 6979's h1 */
	if (rfc6979_k(d, e, kb) || !BN_bin2bn(kb, 32, k) || !BN_bin2bn(d, 32, dn) ||
	    EC_KEY_set_private_key(key, dn) != 1)
		goto out;
	const BIGNUM *n = EC_GROUP_get0_order(group);
	kg = EC_POINT_new(group);
	/* r = x(kG) mod n; k^-1 = k^(n-2) mod n (n is prime), both constant-time in k. */
	if (!kg || EC_POINT_mul(group, kg, k, NULL, NULL, ctx) != 1 ||
	    EC_POINT_get_affine_coordinates(group, kg, x, NULL, ctx) != 1 ||
	    BN_nnmod(r, x, n, ctx) != 1 || BN_is_zero(r) || !BN_copy(nm2, n) ||
	    BN_sub_word(nm2, 2) != 1 || BN_mod_exp_mont_consttime(kinv, k, nm2, n, ctx, NULL) != 1)
		goto out;
	/* s = k^-1 (e + r d) mod n; an s of 0 (probability 2^-256) fails rather than draw
	 * another k as mbedtls would. */
	es = ECDSA_do_sign_ex(e, sizeof(e), kinv, r, key);
	const BIGNUM *sr, *ss;
	if (!es)
		goto out;
	ECDSA_SIG_get0(es, &sr, &ss);
	if (BN_bn2binpad(sr, sig, 32) != 32 || BN_bn2binpad(ss, sig + 32, 32) != 32)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(kb, sizeof(kb));
	ECDSA_SIG_free(es);
	EC_POINT_free(kg);
	BN_clear_free(dn);
	BN_free(nm2);
	BN_free(x);
	BN_free(r);
	BN_clear_free(kinv);
	BN_clear_free(k);
	BN_CTX_free(ctx);
	EC_KEY_free(key); /* clears the private key it copied */
	ERR_clear_error();
	return rc;
}

const char *tern_es256_sign_backend(void)
{
	return "libcrypto";
}
