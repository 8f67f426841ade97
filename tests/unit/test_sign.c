/*
 * Signing and verifying COSE_Sign1 round trips: payload sizes across every CBOR head
 * width, with and without external AAD, wrong keys, keyrings, deterministic signatures,
 * key files (PEM and DER, private and public), a cross-check in both directions with an
 * independent implementation (Python cbor2 + cryptography), the RFC 6979 P-256 vectors,
 * and the libcrypto signer against the mbedtls one, byte for byte.
 */
#include "tern/tern_cose.h"
#include "tern/tern_err.h"
#include "tern/tern_sha256.h"
#include "tern/tern_sign.h"

#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <string.h>
#include <unistd.h>

#define INTEROP_SCRIPT "tests/interop/cose_interop.py"

static const size_t payload_sizes[] = {0, 1, 23, 24, 255, 256, 65535, 65536};
#define N_SIZES (sizeof(payload_sizes) / sizeof(payload_sizes[0]))

/* Two keys shared by the tests (generating costs a little). */
struct keys {
	struct tern_signer a, b;
};

static int setup_keys(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));
	if (!k || tern_signer_generate(&k->a) || tern_signer_generate(&k->b))
		return -1;
	*state = k;
	return 0;
}

static int teardown_keys(void **state)
{
	struct keys *k = *state;
	tern_signer_free(&k->a);
	tern_signer_free(&k->b);
	free(k);
	return 0;
}

static uint8_t *make_payload(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + 7);
	return p;
}

/* Signs @payload into an exact-size heap buffer; returns it and sets @len. */
static uint8_t *sign_exact(const struct tern_signer *sg, const uint8_t *payload, size_t n,
			   const uint8_t *aad, size_t aad_len, size_t *len)
{
	size_t size = tern_cose_sign1_size(n);
	uint8_t *out = malloc(size);
	assert_non_null(out);
	*len = tern_cose_sign1_sign(sg, payload, n, aad, aad_len, out, size);
	assert_int_equal(*len, size);
	return out;
}

static void test_round_trips(void **state)
{
	struct keys *k = *state;
	static const uint8_t aad[] = "device-0042/generation-7";
	struct tern_keyring kr = {0}, other = {0};
	assert_int_equal(tern_keyring_add(&kr, &k->a.pub), 0);
	assert_int_equal(tern_keyring_add(&other, &k->b.pub), 0);

	for (size_t i = 0; i < N_SIZES; i++) {
		size_t n = payload_sizes[i];
		uint8_t *payload = make_payload(n);
		for (int with_aad = 0; with_aad < 2; with_aad++) {
			const uint8_t *a = with_aad ? aad : NULL;
			size_t a_len = with_aad ? sizeof(aad) - 1 : 0;
			size_t len;
			uint8_t *msg = sign_exact(&k->a, payload, n, a, a_len, &len);
			struct tern_sign1 s;
			assert_int_equal(msg[0], 0xd2);
			assert_int_equal(tern_cose_sign1_parse(&s, msg, len), 0);
			assert_int_equal(s.total_len, len);
			assert_int_equal(s.payload_len, n);
			assert_memory_equal(s.payload, payload, n);
			assert_int_equal(s.alg, TERN_COSE_ALG_ES256);
			assert_int_equal(s.kid_len, TERN_KID_LEN);
			assert_memory_equal(s.kid, k->a.pub.kid, TERN_KID_LEN);
			assert_int_equal(tern_cose_sign1_verify(&s, &k->a.pub, a, a_len), 0);
			/* Wrong key. */
			assert_int_equal(tern_cose_sign1_verify(&s, &k->b.pub, a, a_len),
					 TERN_E_BAD_SIGNATURE);
			/* AAD bound: missing, added or changed. */
			if (with_aad) {
				assert_int_equal(tern_cose_sign1_verify(&s, &k->a.pub, NULL, 0),
						 TERN_E_BAD_SIGNATURE);
				assert_int_equal(
				    tern_cose_sign1_verify(&s, &k->a.pub, a, a_len - 1),
				    TERN_E_BAD_SIGNATURE);
			} else {
				assert_int_equal(
				    tern_cose_sign1_verify(&s, &k->a.pub, aad, sizeof(aad) - 1),
				    TERN_E_BAD_SIGNATURE);
				/* open: no AAD, key found by kid. */
				const struct tern_pubkey *signer = NULL;
				assert_int_equal(tern_cose_sign1_open(&s, msg, len, &kr, &signer),
						 0);
				assert_ptr_equal(signer, &kr.keys[0]);
				assert_int_equal(tern_cose_sign1_open(&s, msg, len, &other, NULL),
						 TERN_E_UNKNOWN_KEY);
			}
			/* Output buffer one byte short: nothing written, 0 returned. */
			size_t short_size = len - 1;
			uint8_t *small = malloc(short_size);
			assert_non_null(small);
			assert_int_equal(
			    tern_cose_sign1_sign(&k->a, payload, n, a, a_len, small, short_size),
			    0);
			free(small);
			free(msg);
		}
		free(payload);
	}
}

/* A payload bit flipped after signing fails, wherever it is. */
static void test_payload_tamper(void **state)
{
	struct keys *k = *state;
	size_t n = 300, len;
	uint8_t *payload = make_payload(n);
	uint8_t *msg = sign_exact(&k->a, payload, n, NULL, 0, &len);
	struct tern_sign1 s;
	assert_int_equal(tern_cose_sign1_parse(&s, msg, len), 0);
	size_t off = (size_t)(s.payload - msg);
	for (size_t i = 0; i < n; i += 37) {
		msg[off + i] ^= 0x10;
		assert_int_equal(tern_cose_sign1_parse(&s, msg, len), 0);
		assert_int_equal(tern_cose_sign1_verify(&s, &k->a.pub, NULL, 0),
				 TERN_E_BAD_SIGNATURE);
		msg[off + i] ^= 0x10;
	}
	assert_int_equal(tern_cose_sign1_parse(&s, msg, len), 0);
	assert_int_equal(tern_cose_sign1_verify(&s, &k->a.pub, NULL, 0), 0);
	free(msg);
	free(payload);
}

static void test_deterministic(void **state)
{
	struct keys *k = *state;
	uint8_t *payload = make_payload(1000);
	size_t len1, len2, len3;
	uint8_t *m1 = sign_exact(&k->a, payload, 1000, NULL, 0, &len1);
	uint8_t *m2 = sign_exact(&k->a, payload, 1000, NULL, 0, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(m1, m2, len1);
	/* Another payload gives another signature. */
	payload[0] ^= 1;
	uint8_t *m3 = sign_exact(&k->a, payload, 1000, NULL, 0, &len3);
	assert_int_equal(len1, len3);
	assert_memory_not_equal(m1 + len1 - 64, m3 + len3 - 64, 64);
	free(m1);
	free(m2);
	free(m3);
	free(payload);
}

/* The private scalar of a loaded key, big-endian. */
static void key_scalar(const struct tern_signer *sg, uint8_t d[32])
{
	mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*(mbedtls_pk_context *)sg->pk);
	assert_int_equal(mbedtls_mpi_write_binary(&ec->d, d, 32), 0);
}

/* RFC 6979 A.2.5: P-256, SHA-256, messages "sample" and "test", on the build's signing
 * backend and on the mbedtls reference. */
static void test_rfc6979_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *msg, *r, *s;
	} v[] = {
	    {"sample", "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
	     "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"},
	    {"test", "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
	     "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083"},
	};
	uint8_t d[32], digest[TERN_SHA256_LEN], want[TERN_ES256_SIG_LEN], sig[TERN_ES256_SIG_LEN];
	assert_int_equal(
	    test_unhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", d, 32),
	    32);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		tern_sha256(v[i].msg, strlen(v[i].msg), digest);
		assert_int_equal(test_unhex(v[i].r, want, 32), 32);
		assert_int_equal(test_unhex(v[i].s, want + 32, 32), 32);
		memset(sig, 0, sizeof(sig));
		assert_int_equal(tern_es256_sign(d, digest, sig), 0);
		assert_memory_equal(sig, want, sizeof(want));
		memset(sig, 0, sizeof(sig));
		assert_int_equal(tern_es256_sign_mbedtls(d, digest, sig), 0);
		assert_memory_equal(sig, want, sizeof(want));
	}
}

/* The build's signing backend gives exactly mbedtls's bytes: 5 keys x 60 digests, plus
 * digests at and above the group order (reduced before use) and the zero digest. */
static void test_backends_agree(void **state)
{
	(void)state;
	static const char *const edge[] = {
	    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", /* n */
	    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632552", /* n + 1 */
	    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
	    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632550", /* n - 1 */
	    "0000000000000000000000000000000000000000000000000000000000000000",
	};
	size_t compared = 0;
	for (uint32_t key = 0; key < 5; key++) {
		struct tern_signer sg;
		uint8_t d[32];
		assert_int_equal(tern_signer_generate(&sg), 0);
		key_scalar(&sg, d);
		for (uint32_t i = 0; i < 60 + sizeof(edge) / sizeof(edge[0]); i++) {
			uint8_t digest[TERN_SHA256_LEN], a[TERN_ES256_SIG_LEN],
			    b[TERN_ES256_SIG_LEN];
			uint32_t seed[2] = {key, i};
			if (i < 60)
				tern_sha256(seed, sizeof(seed), digest);
			else
				assert_int_equal(test_unhex(edge[i - 60], digest, sizeof(digest)),
						 sizeof(digest));
			assert_int_equal(tern_es256_sign(d, digest, a), 0);
			assert_int_equal(tern_es256_sign_mbedtls(d, digest, b), 0);
			assert_memory_equal(a, b, sizeof(a));
			compared++;
		}
		tern_signer_free(&sg);
	}
	assert_int_equal(compared, 5 * (60 + sizeof(edge) / sizeof(edge[0])));
	print_message("%zu signatures: %s equals mbedtls\n", compared, tern_es256_sign_backend());
}

/* A scalar outside [1, n-1] is refused, not signed with. */
static void test_sign_bad_scalar(void **state)
{
	(void)state;
	uint8_t d[32], digest[TERN_SHA256_LEN] = {1}, sig[TERN_ES256_SIG_LEN];
	memset(d, 0, sizeof(d));
	assert_int_equal(tern_es256_sign(d, digest, sig), TERN_E_CRYPTO);
	assert_int_equal(
	    test_unhex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", d, 32),
	    32);
	assert_int_equal(tern_es256_sign(d, digest, sig), TERN_E_CRYPTO);
}

/* The size tern_cose_sign1_size() announces is what tern_cose_sign1_sign() writes. */
static void test_size(void **state)
{
	(void)state;
	/* tag, array, h'A10126', {4: h'8 bytes'}, payload, signature */
	assert_int_equal(tern_cose_sign1_size(0), 1 + 1 + 4 + 11 + 1 + 66);
	assert_int_equal(tern_cose_sign1_size(23), 1 + 1 + 4 + 11 + 1 + 23 + 66);
	assert_int_equal(tern_cose_sign1_size(24), 1 + 1 + 4 + 11 + 2 + 24 + 66);
	assert_int_equal(tern_cose_sign1_size(256), 1 + 1 + 4 + 11 + 3 + 256 + 66);
	assert_int_equal(tern_cose_sign1_size(65536), 1 + 1 + 4 + 11 + 5 + 65536 + 66);
}

static void test_keyring(void **state)
{
	struct keys *k = *state;
	struct tern_keyring kr = {0};
	assert_int_equal(tern_keyring_add(&kr, &k->a.pub), 0);
	assert_int_equal(tern_keyring_add(&kr, &k->a.pub), 0); /* already there */
	assert_int_equal(kr.n_keys, 1);
	assert_ptr_equal(tern_keyring_find(&kr, k->a.pub.kid, TERN_KID_LEN), &kr.keys[0]);
	assert_null(tern_keyring_find(&kr, k->b.pub.kid, TERN_KID_LEN));
	assert_null(tern_keyring_find(&kr, k->a.pub.kid, TERN_KID_LEN - 1));
	assert_null(tern_keyring_find(&kr, NULL, 0));
	/* Full: distinct fake kids fill it. */
	for (size_t i = 1; i < TERN_KEYRING_MAX; i++) {
		struct tern_pubkey pk = k->b.pub;
		pk.kid[0] = (uint8_t)(pk.kid[0] + i);
		assert_int_equal(tern_keyring_add(&kr, &pk), 0);
	}
	assert_int_equal(kr.n_keys, TERN_KEYRING_MAX);
	struct tern_pubkey extra = k->b.pub;
	extra.kid[1] ^= 0xff;
	assert_int_equal(tern_keyring_add(&kr, &extra), TERN_E_TOO_LARGE);
}

static void test_pubkey_from_point(void **state)
{
	struct keys *k = *state;
	struct tern_pubkey pk;
	uint8_t point[TERN_P256_POINT_LEN];
	uint8_t digest[TERN_SHA256_LEN];
	memcpy(point, k->a.pub.point, sizeof(point));
	assert_int_equal(tern_pubkey_from_point(&pk, point, sizeof(point)), 0);
	tern_sha256(point, sizeof(point), digest);
	assert_memory_equal(pk.kid, digest, TERN_KID_LEN);
	/* Off the curve, compressed form, wrong lengths. */
	point[64] ^= 1;
	assert_int_equal(tern_pubkey_from_point(&pk, point, sizeof(point)), TERN_E_KEY);
	point[64] ^= 1;
	point[0] = 0x02;
	assert_int_equal(tern_pubkey_from_point(&pk, point, 33), TERN_E_KEY);
	point[0] = 0x04;
	assert_int_equal(tern_pubkey_from_point(&pk, point, sizeof(point) - 1), TERN_E_KEY);
	uint8_t zero[TERN_P256_POINT_LEN] = {0x04};
	assert_int_equal(tern_pubkey_from_point(&pk, zero, sizeof(zero)), TERN_E_KEY);
}

static void test_pem_round_trip(void **state)
{
	struct keys *k = *state;
	char priv[1024], pub[512];
	size_t priv_len = tern_signer_private_pem(&k->a, priv, sizeof(priv));
	size_t pub_len = tern_signer_public_pem(&k->a, pub, sizeof(pub));
	assert_true(priv_len > 0 && priv_len < sizeof(priv));
	assert_true(pub_len > 0 && pub_len < sizeof(pub));
	assert_int_equal(strlen(priv), priv_len);
	assert_non_null(strstr(priv, "-----BEGIN EC PRIVATE KEY-----"));
	assert_non_null(strstr(pub, "-----BEGIN PUBLIC KEY-----"));

	/* Private PEM loads back to the same key; exact-size input, no NUL. */
	struct tern_signer sg;
	uint8_t *in = test_dup(priv, priv_len);
	assert_int_equal(tern_signer_load(&sg, in, priv_len), 0);
	assert_memory_equal(sg.pub.point, k->a.pub.point, TERN_P256_POINT_LEN);
	assert_memory_equal(sg.pub.kid, k->a.pub.kid, TERN_KID_LEN);
	/* And signs the same bytes (deterministic). */
	size_t l1, l2;
	uint8_t *m1 = sign_exact(&k->a, (const uint8_t *)"x", 1, NULL, 0, &l1);
	uint8_t *m2 = sign_exact(&sg, (const uint8_t *)"x", 1, NULL, 0, &l2);
	assert_memory_equal(m1, m2, l1);
	free(m1);
	free(m2);
	tern_signer_free(&sg);
	free(in);

	/* Public PEM parses to the same kid. */
	struct tern_pubkey pk;
	in = test_dup(pub, pub_len);
	assert_int_equal(tern_pubkey_parse(&pk, in, pub_len), 0);
	assert_memory_equal(pk.kid, k->a.pub.kid, TERN_KID_LEN);
	assert_memory_equal(pk.point, k->a.pub.point, TERN_P256_POINT_LEN);
	/* A public key where a signing key is needed. */
	assert_int_equal(tern_signer_load(&sg, in, pub_len), TERN_E_PUBLIC_KEY);
	assert_null(sg.pk);
	free(in);

	/* Too small output buffers. */
	assert_int_equal(tern_signer_private_pem(&k->a, priv, 16), 0);
	assert_int_equal(tern_signer_public_pem(&k->a, pub, 16), 0);
}

static void test_bad_keys(void **state)
{
	struct keys *k = *state;
	struct tern_signer sg;
	struct tern_pubkey pk;
	static const char garbage[] = "this is not a key at all\n";
	static const char half_pem[] = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n";
	uint8_t *in = test_dup(garbage, sizeof(garbage) - 1);
	assert_int_equal(tern_signer_load(&sg, in, sizeof(garbage) - 1), TERN_E_KEY);
	assert_int_equal(tern_pubkey_parse(&pk, in, sizeof(garbage) - 1), TERN_E_KEY);
	free(in);
	in = test_dup(half_pem, sizeof(half_pem) - 1);
	assert_int_equal(tern_signer_load(&sg, in, sizeof(half_pem) - 1), TERN_E_KEY);
	free(in);
	assert_int_equal(tern_signer_load(&sg, (const uint8_t *)"", 0), TERN_E_KEY);
	assert_int_equal(tern_pubkey_parse(&pk, (const uint8_t *)"", 0), TERN_E_KEY);

	/* A truncated private PEM is refused, not half-loaded. */
	char priv[1024];
	size_t priv_len = tern_signer_private_pem(&k->a, priv, sizeof(priv));
	assert_true(priv_len > 40);
	in = test_dup(priv, priv_len - 40);
	assert_int_equal(tern_signer_load(&sg, in, priv_len - 40), TERN_E_KEY);
	free(in);
}

static int test_rng(void *ctx, unsigned char *out, size_t len)
{
	return mbedtls_ctr_drbg_random(ctx, out, len);
}

/* A P-384 key is a key, but not one tern accepts. */
static void test_other_curve(void **state)
{
	(void)state;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_pk_context pk;
	unsigned char priv[1024], pub[512];
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_pk_init(&pk);
	assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0), 0);
	assert_int_equal(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
	assert_int_equal(
	    mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP384R1, mbedtls_pk_ec(pk), test_rng, &drbg), 0);
	assert_int_equal(mbedtls_pk_write_key_pem(&pk, priv, sizeof(priv)), 0);
	assert_int_equal(mbedtls_pk_write_pubkey_pem(&pk, pub, sizeof(pub)), 0);
	struct tern_signer sg;
	struct tern_pubkey tpk;
	assert_int_equal(tern_signer_load(&sg, priv, strlen((char *)priv)), TERN_E_KEY);
	assert_int_equal(tern_pubkey_parse(&tpk, pub, strlen((char *)pub)), TERN_E_KEY);
	mbedtls_pk_free(&pk);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
}

/* Keys of another type, and inputs larger than any key file. */
static void test_not_ec_keys(void **state)
{
	(void)state;
	static const char rsa_pub[] =
	    "-----BEGIN PUBLIC KEY-----\n"
	    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCm497Uz1MAzq+pB9HXCBATYSL3\n"
	    "vFVNaZCAeJjxZxhv8xKNDLFOfajikiqm6lxXsCCs1BDIYS6TYRllwLeeppXdSmYO\n"
	    "zeDbbnppAGEIjAV8ZzhL23vuJcsr8+EcoPQAsRmm/oWffYup4gqpSzefFXOt6ra1\n"
	    "AVie3wz2nMhO/riIfQIDAQAB\n"
	    "-----END PUBLIC KEY-----\n";
	struct tern_pubkey pk;
	struct tern_signer sg;
	uint8_t *in = test_dup(rsa_pub, sizeof(rsa_pub) - 1);
	assert_int_equal(tern_pubkey_parse(&pk, in, sizeof(rsa_pub) - 1), TERN_E_KEY);
	/* Not a P-256 key: not "a public key where a private one belongs" either. */
	assert_int_equal(tern_signer_load(&sg, in, sizeof(rsa_pub) - 1), TERN_E_KEY);
	free(in);
	size_t big = 8192;
	uint8_t *junk = malloc(big);
	assert_non_null(junk);
	memset(junk, '-', big);
	assert_int_equal(tern_pubkey_parse(&pk, junk, big), TERN_E_KEY);
	assert_int_equal(tern_signer_load(&sg, junk, big), TERN_E_KEY);
	free(junk);
}

/* tern_cose_sign1_verify() on parsed messages that cannot verify. */
static void test_verify_odd_messages(void **state)
{
	struct keys *k = *state;
	size_t len;
	uint8_t *msg = sign_exact(&k->a, (const uint8_t *)"abc", 3, NULL, 0, &len);
	struct tern_sign1 s;
	assert_int_equal(tern_cose_sign1_parse(&s, msg, len), 0);
	struct tern_sign1 odd = s;
	odd.alg = -35;
	assert_int_equal(tern_cose_sign1_verify(&odd, &k->a.pub, NULL, 0), TERN_E_UNSUPPORTED_ALG);
	odd = s;
	odd.sig_len = TERN_ES256_SIG_LEN - 1;
	assert_int_equal(tern_cose_sign1_verify(&odd, &k->a.pub, NULL, 0), TERN_E_BAD_SIGNATURE);
	/* Signature of 0, 63 and 65 bytes in the message itself. */
	static const size_t sig_lens[] = {0, 63, 65};
	for (size_t i = 0; i < sizeof(sig_lens) / sizeof(sig_lens[0]); i++) {
		size_t head = len - 2 - TERN_ES256_SIG_LEN, n = sig_lens[i];
		size_t mlen = head + 2 + n;
		uint8_t *m = malloc(mlen);
		assert_non_null(m);
		memcpy(m, msg, head);
		m[head] = 0x58;
		m[head + 1] = (uint8_t)n;
		memset(m + head + 2, 0x11, n);
		if (n < 24) { /* short head form */
			m[head] = (uint8_t)(0x40 | n);
			memmove(m + head + 1, m + head + 2, n);
			mlen--;
		}
		struct tern_keyring kr = {0};
		assert_int_equal(tern_keyring_add(&kr, &k->a.pub), 0);
		assert_int_equal(tern_cose_sign1_open(&s, m, mlen, &kr, NULL),
				 TERN_E_BAD_SIGNATURE);
		free(m);
	}
	/* r or s zero, or at the group order: refused, not accepted. */
	static const uint8_t order[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
					  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
					  0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
	uint8_t *sig = msg + len - TERN_ES256_SIG_LEN;
	uint8_t saved[TERN_ES256_SIG_LEN];
	memcpy(saved, sig, sizeof(saved));
	for (int which = 0; which < 4; which++) {
		memcpy(sig, saved, sizeof(saved));
		uint8_t *half = sig + (which % 2 ? 32 : 0);
		if (which < 2)
			memset(half, 0, 32);
		else
			memcpy(half, order, 32);
		assert_int_equal(tern_cose_sign1_parse(&s, msg, len), 0);
		assert_int_equal(tern_cose_sign1_verify(&s, &k->a.pub, NULL, 0),
				 TERN_E_BAD_SIGNATURE);
	}
	free(msg);
}

/* SubjectPublicKeyInfo of an uncompressed P-256 point, in DER. */
static size_t spki_der(const uint8_t point[TERN_P256_POINT_LEN], uint8_t out[91])
{
	static const uint8_t prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
					 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
					 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
	memcpy(out, prefix, sizeof(prefix));
	memcpy(out + sizeof(prefix), point, TERN_P256_POINT_LEN);
	return sizeof(prefix) + TERN_P256_POINT_LEN;
}

/*
 * DER keys, public and private. Binary DER can hold any byte, '-' (0x2d) included,
 * which must not make it look like PEM: the COSE WG example key has one in its Y
 * coordinate, and about a third of random keys have one somewhere.
 */
static void test_der_keys(void **state)
{
	(void)state;
	static const uint8_t wg_point[TERN_P256_POINT_LEN] = {
	    0x04, 0xba, 0xc5, 0xb1, 0x1c, 0xad, 0x8f, 0x99, 0xf9, 0xc7, 0x2b, 0x05, 0xcf,
	    0x4b, 0x9e, 0x26, 0xd2, 0x44, 0xdc, 0x18, 0x9f, 0x74, 0x52, 0x28, 0x25, 0x5a,
	    0x21, 0x9a, 0x86, 0xd6, 0xa0, 0x9e, 0xff, 0x20, 0x13, 0x8b, 0xf8, 0x2d, 0xc1,
	    0xb6, 0xd5, 0x62, 0xbe, 0x0f, 0xa5, 0x4a, 0xb7, 0x80, 0x4a, 0x3a, 0x64, 0xb6,
	    0xd7, 0x2c, 0xcf, 0xed, 0x6b, 0x6f, 0xb6, 0xed, 0x28, 0xbb, 0xfc, 0x11, 0x7e};
	uint8_t der[91];
	struct tern_pubkey pk, want;
	size_t n = spki_der(wg_point, der);
	assert_non_null(memchr(der, '-', n));
	assert_int_equal(tern_pubkey_from_point(&want, wg_point, sizeof(wg_point)), 0);
	uint8_t *in = test_dup(der, n);
	assert_int_equal(tern_pubkey_parse(&pk, in, n), 0);
	assert_memory_equal(pk.kid, want.kid, TERN_KID_LEN);
	/* A DER public key given as a signing key. */
	struct tern_signer sg;
	assert_int_equal(tern_signer_load(&sg, in, n), TERN_E_PUBLIC_KEY);
	free(in);

	/* Fresh keys: public DER from the point, private DER from mbedtls. */
	for (int i = 0; i < 12; i++) {
		struct tern_signer key;
		unsigned char buf[256];
		assert_int_equal(tern_signer_generate(&key), 0);
		n = spki_der(key.pub.point, der);
		in = test_dup(der, n);
		assert_int_equal(tern_pubkey_parse(&pk, in, n), 0);
		assert_memory_equal(pk.kid, key.pub.kid, TERN_KID_LEN);
		free(in);
		int len = mbedtls_pk_write_key_der(key.pk, buf, sizeof(buf));
		assert_true(len > 0);
		/* mbedtls writes DER at the end of the buffer. */
		in = test_dup(buf + sizeof(buf) - (size_t)len, (size_t)len);
		assert_int_equal(tern_signer_load(&sg, in, (size_t)len), 0);
		assert_memory_equal(sg.pub.kid, key.pub.kid, TERN_KID_LEN);
		tern_signer_free(&sg);
		free(in);
		tern_signer_free(&key);
	}
}

/* Runs @cmd and returns its exit status; its output goes to @out (may be NULL). */
static int run(const char *cmd, char *out, size_t size)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = 0;
	char tmp[256];
	size_t got;
	while ((got = fread(tmp, 1, sizeof(tmp), p)) > 0) {
		fwrite(tmp, 1, got, stdout);
		if (out && n + got < size) {
			memcpy(out + n, tmp, got);
			n += got;
		}
	}
	if (out)
		out[n] = '\0';
	int st = pclose(p);
	return st;
}

static void require_interop_script(void)
{
	if (access(INTEROP_SCRIPT, R_OK) != 0 || access(TEST_PYTHON, X_OK) != 0)
		fail_msg("run from the source tree with %s installed (needs %s)", TEST_PYTHON,
			 INTEROP_SCRIPT);
}

/* tern signs, Python (cbor2 + cryptography) verifies. */
static void test_python_verifies_tern(void **state)
{
	struct keys *k = *state;
	static const uint8_t aad[] = {0x11, 0xaa, 0x22, 0xbb};
	char dir[] = "/tmp/tern-interop-XXXXXX";
	char cmd[4096], point_hex[2 * TERN_P256_POINT_LEN + 1], aad_hex[2 * sizeof(aad) + 1];
	require_interop_script();
	assert_non_null(mkdtemp(dir));
	test_hex(k->a.pub.point, TERN_P256_POINT_LEN, point_hex);
	test_hex(aad, sizeof(aad), aad_hex);
	int used =
	    snprintf(cmd, sizeof(cmd), "%s %s verify %s", TEST_PYTHON, INTEROP_SCRIPT, point_hex);
	assert_true(used > 0 && (size_t)used < sizeof(cmd));
	size_t n_files = 0;
	for (size_t i = 0; i < N_SIZES; i++) {
		for (int with_aad = 0; with_aad < 2; with_aad++) {
			size_t n = payload_sizes[i], len;
			uint8_t *payload = make_payload(n);
			uint8_t *msg = sign_exact(&k->a, payload, n, with_aad ? aad : NULL,
						  with_aad ? sizeof(aad) : 0, &len);
			char path[128];
			int pl = snprintf(path, sizeof(path), "%s/m%zu-%d.cose", dir, n, with_aad);
			assert_true(pl > 0 && (size_t)pl < sizeof(path));
			assert_int_equal(test_write_file(path, msg, len), 0);
			int w = snprintf(cmd + used, sizeof(cmd) - (size_t)used, " %s%s%s", path,
					 with_aad ? ":" : "", with_aad ? aad_hex : "");
			assert_true(w > 0 && (size_t)w < sizeof(cmd) - (size_t)used);
			used += w;
			n_files++;
			free(msg);
			free(payload);
		}
	}
	char out[4096];
	assert_int_equal(run(cmd, out, sizeof(out)), 0);
	/* One "ok" line per file. */
	size_t n_ok = 0;
	for (const char *p = out; (p = strstr(p, ": ok\n")) != NULL; p++)
		n_ok++;
	assert_int_equal(n_ok, n_files);

	/* The independent verifier does refuse: a message signed with AAD, checked without. */
	char path[128];
	int pl = snprintf(path, sizeof(path), "%s/m24-1.cose", dir);
	assert_true(pl > 0 && (size_t)pl < sizeof(path));
	used = snprintf(cmd, sizeof(cmd), "%s %s verify %s %s", TEST_PYTHON, INTEROP_SCRIPT,
			point_hex, path);
	assert_true(used > 0 && (size_t)used < sizeof(cmd));
	assert_int_not_equal(run(cmd, NULL, 0), 0);

	used = snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_true(used > 0 && (size_t)used < sizeof(cmd));
	assert_int_equal(run(cmd, NULL, 0), 0);
}

/* Python signs (randomized ECDSA), tern verifies. */
static void test_tern_verifies_python(void **state)
{
	(void)state;
	char dir[] = "/tmp/tern-interop-XXXXXX";
	char cmd[1024], path[128], out[512];
	require_interop_script();
	assert_non_null(mkdtemp(dir));
	int pl = snprintf(path, sizeof(path), "%s/py.cose", dir);
	assert_true(pl > 0 && (size_t)pl < sizeof(path));
	/* payload "This is the content." and external AAD 11aa22bb */
	int used = snprintf(cmd, sizeof(cmd), "%s %s sign %s %s %s", TEST_PYTHON, INTEROP_SCRIPT,
			    path, "546869732069732074686520636f6e74656e742e", "11aa22bb");
	assert_true(used > 0 && (size_t)used < sizeof(cmd));
	assert_int_equal(run(cmd, out, sizeof(out)), 0);
	uint8_t point[TERN_P256_POINT_LEN];
	out[2 * TERN_P256_POINT_LEN] = '\0';
	assert_int_equal(test_unhex(out, point, sizeof(point)), sizeof(point));

	uint8_t msg[512];
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t len = fread(msg, 1, sizeof(msg), f);
	fclose(f);
	assert_true(len > 0 && len < sizeof(msg));

	struct tern_pubkey pk;
	struct tern_keyring kr = {0};
	struct tern_sign1 s;
	static const uint8_t aad[] = {0x11, 0xaa, 0x22, 0xbb};
	assert_int_equal(tern_pubkey_from_point(&pk, point, sizeof(point)), 0);
	assert_int_equal(tern_keyring_add(&kr, &pk), 0);
	uint8_t *in = test_dup(msg, len);
	assert_int_equal(tern_cose_sign1_parse(&s, in, len), 0);
	assert_memory_equal(s.kid, pk.kid, TERN_KID_LEN);
	assert_int_equal(tern_cose_sign1_verify(&s, &pk, aad, sizeof(aad)), 0);
	assert_int_equal(tern_cose_sign1_verify(&s, &pk, NULL, 0), TERN_E_BAD_SIGNATURE);
	/* open() uses no AAD: this message needs one. */
	assert_int_equal(tern_cose_sign1_open(&s, in, len, &kr, NULL), TERN_E_BAD_SIGNATURE);
	free(in);

	used = snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_true(used > 0 && (size_t)used < sizeof(cmd));
	assert_int_equal(run(cmd, NULL, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trips),
	    cmocka_unit_test(test_payload_tamper),
	    cmocka_unit_test(test_deterministic),
	    cmocka_unit_test(test_rfc6979_vectors),
	    cmocka_unit_test(test_backends_agree),
	    cmocka_unit_test(test_sign_bad_scalar),
	    cmocka_unit_test(test_size),
	    cmocka_unit_test(test_keyring),
	    cmocka_unit_test(test_pubkey_from_point),
	    cmocka_unit_test(test_pem_round_trip),
	    cmocka_unit_test(test_bad_keys),
	    cmocka_unit_test(test_other_curve),
	    cmocka_unit_test(test_der_keys),
	    cmocka_unit_test(test_not_ec_keys),
	    cmocka_unit_test(test_verify_odd_messages),
	    cmocka_unit_test(test_python_verifies_tern),
	    cmocka_unit_test(test_tern_verifies_python),
	};
	return cmocka_run_group_tests_name(tern_sha256_backend(), tests, setup_keys, teardown_keys);
}
