/* Reading the head of a release: the signed manifest, and the byte-string heads after it. */
#include "tern/tern_release.h"

#include "tern/tern_cbor.h"
#include "tern/tern_err.h"

#include <string.h>

/* Decodes the manifest carried by an already parsed COSE_Sign1. */
static int decode_manifest(struct tern_release_head *rh)
{
	if (rh->sign1.payload_len > TERN_MANIFEST_MAX)
		return TERN_E_TOO_LARGE;
	rh->head_len = rh->sign1.total_len;
	return tern_manifest_decode(&rh->manifest, rh->sign1.payload, rh->sign1.payload_len);
}

int tern_release_open(struct tern_release_head *rh, const uint8_t *buf, size_t len,
		      const struct tern_keyring *kr)
{
	memset(rh, 0, sizeof(*rh));
	int rc = tern_cose_sign1_open(&rh->sign1, buf, len, kr, &rh->signer);
	if (rc)
		return rc;
	return decode_manifest(rh);
}

int tern_release_parse_unverified(struct tern_release_head *rh, const uint8_t *buf, size_t len)
{
	memset(rh, 0, sizeof(*rh));
	int rc = tern_cose_sign1_parse(&rh->sign1, buf, len);
	if (rc)
		return rc;
	return decode_manifest(rh);
}

int tern_release_expect_bstr(const uint8_t *buf, size_t len, uint64_t expect, size_t *head_len)
{
	uint64_t body_len;
	int rc = tern_cbor_bstr_head(buf, len, head_len, &body_len);
	if (rc)
		return rc;
	return body_len == expect ? 0 : TERN_E_MALFORMED;
}

bool tern_index_matches(const uint8_t *index, size_t len, const uint8_t digest[TERN_SHA256_LEN])
{
	uint8_t d[TERN_SHA256_LEN];
	tern_sha256(index, len, d);
	return memcmp(d, digest, TERN_SHA256_LEN) == 0;
}
