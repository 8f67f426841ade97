/*
 * The bounded CBOR reader and the buffer writer: every major type and head width, the
 * one-byte tags libcbor 0.8 cannot decode, refusal of indefinite lengths and reserved
 * heads, lengths that claim more than the buffer holds, nesting limits, and the
 * writer's overflow rule. Inputs live in exact-size heap copies so that ASan reports
 * any read past their end.
 */
#include "tern/tern_cbor.h"
#include "tern/tern_err.h"

#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

/* Reads one head from an exact copy of @in; checks type, value and bytes consumed. */
static void expect_item(const uint8_t *in, size_t len, enum tern_cbor_type type, uint64_t val,
			size_t consumed)
{
	uint8_t *buf = test_dup(in, len);
	struct tern_cbor_reader r;
	struct tern_cbor_item it;
	tern_cbor_reader_init(&r, buf, len);
	assert_int_equal(tern_cbor_next(&r, &it), 0);
	assert_int_equal(it.type, type);
	assert_true(it.val == val);
	assert_int_equal(r.pos, consumed);
	free(buf);
}

/* Expects tern_cbor_next() on an exact copy of @in to fail with @err, position kept. */
static void expect_next_error(const uint8_t *in, size_t len, int err)
{
	uint8_t *buf = test_dup(in, len);
	struct tern_cbor_reader r;
	struct tern_cbor_item it;
	tern_cbor_reader_init(&r, buf, len);
	assert_int_equal(tern_cbor_next(&r, &it), err);
	assert_int_equal(r.pos, 0);
	free(buf);
}

static void expect_skip_error(const uint8_t *in, size_t len, int err)
{
	uint8_t *buf = test_dup(in, len);
	struct tern_cbor_reader r;
	tern_cbor_reader_init(&r, buf, len);
	assert_int_equal(tern_cbor_skip(&r), err);
	free(buf);
}

static void test_uint_every_width(void **state)
{
	(void)state;
	const uint8_t u0[] = {0x00}, u23[] = {0x17}, u24[] = {0x18, 0x18}, u255[] = {0x18, 0xff},
		      u256[] = {0x19, 0x01, 0x00}, u65536[] = {0x1a, 0x00, 0x01, 0x00, 0x00},
		      u32max[] = {0x1a, 0xff, 0xff, 0xff, 0xff},
		      u2_32[] = {0x1b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00},
		      umax[] = {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	expect_item(u0, sizeof(u0), TERN_CBOR_UINT, 0, 1);
	expect_item(u23, sizeof(u23), TERN_CBOR_UINT, 23, 1);
	expect_item(u24, sizeof(u24), TERN_CBOR_UINT, 24, 2);
	expect_item(u255, sizeof(u255), TERN_CBOR_UINT, 255, 2);
	expect_item(u256, sizeof(u256), TERN_CBOR_UINT, 256, 3);
	expect_item(u65536, sizeof(u65536), TERN_CBOR_UINT, 65536, 5);
	expect_item(u32max, sizeof(u32max), TERN_CBOR_UINT, UINT32_MAX, 5);
	expect_item(u2_32, sizeof(u2_32), TERN_CBOR_UINT, (uint64_t)1 << 32, 9);
	expect_item(umax, sizeof(umax), TERN_CBOR_UINT, UINT64_MAX, 9);
}

static void test_negint_and_read_int(void **state)
{
	(void)state;
	const uint8_t m1[] = {0x20}, m7[] = {0x26}, m256[] = {0x38, 0xff},
		      min64[] = {0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		      below64[] = {0x3b, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
		      umax[] = {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		      imax[] = {0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	expect_item(m1, sizeof(m1), TERN_CBOR_NEGINT, 0, 1);
	expect_item(m7, sizeof(m7), TERN_CBOR_NEGINT, 6, 1);
	expect_item(m256, sizeof(m256), TERN_CBOR_NEGINT, 255, 2);
	expect_item(below64, sizeof(below64), TERN_CBOR_NEGINT, (uint64_t)1 << 63, 9);
	const uint8_t m65536[] = {0x39, 0xff, 0xff}, m2_32[] = {0x3a, 0xff, 0xff, 0xff, 0xff};
	expect_item(m65536, sizeof(m65536), TERN_CBOR_NEGINT, 65535, 3);
	expect_item(m2_32, sizeof(m2_32), TERN_CBOR_NEGINT, UINT32_MAX, 5);

	struct tern_cbor_reader r;
	int64_t v;
	tern_cbor_reader_init(&r, m7, sizeof(m7));
	assert_int_equal(tern_cbor_read_int(&r, &v), 0);
	assert_true(v == -7);
	tern_cbor_reader_init(&r, min64, sizeof(min64));
	assert_int_equal(tern_cbor_read_int(&r, &v), 0);
	assert_true(v == INT64_MIN);
	tern_cbor_reader_init(&r, imax, sizeof(imax));
	assert_int_equal(tern_cbor_read_int(&r, &v), 0);
	assert_true(v == INT64_MAX);
	/* Out of int64_t range either way: refused, position kept. */
	tern_cbor_reader_init(&r, below64, sizeof(below64));
	assert_int_equal(tern_cbor_read_int(&r, &v), TERN_E_MALFORMED);
	assert_int_equal(r.pos, 0);
	tern_cbor_reader_init(&r, umax, sizeof(umax));
	assert_int_equal(tern_cbor_read_int(&r, &v), TERN_E_MALFORMED);
	assert_int_equal(r.pos, 0);
}

static void test_strings(void **state)
{
	(void)state;
	const uint8_t empty_b[] = {0x40}, b3[] = {0x43, 1, 2, 3}, t3[] = {0x63, 'a', 'b', 'c'},
		      empty_t[] = {0x60};
	expect_item(empty_b, sizeof(empty_b), TERN_CBOR_BYTES, 0, 1);
	expect_item(empty_t, sizeof(empty_t), TERN_CBOR_TEXT, 0, 1);
	expect_item(b3, sizeof(b3), TERN_CBOR_BYTES, 3, 4);
	expect_item(t3, sizeof(t3), TERN_CBOR_TEXT, 3, 4);

	/* Every head width, body pointer into the buffer. */
	static const size_t lens[] = {23, 24, 255, 256, 65535, 65536};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t n = lens[k];
		uint8_t *buf = malloc(n + 9);
		assert_non_null(buf);
		struct tern_cbor_writer w;
		tern_cbor_writer_init(&w, buf, n + 9);
		tern_cbor_put_bytes_head(&w, n);
		size_t head = tern_cbor_writer_len(&w);
		assert_int_equal(head, n < 24 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
		memset(buf + head, 0x5a, n);
		uint8_t *exact = test_dup(buf, head + n);
		struct tern_cbor_reader r;
		const uint8_t *p;
		size_t len;
		tern_cbor_reader_init(&r, exact, head + n);
		assert_int_equal(tern_cbor_read_bytes(&r, &p, &len), 0);
		assert_int_equal(len, n);
		assert_ptr_equal(p, exact + head);
		assert_int_equal(tern_cbor_remaining(&r), 0);
		/* One byte short: truncated, not read. */
		tern_cbor_reader_init(&r, exact, head + n - 1);
		assert_int_equal(tern_cbor_read_bytes(&r, &p, &len), TERN_E_TRUNCATED);
		free(exact);
		free(buf);
	}
}

static void test_array_map(void **state)
{
	(void)state;
	const uint8_t a0[] = {0x80}, a3[] = {0x83, 1, 2, 3}, m1[] = {0xa1, 1, 2},
		      a_big[] = {0x99, 0x01, 0x00}, m_big[] = {0xba, 0x00, 0x01, 0x00, 0x00};
	expect_item(a0, sizeof(a0), TERN_CBOR_ARRAY, 0, 1);
	/* Containers: only the head is consumed. */
	expect_item(a3, sizeof(a3), TERN_CBOR_ARRAY, 3, 1);
	expect_item(m1, sizeof(m1), TERN_CBOR_MAP, 1, 1);
	expect_item(a_big, sizeof(a_big), TERN_CBOR_ARRAY, 256, 3);
	expect_item(m_big, sizeof(m_big), TERN_CBOR_MAP, 65536, 5);
}

/* Tags 0..23 in their one-byte form (0xC0..0xD7), 0xD2 = COSE_Sign1 among them. */
static void test_one_byte_tags(void **state)
{
	(void)state;
	for (uint8_t t = 0; t < 24; t++) {
		const uint8_t in[] = {(uint8_t)(0xc0 | t), 0x01};
		expect_item(in, sizeof(in), TERN_CBOR_TAG, t, 1);
	}
	const uint8_t sign1[] = {0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40};
	uint8_t *buf = test_dup(sign1, sizeof(sign1));
	struct tern_cbor_reader r;
	struct tern_cbor_item it;
	tern_cbor_reader_init(&r, buf, sizeof(sign1));
	assert_int_equal(tern_cbor_next(&r, &it), 0);
	assert_int_equal(it.type, TERN_CBOR_TAG);
	assert_int_equal(it.val, 18);
	assert_int_equal(tern_cbor_next(&r, &it), 0);
	assert_int_equal(it.type, TERN_CBOR_ARRAY);
	assert_int_equal(it.val, 4);
	/* And skip steps over the whole tagged item. */
	tern_cbor_reader_init(&r, buf, sizeof(sign1));
	assert_int_equal(tern_cbor_skip(&r), 0);
	assert_int_equal(r.pos, sizeof(sign1));
	free(buf);
}

static void test_long_tags(void **state)
{
	(void)state;
	const uint8_t t24[] = {0xd8, 0x18, 0x00}, t998[] = {0xd9, 0x03, 0xe6, 0x00},
		      t32[] = {0xda, 0x00, 0x01, 0x00, 0x00, 0x00},
		      t64[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00},
		      t18long[] = {0xd8, 0x12, 0x00};
	expect_item(t24, sizeof(t24), TERN_CBOR_TAG, 24, 2);
	expect_item(t998, sizeof(t998), TERN_CBOR_TAG, 998, 3);
	expect_item(t32, sizeof(t32), TERN_CBOR_TAG, 65536, 5);
	expect_item(t64, sizeof(t64), TERN_CBOR_TAG, UINT64_MAX, 9);
	/* Tag 18 in a non-shortest head is still tag 18. */
	expect_item(t18long, sizeof(t18long), TERN_CBOR_TAG, 18, 2);
}

static void test_simple_and_float(void **state)
{
	(void)state;
	const uint8_t f[] = {0xf4}, t[] = {0xf5}, nul[] = {0xf6}, undef[] = {0xf7},
		      half[] = {0xf9, 0x3c, 0x00}, single[] = {0xfa, 0x3f, 0x80, 0x00, 0x00},
		      dbl[] = {0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
	expect_item(f, sizeof(f), TERN_CBOR_SIMPLE, 20, 1);
	expect_item(t, sizeof(t), TERN_CBOR_SIMPLE, 21, 1);
	expect_item(nul, sizeof(nul), TERN_CBOR_SIMPLE, 22, 1);
	expect_item(undef, sizeof(undef), TERN_CBOR_SIMPLE, 23, 1);
	expect_item(half, sizeof(half), TERN_CBOR_FLOAT, 0, 3);
	expect_item(single, sizeof(single), TERN_CBOR_FLOAT, 0, 5);
	expect_item(dbl, sizeof(dbl), TERN_CBOR_FLOAT, 0, 9);
	/* Simple values other than false/true/null/undefined are not used by tern and
	 * refused: 0..19 (0xE0..0xF3), and the one-byte form 0xF8 (not well-formed below
	 * 32, unassigned above). */
	for (uint8_t b = 0xe0; b <= 0xf3; b++) {
		const uint8_t simple[] = {b};
		uint8_t *buf = test_dup(simple, 1);
		struct tern_cbor_reader r;
		struct tern_cbor_item it;
		tern_cbor_reader_init(&r, buf, 1);
		assert_true(tern_cbor_next(&r, &it) < 0);
		assert_int_equal(r.pos, 0);
		free(buf);
	}
	const uint8_t simple8[] = {0xf8, 0x20}, simple8_low[] = {0xf8, 0x10};
	struct tern_cbor_reader sr;
	tern_cbor_reader_init(&sr, simple8, sizeof(simple8));
	assert_true(tern_cbor_skip(&sr) < 0);
	tern_cbor_reader_init(&sr, simple8_low, sizeof(simple8_low));
	assert_true(tern_cbor_skip(&sr) < 0);
	/* Truncated floats. */
	expect_next_error(half, 2, TERN_E_TRUNCATED);
	expect_next_error(dbl, 8, TERN_E_TRUNCATED);
}

/* Indefinite-length strings, arrays and maps are refused; so is a stray break. */
static void test_indefinite_refused(void **state)
{
	(void)state;
	const uint8_t bytes[] = {0x5f, 0x41, 0x00, 0xff}, text[] = {0x7f, 0x61, 'a', 0xff},
		      array[] = {0x9f, 0x01, 0xff}, map[] = {0xbf, 0x01, 0x02, 0xff};
	expect_next_error(bytes, sizeof(bytes), TERN_E_MALFORMED);
	expect_next_error(text, sizeof(text), TERN_E_MALFORMED);
	expect_next_error(array, sizeof(array), TERN_E_MALFORMED);
	expect_next_error(map, sizeof(map), TERN_E_MALFORMED);
	expect_skip_error(array, sizeof(array), TERN_E_MALFORMED);
	expect_skip_error(map, sizeof(map), TERN_E_MALFORMED);
	/* Inside a definite array too. */
	const uint8_t nested[] = {0x82, 0x01, 0x9f, 0xff};
	expect_skip_error(nested, sizeof(nested), TERN_E_MALFORMED);
}

/* Additional information 31 on integers and tags is not well-formed CBOR, nor is a
 * break outside an indefinite item. */
static void test_ai31_not_cbor(void **state)
{
	(void)state;
	const uint8_t uint31[] = {0x1f}, neg31[] = {0x3f}, tag31[] = {0xdf, 0x00}, brk[] = {0xff};
	expect_next_error(uint31, sizeof(uint31), TERN_E_NOT_CBOR);
	expect_next_error(neg31, sizeof(neg31), TERN_E_NOT_CBOR);
	expect_next_error(tag31, sizeof(tag31), TERN_E_NOT_CBOR);
	expect_next_error(brk, sizeof(brk), TERN_E_NOT_CBOR);
}

/* Additional information 28..30 is reserved in every major type. */
static void test_reserved_ai(void **state)
{
	(void)state;
	for (uint8_t major = 0; major < 8; major++) {
		for (uint8_t ai = 28; ai <= 30; ai++) {
			uint8_t in[9];
			memset(in, 0, sizeof(in));
			in[0] = (uint8_t)(major << 5 | ai);
			expect_next_error(in, sizeof(in), TERN_E_NOT_CBOR);
			expect_skip_error(in, sizeof(in), TERN_E_NOT_CBOR);
		}
	}
}

/* Heads cut short, in every width and major type. */
static void test_truncated_heads(void **state)
{
	(void)state;
	struct tern_cbor_reader r;
	struct tern_cbor_item it;
	tern_cbor_reader_init(&r, NULL, 0);
	assert_int_equal(tern_cbor_next(&r, &it), TERN_E_TRUNCATED);
	assert_int_equal(tern_cbor_skip(&r), TERN_E_TRUNCATED);
	for (uint8_t major = 0; major < 8; major++) {
		for (uint8_t ai = 24; ai <= 27; ai++) {
			uint8_t in[9];
			memset(in, 0, sizeof(in));
			in[0] = (uint8_t)(major << 5 | ai);
			size_t full = 1 + ((size_t)1 << (ai - 24));
			for (size_t len = 1; len < full; len++)
				expect_next_error(in, len, TERN_E_TRUNCATED);
		}
	}
	/* A string body one byte short, and an array whose element is missing. */
	const uint8_t text[] = {0x63, 'a', 'b'}, arr[] = {0x82, 0x01};
	expect_next_error(text, sizeof(text), TERN_E_TRUNCATED);
	expect_skip_error(arr, sizeof(arr), TERN_E_TRUNCATED);
}

/* A string head claiming 4 GiB or 2^64-1 bytes in a 100-byte buffer. */
static void test_absurd_string_lengths(void **state)
{
	(void)state;
	static const uint8_t heads[][9] = {
	    {0x5a, 0xff, 0xff, 0xff, 0xff},
	    {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	    {0x7a, 0xff, 0xff, 0xff, 0xff},
	    {0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	    {0x5b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5c}, /* 92: one too many */
	};
	for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
		uint8_t in[100];
		memset(in, 0xee, sizeof(in));
		memcpy(in, heads[k], sizeof(heads[k]));
		uint8_t *buf = test_dup(in, sizeof(in));
		struct tern_cbor_reader r;
		struct tern_cbor_item it;
		const uint8_t *p = NULL;
		size_t len = 0;
		tern_cbor_reader_init(&r, buf, sizeof(in));
		assert_int_equal(tern_cbor_peek(&r, &it), TERN_E_TRUNCATED);
		assert_int_equal(tern_cbor_next(&r, &it), TERN_E_TRUNCATED);
		assert_int_equal(tern_cbor_skip(&r), TERN_E_TRUNCATED);
		assert_int_equal(r.pos, 0);
		if (heads[k][0] >> 5 == 2)
			assert_int_equal(tern_cbor_read_bytes(&r, &p, &len), TERN_E_TRUNCATED);
		else
			assert_int_equal(tern_cbor_read_text(&r, (const char **)&p, &len),
					 TERN_E_TRUNCATED);
		/* Inside an array as well. */
		in[0] = 0x81;
		memcpy(in + 1, heads[k], sizeof(heads[k]));
		free(buf);
		buf = test_dup(in, sizeof(in));
		tern_cbor_reader_init(&r, buf, sizeof(in));
		assert_int_equal(tern_cbor_skip(&r), TERN_E_TRUNCATED);
		free(buf);
	}
	/* Exactly fitting: 91 bytes after a 9-byte head. */
	uint8_t in[100];
	memset(in, 0, sizeof(in));
	const uint8_t head91[] = {0x5b, 0, 0, 0, 0, 0, 0, 0, 91};
	memcpy(in, head91, sizeof(head91));
	expect_item(in, sizeof(in), TERN_CBOR_BYTES, 91, 100);
}

/* Counts that no buffer can hold are errors, found at once (no hang). */
static void test_absurd_counts(void **state)
{
	(void)state;
	static const uint8_t heads[][9] = {
	    {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	    {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	    {0xbb, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* 2^63 pairs */
	    {0x9a, 0xff, 0xff, 0xff, 0xff},
	    {0xba, 0xff, 0xff, 0xff, 0xff},
	};
	for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
		uint8_t in[100];
		memset(in, 0x00, sizeof(in)); /* 91 one-byte items follow */
		memcpy(in, heads[k], sizeof(heads[k]));
		uint8_t *buf = test_dup(in, sizeof(in));
		struct tern_cbor_reader r;
		tern_cbor_reader_init(&r, buf, sizeof(in));
		int rc = tern_cbor_skip(&r);
		assert_true(rc < 0);
		free(buf);
	}
}

/* Builds @depth nested one-element arrays (or maps, or tags) around a 0. */
static size_t nest(uint8_t *out, size_t size, size_t depth, uint8_t head)
{
	size_t n = 0;
	for (size_t i = 0; i < depth && n + 2 < size; i++) {
		out[n++] = head;
		if (head == 0xa1)
			out[n++] = 0x00; /* key; the value is the next level */
	}
	out[n++] = 0x00;
	return n;
}

static void test_skip_depth(void **state)
{
	(void)state;
	static const uint8_t heads[] = {0x81, 0xa1, 0xc1};
	uint8_t in[128];
	for (size_t k = 0; k < sizeof(heads); k++) {
		size_t n = nest(in, sizeof(in), TERN_CBOR_MAX_DEPTH, heads[k]);
		uint8_t *buf = test_dup(in, n);
		struct tern_cbor_reader r;
		tern_cbor_reader_init(&r, buf, n);
		assert_int_equal(tern_cbor_skip(&r), 0);
		assert_int_equal(r.pos, n);
		free(buf);

		n = nest(in, sizeof(in), TERN_CBOR_MAX_DEPTH + 1, heads[k]);
		expect_skip_error(in, n, TERN_E_TOO_LARGE);
		n = nest(in, sizeof(in), 60, heads[k]);
		expect_skip_error(in, n, TERN_E_TOO_LARGE);
	}
	/* 10000 levels: refused quickly, without recursion. */
	size_t deep_len = 10001;
	uint8_t *deep = malloc(deep_len);
	assert_non_null(deep);
	memset(deep, 0x81, deep_len - 1);
	deep[deep_len - 1] = 0x00;
	struct tern_cbor_reader r;
	tern_cbor_reader_init(&r, deep, deep_len);
	assert_int_equal(tern_cbor_skip(&r), TERN_E_TOO_LARGE);
	free(deep);
}

/* Skip steps over exactly one item, whatever it holds. */
static void test_skip_compound(void **state)
{
	(void)state;
	/* {1: [h'0102', "x", {-1: 1.0}], "k": 18(null)} followed by 0x07 */
	const uint8_t in[] = {0xa2, 0x01, 0x83, 0x42, 0x01, 0x02, 0x61, 'x',  0xa1,
			      0x20, 0xf9, 0x3c, 0x00, 0x61, 'k',  0xd2, 0xf6, 0x07};
	uint8_t *buf = test_dup(in, sizeof(in));
	struct tern_cbor_reader r;
	uint64_t v;
	tern_cbor_reader_init(&r, buf, sizeof(in));
	assert_int_equal(tern_cbor_skip(&r), 0);
	assert_int_equal(r.pos, sizeof(in) - 1);
	assert_int_equal(tern_cbor_read_uint(&r, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(tern_cbor_remaining(&r), 0);
	/* Every proper prefix is truncated. */
	for (size_t len = 0; len < sizeof(in) - 1; len++) {
		uint8_t *cut = test_dup(in, len);
		tern_cbor_reader_init(&r, cut, len);
		assert_int_equal(tern_cbor_skip(&r), TERN_E_TRUNCATED);
		free(cut);
	}
	free(buf);
}

static void test_peek_and_typed_reads(void **state)
{
	(void)state;
	const uint8_t in[] = {0x63, 'a', 'b', 'c'};
	struct tern_cbor_reader r;
	struct tern_cbor_item it;
	uint64_t n;
	const uint8_t *p;
	size_t len;
	tern_cbor_reader_init(&r, in, sizeof(in));
	assert_int_equal(tern_cbor_peek(&r, &it), 0);
	assert_int_equal(it.type, TERN_CBOR_TEXT);
	assert_int_equal(r.pos, 0);
	/* Wrong type: refused, nothing consumed. */
	assert_int_equal(tern_cbor_read_uint(&r, &n), TERN_E_MALFORMED);
	assert_int_equal(tern_cbor_read_bytes(&r, &p, &len), TERN_E_MALFORMED);
	assert_int_equal(tern_cbor_read_array(&r, &n), TERN_E_MALFORMED);
	assert_int_equal(tern_cbor_read_map(&r, &n), TERN_E_MALFORMED);
	bool b;
	assert_int_equal(tern_cbor_read_bool(&r, &b), TERN_E_MALFORMED);
	assert_int_equal(r.pos, 0);
	const char *t;
	assert_int_equal(tern_cbor_read_text(&r, &t, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(t, "abc", 3);
	assert_int_equal(tern_cbor_remaining(&r), 0);
}

/* Booleans: false and true; null, undefined and other types refused, nothing consumed. */
static void test_read_bool(void **state)
{
	(void)state;
	const uint8_t in[] = {0xf4, 0xf5, 0xf6, 0xf7, 0x01};
	struct tern_cbor_reader r;
	bool b = true;
	tern_cbor_reader_init(&r, in, sizeof(in));
	assert_int_equal(tern_cbor_read_bool(&r, &b), 0);
	assert_false(b);
	assert_int_equal(tern_cbor_read_bool(&r, &b), 0);
	assert_true(b);
	for (size_t i = 2; i < sizeof(in); i++) {
		size_t pos = r.pos;
		assert_int_equal(tern_cbor_read_bool(&r, &b), TERN_E_MALFORMED);
		assert_int_equal(r.pos, pos);
		assert_int_equal(tern_cbor_skip(&r), 0);
	}
	assert_int_equal(tern_cbor_remaining(&r), 0);
}

static void test_read_text_into(void **state)
{
	(void)state;
	struct tern_cbor_reader r;
	char out[4];
	const uint8_t fits[] = {0x63, 'a', 'b', 'c'}, too_long[] = {0x64, 'a', 'b', 'c', 'd'},
		      empty[] = {0x60}, nul[] = {0x63, 'a', 0, 'c'};
	tern_cbor_reader_init(&r, fits, sizeof(fits));
	assert_int_equal(tern_cbor_read_text_into(&r, out, sizeof(out)), 0);
	assert_string_equal(out, "abc");
	tern_cbor_reader_init(&r, too_long, sizeof(too_long));
	assert_int_equal(tern_cbor_read_text_into(&r, out, sizeof(out)), TERN_E_TOO_LARGE);
	tern_cbor_reader_init(&r, empty, sizeof(empty));
	assert_int_equal(tern_cbor_read_text_into(&r, out, sizeof(out)), TERN_E_MALFORMED);
	tern_cbor_reader_init(&r, nul, sizeof(nul));
	assert_int_equal(tern_cbor_read_text_into(&r, out, sizeof(out)), TERN_E_MALFORMED);
}

static void test_bstr_head(void **state)
{
	(void)state;
	size_t head_len = 0;
	uint64_t body = 0;
	const uint8_t big[] = {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		      small[] = {0x43}, text[] = {0x63}, indef[] = {0x5f};
	/* The body may be longer than the buffer: it is streamed. */
	assert_int_equal(tern_cbor_bstr_head(big, sizeof(big), &head_len, &body), 0);
	assert_int_equal(head_len, 9);
	assert_true(body == UINT64_MAX);
	assert_int_equal(tern_cbor_bstr_head(small, sizeof(small), &head_len, &body), 0);
	assert_int_equal(head_len, 1);
	assert_int_equal(body, 3);
	for (size_t len = 0; len < sizeof(big); len++)
		assert_int_equal(tern_cbor_bstr_head(big, len, &head_len, &body), TERN_E_TRUNCATED);
	assert_int_equal(tern_cbor_bstr_head(text, sizeof(text), &head_len, &body),
			 TERN_E_MALFORMED);
	assert_int_equal(tern_cbor_bstr_head(indef, sizeof(indef), &head_len, &body),
			 TERN_E_MALFORMED);
}

/* What the writer produces reads back, with the shortest heads. */
static void test_writer_round_trip(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, sizeof(buf));
	tern_cbor_put_tag(&w, 18);
	tern_cbor_put_array(&w, 10);
	tern_cbor_put_uint(&w, 23);
	tern_cbor_put_uint(&w, 24);
	tern_cbor_put_uint(&w, UINT64_MAX);
	tern_cbor_put_int(&w, -7);
	tern_cbor_put_int(&w, INT64_MIN);
	tern_cbor_put_int(&w, 24);
	tern_cbor_put_bytes(&w, "\x01\x02", 2);
	tern_cbor_put_cstr(&w, "hi");
	tern_cbor_put_map(&w, 1);
	tern_cbor_put_bool(&w, true);
	tern_cbor_put_bool(&w, false);
	tern_cbor_put_text(&w, NULL, 0);
	const uint8_t expect[] = {0xd2, 0x8a, 0x17, 0x18, 0x18, 0x1b, 0xff, 0xff, 0xff,
				  0xff, 0xff, 0xff, 0xff, 0xff, 0x26, 0x3b, 0x7f, 0xff,
				  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x18, 0x18, 0x42,
				  0x01, 0x02, 0x62, 'h',  'i',	0xa1, 0xf5, 0xf4, 0x60};
	size_t n = tern_cbor_writer_len(&w);
	assert_int_equal(n, sizeof(expect));
	assert_memory_equal(buf, expect, sizeof(expect));

	struct tern_cbor_reader r;
	uint64_t u;
	int64_t i;
	tern_cbor_reader_init(&r, buf, n);
	assert_int_equal(tern_cbor_skip(&r), 0);
	assert_int_equal(r.pos, n);
	tern_cbor_reader_init(&r, buf + 2, n - 2);
	assert_int_equal(tern_cbor_read_uint(&r, &u), 0);
	assert_int_equal(u, 23);
	assert_int_equal(tern_cbor_read_uint(&r, &u), 0);
	assert_int_equal(u, 24);
	assert_int_equal(tern_cbor_read_uint(&r, &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(tern_cbor_read_int(&r, &i), 0);
	assert_true(i == -7);
	assert_int_equal(tern_cbor_read_int(&r, &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(tern_cbor_read_int(&r, &i), 0);
	assert_true(i == 24);
}

/* Writes a fixed sequence of items; returns the writer's length. */
static size_t write_sequence(uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, 3);
	tern_cbor_put_uint(&w, 65536);
	tern_cbor_put_bytes(&w, "0123456789abcdefghijklmn", 24);
	tern_cbor_put_int(&w, -300);
	tern_cbor_put_cstr(&w, "text");
	tern_cbor_put_tag(&w, 998);
	tern_cbor_put_bytes_head(&w, 70000);
	tern_cbor_put_array(&w, 0);
	tern_cbor_put_bool(&w, true);
	return tern_cbor_writer_len(&w);
}

/* Every buffer too small by any amount gives 0 and no write past its end. */
static void test_writer_overflow(void **state)
{
	(void)state;
	uint8_t full[128];
	size_t need = write_sequence(full, sizeof(full));
	assert_true(need > 0);
	for (size_t size = 0; size < need; size++) {
		uint8_t *buf = malloc(size ? size : 1);
		assert_non_null(buf);
		assert_int_equal(write_sequence(buf, size), 0);
		free(buf);
	}
	uint8_t *exact = malloc(need);
	assert_non_null(exact);
	assert_int_equal(write_sequence(exact, need), need);
	assert_memory_equal(exact, full, need);
	free(exact);

	/* After an overflow even a small put is ignored. */
	uint8_t two[2];
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, two, sizeof(two));
	tern_cbor_put_uint(&w, 65536);
	tern_cbor_put_uint(&w, 1);
	assert_int_equal(tern_cbor_writer_len(&w), 0);
	assert_true(w.overflow);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uint_every_width), cmocka_unit_test(test_negint_and_read_int),
	    cmocka_unit_test(test_strings),	     cmocka_unit_test(test_array_map),
	    cmocka_unit_test(test_one_byte_tags),    cmocka_unit_test(test_long_tags),
	    cmocka_unit_test(test_simple_and_float), cmocka_unit_test(test_indefinite_refused),
	    cmocka_unit_test(test_ai31_not_cbor),    cmocka_unit_test(test_reserved_ai),
	    cmocka_unit_test(test_truncated_heads),  cmocka_unit_test(test_absurd_string_lengths),
	    cmocka_unit_test(test_absurd_counts),    cmocka_unit_test(test_skip_depth),
	    cmocka_unit_test(test_skip_compound),    cmocka_unit_test(test_peek_and_typed_reads),
	    cmocka_unit_test(test_read_text_into),   cmocka_unit_test(test_read_bool),
	    cmocka_unit_test(test_bstr_head),	     cmocka_unit_test(test_writer_round_trip),
	    cmocka_unit_test(test_writer_overflow),
	};
	return cmocka_run_group_tests_name("cbor", tests, NULL, NULL);
}
