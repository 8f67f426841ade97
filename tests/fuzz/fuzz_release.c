/*
 * libFuzzer target for everything that reads a release from outside: the COSE_Sign1
 * head with and without verification, the manifest decoder and the CBOR skipper, all
 * on the same input. Besides the sanitizers' checks it asserts a few properties:
 * a parsed head lies inside the input and does not depend on what follows it, what
 * verifies also parses unverified, and a decoded manifest re-encodes to bytes that
 * decode to the same encoding again.
 *
 * The keyring holds the fixed, public fuzz key of tests/fuzz/make_seeds.py, so that
 * the signed seeds get through verification to the manifest decoder.
 */
#include "tern/tern_cbor.h"
#include "tern/tern_err.h"
#include "tern/tern_manifest.h"
#include "tern/tern_release.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key_point[TERN_P256_POINT_LEN] = {
    0x04, 0x1d, 0x93, 0xe3, 0x0a, 0x32, 0xf6, 0x65, 0x5b, 0xbc, 0x64, 0x2b, 0x62,
    0xeb, 0x1d, 0xf4, 0x56, 0x40, 0x5f, 0xf9, 0x0d, 0x80, 0x25, 0x85, 0xd9, 0x83,
    0x11, 0x70, 0xa7, 0xbf, 0x07, 0x27, 0xe4, 0x99, 0x81, 0x3d, 0xe5, 0xad, 0xc0,
    0xd2, 0xb4, 0x26, 0x2a, 0xe5, 0xdb, 0x4b, 0x9a, 0xe2, 0x43, 0x41, 0x34, 0xd2,
    0x17, 0xaf, 0x61, 0xc9, 0xa0, 0x10, 0x88, 0x99, 0xa0, 0x33, 0xe8, 0xe1, 0x9c};

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* Re-encodes a decoded manifest and checks the encoding is a fixed point. */
static void check_manifest(const struct tern_manifest *m)
{
	static uint8_t buf[TERN_MANIFEST_MAX], buf2[TERN_MANIFEST_MAX];
	struct tern_manifest again;
	CHECK(tern_manifest_check(m) == 0);
	size_t n = tern_manifest_encode(m, buf, sizeof(buf));
	if (n == 0)
		return; /* decoded notes + fields may exceed TERN_MANIFEST_MAX once re-encoded */
	CHECK(tern_manifest_decode(&again, buf, n) == 0);
	size_t n2 = tern_manifest_encode(&again, buf2, sizeof(buf2));
	CHECK(n2 == n && memcmp(buf, buf2, n) == 0);
}

static void check_head(const struct tern_release_head *rh, const uint8_t *data, size_t size)
{
	CHECK(rh->head_len > 0 && rh->head_len <= size);
	CHECK(rh->sign1.payload >= data &&
	      rh->sign1.payload + rh->sign1.payload_len <= data + size);
	CHECK(rh->sign1.sig >= data && rh->sign1.sig + rh->sign1.sig_len <= data + size);
	check_manifest(&rh->manifest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tern_keyring kr;
	static bool have_keyring;
	struct tern_release_head rh;
	struct tern_manifest m;
	struct tern_cbor_reader r;

	if (!have_keyring) {
		struct tern_pubkey pk;
		CHECK(tern_pubkey_from_point(&pk, fuzz_key_point, sizeof(fuzz_key_point)) == 0);
		CHECK(tern_keyring_add(&kr, &pk) == 0);
		have_keyring = true;
	}

	int rc = tern_release_parse_unverified(&rh, data, size);
	CHECK(rc <= 0 && rc > TERN_E__LAST);
	if (rc == 0) {
		check_head(&rh, data, size);
		/* Only the first item is the head: the same without what follows it. */
		struct tern_release_head alone;
		CHECK(tern_release_parse_unverified(&alone, data, rh.head_len) == 0);
		CHECK(alone.head_len == rh.head_len);
	}

	bool parsed = rc == 0;
	rc = tern_release_open(&rh, data, size, &kr);
	CHECK(rc <= 0 && rc > TERN_E__LAST);
	if (rc == 0) {
		/* What verifies also parses without verification, to the same head. */
		struct tern_release_head plain;
		CHECK(parsed);
		CHECK(tern_release_parse_unverified(&plain, data, size) == 0);
		CHECK(plain.head_len == rh.head_len && plain.signer == NULL);
		check_head(&rh, data, size);
		CHECK(rh.signer == &kr.keys[0]);
	}

	rc = tern_manifest_decode(&m, data, size);
	CHECK(rc <= 0 && rc > TERN_E__LAST);
	if (rc == 0)
		check_manifest(&m);

	tern_cbor_reader_init(&r, data, size);
	rc = tern_cbor_skip(&r);
	CHECK(rc <= 0 && rc > TERN_E__LAST);
	if (rc == 0)
		CHECK(r.pos > 0 && r.pos <= size);
	return 0;
}
