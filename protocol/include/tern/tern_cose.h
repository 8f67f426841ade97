/*
 * COSE_Sign1 (RFC 9052) with ES256: parse and verify on both sides, sign on the host.
 * Public keys are P-256 points; a key id ("kid") is the first 8 bytes of the SHA-256
 * of the 65-byte uncompressed point.
 */
#ifndef TERN_COSE_H
#define TERN_COSE_H

#include <stddef.h>
#include <stdint.h>

#define TERN_COSE_ALG_ES256 (-7)
#define TERN_COSE_TAG_SIGN1 18
#define TERN_P256_POINT_LEN 65 /* 0x04 || X || Y */
#define TERN_ES256_SIG_LEN  64 /* r || s */
#define TERN_KID_LEN	    8
#define TERN_KID_MAX	    32 /* longest kid accepted from a message */
#define TERN_KEYRING_MAX    8

/* A trusted public key: the point and its key id. Plain data, no heap. */
struct tern_pubkey {
	uint8_t point[TERN_P256_POINT_LEN];
	uint8_t kid[TERN_KID_LEN];
};

/* Several trusted keys, so that keys can rotate. */
struct tern_keyring {
	struct tern_pubkey keys[TERN_KEYRING_MAX];
	size_t n_keys;
};

/* A parsed COSE_Sign1. Every pointer borrows from the buffer given to the parser. */
struct tern_sign1 {
	/* Serialized protected header, as it enters the Sig_structure: empty when the
	 * message has none, or an empty map (RFC 9052 section 4.4). */
	const uint8_t *protected_hdr;
	size_t protected_len;
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *sig;
	size_t sig_len;
	const uint8_t *kid; /* NULL when the message has no kid */
	size_t kid_len;
	int64_t alg;	  /* from the protected header, or the unprotected one */
	size_t total_len; /* bytes the whole message takes in the buffer */
};

/*
 * Sets @pk from an uncompressed P-256 point, checking that it lies on the curve, and
 * computes its kid. Returns 0 or TERN_E_KEY.
 */
int tern_pubkey_from_point(struct tern_pubkey *pk, const uint8_t *point, size_t len);

/*
 * Parses a public key in PEM (SubjectPublicKeyInfo, "PUBLIC KEY") or DER. @buf need
 * not be NUL-terminated. Returns 0, TERN_E_KEY, or TERN_E_NOMEM. Uses mbedtls's heap
 * while parsing (host and Linux boards only).
 */
int tern_pubkey_parse(struct tern_pubkey *pk, const uint8_t *buf, size_t len);

/* Adds @pk unless a key with its kid is already there; TERN_E_TOO_LARGE when full. */
int tern_keyring_add(struct tern_keyring *kr, const struct tern_pubkey *pk);

/* Returns the key with this kid, or NULL. */
const struct tern_pubkey *tern_keyring_find(const struct tern_keyring *kr, const uint8_t *kid,
					    size_t kid_len);

/*
 * Parses one COSE_Sign1 at the start of @buf (tag 18 or untagged). Checks structure
 * and header rules; does not verify. Returns 0, TERN_E_NOT_RELEASE (not a COSE_Sign1
 * or another tag), TERN_E_TRUNCATED, TERN_E_NOT_CBOR, TERN_E_MALFORMED,
 * TERN_E_UNSUPPORTED_ALG (algorithm other than ES256, or none), TERN_E_CRITICAL (a
 * critical header this reader does not know), TERN_E_TOO_LARGE.
 */
int tern_cose_sign1_parse(struct tern_sign1 *s, const uint8_t *buf, size_t len);

/*
 * Computes the SHA-256 of the Sig_structure ["Signature1", protected, external_aad,
 * payload], head by head, without building it in memory.
 */
void tern_cose_sign1_digest(const struct tern_sign1 *s, const uint8_t *aad, size_t aad_len,
			    uint8_t out[32]);

/*
 * Verifies a parsed message with @pk and the external AAD (@aad may be NULL when
 * @aad_len is 0). Returns 0, TERN_E_BAD_SIGNATURE or TERN_E_CRYPTO.
 */
int tern_cose_sign1_verify(const struct tern_sign1 *s, const struct tern_pubkey *pk,
			   const uint8_t *aad, size_t aad_len);

/*
 * Parses, finds the signer's key in @kr by kid and verifies. On success sets @signer
 * (may be NULL) to the key in @kr. TERN_E_UNKNOWN_KEY when no key matches.
 */
int tern_cose_sign1_open(struct tern_sign1 *s, const uint8_t *buf, size_t len,
			 const struct tern_keyring *kr, const struct tern_pubkey **signer);

#endif
