/*
 * The head of a release (a COSE_Sign1 around the manifest) under bad input: cut at
 * every offset, every byte flipped, trailing data, unknown and look-alike keys, other
 * algorithms, critical headers, absurd lengths. Inputs are exact-size heap buffers so
 * that ASan reports any read past their end. Also the release layout after the head:
 * chunk index and component bytes as definite byte strings.
 */
#include "tern/tern_cbor.h"
#include "tern/tern_err.h"
#include "tern/tern_release.h"
#include "tern/tern_sign.h"

#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#define COMPONENT_SIZE 5000
#define CHUNK_SIZE     TERN_CHUNK_MIN

struct fixture {
	struct tern_signer signer, other;
	struct tern_keyring kr;	      /* holds signer */
	struct tern_keyring other_kr; /* holds only other */
	struct tern_manifest m;
	uint8_t component[COMPONENT_SIZE];
	uint8_t index[5 * TERN_SHA256_LEN];
	uint8_t *head; /* exact-size heap copy of the signed manifest */
	size_t head_len;
};

static void set_str(char *dst, size_t size, const char *src)
{
	int n = snprintf(dst, size, "%s", src);
	assert_true(n >= 0 && (size_t)n < size);
}

/* Signs @payload into an exact-size heap buffer. */
static uint8_t *sign_exact(const struct tern_signer *sg, const uint8_t *payload, size_t n,
			   size_t *len)
{
	size_t size = tern_cose_sign1_size(n);
	uint8_t *out = malloc(size);
	assert_non_null(out);
	*len = tern_cose_sign1_sign(sg, payload, n, NULL, 0, out, size);
	assert_int_equal(*len, size);
	return out;
}

static int setup(void **state)
{
	static const char notes[] = "Torture test release.";
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || tern_signer_generate(&f->signer) || tern_signer_generate(&f->other))
		return -1;
	if (tern_keyring_add(&f->kr, &f->signer.pub) ||
	    tern_keyring_add(&f->other_kr, &f->other.pub))
		return -1;
	for (size_t i = 0; i < COMPONENT_SIZE; i++)
		f->component[i] = (uint8_t)(i * 7 + i / 251);
	uint64_t n_chunks = tern_chunk_count(COMPONENT_SIZE, CHUNK_SIZE);
	if (n_chunks * TERN_SHA256_LEN != sizeof(f->index))
		return -1;
	for (uint64_t i = 0; i < n_chunks; i++)
		tern_sha256(f->component + i * CHUNK_SIZE,
			    tern_chunk_len(COMPONENT_SIZE, CHUNK_SIZE, i),
			    f->index + i * TERN_SHA256_LEN);

	struct tern_manifest *m = &f->m;
	m->format_version = TERN_FORMAT_VERSION;
	set_str(m->release_id, sizeof(m->release_id), "torture-1");
	set_str(m->version, sizeof(m->version), "2.0.0-rc1");
	m->sequence = 1000;
	m->security_counter = 2;
	set_str(m->boards[0], sizeof(m->boards[0]), "sim");
	m->n_boards = 1;
	m->chunk_size = CHUNK_SIZE;
	struct tern_component *c = &m->components[0];
	set_str(c->name, sizeof(c->name), "fw");
	c->kind = TERN_KIND_FIRMWARE;
	set_str(c->slot_group, sizeof(c->slot_group), "system");
	c->size = COMPONENT_SIZE;
	tern_sha256(f->index, sizeof(f->index), c->index_digest);
	m->n_components = 1;
	m->notes = notes;
	m->notes_len = sizeof(notes) - 1;
	m->created = 1764201600;
	m->early_life = (struct tern_early_life)TERN_EARLY_LIFE_DEFAULT;

	uint8_t buf[TERN_MANIFEST_MAX];
	size_t n = tern_manifest_encode(m, buf, sizeof(buf));
	if (n == 0)
		return -1;
	size_t size = tern_cose_sign1_size(n);
	f->head = malloc(size);
	if (!f->head)
		return -1;
	f->head_len = tern_cose_sign1_sign(&f->signer, buf, n, NULL, 0, f->head, size);
	if (f->head_len != size)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tern_signer_free(&f->signer);
	tern_signer_free(&f->other);
	free(f->head);
	free(f);
	return 0;
}

static void test_open_ok(void **state)
{
	struct fixture *f = *state;
	struct tern_release_head rh;
	assert_int_equal(tern_release_open(&rh, f->head, f->head_len, &f->kr), 0);
	assert_int_equal(rh.head_len, f->head_len);
	assert_ptr_equal(rh.signer, &f->kr.keys[0]);
	assert_string_equal(rh.manifest.release_id, "torture-1");
	assert_int_equal(rh.manifest.n_components, 1);
	assert_memory_equal(rh.manifest.components[0].index_digest, f->m.components[0].index_digest,
			    TERN_SHA256_LEN);
	assert_int_equal(rh.manifest.notes_len, f->m.notes_len);
	assert_memory_equal(rh.manifest.notes, f->m.notes, f->m.notes_len);

	assert_int_equal(tern_release_parse_unverified(&rh, f->head, f->head_len), 0);
	assert_null(rh.signer);
	assert_int_equal(rh.head_len, f->head_len);
	assert_true(rh.manifest.sequence == 1000);
}

/* The whole release: head, then the component's index and bytes, streamed. */
static void test_full_release_layout(void **state)
{
	struct fixture *f = *state;
	size_t total = f->head_len + 2 + sizeof(f->index) + 3 + COMPONENT_SIZE;
	uint8_t *rel = malloc(total);
	assert_non_null(rel);
	memcpy(rel, f->head, f->head_len);
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, rel + f->head_len, total - f->head_len);
	tern_cbor_put_bytes(&w, f->index, sizeof(f->index));
	tern_cbor_put_bytes(&w, f->component, COMPONENT_SIZE);
	assert_int_equal(tern_cbor_writer_len(&w), total - f->head_len);

	struct tern_release_head rh;
	assert_int_equal(tern_release_open(&rh, rel, total, &f->kr), 0);
	assert_int_equal(rh.head_len, f->head_len); /* the rest is not part of the head */
	const struct tern_component *c = &rh.manifest.components[0];
	size_t pos = rh.head_len, hl;
	uint64_t index_len = tern_index_size(c->size, rh.manifest.chunk_size);
	assert_int_equal(tern_release_expect_bstr(rel + pos, total - pos, index_len, &hl), 0);
	assert_int_equal(hl, 2);
	pos += hl;
	assert_true(tern_index_matches(rel + pos, (size_t)index_len, c->index_digest));
	const uint8_t *index = rel + pos;
	pos += (size_t)index_len;
	assert_int_equal(tern_release_expect_bstr(rel + pos, total - pos, c->size, &hl), 0);
	assert_int_equal(hl, 3);
	pos += hl;
	/* Every chunk matches its digest in the index. */
	for (uint64_t i = 0; i < tern_chunk_count(c->size, rh.manifest.chunk_size); i++) {
		uint8_t d[TERN_SHA256_LEN];
		uint32_t len = tern_chunk_len(c->size, rh.manifest.chunk_size, i);
		tern_sha256(rel + pos, len, d);
		assert_memory_equal(d, index + i * TERN_SHA256_LEN, TERN_SHA256_LEN);
		pos += len;
	}
	assert_int_equal(pos, total);

	/* A changed index byte no longer matches the signed digest. */
	rel[rh.head_len + 2 + 17] ^= 1;
	assert_false(tern_index_matches(rel + rh.head_len + 2, (size_t)index_len, c->index_digest));
	/* expect_bstr: another length, another type, a cut head. */
	assert_int_equal(tern_release_expect_bstr(rel + rh.head_len, 2, index_len + 1, &hl),
			 TERN_E_MALFORMED);
	const uint8_t text[] = {0x78, 0xa0}, cut[] = {0x59, 0x13};
	assert_int_equal(tern_release_expect_bstr(text, sizeof(text), 0xa0, &hl), TERN_E_MALFORMED);
	assert_int_equal(tern_release_expect_bstr(cut, sizeof(cut), 5000, &hl), TERN_E_TRUNCATED);
	assert_int_equal(tern_release_expect_bstr(cut, 0, 5000, &hl), TERN_E_TRUNCATED);
	free(rel);
}

/* Cut at every offset: always an error, never a read past the cut. */
static void test_truncated_everywhere(void **state)
{
	struct fixture *f = *state;
	struct tern_release_head rh;
	for (size_t len = 0; len < f->head_len; len++) {
		uint8_t *cut = test_dup(f->head, len);
		int rc = tern_release_open(&rh, cut, len, &f->kr);
		if (rc == 0)
			fail_msg("cut at %zu of %zu opened", len, f->head_len);
		rc = tern_release_parse_unverified(&rh, cut, len);
		if (rc == 0)
			fail_msg("cut at %zu of %zu parsed", len, f->head_len);
		free(cut);
	}
}

/* Every byte flipped (all bits, and the lowest bit): always an error. */
static void test_flipped_everywhere(void **state)
{
	struct fixture *f = *state;
	static const uint8_t masks[] = {0xff, 0x01};
	uint8_t *buf = test_dup(f->head, f->head_len);
	size_t n_bad_sig = 0, n_other = 0;
	for (size_t k = 0; k < sizeof(masks); k++) {
		for (size_t i = 0; i < f->head_len; i++) {
			struct tern_release_head rh;
			buf[i] ^= masks[k];
			int rc = tern_release_open(&rh, buf, f->head_len, &f->kr);
			if (rc == 0)
				fail_msg("byte %zu ^ 0x%02x opened", i, masks[k]);
			if (rc == TERN_E_BAD_SIGNATURE)
				n_bad_sig++;
			else
				n_other++;
			buf[i] ^= masks[k];
		}
	}
	/* Most bytes are the payload and the signature: caught by the signature. */
	assert_true(n_bad_sig > f->head_len);
	assert_true(n_other > 0);
	/* Unchanged, it still opens. */
	struct tern_release_head rh;
	assert_int_equal(tern_release_open(&rh, buf, f->head_len, &f->kr), 0);
	free(buf);
}

/* Bytes after the COSE item are not part of the head. */
static void test_trailing_bytes(void **state)
{
	struct fixture *f = *state;
	static const uint8_t tails[][4] = {{0x00}, {0xff}, {0x5b}, {0xd2, 0x84, 0x40, 0xa0}};
	for (size_t k = 0; k < sizeof(tails) / sizeof(tails[0]); k++) {
		size_t len = f->head_len + (k == 3 ? 4 : 1);
		uint8_t *buf = malloc(len);
		assert_non_null(buf);
		memcpy(buf, f->head, f->head_len);
		memcpy(buf + f->head_len, tails[k], len - f->head_len);
		struct tern_release_head rh;
		assert_int_equal(tern_release_open(&rh, buf, len, &f->kr), 0);
		assert_int_equal(rh.head_len, f->head_len);
		assert_int_equal(tern_release_parse_unverified(&rh, buf, len), 0);
		assert_int_equal(rh.head_len, f->head_len);
		free(buf);
	}
}

static void test_wrong_key(void **state)
{
	struct fixture *f = *state;
	struct tern_release_head rh;
	struct tern_keyring empty = {0};
	assert_int_equal(tern_release_open(&rh, f->head, f->head_len, &f->other_kr),
			 TERN_E_UNKNOWN_KEY);
	assert_int_equal(tern_release_open(&rh, f->head, f->head_len, &empty), TERN_E_UNKNOWN_KEY);
	/* A key that claims the signer's kid but is another point. */
	struct tern_keyring liar = {0};
	struct tern_pubkey fake = f->other.pub;
	memcpy(fake.kid, f->signer.pub.kid, TERN_KID_LEN);
	assert_int_equal(tern_keyring_add(&liar, &fake), 0);
	assert_int_equal(tern_release_open(&rh, f->head, f->head_len, &liar), TERN_E_BAD_SIGNATURE);
	/* With several keys, the right one is found. */
	struct tern_keyring both = f->other_kr;
	assert_int_equal(tern_keyring_add(&both, &f->signer.pub), 0);
	assert_int_equal(tern_release_open(&rh, f->head, f->head_len, &both), 0);
	assert_ptr_equal(rh.signer, &both.keys[1]);
}

/*
 * Builds a COSE_Sign1 by hand around the fixture's manifest and signature: protected
 * header bytes @prot, unprotected header bytes @unprot (a whole map).
 */
static uint8_t *build(const struct fixture *f, const uint8_t *prot, size_t prot_len,
		      const uint8_t *unprot, size_t unprot_len, size_t *len)
{
	struct tern_sign1 s;
	assert_int_equal(tern_cose_sign1_parse(&s, f->head, f->head_len), 0);
	size_t size = 32 + prot_len + unprot_len + s.payload_len + s.sig_len;
	uint8_t *tmp = malloc(size);
	assert_non_null(tmp);
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, tmp, size);
	tern_cbor_put_tag(&w, 18);
	tern_cbor_put_array(&w, 4);
	tern_cbor_put_bytes(&w, prot, prot_len);
	size_t n = tern_cbor_writer_len(&w);
	assert_true(n > 0 && n + unprot_len <= size);
	memcpy(tmp + n, unprot, unprot_len);
	w.pos += unprot_len;
	tern_cbor_put_bytes(&w, s.payload, s.payload_len);
	tern_cbor_put_bytes(&w, s.sig, s.sig_len);
	*len = tern_cbor_writer_len(&w);
	assert_true(*len > 0);
	uint8_t *exact = test_dup(tmp, *len);
	free(tmp);
	return exact;
}

static int open_built(const struct fixture *f, const uint8_t *prot, size_t prot_len,
		      const uint8_t *unprot, size_t unprot_len)
{
	size_t len;
	uint8_t *msg = build(f, prot, prot_len, unprot, unprot_len, &len);
	struct tern_release_head rh;
	int rc = tern_release_open(&rh, msg, len, &f->kr);
	int rc2 = tern_release_parse_unverified(&rh, msg, len);
	/* Header rules are found before the key and the signature are checked. */
	if (rc2 != 0)
		assert_int_equal(rc, rc2);
	else
		assert_true(rc == 0 || rc == TERN_E_BAD_SIGNATURE || rc == TERN_E_UNKNOWN_KEY);
	free(msg);
	return rc;
}

static void test_headers(void **state)
{
	struct fixture *f = *state;
	uint8_t unprot[11] = {0xa1, 0x04, 0x48};
	memcpy(unprot + 3, f->signer.pub.kid, TERN_KID_LEN);
	const uint8_t es256[] = {0xa1, 0x01, 0x26};
	/* The original headers, rebuilt: opens. */
	assert_int_equal(open_built(f, es256, sizeof(es256), unprot, sizeof(unprot)), 0);

	/* Other algorithms: ES384 (-35), ES512 (-36), EdDSA (-8), a text name, none. */
	const uint8_t es384[] = {0xa1, 0x01, 0x38, 0x22}, es512[] = {0xa1, 0x01, 0x38, 0x23},
		      eddsa[] = {0xa1, 0x01, 0x27},
		      text[] = {0xa1, 0x01, 0x65, 'E', 'S', '2', '5', '6'}, none[] = {0xa0},
		      kid_only[] = {0xa1, 0x04, 0x41, 0x00};
	assert_int_equal(open_built(f, es384, sizeof(es384), unprot, sizeof(unprot)),
			 TERN_E_UNSUPPORTED_ALG);
	assert_int_equal(open_built(f, es512, sizeof(es512), unprot, sizeof(unprot)),
			 TERN_E_UNSUPPORTED_ALG);
	assert_int_equal(open_built(f, eddsa, sizeof(eddsa), unprot, sizeof(unprot)),
			 TERN_E_UNSUPPORTED_ALG);
	assert_int_equal(open_built(f, text, sizeof(text), unprot, sizeof(unprot)),
			 TERN_E_UNSUPPORTED_ALG);
	assert_int_equal(open_built(f, none, sizeof(none), unprot, sizeof(unprot)),
			 TERN_E_UNSUPPORTED_ALG);
	assert_int_equal(open_built(f, NULL, 0, unprot, sizeof(unprot)), TERN_E_UNSUPPORTED_ALG);
	/* A kid in the protected header and another in the unprotected one. */
	assert_int_equal(open_built(f, kid_only, sizeof(kid_only), unprot, sizeof(unprot)),
			 TERN_E_MALFORMED);

	/* crit: an unknown label is refused; known ones parse (then the signature, made
	 * over other protected bytes, fails). */
	const uint8_t crit_unknown[] = {0xa2, 0x01, 0x26, 0x02, 0x81, 0x18, 0x63},
		      crit_text[] = {0xa2, 0x01, 0x26, 0x02, 0x81, 0x61, 'x'},
		      crit_known[] = {0xa2, 0x01, 0x26, 0x02, 0x81, 0x01},
		      crit_empty[] = {0xa2, 0x01, 0x26, 0x02, 0x80};
	assert_int_equal(open_built(f, crit_unknown, sizeof(crit_unknown), unprot, sizeof(unprot)),
			 TERN_E_CRITICAL);
	assert_int_equal(open_built(f, crit_text, sizeof(crit_text), unprot, sizeof(unprot)),
			 TERN_E_CRITICAL);
	assert_int_equal(open_built(f, crit_known, sizeof(crit_known), unprot, sizeof(unprot)),
			 TERN_E_BAD_SIGNATURE);
	assert_int_equal(open_built(f, crit_empty, sizeof(crit_empty), unprot, sizeof(unprot)),
			 TERN_E_MALFORMED);
	/* crit belongs in the protected header only. */
	uint8_t unprot_crit[14] = {0xa2, 0x02, 0x81, 0x01, 0x04, 0x48};
	memcpy(unprot_crit + 6, f->signer.pub.kid, TERN_KID_LEN);
	assert_int_equal(open_built(f, es256, sizeof(es256), unprot_crit, sizeof(unprot_crit)),
			 TERN_E_MALFORMED);
	/* The same label twice, or in both buckets. */
	const uint8_t dup_alg[] = {0xa2, 0x01, 0x26, 0x01, 0x26};
	assert_int_equal(open_built(f, dup_alg, sizeof(dup_alg), unprot, sizeof(unprot)),
			 TERN_E_MALFORMED);
	uint8_t unprot_alg[13] = {0xa2, 0x01, 0x26, 0x04, 0x48};
	memcpy(unprot_alg + 5, f->signer.pub.kid, TERN_KID_LEN);
	assert_int_equal(open_built(f, es256, sizeof(es256), unprot_alg, sizeof(unprot_alg)),
			 TERN_E_MALFORMED);
	/* Protected bytes that are not one map. */
	const uint8_t two_maps[] = {0xa1, 0x01, 0x26, 0xa0}, not_map[] = {0x01},
		      cut_map[] = {0xa1, 0x01};
	assert_int_equal(open_built(f, two_maps, sizeof(two_maps), unprot, sizeof(unprot)),
			 TERN_E_MALFORMED);
	assert_int_equal(open_built(f, not_map, sizeof(not_map), unprot, sizeof(unprot)),
			 TERN_E_MALFORMED);
	assert_int_equal(open_built(f, cut_map, sizeof(cut_map), unprot, sizeof(unprot)),
			 TERN_E_MALFORMED);
	/* No kid, a kid of another size, a kid that is not a byte string, a huge kid. */
	const uint8_t no_kid[] = {0xa0}, short_kid[] = {0xa1, 0x04, 0x41, 0x00},
		      text_kid[] = {0xa1, 0x04, 0x61, 'k'};
	uint8_t long_kid[3 + 3 + 40] = {0xa1, 0x04, 0x58, 40};
	assert_int_equal(open_built(f, es256, sizeof(es256), no_kid, sizeof(no_kid)),
			 TERN_E_UNKNOWN_KEY);
	assert_int_equal(open_built(f, es256, sizeof(es256), short_kid, sizeof(short_kid)),
			 TERN_E_UNKNOWN_KEY);
	assert_int_equal(open_built(f, es256, sizeof(es256), text_kid, sizeof(text_kid)),
			 TERN_E_MALFORMED);
	assert_int_equal(open_built(f, es256, sizeof(es256), long_kid, 4 + 40), TERN_E_TOO_LARGE);
	/* More header entries, or crit labels, than any real message has. */
	uint8_t many[2 + 2 + 33 * 3];
	size_t n = 0;
	many[n++] = 0xb8;
	many[n++] = 33;
	many[n++] = 0x01;
	many[n++] = 0x26;
	for (uint8_t label = 100; label < 132; label++) {
		many[n++] = 0x18;
		many[n++] = label;
		many[n++] = 0x00;
	}
	assert_int_equal(open_built(f, many, n, unprot, sizeof(unprot)), TERN_E_TOO_LARGE);
	many[1] = 32; /* 32 entries: fine, until the signature */
	assert_int_equal(open_built(f, many, n - 3, unprot, sizeof(unprot)), TERN_E_BAD_SIGNATURE);
	uint8_t crit33[5 + 2 + 33] = {0xa2, 0x01, 0x26, 0x02, 0x98, 33};
	memset(crit33 + 6, 0x01, 33);
	assert_int_equal(open_built(f, crit33, 6 + 33, unprot, sizeof(unprot)), TERN_E_TOO_LARGE);
	/* A crit array cut short inside the protected bytes. */
	const uint8_t crit_cut[] = {0xa2, 0x01, 0x26, 0x02, 0x82, 0x01};
	assert_int_equal(open_built(f, crit_cut, sizeof(crit_cut), unprot, sizeof(unprot)),
			 TERN_E_MALFORMED);
	/* Unknown integer and text labels in the unprotected header are ignored. */
	uint8_t unprot_extra[11 + 8] = {0xa3, 0x04, 0x48};
	memcpy(unprot_extra + 3, f->signer.pub.kid, TERN_KID_LEN);
	memcpy(unprot_extra + 11, "\x18\x63\x80\x61z\xa1\x01\x02", 8);
	assert_int_equal(open_built(f, es256, sizeof(es256), unprot_extra, sizeof(unprot_extra)),
			 0);
}

/* Lengths and counts that no buffer holds, in each position of the message. */
static void test_absurd_lengths(void **state)
{
	struct fixture *f = *state;
	struct tern_sign1 s;
	assert_int_equal(tern_cose_sign1_parse(&s, f->head, f->head_len), 0);
	/* tag, array head, protected h'A10126', unprotected {4: kid}: 17 bytes, then the
	 * payload's head; the signature's head is 0x58 0x40. */
	size_t payload_at = 17, payload_head_len = (size_t)(s.payload - f->head) - payload_at;
	size_t sig_at = (size_t)(s.sig - f->head) - 2;
	assert_int_equal(f->head[payload_at] >> 5, 2);
	assert_int_equal(f->head[sig_at], 0x58);

	static const uint8_t huge8[] = {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t huge4[] = {0x5a, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t arr8[] = {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	struct {
		size_t at, cut; /* replace bytes [at, at + cut) */
		const uint8_t *with;
		size_t with_len;
	} cases[] = {
	    {payload_at, payload_head_len, huge8, sizeof(huge8)},
	    {payload_at, payload_head_len, huge4, sizeof(huge4)},
	    {sig_at, 2, huge8, sizeof(huge8)},
	    {sig_at, 2, huge4, sizeof(huge4)},
	    {1, 1, arr8, sizeof(arr8)},
	    {2, 1, huge8, sizeof(huge8)},
	    {2, 1, huge4, sizeof(huge4)},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t len = f->head_len - cases[k].cut + cases[k].with_len;
		uint8_t *buf = malloc(len);
		assert_non_null(buf);
		memcpy(buf, f->head, cases[k].at);
		memcpy(buf + cases[k].at, cases[k].with, cases[k].with_len);
		memcpy(buf + cases[k].at + cases[k].with_len, f->head + cases[k].at + cases[k].cut,
		       f->head_len - cases[k].at - cases[k].cut);
		struct tern_release_head rh;
		int rc = tern_release_open(&rh, buf, len, &f->kr);
		print_message("case %zu: %s\n", k, tern_errname(rc));
		assert_true(rc == TERN_E_TRUNCATED || rc == TERN_E_NOT_RELEASE);
		assert_int_equal(tern_release_parse_unverified(&rh, buf, len), rc);
		free(buf);
	}

	/* A properly signed payload larger than any manifest. */
	size_t big = TERN_MANIFEST_MAX + 1, len;
	uint8_t *payload = calloc(1, big);
	assert_non_null(payload);
	uint8_t *msg = sign_exact(&f->signer, payload, big, &len);
	struct tern_release_head rh;
	assert_int_equal(tern_release_open(&rh, msg, len, &f->kr), TERN_E_TOO_LARGE);
	assert_int_equal(tern_release_parse_unverified(&rh, msg, len), TERN_E_TOO_LARGE);
	free(msg);
	free(payload);
}

/* Validly signed payloads that are not manifests. */
static void test_signed_non_manifests(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *what;
		uint8_t bytes[8];
		size_t len;
		int err;
	} cases[] = {
	    {"empty", {0}, 0, TERN_E_TRUNCATED},
	    {"integer", {0x01}, 1, TERN_E_MALFORMED},
	    {"empty map", {0xa0}, 1, TERN_E_MALFORMED},
	    {"indefinite map", {0xbf, 0xff}, 2, TERN_E_MALFORMED},
	    {"reserved head", {0x1c}, 1, TERN_E_NOT_CBOR},
	    {"cut map", {0xa2, 0x01}, 2, TERN_E_TRUNCATED},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t len;
		uint8_t *msg = sign_exact(&f->signer, cases[k].bytes, cases[k].len, &len);
		struct tern_release_head rh;
		int rc = tern_release_open(&rh, msg, len, &f->kr);
		print_message("%s: %s\n", cases[k].what, tern_errname(rc));
		assert_int_equal(rc, cases[k].err);
		free(msg);
	}
}

/* Not a COSE_Sign1 at all. */
static void test_not_a_release(void **state)
{
	struct fixture *f = *state;
	static const struct {
		uint8_t bytes[6];
		size_t len;
	} cases[] = {
	    {{0xd3, 0x84}, 2},		   /* tag 19 */
	    {{0xd8, 0x61, 0x84}, 3},	   /* tag 97 (COSE_Sign) */
	    {{0x83, 0x40, 0xa0, 0x40}, 4}, /* array of 3 */
	    {{0xa1, 0x01, 0x02}, 3},	   /* a map */
	    {{0xd2, 0xd2, 0x84}, 3},	   /* tag 18 twice */
	    {{'P', 'K', 0x03, 0x04}, 4},   /* a zip file */
	    {{0x7f, 'E', 'L', 'F'}, 4},	   /* an ELF file */
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		uint8_t *buf = test_dup(cases[k].bytes, cases[k].len);
		struct tern_release_head rh;
		int rc = tern_release_open(&rh, buf, cases[k].len, &f->kr);
		assert_true(rc < 0);
		assert_true(rc == TERN_E_NOT_RELEASE || rc == TERN_E_MALFORMED ||
			    rc == TERN_E_TRUNCATED);
		free(buf);
	}
	uint8_t *one = test_dup("\xd3\x84", 2);
	struct tern_release_head rh;
	assert_int_equal(tern_release_open(&rh, one, 2, &f->kr), TERN_E_NOT_RELEASE);
	free(one);
}

/*
 * Manifests encoded by Python's cbor2 and signed by Python's cryptography (the fuzz
 * seeds, written afresh into a temporary folder) open in tern.
 */
static void test_python_signed_seeds(void **state)
{
	(void)state;
	static const char script[] = "tests/fuzz/make_seeds.py";
	static const struct {
		const char *name;
		int err;
	} seeds[] = {
	    {"signed-minimal", 0},
	    {"signed-golden", 0},
	    {"signed-config-critical", 0},
	    {"signed-unknown-keys", 0},
	    {"signed-max", 0},
	    {"signed-critical-unknown", TERN_E_CRITICAL},
	    {"release-whole", 0},
	};
	char dir[] = "/tmp/tern-seeds-XXXXXX";
	char cmd[512], out[1024], path[256];
	if (access(script, R_OK) != 0 || access(TEST_PYTHON, X_OK) != 0)
		fail_msg("run from the source tree with %s installed", TEST_PYTHON);
	assert_non_null(mkdtemp(dir));
	int n = snprintf(cmd, sizeof(cmd), "%s %s %s", TEST_PYTHON, script, dir);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t got = fread(out, 1, sizeof(out) - 1, p);
	out[got] = '\0';
	assert_int_equal(pclose(p), 0);
	const char *hex = strstr(out, "fuzz key point: ");
	assert_non_null(hex);
	hex += strlen("fuzz key point: ");
	char point_hex[2 * TERN_P256_POINT_LEN + 1];
	memcpy(point_hex, hex, 2 * TERN_P256_POINT_LEN);
	point_hex[2 * TERN_P256_POINT_LEN] = '\0';
	uint8_t point[TERN_P256_POINT_LEN];
	assert_int_equal(test_unhex(point_hex, point, sizeof(point)), sizeof(point));
	struct tern_pubkey pk;
	struct tern_keyring kr = {0};
	assert_int_equal(tern_pubkey_from_point(&pk, point, sizeof(point)), 0);
	assert_int_equal(tern_keyring_add(&kr, &pk), 0);

	for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++) {
		n = snprintf(path, sizeof(path), "%s/seed-%s", dir, seeds[k].name);
		assert_true(n > 0 && (size_t)n < sizeof(path));
		size_t len = 0;
		uint8_t *buf = test_read_file(path, &len);
		assert_non_null(buf);
		struct tern_release_head rh;
		int rc = tern_release_open(&rh, buf, len, &kr);
		print_message("%s: %s\n", seeds[k].name, tern_errname(rc));
		assert_int_equal(rc, seeds[k].err);
		if (rc == 0 && strcmp(seeds[k].name, "release-whole") == 0)
			assert_true(rh.head_len < len);
		else if (rc == 0)
			assert_int_equal(rh.head_len, len);
		free(buf);
		assert_int_equal(unlink(path), 0);
	}
	n = snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_ok),
	    cmocka_unit_test(test_full_release_layout),
	    cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_flipped_everywhere),
	    cmocka_unit_test(test_trailing_bytes),
	    cmocka_unit_test(test_wrong_key),
	    cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_absurd_lengths),
	    cmocka_unit_test(test_signed_non_manifests),
	    cmocka_unit_test(test_not_a_release),
	    cmocka_unit_test(test_python_signed_seeds),
	};
	return cmocka_run_group_tests_name("release", tests, setup, teardown);
}
