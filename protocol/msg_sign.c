/* Signing desired-state messages (host side only: links the signing library). */
#include "tern/tern_msg.h"
#include "tern/tern_sign.h"

size_t tern_desired_sign(const struct tern_signer *sg, const struct tern_desired *d, uint8_t *out,
			 size_t size)
{
	uint8_t payload[TERN_DESIRED_MAX];
	size_t n = tern_desired_encode(d, payload, sizeof(payload));
	if (!n || tern_cose_sign1_size(n) > size)
		return 0;
	return tern_cose_sign1_sign(sg, payload, n, (const uint8_t *)TERN_DESIRED_AAD,
				    sizeof(TERN_DESIRED_AAD) - 1, out, size);
}
