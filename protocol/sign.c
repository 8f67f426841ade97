/* P-256 signing keys and COSE_Sign1 signing (host side). */
#include "tern/tern_sign.h"

#include "tern/tern_cbor.h"
#include "tern/tern_err.h"
#include "tern/tern_sha256.h"

#include <cbor.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t protected_es256[] = {0xa1, 0x01, 0x26}; /* {1: -7} */

/* Fills sg->pub from the loaded key pair. */
static int set_public(struct tern_signer *sg)
{
	mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*(mbedtls_pk_context *)sg->pk);
	uint8_t point[TERN_P256_POINT_LEN];
	size_t olen = 0;
	if (ec->grp.id != MBEDTLS_ECP_DP_SECP256R1)
		return TERN_E_KEY;
	if (mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen,
					   point, sizeof(point)))
		return TERN_E_KEY;
	return tern_pubkey_from_point(&sg->pub, point, olen);
}

static int signer_alloc(struct tern_signer *sg)
{
	memset(sg, 0, sizeof(*sg));
	sg->pk = malloc(sizeof(mbedtls_pk_context));
	if (!sg->pk)
		return TERN_E_NOMEM;
	mbedtls_pk_init(sg->pk);
	return 0;
}

void tern_signer_free(struct tern_signer *sg)
{
	if (sg->pk) {
		mbedtls_pk_free(sg->pk);
		free(sg->pk);
	}
	sg->pk = NULL;
}

int tern_signer_load(struct tern_signer *sg, const uint8_t *buf, size_t len)
{
	int rc = signer_alloc(sg);
	if (rc)
		return rc;
	unsigned char *copy = malloc(len + 1);
	if (!copy) {
		rc = TERN_E_NOMEM;
		goto out_free;
	}
	memcpy(copy, buf, len);
	copy[len] = '\0';
	size_t in_len = memchr(buf, '-', len) ? len + 1 : len;
	if (mbedtls_pk_parse_key(sg->pk, copy, in_len, NULL, 0)) {
		struct tern_pubkey probe;
		rc = tern_pubkey_parse(&probe, buf, len) == 0 ? TERN_E_PUBLIC_KEY : TERN_E_KEY;
		goto out_copy;
	}
	if (mbedtls_pk_get_type(sg->pk) != MBEDTLS_PK_ECKEY) {
		rc = TERN_E_KEY;
		goto out_copy;
	}
	rc = set_public(sg);
out_copy:
	mbedtls_platform_zeroize(copy, len + 1);
	free(copy);
out_free:
	if (rc)
		tern_signer_free(sg);
	return rc;
}

int tern_signer_generate(struct tern_signer *sg)
{
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	static const char pers[] = "tern key generate";
	int rc = signer_alloc(sg);
	if (rc)
		return rc;
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	rc = TERN_E_CRYPTO;
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1))
		goto out;
	if (mbedtls_pk_setup(sg->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)))
		goto out;
	if (mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1,
				mbedtls_pk_ec(*(mbedtls_pk_context *)sg->pk),
				mbedtls_ctr_drbg_random, &drbg))
		goto out;
	rc = set_public(sg);
out:
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	if (rc)
		tern_signer_free(sg);
	return rc;
}

size_t tern_signer_private_pem(const struct tern_signer *sg, char *out, size_t size)
{
	if (mbedtls_pk_write_key_pem(sg->pk, (unsigned char *)out, size))
		return 0;
	return strlen(out);
}

size_t tern_signer_public_pem(const struct tern_signer *sg, char *out, size_t size)
{
	if (mbedtls_pk_write_pubkey_pem(sg->pk, (unsigned char *)out, size))
		return 0;
	return strlen(out);
}

size_t tern_cose_sign1_size(size_t payload_len)
{
	uint8_t head[9];
	/* tag + array(4) + bstr(3) + {4: bstr(8)} + bstr(payload) + bstr(64) */
	size_t n = 1 + 1 + (1 + sizeof(protected_es256)) + (1 + 1 + 1 + TERN_KID_LEN);
	n += cbor_encode_bytestring_start(payload_len, head, sizeof(head)) + payload_len;
	n += 2 + TERN_ES256_SIG_LEN;
	return n;
}

size_t tern_cose_sign1_sign(const struct tern_signer *sg, const uint8_t *payload,
			    size_t payload_len, const uint8_t *aad, size_t aad_len, uint8_t *out,
			    size_t out_size)
{
	struct tern_sign1 s = {
	    .protected_hdr = protected_es256,
	    .protected_len = sizeof(protected_es256),
	    .payload = payload,
	    .payload_len = payload_len,
	    .alg = TERN_COSE_ALG_ES256,
	};
	uint8_t digest[TERN_SHA256_LEN];
	uint8_t sig[TERN_ES256_SIG_LEN];
	uint8_t d[32];
	size_t written = 0;

	if (out_size < tern_cose_sign1_size(payload_len))
		return 0;
	tern_cose_sign1_digest(&s, aad, aad_len, digest);
	mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*(mbedtls_pk_context *)sg->pk);
	if (mbedtls_mpi_write_binary(&ec->d, d, sizeof(d)) || tern_es256_sign(d, digest, sig))
		goto out;

	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, out, out_size);
	tern_cbor_put_tag(&w, TERN_COSE_TAG_SIGN1);
	tern_cbor_put_array(&w, 4);
	tern_cbor_put_bytes(&w, protected_es256, sizeof(protected_es256));
	tern_cbor_put_map(&w, 1);
	tern_cbor_put_uint(&w, 4);
	tern_cbor_put_bytes(&w, sg->pub.kid, TERN_KID_LEN);
	tern_cbor_put_bytes(&w, payload, payload_len);
	tern_cbor_put_bytes(&w, sig, sizeof(sig));
	written = tern_cbor_writer_len(&w);
out:
	mbedtls_platform_zeroize(d, sizeof(d));
	return written;
}
