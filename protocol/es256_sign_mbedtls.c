/* Deterministic ES256 signing on mbedtls (tern_sign.h): the reference implementation. */
#include "tern/tern_err.h"
#include "tern/tern_sign.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>

int tern_es256_sign_mbedtls(const uint8_t d[32], const uint8_t digest[TERN_SHA256_LEN],
			    uint8_t sig[TERN_ES256_SIG_LEN])
{
	int rc = TERN_E_CRYPTO;
	mbedtls_ecp_group grp;
	mbedtls_mpi dm, r, sv;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	static const char pers[] = "tern sign blinding";

	mbedtls_ecp_group_init(&grp);
	mbedtls_mpi_init(&dm);
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&sv);
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	/* The signature is deterministic (RFC 6979); randomness only blinds the scalar
	 * multiplication against side channels and does not change the bytes. */
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1) ||
	    mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) ||
	    mbedtls_mpi_read_binary(&dm, d, 32) ||
	    mbedtls_ecdsa_sign_det_ext(&grp, &r, &sv, &dm, digest, TERN_SHA256_LEN,
				       MBEDTLS_MD_SHA256, mbedtls_ctr_drbg_random, &drbg) ||
	    mbedtls_mpi_write_binary(&r, sig, 32) || mbedtls_mpi_write_binary(&sv, sig + 32, 32))
		goto out;
	rc = 0;
out:
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	mbedtls_mpi_free(&sv);
	mbedtls_mpi_free(&r);
	mbedtls_mpi_free(&dm); /* mbedtls_mpi_free zeroes the limbs */
	mbedtls_ecp_group_free(&grp);
	return rc;
}
