/*
 * The release file: a CBOR sequence of the signed manifest (COSE_Sign1), then for each
 * component its chunk index and its bytes, each one definite-length byte string.
 * These helpers read the head of a release from a buffer; the body is streamed by the
 * caller (host: files and threads; device: chunks from a transport).
 */
#ifndef TERN_RELEASE_H
#define TERN_RELEASE_H

#include "tern/tern_cose.h"
#include "tern/tern_manifest.h"

/* The verified head of a release. Borrows from the buffer given to tern_release_open(). */
struct tern_release_head {
	struct tern_sign1 sign1;
	struct tern_manifest manifest;
	const struct tern_pubkey *signer; /* points into the keyring used */
	size_t head_len;		  /* bytes of the COSE_Sign1 at the file's start */
};

/*
 * Parses the COSE_Sign1 at the start of @buf (which may continue with the rest of the
 * release), verifies it against @kr and decodes the manifest. Returns 0 or the first
 * error: TERN_E_NOT_RELEASE, TERN_E_TRUNCATED, TERN_E_UNSUPPORTED_ALG,
 * TERN_E_UNKNOWN_KEY, TERN_E_BAD_SIGNATURE, or a manifest decoding error.
 */
int tern_release_open(struct tern_release_head *rh, const uint8_t *buf, size_t len,
		      const struct tern_keyring *kr);

/* Same, without verifying the signature (for `inspect`): @kr unused, signer NULL. */
int tern_release_parse_unverified(struct tern_release_head *rh, const uint8_t *buf, size_t len);

/*
 * Checks the byte-string head at @buf announces exactly @expect bytes; sets @head_len.
 * Returns 0, TERN_E_TRUNCATED (head incomplete), TERN_E_MALFORMED (not a byte string,
 * or another length).
 */
int tern_release_expect_bstr(const uint8_t *buf, size_t len, uint64_t expect, size_t *head_len);

/* Checks that @index (a chunk index of @len bytes) hashes to @digest. */
bool tern_index_matches(const uint8_t *index, size_t len, const uint8_t digest[TERN_SHA256_LEN]);

#endif
