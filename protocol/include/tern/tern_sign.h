/* Signing with a P-256 private key: host side only (links mbedtls's pk module). */
#ifndef TERN_SIGN_H
#define TERN_SIGN_H

#include "tern/tern_cose.h"
#include "tern/tern_sha256.h"

#include <stddef.h>
#include <stdint.h>

struct mbedtls_pk_context;

/* A loaded signing key. Owns mbedtls state: release with tern_signer_free(). */
struct tern_signer {
	void *pk; /* mbedtls_pk_context, heap-allocated by tern_signer_load() */
	struct tern_pubkey pub;
};

/*
 * Loads a PEM or DER private key. Returns 0, TERN_E_PUBLIC_KEY when @buf holds a public
 * key, TERN_E_KEY when it is not a P-256 private key, TERN_E_NOMEM.
 */
int tern_signer_load(struct tern_signer *sg, const uint8_t *buf, size_t len);

/* Generates a fresh P-256 key from the system's entropy. */
int tern_signer_generate(struct tern_signer *sg);

/*
 * Writes the private key (PEM, "EC PRIVATE KEY") or the public key (PEM, "PUBLIC KEY")
 * into @out, NUL-terminated. Returns the length without the NUL, or 0 if @size is too
 * small.
 */
size_t tern_signer_private_pem(const struct tern_signer *sg, char *out, size_t size);
size_t tern_signer_public_pem(const struct tern_signer *sg, char *out, size_t size);

void tern_signer_free(struct tern_signer *sg);

/*
 * Writes a tagged COSE_Sign1 of @payload, ES256 with the protected header {1: -7} and
 * the unprotected header {4: kid}, into @out. Signatures are deterministic (RFC 6979).
 * Returns bytes written, or 0 when @out_size is too small or signing failed.
 */
size_t tern_cose_sign1_sign(const struct tern_signer *sg, const uint8_t *payload,
			    size_t payload_len, const uint8_t *aad, size_t aad_len, uint8_t *out,
			    size_t out_size);

/* Size of the COSE_Sign1 that tern_cose_sign1_sign() writes for a payload this long. */
size_t tern_cose_sign1_size(size_t payload_len);

/*
 * The deterministic ECDSA P-256 signature (RFC 6979, SHA-256) behind
 * tern_cose_sign1_sign(): @d is the private scalar (32 bytes, big-endian; read only, the
 * caller owns and wipes it), @digest the SHA-256 of the message; writes raw r || s into
 * @sig. Returns 0 or TERN_E_CRYPTO. No low-s normalisation: the bytes are exactly those
 * of mbedtls_ecdsa_sign_det_ext().
 * tern_es256_sign() runs on the build's backend (Makefile CRYPTO=): OpenSSL's libcrypto
 * by default (RFC 6979's nonce computed here with OpenSSL's HMAC, about 30x faster than
 * mbedtls 2.28), mbedtls with CRYPTO=mbedtls. tern_es256_sign_mbedtls() is always
 * mbedtls: the reference the tests compare the other backend with, byte for byte.
 */
int tern_es256_sign(const uint8_t d[32], const uint8_t digest[TERN_SHA256_LEN],
		    uint8_t sig[TERN_ES256_SIG_LEN]);
int tern_es256_sign_mbedtls(const uint8_t d[32], const uint8_t digest[TERN_SHA256_LEN],
			    uint8_t sig[TERN_ES256_SIG_LEN]);

/* "libcrypto" or "mbedtls": the backend of tern_es256_sign(). */
const char *tern_es256_sign_backend(void);

#endif
