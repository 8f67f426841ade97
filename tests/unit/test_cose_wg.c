/*
 * COSE working group conformance: every COSE_Sign1 vector in tests/vectors/cose-wg/
 * (generated into cose_wg_vectors.h at build time) is one test case. Pass vectors must
 * verify; fail vectors, and ES512 which tern does not support, must be refused with the
 * error listed below. A vector file without an entry here must verify unless it is
 * marked "fail", in which case any error will do.
 */
#include "tern/tern_cose.h"
#include "tern/tern_err.h"
#include "tern/tern_sha256.h"

#include "cose_wg_vectors.h"
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#define N_VECTORS (sizeof(cose_wg_vectors) / sizeof(cose_wg_vectors[0]))

struct expectation {
	const char *file;
	int err;
};

/* What tern must answer for the vectors it refuses. */
static const struct expectation expectations[] = {
    {"sign-fail-01.json", TERN_E_NOT_RELEASE},	   /* tag 998 instead of 18 */
    {"sign-fail-02.json", TERN_E_BAD_SIGNATURE},   /* payload changed after signing */
    {"sign-fail-03.json", TERN_E_UNSUPPORTED_ALG}, /* alg -999 */
    {"sign-fail-04.json", TERN_E_UNSUPPORTED_ALG}, /* alg "unknown" (text) */
    {"sign-fail-06.json", TERN_E_BAD_SIGNATURE},   /* protected attribute added */
    {"sign-fail-07.json", TERN_E_BAD_SIGNATURE},   /* protected attribute removed */
    {"ecdsa-sig-04.json", TERN_E_UNSUPPORTED_ALG}, /* ES512 */
};

/* Vectors that must be present: the suite must not shrink unnoticed. */
static const char *const required[] = {
    "sign-pass-01.json",
    "sign-pass-02.json",
    "sign-pass-03.json",
    "ecdsa-sig-01.json",
};

static const struct expectation *find_expectation(const char *file)
{
	for (size_t i = 0; i < sizeof(expectations) / sizeof(expectations[0]); i++)
		if (strcmp(expectations[i].file, file) == 0)
			return &expectations[i];
	return NULL;
}

static void vector_key(const struct cose_wg_vector *v, struct tern_pubkey *pk)
{
	uint8_t point[TERN_P256_POINT_LEN];
	point[0] = 0x04;
	memcpy(point + 1, v->x, 32);
	memcpy(point + 33, v->y, 32);
	assert_int_equal(tern_pubkey_from_point(pk, point, sizeof(point)), 0);
}

/* Parses and verifies an exact heap copy of the message. */
static int parse_verify(const struct cose_wg_vector *v, const uint8_t *msg, size_t msg_len,
			const uint8_t *aad, size_t aad_len)
{
	struct tern_pubkey pk;
	struct tern_sign1 s;
	vector_key(v, &pk);
	uint8_t *buf = test_dup(msg, msg_len);
	int rc = tern_cose_sign1_parse(&s, buf, msg_len);
	if (rc == 0) {
		assert_int_equal(s.total_len, msg_len);
		assert_int_equal(s.sig_len, TERN_ES256_SIG_LEN);
		/* The vectors' kid is "11", not a tern kid: found in the header all the same. */
		assert_int_equal(s.kid_len, 2);
		assert_memory_equal(s.kid, "11", 2);
		rc = tern_cose_sign1_verify(&s, &pk, aad, aad_len);
	}
	free(buf);
	return rc;
}

static void test_vector(void **state)
{
	const struct cose_wg_vector *v = *state;
	const struct expectation *e = find_expectation(v->file);
	int rc = parse_verify(v, v->msg, v->msg_len, v->aad, v->aad_len);
	print_message("%s (%s): %s\n", v->file, v->title, tern_errname(rc));
	if (e) {
		assert_int_equal(rc, e->err);
		return;
	}
	if (v->fail) {
		assert_true(rc < 0);
		return;
	}
	assert_int_equal(rc, 0);

	/* The digest tern computes is the SHA-256 of the Sig_structure the signer signed. */
	if (v->tbs_len) {
		struct tern_sign1 s;
		uint8_t got[TERN_SHA256_LEN], want[TERN_SHA256_LEN];
		assert_int_equal(tern_cose_sign1_parse(&s, v->msg, v->msg_len), 0);
		tern_cose_sign1_digest(&s, v->aad, v->aad_len, got);
		tern_sha256(v->tbs, v->tbs_len, want);
		assert_memory_equal(got, want, sizeof(got));
	}

	/* The external AAD is bound: without it, or with another one, it fails. */
	uint8_t other_aad[] = {0x00};
	assert_int_equal(parse_verify(v, v->msg, v->msg_len, other_aad, sizeof(other_aad)),
			 TERN_E_BAD_SIGNATURE);
	if (v->aad_len)
		assert_int_equal(parse_verify(v, v->msg, v->msg_len, NULL, 0),
				 TERN_E_BAD_SIGNATURE);

	/* Every truncation fails; bytes after the message are not part of it. */
	for (size_t len = 0; len < v->msg_len; len++)
		assert_true(parse_verify(v, v->msg, len, v->aad, v->aad_len) < 0);
	uint8_t longer[sizeof(v->msg) + 3];
	memcpy(longer, v->msg, v->msg_len);
	memcpy(longer + v->msg_len, "\x01\x02\x03", 3);
	struct tern_sign1 s;
	assert_int_equal(tern_cose_sign1_parse(&s, longer, v->msg_len + 3), 0);
	assert_int_equal(s.total_len, v->msg_len);

	/* Any flipped bit in the last signature byte fails. */
	uint8_t flipped[sizeof(v->msg)];
	memcpy(flipped, v->msg, v->msg_len);
	flipped[v->msg_len - 1] ^= 0x01;
	assert_int_equal(parse_verify(v, flipped, v->msg_len, v->aad, v->aad_len),
			 TERN_E_BAD_SIGNATURE);
}

/* The table of expectations and the vector files agree. */
static void test_suite_complete(void **state)
{
	(void)state;
	size_t n_fail = 0;
	for (size_t i = 0; i < sizeof(expectations) / sizeof(expectations[0]); i++) {
		bool found = false;
		for (size_t j = 0; j < N_VECTORS; j++)
			found = found || strcmp(cose_wg_vectors[j].file, expectations[i].file) == 0;
		if (!found)
			fail_msg("no vector file %s", expectations[i].file);
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		bool found = false;
		for (size_t j = 0; j < N_VECTORS; j++)
			found = found || strcmp(cose_wg_vectors[j].file, required[i]) == 0;
		if (!found)
			fail_msg("no vector file %s", required[i]);
	}
	for (size_t j = 0; j < N_VECTORS; j++)
		n_fail += cose_wg_vectors[j].fail;
	assert_true(n_fail >= 6);
	assert_true(N_VECTORS >= 11);
}

int main(void)
{
	struct CMUnitTest tests[N_VECTORS + 1];
	for (size_t i = 0; i < N_VECTORS; i++) {
		tests[i] = (struct CMUnitTest){
		    .name = cose_wg_vectors[i].file,
		    .test_func = test_vector,
		    .initial_state = (void *)&cose_wg_vectors[i],
		};
	}
	tests[N_VECTORS] = (struct CMUnitTest){
	    .name = "suite_complete",
	    .test_func = test_suite_complete,
	};
	return cmocka_run_group_tests_name(tern_sha256_backend(), tests, NULL, NULL);
}
