/*
 * USB framing: golden bytes (a request as literal bytes in, the expected reply bytes out,
 * checked independently with Python's zlib.crc32 and cbor2), CRC32 vectors, every
 * truncation, damaged CRCs, absurd lengths, stream reassembly and resync, every body.
 */
#include "tern/tern_err.h"
#include "tern/tern_crc32.h"
#include "tern/tern_frame.h"
#include "tern/tern_msg.h"
#include "tern/tern_sign.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

/* HELLO {1: 1}, seq 1. */
static const uint8_t golden_hello[] = {0x54, 0x6e, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00,
				       0x00, 0x00, 0x47, 0x72, 0x26, 0x0f, 0xa1, 0x01, 0x01};

/* INFO reply to it: {1: 1, 2: "sim", 3: "TERN0001", 5: "1.0.0", 6: 0, 7: 0, 8: 65536, 9: 1} */
static const uint8_t golden_info[] = {
    0x54, 0x6e, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x25, 0x00, 0x00, 0x00, 0x67, 0x56,
    0xcb, 0xba, 0xa8, 0x01, 0x01, 0x02, 0x63, 0x73, 0x69, 0x6d, 0x03, 0x68, 0x54, 0x45,
    0x52, 0x4e, 0x30, 0x30, 0x30, 0x31, 0x05, 0x65, 0x31, 0x2e, 0x30, 0x2e, 0x30, 0x06,
    0x00, 0x07, 0x00, 0x08, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x09, 0x01};

/* STATE reply, seq 7: staged 1.2.0 while running 1.0.0 in slot B, 10 of 20. */
static const uint8_t golden_state[] = {
    0x54, 0x6e, 0x09, 0x01, 0x07, 0x00, 0x00, 0x00, 0x19, 0x00, 0x00, 0x00, 0x6c, 0x11,
    0x1d, 0x3a, 0xa7, 0x03, 0x03, 0x04, 0x01, 0x05, 0x65, 0x31, 0x2e, 0x30, 0x2e, 0x30,
    0x06, 0x65, 0x31, 0x2e, 0x32, 0x2e, 0x30, 0x07, 0x0a, 0x08, 0x14, 0x09, 0x00};

/* ERROR {1: 26 (unknown-type), 2: "unknown"} answering seq 0x01020304. */
static const uint8_t golden_unknown_type[] = {
    0x54, 0x6e, 0x0a, 0x01, 0x04, 0x03, 0x02, 0x01, 0x0d, 0x00, 0x00, 0x00, 0x4a, 0x66, 0xbb,
    0x8d, 0xa2, 0x01, 0x18, 0x1a, 0x02, 0x67, 0x75, 0x6e, 0x6b, 0x6e, 0x6f, 0x77, 0x6e};

static uint8_t big[TERN_FRAME_MAX + 64];

/* A tiny device for the dispatch table. */
struct fake_dev {
	int hellos;
	int fail_with;
};

static int on_hello(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		    size_t room)
{
	struct fake_dev *d = ctx;
	uint32_t proto;
	int rc = tern_msg_hello_decode(req->body, req->body_len, &proto);
	if (rc)
		return rc;
	d->hellos++;
	struct tern_msg_info info = {.proto = 1, .slot = 0, .state = TERN_DS_IDLE};
	memcpy(info.board, "sim", 4);
	memcpy(info.serial, "TERN0001", 9);
	memcpy(info.version, "1.0.0", 6);
	info.max_data = TERN_FRAME_DATA_MAX;
	info.sequence = 1;
	*reply_type = TERN_MSG_INFO;
	size_t n = tern_msg_info_encode(&info, body, room);
	return n ? (int)n : TERN_E_BUF_SMALL;
}

static int on_offer(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		    size_t room)
{
	struct fake_dev *d = ctx;
	(void)req;
	(void)reply_type;
	(void)body;
	(void)room;
	return d->fail_with;
}

static const struct tern_frame_handler handlers[] = {
    {TERN_MSG_HELLO, on_hello},
    {TERN_MSG_OFFER, on_offer},
};

static void test_crc32_vectors(void **state)
{
	(void)state;
	assert_int_equal(tern_crc32(0, "123456789", 9), 0xcbf43926u);
	assert_int_equal(tern_crc32(0, "", 0), 0);
	assert_int_equal(tern_crc32(0, "a", 1), 0xe8b7be43u);
	assert_int_equal(tern_crc32(0, "The quick brown fox jumps over the lazy dog", 43),
			 0x414fa339u);
	/* Chained in pieces gives the same. */
	uint32_t c = tern_crc32(0, "1234", 4);
	assert_int_equal(tern_crc32(c, "56789", 5), 0xcbf43926u);
}

static void test_golden_hello_info(void **state)
{
	(void)state;
	struct fake_dev dev = {0, 0};
	struct tern_frame f;
	size_t used;
	uint8_t out[256];
	assert_int_equal(tern_frame_decode(golden_hello, sizeof(golden_hello), &f, &used), 0);
	assert_int_equal(used, sizeof(golden_hello));
	assert_int_equal(f.type, TERN_MSG_HELLO);
	assert_int_equal(f.seq, 1);
	size_t n = tern_frame_dispatch(handlers, 2, &dev, &f, out, sizeof(out));
	assert_int_equal(n, sizeof(golden_info));
	assert_memory_equal(out, golden_info, sizeof(golden_info));
	assert_int_equal(dev.hellos, 1);

	/* And the host's side reads the reply back. */
	struct tern_msg_info info;
	assert_int_equal(tern_frame_decode(out, n, &f, &used), 0);
	assert_int_equal(f.flags, TERN_FRAME_F_REPLY);
	assert_int_equal(tern_msg_info_decode(f.body, f.body_len, &info), 0);
	assert_string_equal(info.serial, "TERN0001");
	assert_string_equal(info.board, "sim");
	assert_string_equal(info.device_id, "");
	assert_int_equal(info.max_data, 65536);

	/* The encoder writes the request byte for byte. */
	uint8_t req[64];
	size_t room;
	uint8_t *body = tern_frame_body(req, sizeof(req), &room);
	size_t blen = tern_msg_hello_encode(TERN_FRAME_PROTO, body, room);
	assert_int_equal(tern_frame_seal(req, sizeof(req), TERN_MSG_HELLO, 0, 1, blen),
			 sizeof(golden_hello));
	assert_memory_equal(req, golden_hello, sizeof(golden_hello));
}

static void test_golden_state(void **state)
{
	(void)state;
	struct tern_msg_state st = {.state = TERN_DS_STAGED, .slot = 1, .done = 10, .total = 20};
	memcpy(st.version, "1.0.0", 6);
	memcpy(st.target, "1.2.0", 6);
	uint8_t out[128];
	size_t room;
	uint8_t *body = tern_frame_body(out, sizeof(out), &room);
	size_t n = tern_msg_state_encode(&st, body, room);
	n = tern_frame_seal(out, sizeof(out), TERN_MSG_STATE, TERN_FRAME_F_REPLY, 7, n);
	assert_int_equal(n, sizeof(golden_state));
	assert_memory_equal(out, golden_state, n);
	struct tern_frame f;
	size_t used;
	struct tern_msg_state back;
	assert_int_equal(tern_frame_decode(golden_state, sizeof(golden_state), &f, &used), 0);
	assert_int_equal(tern_msg_state_decode(f.body, f.body_len, &back), 0);
	assert_string_equal(back.target, "1.2.0");
	assert_int_equal(back.total, 20);
	assert_string_equal(tern_frame_state_name(back.state), "staged");
}

static void test_golden_unknown_type(void **state)
{
	(void)state;
	struct fake_dev dev = {0, 0};
	struct tern_frame req = {0x7f, 0, 0x01020304, (const uint8_t *)"\xa0", 1};
	uint8_t out[64];
	size_t n = tern_frame_dispatch(handlers, 2, &dev, &req, out, sizeof(out));
	assert_int_equal(n, sizeof(golden_unknown_type));
	assert_memory_equal(out, golden_unknown_type, n);
}

static void test_handler_error_mapped(void **state)
{
	(void)state;
	struct fake_dev dev = {0, TERN_E_WRONG_BOARD};
	struct tern_frame req = {TERN_MSG_OFFER, 0, 9, (const uint8_t *)"\xa0", 1};
	uint8_t out[256];
	size_t n = tern_frame_dispatch(handlers, 2, &dev, &req, out, sizeof(out));
	assert_true(n > 0);
	struct tern_frame f;
	size_t used;
	struct tern_msg_error e;
	assert_int_equal(tern_frame_decode(out, n, &f, &used), 0);
	assert_int_equal(f.type, TERN_MSG_ERROR);
	assert_int_equal(f.seq, 9);
	assert_int_equal(tern_msg_error_decode(f.body, f.body_len, &e), 0);
	assert_int_equal(e.status, TERN_ST_WRONG_BOARD);
	assert_int_equal(tern_frame_status_to_err(e.status), TERN_E_WRONG_BOARD);
	assert_string_equal(tern_frame_status_name(e.status), "wrong-board");
	/* An internal code with no wire status travels as ERROR, and comes back generic. */
	assert_int_equal(tern_frame_status_from_err(TERN_E_KEY_PERMS), TERN_ST_ERROR);
	assert_int_equal(tern_frame_status_to_err(TERN_ST_ERROR), TERN_E_DEVICE);
	assert_int_equal(tern_frame_status_to_err(999), TERN_E_DEVICE);
	assert_string_equal(tern_frame_status_name(999), "unknown");
	/* A reply buffer too small for anything: 0, nothing claimed. */
	assert_int_equal(tern_frame_dispatch(handlers, 2, &dev, &req, out, 10), 0);
}

static void test_every_truncation(void **state)
{
	(void)state;
	struct tern_frame f;
	size_t used;
	for (size_t len = 0; len < sizeof(golden_info); len++) {
		int rc = tern_frame_decode(golden_info, len, &f, &used);
		assert_int_equal(rc, TERN_E_TRUNCATED);
	}
	/* Every truncated body is refused by its decoder too. */
	const uint8_t *body = golden_info + TERN_FRAME_HDR_LEN;
	size_t blen = sizeof(golden_info) - TERN_FRAME_HDR_LEN;
	struct tern_msg_info info;
	for (size_t len = 0; len < blen; len++)
		assert_true(tern_msg_info_decode(body, len, &info) < 0);
	assert_int_equal(tern_msg_info_decode(body, blen, &info), 0);
}

static void test_every_bit_flip_detected(void **state)
{
	(void)state;
	uint8_t buf[sizeof(golden_info)];
	struct tern_frame f;
	size_t used;
	for (size_t i = 0; i < sizeof(buf); i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(buf, golden_info, sizeof(buf));
			buf[i] ^= (uint8_t)(1u << bit);
			int rc = tern_frame_decode(buf, sizeof(buf), &f, &used);
			assert_true(rc < 0);
		}
	}
	/* The CRC field itself damaged. */
	memcpy(buf, golden_info, sizeof(buf));
	buf[12] ^= 0xff;
	assert_int_equal(tern_frame_decode(buf, sizeof(buf), &f, &used), TERN_E_CRC);
	/* A body byte damaged. */
	memcpy(buf, golden_info, sizeof(buf));
	buf[30] ^= 0x01;
	assert_int_equal(tern_frame_decode(buf, sizeof(buf), &f, &used), TERN_E_CRC);
	assert_int_equal(used, sizeof(buf));
}

static void test_absurd_lengths_and_headers(void **state)
{
	(void)state;
	uint8_t h[TERN_FRAME_HDR_LEN];
	struct tern_frame f;
	size_t used;
	memcpy(h, golden_hello, sizeof(h));
	/* 4 GiB - 1 announced: refused from the header alone, no waiting for bytes. */
	h[8] = h[9] = h[10] = h[11] = 0xff;
	assert_int_equal(tern_frame_decode(h, sizeof(h), &f, &used), TERN_E_TOO_LARGE);
	/* One byte above the limit. */
	uint32_t n = TERN_FRAME_BODY_MAX + 1;
	h[8] = (uint8_t)n;
	h[9] = (uint8_t)(n >> 8);
	h[10] = (uint8_t)(n >> 16);
	h[11] = (uint8_t)(n >> 24);
	assert_int_equal(tern_frame_decode(h, sizeof(h), &f, &used), TERN_E_TOO_LARGE);
	/* Wrong magic, decided from the first byte. */
	assert_int_equal(tern_frame_decode((const uint8_t *)"X", 1, &f, &used), TERN_E_MALFORMED);
	assert_int_equal(tern_frame_decode((const uint8_t *)"TX", 2, &f, &used), TERN_E_MALFORMED);
	/* Unknown flag bits. */
	memcpy(h, golden_hello, sizeof(h));
	h[3] = 0x80;
	assert_int_equal(tern_frame_decode(h, sizeof(h), &f, &used), TERN_E_MALFORMED);
	/* Encoders refuse what the decoder would refuse. */
	uint8_t out[64];
	assert_int_equal(tern_frame_encode(out, sizeof(out), 1, 0x80, 0, NULL, 0), 0);
	assert_int_equal(tern_frame_encode(out, 15, 1, 0, 0, NULL, 0), 0);
	assert_int_equal(tern_frame_encode(out, sizeof(out), 1, 0, 0, out, 49), 0);
	assert_int_equal(tern_frame_seal(big, sizeof(big), 1, 0, 0, TERN_FRAME_BODY_MAX + 1), 0);
	assert_int_equal(tern_frame_seal(big, sizeof(big), 1, 0, 0, TERN_FRAME_BODY_MAX),
			 TERN_FRAME_MAX);
	/* A largest frame decodes. */
	assert_int_equal(tern_frame_decode(big, TERN_FRAME_MAX, &f, &used), 0);
	assert_int_equal(f.body_len, TERN_FRAME_BODY_MAX);
}

static void test_data_roundtrip_and_bounds(void **state)
{
	(void)state;
	static uint8_t payload[TERN_FRAME_DATA_MAX];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	struct tern_msg_data d = {1, TERN_DATA_PAYLOAD, 1u << 20, payload, sizeof(payload)};
	size_t room;
	uint8_t *body = tern_frame_body(big, sizeof(big), &room);
	size_t n = tern_msg_data_encode(&d, body, room);
	assert_true(n > sizeof(payload));
	/* Overhead of a full data frame: header plus a small CBOR map. */
	assert_true(n + TERN_FRAME_HDR_LEN - sizeof(payload) <= 40);
	size_t flen = tern_frame_seal(big, sizeof(big), TERN_MSG_DATA, 0, 3, n);
	struct tern_frame f;
	size_t used;
	struct tern_msg_data back;
	assert_int_equal(tern_frame_decode(big, flen, &f, &used), 0);
	assert_int_equal(tern_msg_data_decode(f.body, f.body_len, &back), 0);
	assert_int_equal(back.comp, 1);
	assert_int_equal(back.offset, 1u << 20);
	assert_int_equal(back.len, sizeof(payload));
	assert_memory_equal(back.bytes, payload, sizeof(payload));
	/* Too much payload is refused by the encoder. */
	d.len = TERN_FRAME_DATA_MAX + 1;
	assert_int_equal(tern_msg_data_encode(&d, body, room), 0);
	/* Golden body, and fields missing or out of range. */
	static const uint8_t small[] = {0xa4, 0x01, 0x00, 0x02, 0x00, 0x03, 0x19,
					0x40, 0x00, 0x04, 0x43, 0x61, 0x62, 0x63};
	uint8_t buf[32];
	d = (struct tern_msg_data){0, 0, 16384, (const uint8_t *)"abc", 3};
	assert_int_equal(tern_msg_data_encode(&d, buf, sizeof(buf)), sizeof(small));
	assert_memory_equal(buf, small, sizeof(small));
	assert_int_equal(tern_msg_data_encode(&d, buf, sizeof(small) - 1), 0);
	memcpy(buf, small, sizeof(small));
	buf[0] = 0xa3; /* map of 3: the bytes are missing, and a trailing item */
	assert_true(tern_msg_data_decode(buf, sizeof(small), &back) < 0);
	memcpy(buf, small, sizeof(small));
	buf[2] = 0x09; /* component 9 */
	assert_int_equal(tern_msg_data_decode(buf, sizeof(small), &back), TERN_E_MALFORMED);
	memcpy(buf, small, sizeof(small));
	buf[10] = 0x5b; /* bytes with an 8-byte length far past the buffer */
	assert_true(tern_msg_data_decode(buf, sizeof(small), &back) < 0);
	/* A map that announces 2^32 pairs in a few bytes. */
	static const uint8_t huge_map[] = {0xba, 0xff, 0xff, 0xff, 0xff, 0x01};
	assert_true(tern_msg_data_decode(huge_map, sizeof(huge_map), &back) < 0);
	/* Duplicate key. */
	static const uint8_t dup[] = {0xa2, 0x01, 0x00, 0x01, 0x00};
	assert_int_equal(tern_msg_data_decode(dup, sizeof(dup), &back), TERN_E_MALFORMED);
}

static void test_bodies_roundtrip(void **state)
{
	(void)state;
	uint8_t buf[512];
	size_t n;
	/* ERROR with and without text; text is bounded. */
	struct tern_msg_error e = {TERN_ST_BUSY, "busy", 4}, eb;
	n = tern_msg_error_encode(&e, buf, sizeof(buf));
	assert_int_equal(tern_msg_error_decode(buf, n, &eb), 0);
	assert_int_equal(eb.status, TERN_ST_BUSY);
	assert_int_equal(eb.text_len, 4);
	char longtext[300];
	memset(longtext, 'x', sizeof(longtext));
	e = (struct tern_msg_error){TERN_ST_IO, longtext, sizeof(longtext)};
	n = tern_msg_error_encode(&e, buf, sizeof(buf));
	assert_int_equal(tern_msg_error_decode(buf, n, &eb), 0);
	assert_int_equal(eb.text_len, TERN_FRAME_TEXT_MAX);
	/* ACK with and without the next position. */
	struct tern_msg_ack a = {true, 1, TERN_DATA_INDEX, 4096}, ab;
	n = tern_msg_ack_encode(&a, buf, sizeof(buf));
	assert_int_equal(tern_msg_ack_decode(buf, n, &ab), 0);
	assert_true(ab.has_next);
	assert_int_equal(ab.offset, 4096);
	n = tern_msg_ack_encode(NULL, buf, sizeof(buf));
	assert_int_equal(n, 1);
	assert_int_equal(tern_msg_ack_decode(buf, n, &ab), 0);
	assert_false(ab.has_next);
	/* OFFER: empty and oversized manifests refused; the revert flag is key 2, absent
	 * from a plain offer (a device that does not know it reads a plain offer). */
	const uint8_t *mp;
	size_t ml;
	bool rv = true;
	n = tern_msg_offer_encode((const uint8_t *)"\xd2\x84", 2, false, buf, sizeof(buf));
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "\xa1\x01\x42\xd2\x84", 5);
	assert_int_equal(tern_msg_offer_decode(buf, n, &mp, &ml, &rv), 0);
	assert_int_equal(ml, 2);
	assert_false(rv);
	n = tern_msg_offer_encode((const uint8_t *)"\xd2\x84", 2, true, buf, sizeof(buf));
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "\xa2\x01\x42\xd2\x84\x02\xf5", 7);
	assert_int_equal(tern_msg_offer_decode(buf, n, &mp, &ml, &rv), 0);
	assert_true(rv);
	assert_int_equal(tern_msg_offer_decode(buf, n, &mp, &ml, NULL), 0);
	buf[6] = 0x01; /* key 2 not a boolean */
	assert_int_equal(tern_msg_offer_decode(buf, n, &mp, &ml, &rv), TERN_E_MALFORMED);
	static const uint8_t only_revert[] = {0xa1, 0x02, 0xf5}; /* no manifest */
	assert_int_equal(tern_msg_offer_decode(only_revert, sizeof(only_revert), &mp, &ml, &rv),
			 TERN_E_MALFORMED);
	assert_int_equal(tern_msg_offer_encode(buf, 0, false, buf, sizeof(buf)), 0);
	/* PROVISION */
	uint8_t key[TERN_P256_POINT_LEN];
	memset(key, 4, sizeof(key));
	struct tern_msg_provision p = {
	    .n_keys = 1, .config = (const uint8_t *)"a=b\n", .config_len = 4};
	memcpy(p.device_id, "dev-1", 6);
	p.keys[0] = key;
	struct tern_msg_provision pb;
	n = tern_msg_provision_encode(&p, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(tern_msg_provision_decode(buf, n, &pb), 0);
	assert_string_equal(pb.device_id, "dev-1");
	assert_int_equal(pb.n_keys, 1);
	assert_memory_equal(pb.keys[0], key, sizeof(key));
	assert_int_equal(pb.config_len, 4);
	for (size_t len = 0; len < n; len++)
		assert_true(tern_msg_provision_decode(buf, len, &pb) < 0);
	/* Empty bodies: any map, unknown keys skipped, nothing after it. */
	n = tern_msg_empty_encode(buf, sizeof(buf));
	assert_int_equal(n, 1);
	assert_int_equal(tern_msg_empty_decode(buf, n), 0);
	static const uint8_t extra[] = {0xa1, 0x18, 0x63, 0x82, 0x01, 0x02};
	assert_int_equal(tern_msg_empty_decode(extra, sizeof(extra)), 0);
	assert_int_equal(tern_msg_empty_decode(extra, sizeof(extra) - 1), TERN_E_TRUNCATED);
	static const uint8_t trailing[] = {0xa0, 0x00};
	assert_int_equal(tern_msg_empty_decode(trailing, sizeof(trailing)), TERN_E_TRAILING);
	/* HELLO needs its key. */
	uint32_t proto;
	assert_int_equal(tern_msg_hello_decode((const uint8_t *)"\xa0", 1, &proto),
			 TERN_E_MALFORMED);
}

static void test_message_table(void **state)
{
	(void)state;
	for (unsigned t = 1; t < TERN_MSG__END; t++) {
		const struct tern_frame_msg_desc *d = tern_frame_msg((uint8_t)t);
		assert_non_null(d);
		assert_int_equal(d->type, t);
		if (d->dir == TERN_DIR_TO_DEVICE)
			assert_int_not_equal(d->reply, 0);
	}
	assert_null(tern_frame_msg(0));
	assert_null(tern_frame_msg(TERN_MSG__END));
	assert_string_equal(tern_frame_type_name(TERN_MSG_PROVISION), "provision");
	assert_string_equal(tern_frame_type_name(0xee), "unknown");
}

/* The stream reassembler: frames split across transfers, glued together, damaged. */
static void test_rx_stream(void **state)
{
	(void)state;
	static uint8_t rxbuf[TERN_FRAME_MAX];
	struct tern_frame_rx rx;
	struct tern_frame f;
	uint8_t stream[256];
	size_t n = 0;
	memcpy(stream + n, golden_hello, sizeof(golden_hello));
	n += sizeof(golden_hello);
	memcpy(stream + n, "garbage", 7); /* noise between frames */
	n += 7;
	memcpy(stream + n, golden_info, sizeof(golden_info));
	n += sizeof(golden_info);
	memcpy(stream + n, golden_state, sizeof(golden_state));
	stream[n + 20] ^= 0x40; /* damage the third frame's body */
	n += sizeof(golden_state);
	memcpy(stream + n, golden_hello, sizeof(golden_hello));
	n += sizeof(golden_hello);

	/* Fed one byte at a time, then in one piece: the same frames come out. */
	for (size_t step = 1; step <= n; step = step == 1 ? n : n + 1) {
		tern_frame_rx_init(&rx, rxbuf, sizeof(rxbuf));
		int seen[5] = {0, 0, 0, 0, 0};
		int errs_crc = 0, errs_magic = 0;
		for (size_t off = 0; off < n; off += step) {
			size_t k = n - off < step ? n - off : step;
			assert_int_equal(tern_frame_rx_push(&rx, stream + off, k), 0);
			int rc;
			while ((rc = tern_frame_rx_next(&rx, &f)) != 0) {
				if (rc == 1) {
					assert_true(f.type == TERN_MSG_HELLO ||
						    f.type == TERN_MSG_INFO);
					seen[f.type]++;
				} else if (rc == TERN_E_CRC) {
					assert_int_equal(f.seq, 7);
					errs_crc++;
				} else {
					assert_int_equal(rc, TERN_E_MALFORMED);
					errs_magic++;
				}
			}
		}
		assert_int_equal(seen[TERN_MSG_HELLO], 2);
		assert_int_equal(seen[TERN_MSG_INFO], 1);
		assert_int_equal(errs_crc, 1);
		assert_true(errs_magic >= 1);
	}
	/* An absurd header is dropped, and the next frame still comes through. */
	tern_frame_rx_init(&rx, rxbuf, sizeof(rxbuf));
	uint8_t bad[TERN_FRAME_HDR_LEN];
	memcpy(bad, golden_hello, sizeof(bad));
	bad[11] = 0x7f;
	assert_int_equal(tern_frame_rx_push(&rx, bad, sizeof(bad)), 0);
	assert_int_equal(tern_frame_rx_push(&rx, golden_hello, sizeof(golden_hello)), 0);
	assert_int_equal(tern_frame_rx_next(&rx, &f), TERN_E_TOO_LARGE);
	int rc;
	while ((rc = tern_frame_rx_next(&rx, &f)) == TERN_E_MALFORMED)
		;
	assert_int_equal(rc, 1);
	assert_int_equal(f.type, TERN_MSG_HELLO);
	assert_int_equal(tern_frame_rx_next(&rx, &f), 0);
	/* Pushing more than fits is refused. */
	assert_int_equal(tern_frame_rx_push(&rx, big, sizeof(rxbuf) + 1), TERN_E_TOO_LARGE);
}

/* A signed PROVISION opens only on the device it was signed for, with a trusted key. */
static void test_provision_signed(void **state)
{
	(void)state;
	struct tern_signer sg;
	struct tern_keyring kr = {.n_keys = 0};
	assert_int_equal(tern_signer_generate(&sg), 0);
	uint8_t point[TERN_P256_POINT_LEN];
	memcpy(point, sg.pub.point, sizeof(point));
	struct tern_msg_provision p = {.n_keys = 1};
	memcpy(p.device_id, "dev-7", 6);
	p.keys[0] = point;
	uint8_t body[512], aad[64], cose[1024], req[1200];
	size_t blen = tern_msg_provision_encode(&p, body, sizeof(body));
	assert_true(blen > 0);
	size_t alen = tern_provision_aad("EMU00001", aad, sizeof(aad));
	assert_int_equal(alen, strlen(TERN_PROVISION_AAD) + 8);
	size_t clen = tern_cose_sign1_sign(&sg, body, blen, aad, alen, cose, sizeof(cose));
	assert_true(clen > 0);
	size_t rlen = tern_msg_provision_encode_signed(cose, clen, req, sizeof(req));
	assert_true(rlen > clen);

	struct tern_msg_provision got, opened;
	assert_int_equal(tern_msg_provision_decode(req, rlen, &got), 0);
	assert_non_null(got.signed_req);
	assert_int_equal(got.signed_len, clen);
	/* No trusted key yet. */
	assert_int_equal(tern_msg_provision_open(&got, &kr, "EMU00001", &opened),
			 TERN_E_UNKNOWN_KEY);
	assert_int_equal(tern_keyring_add(&kr, &sg.pub), 0);
	assert_int_equal(tern_msg_provision_open(&got, &kr, "EMU00001", &opened), 0);
	assert_string_equal(opened.device_id, "dev-7");
	assert_int_equal(opened.n_keys, 1);
	assert_memory_equal(opened.keys[0], point, sizeof(point));
	/* Replayed on another device: the AAD differs, the signature does not verify. */
	assert_int_equal(tern_msg_provision_open(&got, &kr, "EMU00002", &opened),
			 TERN_E_BAD_SIGNATURE);
	/* A changed payload byte. */
	req[rlen - 70] ^= 1; /* got.signed_req points into req */
	assert_true(tern_msg_provision_open(&got, &kr, "EMU00001", &opened) < 0);
	/* The provisioning generation travels inside the signed map: a replay on the same
	 * device (a generation not above the one it took) is refused; plain requests (a blank
	 * device) are not counted. */
	p.generation = 5;
	blen = tern_msg_provision_encode(&p, body, sizeof(body));
	clen = tern_cose_sign1_sign(&sg, body, blen, aad, alen, cose, sizeof(cose));
	rlen = tern_msg_provision_encode_signed(cose, clen, req, sizeof(req));
	assert_int_equal(tern_msg_provision_decode(req, rlen, &got), 0);
	assert_int_equal(got.generation, 0); /* not readable outside the signature */
	assert_int_equal(tern_msg_provision_open(&got, &kr, "EMU00001", &opened), 0);
	assert_int_equal(opened.generation, 5);
	assert_int_equal(tern_provision_generation_check(true, opened.generation, 4), 0);
	assert_int_equal(tern_provision_generation_check(true, opened.generation, 5),
			 TERN_E_OLD_GENERATION);
	assert_int_equal(tern_provision_generation_check(true, 0, 0), TERN_E_OLD_GENERATION);
	assert_int_equal(tern_provision_generation_check(false, 0, 9), 0);
	tern_signer_free(&sg);
	/* INFO carries the device's generation only when it has one (golden INFO unchanged). */
	struct tern_msg_info in = {.proto = 1, .board = "b", .serial = "S", .version = "1"};
	struct tern_msg_info out;
	uint8_t ib[256];
	size_t ilen = tern_msg_info_encode(&in, ib, sizeof(ib));
	in.provision_gen = 7;
	assert_int_equal(tern_msg_info_encode(&in, ib, sizeof(ib)), ilen + 2);
	assert_int_equal(tern_msg_info_decode(ib, ilen + 2, &out), 0);
	assert_int_equal(out.provision_gen, 7);
	/* Signed and plain fields together, and bad device ids, are refused. */
	static const uint8_t mixed[] = {0xa2, 0x01, 0x61, 0x61, 0x04, 0x41, 0x00};
	assert_int_equal(tern_msg_provision_decode(mixed, sizeof(mixed), &got), TERN_E_MALFORMED);
	memcpy(p.device_id, "a b", 4);
	assert_int_equal(tern_msg_provision_encode(&p, body, sizeof(body)), 0);
	static const uint8_t bad_id[] = {0xa2, 0x01, 0x63, 0x61, 0x2f, 0x62, 0x02, 0x80};
	assert_int_equal(tern_msg_provision_decode(bad_id, sizeof(bad_id), &got), TERN_E_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32_vectors),
	    cmocka_unit_test(test_golden_hello_info),
	    cmocka_unit_test(test_golden_state),
	    cmocka_unit_test(test_golden_unknown_type),
	    cmocka_unit_test(test_handler_error_mapped),
	    cmocka_unit_test(test_every_truncation),
	    cmocka_unit_test(test_every_bit_flip_detected),
	    cmocka_unit_test(test_absurd_lengths_and_headers),
	    cmocka_unit_test(test_data_roundtrip_and_bounds),
	    cmocka_unit_test(test_bodies_roundtrip),
	    cmocka_unit_test(test_message_table),
	    cmocka_unit_test(test_rx_stream),
	    cmocka_unit_test(test_provision_signed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
