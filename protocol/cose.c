/* COSE_Sign1 parse and ES256 verify (RFC 9052), keys and keyrings. */
#include "tern/tern_cose.h"

#include "es256_priv.h"

#include "tern/tern_cbor.h"
#include "tern/tern_err.h"
#include "tern/tern_sha256.h"

#include <cbor.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <string.h>

#define HDR_ALG		1
#define HDR_CRIT	2
#define HDR_KID		4
#define HDR_MAX_ENTRIES 32

/* Header labels this reader understands, for the "crit" rule. */
static bool label_known(int64_t label)
{
	return label == HDR_ALG || label == HDR_CRIT || label == HDR_KID;
}

int tern_pubkey_from_point(struct tern_pubkey *pk, const uint8_t *point, size_t len)
{
	int rc = TERN_E_KEY;
	mbedtls_ecp_group grp;
	mbedtls_ecp_point q;
	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&q);
	if (len != TERN_P256_POINT_LEN || point[0] != 0x04)
		goto out;
	if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) ||
	    mbedtls_ecp_point_read_binary(&grp, &q, point, len) ||
	    mbedtls_ecp_check_pubkey(&grp, &q))
		goto out;
	memcpy(pk->point, point, TERN_P256_POINT_LEN);
	uint8_t digest[TERN_SHA256_LEN];
	tern_sha256(point, TERN_P256_POINT_LEN, digest);
	memcpy(pk->kid, digest, TERN_KID_LEN);
	rc = 0;
out:
	mbedtls_ecp_point_free(&q);
	mbedtls_ecp_group_free(&grp);
	return rc;
}

int tern_pubkey_parse(struct tern_pubkey *pk, const uint8_t *buf, size_t len)
{
	int rc = TERN_E_KEY;
	mbedtls_pk_context ctx;
	mbedtls_pk_init(&ctx);
	if (len == 0)
		goto out;
	/* DER as given first: binary DER may hold any byte ('-' too), and a DER key with
	 * a byte appended is refused. Then PEM, which must be NUL-terminated with the NUL
	 * counted (DEPENDENCIES.md). */
	if (mbedtls_pk_parse_public_key(&ctx, buf, len)) {
		unsigned char pem[4096];
		if (len >= sizeof(pem))
			goto out;
		memcpy(pem, buf, len);
		pem[len] = '\0';
		mbedtls_pk_free(&ctx);
		mbedtls_pk_init(&ctx);
		if (mbedtls_pk_parse_public_key(&ctx, pem, len + 1))
			goto out;
	}
	if (mbedtls_pk_get_type(&ctx) != MBEDTLS_PK_ECKEY)
		goto out;
	mbedtls_ecp_keypair *ec = mbedtls_pk_ec(ctx);
	if (ec->grp.id != MBEDTLS_ECP_DP_SECP256R1)
		goto out;
	uint8_t point[TERN_P256_POINT_LEN];
	size_t olen = 0;
	if (mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen,
					   point, sizeof(point)) ||
	    olen != sizeof(point))
		goto out;
	rc = tern_pubkey_from_point(pk, point, olen);
out:
	mbedtls_pk_free(&ctx);
	return rc;
}

int tern_keyring_add(struct tern_keyring *kr, const struct tern_pubkey *pk)
{
	if (tern_keyring_find(kr, pk->kid, TERN_KID_LEN))
		return 0;
	if (kr->n_keys >= TERN_KEYRING_MAX)
		return TERN_E_TOO_LARGE;
	kr->keys[kr->n_keys++] = *pk;
	return 0;
}

const struct tern_pubkey *tern_keyring_find(const struct tern_keyring *kr, const uint8_t *kid,
					    size_t kid_len)
{
	if (!kid || kid_len != TERN_KID_LEN)
		return NULL;
	for (size_t i = 0; i < kr->n_keys; i++)
		if (memcmp(kr->keys[i].kid, kid, TERN_KID_LEN) == 0)
			return &kr->keys[i];
	return NULL;
}

/* Header parameters collected from both buckets. */
struct hdr_state {
	bool have_alg;
	bool alg_is_text;
	int64_t alg;
	const uint8_t *kid;
	size_t kid_len;
	int64_t seen[HDR_MAX_ENTRIES * 2]; /* integer labels seen in either bucket */
	size_t n_seen;
};

static int note_label(struct hdr_state *h, int64_t label)
{
	for (size_t i = 0; i < h->n_seen; i++)
		if (h->seen[i] == label)
			return TERN_E_MALFORMED; /* duplicate, or in both buckets */
	if (h->n_seen == sizeof(h->seen) / sizeof(h->seen[0]))
		return TERN_E_TOO_LARGE;
	h->seen[h->n_seen++] = label;
	return 0;
}

static int read_crit(struct tern_cbor_reader *r)
{
	uint64_t n;
	int rc = tern_cbor_read_array(r, &n);
	if (rc)
		return rc;
	if (n == 0)
		return TERN_E_MALFORMED;
	if (n > HDR_MAX_ENTRIES)
		return TERN_E_TOO_LARGE;
	for (uint64_t i = 0; i < n; i++) {
		struct tern_cbor_item it;
		rc = tern_cbor_peek(r, &it);
		if (rc)
			return rc;
		if (it.type == TERN_CBOR_TEXT)
			return TERN_E_CRITICAL; /* tern knows no text labels */
		int64_t label;
		rc = tern_cbor_read_int(r, &label);
		if (rc)
			return rc;
		if (!label_known(label))
			return TERN_E_CRITICAL;
	}
	return 0;
}

/* Reads one header map (the protected one when @is_protected). */
static int read_header_map(struct tern_cbor_reader *r, struct hdr_state *h, bool is_protected)
{
	uint64_t n;
	int rc = tern_cbor_read_map(r, &n);
	if (rc)
		return rc;
	if (n > HDR_MAX_ENTRIES)
		return TERN_E_TOO_LARGE;
	for (uint64_t i = 0; i < n; i++) {
		struct tern_cbor_item key;
		rc = tern_cbor_peek(r, &key);
		if (rc)
			return rc;
		if (key.type == TERN_CBOR_TEXT) {
			/* Text labels are private use: skip label and value. */
			if ((rc = tern_cbor_skip(r)) || (rc = tern_cbor_skip(r)))
				return rc;
			continue;
		}
		int64_t label;
		if ((rc = tern_cbor_read_int(r, &label)) || (rc = note_label(h, label)))
			return rc;
		if (label == HDR_ALG) {
			struct tern_cbor_item v;
			if ((rc = tern_cbor_peek(r, &v)))
				return rc;
			h->have_alg = true;
			if (v.type == TERN_CBOR_TEXT) {
				h->alg_is_text = true;
				rc = tern_cbor_skip(r);
			} else {
				rc = tern_cbor_read_int(r, &h->alg);
			}
		} else if (label == HDR_CRIT) {
			rc = is_protected ? read_crit(r) : TERN_E_MALFORMED;
		} else if (label == HDR_KID) {
			rc = tern_cbor_read_bytes(r, &h->kid, &h->kid_len);
			if (!rc && h->kid_len > TERN_KID_MAX)
				rc = TERN_E_TOO_LARGE;
		} else {
			rc = tern_cbor_skip(r);
		}
		if (rc)
			return rc;
	}
	return 0;
}

int tern_cose_sign1_parse(struct tern_sign1 *s, const uint8_t *buf, size_t len)
{
	struct tern_cbor_reader r;
	struct tern_cbor_item it;
	struct hdr_state h;
	int rc;

	memset(s, 0, sizeof(*s));
	memset(&h, 0, sizeof(h));
	tern_cbor_reader_init(&r, buf, len);
	if ((rc = tern_cbor_peek(&r, &it)))
		return rc == TERN_E_NOT_CBOR ? TERN_E_NOT_RELEASE : rc;
	if (it.type == TERN_CBOR_TAG) {
		if (it.val != TERN_COSE_TAG_SIGN1)
			return TERN_E_NOT_RELEASE;
		(void)tern_cbor_next(&r, &it);
		if ((rc = tern_cbor_peek(&r, &it)))
			return rc;
	}
	if (it.type != TERN_CBOR_ARRAY || it.val != 4)
		return TERN_E_NOT_RELEASE;
	(void)tern_cbor_next(&r, &it);

	if ((rc = tern_cbor_read_bytes(&r, &s->protected_hdr, &s->protected_len)))
		return rc;
	if (s->protected_len > 0) {
		struct tern_cbor_reader pr;
		tern_cbor_reader_init(&pr, s->protected_hdr, s->protected_len);
		struct tern_cbor_item map;
		bool no_entries =
		    tern_cbor_peek(&pr, &map) == 0 && map.type == TERN_CBOR_MAP && map.val == 0;
		if ((rc = read_header_map(&pr, &h, true)))
			return rc == TERN_E_TRUNCATED ? TERN_E_MALFORMED : rc;
		if (tern_cbor_remaining(&pr))
			return TERN_E_MALFORMED;
		/* RFC 9052 4.4: without protected attributes the Sig_structure carries a
		 * zero-length byte string, even when the message sent an empty map. */
		if (no_entries)
			s->protected_len = 0;
	}
	if ((rc = read_header_map(&r, &h, false)))
		return rc;
	if ((rc = tern_cbor_peek(&r, &it)))
		return rc;
	if (it.type != TERN_CBOR_BYTES)
		return TERN_E_MALFORMED; /* detached payloads are not used by tern */
	if ((rc = tern_cbor_read_bytes(&r, &s->payload, &s->payload_len)) ||
	    (rc = tern_cbor_read_bytes(&r, &s->sig, &s->sig_len)))
		return rc;
	if (!h.have_alg || h.alg_is_text || h.alg != TERN_COSE_ALG_ES256)
		return TERN_E_UNSUPPORTED_ALG;
	s->alg = h.alg;
	s->kid = h.kid;
	s->kid_len = h.kid_len;
	s->total_len = r.pos;
	return 0;
}

/* Feeds a CBOR head for a byte or text string of @len bytes to the hash. */
static void hash_head(struct tern_sha256 *h, uint8_t major, size_t len)
{
	uint8_t head[9];
	size_t n;
	if (major == 3)
		n = cbor_encode_string_start(len, head, sizeof(head));
	else
		n = cbor_encode_bytestring_start(len, head, sizeof(head));
	tern_sha256_update(h, head, n);
}

void tern_cose_sign1_digest(const struct tern_sign1 *s, const uint8_t *aad, size_t aad_len,
			    uint8_t out[TERN_SHA256_LEN])
{
	static const char context[] = "Signature1";
	struct tern_sha256 h;
	uint8_t array4 = 0x84;
	tern_sha256_init(&h);
	tern_sha256_update(&h, &array4, 1);
	hash_head(&h, 3, sizeof(context) - 1);
	tern_sha256_update(&h, context, sizeof(context) - 1);
	hash_head(&h, 2, s->protected_len);
	tern_sha256_update(&h, s->protected_hdr, s->protected_len);
	hash_head(&h, 2, aad_len);
	if (aad_len)
		tern_sha256_update(&h, aad, aad_len);
	hash_head(&h, 2, s->payload_len);
	tern_sha256_update(&h, s->payload, s->payload_len);
	tern_sha256_final(&h, out);
}

int tern_cose_sign1_verify(const struct tern_sign1 *s, const struct tern_pubkey *pk,
			   const uint8_t *aad, size_t aad_len)
{
	uint8_t digest[TERN_SHA256_LEN];
	if (s->alg != TERN_COSE_ALG_ES256)
		return TERN_E_UNSUPPORTED_ALG;
	if (s->sig_len != TERN_ES256_SIG_LEN)
		return TERN_E_BAD_SIGNATURE;
	tern_cose_sign1_digest(s, aad, aad_len, digest);
	return tern_es256_verify(pk->point, digest, s->sig);
}

int tern_cose_sign1_open(struct tern_sign1 *s, const uint8_t *buf, size_t len,
			 const struct tern_keyring *kr, const struct tern_pubkey **signer)
{
	int rc = tern_cose_sign1_parse(s, buf, len);
	if (rc)
		return rc;
	const struct tern_pubkey *pk = tern_keyring_find(kr, s->kid, s->kid_len);
	if (!pk)
		return TERN_E_UNKNOWN_KEY;
	rc = tern_cose_sign1_verify(s, pk, NULL, 0);
	if (!rc && signer)
		*signer = pk;
	return rc;
}
