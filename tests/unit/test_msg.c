/*
 * MQTT messages: golden bytes of the desired state, device state and event; signed
 * desired states accepted only when trusted, addressed here and newer; decoders refuse
 * truncated and altered input without crashing.
 */
#include "tern/tern_err.h"
#include "tern/tern_msg.h"
#include "tern/tern_sign.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t unhex(const char *h, uint8_t *out, size_t size)
{
	size_t n = strlen(h) / 2;
	assert_true(n <= size);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		char two[3] = {h[2 * i], h[2 * i + 1], 0};
		v = (unsigned)strtoul(two, NULL, 16);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* Finds @needle in @hay (memmem is a GNU extension). */
static uint8_t *find(uint8_t *hay, size_t n, const void *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

/* Golden bytes, cross-checked with Python's cbor2. */
static const char desired_hex[] = "a701656465762d310205036c73696d2d312e322e302d3132040c050006000"
				  "71a6553f100";
static const char state_hex[] =
    "ab01656465762d31026373696d030504010582a0a4016c73696d2d312e322e302d31320265312e322e30030c04"
    "f50703080a09000a050b1a6553f1010c02";
/* state_hex with the event of event_hex as its last event (key 13, a byte string). */
static const char state_ev_hex[] =
    "ac01656465762d31026373696d030504010582a0a4016c73696d2d312e322e302d31320265312e322e30030c04"
    "f50703080a09000a050b1a6553f1010c020d582da901656465762d310207031a6553f1020401050006000817"
    "097167656e65726174696f6e2034203c3d20350a04";
static const char event_hex[] = "a901656465762d310207031a6553f1020401050006000817097167656e6572"
				"6174696f6e2034203c3d20350a04";

static struct tern_desired sample_desired(void)
{
	struct tern_desired d = {.generation = 5,
				 .sequence = 12,
				 .action = TERN_ACTION_INSTALL,
				 .activate = TERN_ACTIVATE_NOW,
				 .issued = 1700000000};
	memcpy(d.device_id, "dev-1", 6);
	memcpy(d.release_id, "sim-1.2.0-12", 13);
	return d;
}

static struct tern_state_msg sample_state(void)
{
	struct tern_state_msg s = {.state = TERN_STATE_CONFIRMED,
				   .active_slot = 1,
				   .done = 3,
				   .total = 10,
				   .generation = 5,
				   .time = 1700000001,
				   .floor = 2};
	memcpy(s.device_id, "dev-1", 6);
	memcpy(s.board, "sim", 4);
	memcpy(s.slots[1].release_id, "sim-1.2.0-12", 13);
	memcpy(s.slots[1].version, "1.2.0", 6);
	s.slots[1].sequence = 12;
	s.slots[1].good = true;
	return s;
}

static struct tern_event_msg sample_event(void)
{
	struct tern_event_msg e = {.seq = 7,
				   .time = 1700000002,
				   .kind = TERN_EV_REFUSED,
				   .from = TERN_STATE_IDLE,
				   .to = TERN_STATE_IDLE,
				   .status = TERN_ST_OLD_GENERATION,
				   .generation = 4};
	memcpy(e.device_id, "dev-1", 6);
	memcpy(e.detail, "generation 4 <= 5", 18);
	return e;
}

static void test_desired_golden(void **state)
{
	(void)state;
	uint8_t want[128], buf[TERN_DESIRED_MAX];
	size_t want_len = unhex(desired_hex, want, sizeof(want));
	struct tern_desired d = sample_desired(), back;
	size_t n = tern_desired_encode(&d, buf, sizeof(buf));
	assert_int_equal(n, want_len);
	assert_memory_equal(buf, want, n);
	assert_int_equal(tern_desired_decode(&back, want, want_len), 0);
	assert_memory_equal(&back, &d, sizeof(d));
	/* Too small a buffer at every size: 0. */
	for (size_t size = 0; size < n; size++)
		assert_int_equal(tern_desired_encode(&d, buf, size), 0);
}

static void test_desired_invalid(void **state)
{
	(void)state;
	uint8_t buf[TERN_DESIRED_MAX];
	struct tern_desired d = sample_desired();
	d.generation = 0;
	assert_int_equal(tern_desired_encode(&d, buf, sizeof(buf)), 0);
	d = sample_desired();
	memcpy(d.device_id, "a/b", 4);
	assert_int_equal(tern_desired_encode(&d, buf, sizeof(buf)), 0);
	d = sample_desired();
	d.action = TERN_ACTION__COUNT;
	assert_int_equal(tern_desired_encode(&d, buf, sizeof(buf)), 0);
	/* A payload missing a key, or with an unknown action, is refused. */
	static const uint8_t missing[] = {0xa1, 0x01, 0x61, 'x'};
	assert_int_equal(tern_desired_decode(&d, missing, sizeof(missing)), TERN_E_MALFORMED);
	uint8_t bad[128];
	size_t n = unhex(desired_hex, bad, sizeof(bad));
	bad[n - 9] = 0x07; /* action 7 */
	assert_int_equal(bad[n - 10], 0x05);
	assert_int_equal(tern_desired_decode(&d, bad, n), TERN_E_MALFORMED);
}

static void test_state_golden(void **state)
{
	(void)state;
	uint8_t want[256], buf[TERN_STATE_MAX];
	size_t want_len = unhex(state_hex, want, sizeof(want));
	struct tern_state_msg s = sample_state(), back;
	size_t n = tern_state_encode(&s, buf, sizeof(buf));
	assert_int_equal(n, want_len);
	assert_memory_equal(buf, want, n);
	assert_int_equal(tern_state_decode(&back, want, want_len), 0);
	assert_memory_equal(&back, &s, sizeof(s));
	/* With a target release the key appears between slots and progress. */
	memcpy(s.target, "sim-1.3.0-13", 13);
	s.state = TERN_STATE_DOWNLOADING;
	n = tern_state_encode(&s, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(tern_state_decode(&back, buf, n), 0);
	assert_string_equal(back.target, "sim-1.3.0-13");
	assert_int_equal(back.state, TERN_STATE_DOWNLOADING);
	assert_string_equal(tern_dev_state_name(back.state), "downloading");
}

/* A state carries the device's last event, which must be an event of the same device. */
static void test_state_last_event(void **state)
{
	(void)state;
	uint8_t want[256], buf[TERN_STATE_MAX], ev[TERN_EVENT_MAX];
	size_t want_len = unhex(state_ev_hex, want, sizeof(want));
	struct tern_state_msg s = sample_state(), back;
	struct tern_event_msg e = sample_event();
	s.last_event_len = tern_event_encode(&e, s.last_event, sizeof(s.last_event));
	assert_true(s.last_event_len > 0);
	size_t n = tern_state_encode(&s, buf, sizeof(buf));
	assert_int_equal(n, want_len);
	assert_memory_equal(buf, want, n);
	assert_int_equal(tern_state_decode(&back, want, want_len), 0);
	assert_memory_equal(&back, &s, sizeof(s));
	struct tern_event_msg got;
	assert_int_equal(tern_event_decode(&got, back.last_event, back.last_event_len), 0);
	assert_memory_equal(&got, &e, sizeof(e));

	/* Another device's event, or bytes that are no event: neither made nor accepted. */
	memcpy(e.device_id, "dev-2", 6);
	size_t n_ev = tern_event_encode(&e, ev, sizeof(ev));
	memcpy(s.last_event, ev, n_ev);
	s.last_event_len = n_ev;
	assert_int_equal(tern_state_encode(&s, buf, sizeof(buf)), 0);
	memcpy(buf, want, want_len);
	memcpy(buf + want_len - n_ev, ev, n_ev); /* same length: "dev-1" -> "dev-2" */
	assert_int_equal(tern_state_decode(&back, buf, want_len), TERN_E_MALFORMED);
	s.last_event[0] = 0xa0; /* an empty map */
	s.last_event_len = 1;
	assert_int_equal(tern_state_encode(&s, buf, sizeof(buf)), 0);
	/* An empty byte string as the last event. */
	memcpy(buf, want, want_len);
	size_t head = want_len - 45 - 2; /* 0x58 0x2d, then the 45 bytes of the event */
	buf[head] = 0x40;
	assert_int_equal(tern_state_decode(&back, buf, head + 1), TERN_E_MALFORMED);
}

static void test_event_golden(void **state)
{
	(void)state;
	uint8_t want[256], buf[TERN_EVENT_MAX];
	size_t want_len = unhex(event_hex, want, sizeof(want));
	struct tern_event_msg e = sample_event(), back;
	size_t n = tern_event_encode(&e, buf, sizeof(buf));
	assert_int_equal(n, want_len);
	assert_memory_equal(buf, want, n);
	assert_int_equal(tern_event_decode(&back, want, want_len), 0);
	assert_memory_equal(&back, &e, sizeof(e));
	assert_string_equal(tern_status_name(back.status), "old-generation");
	assert_int_equal(tern_status_to_err(back.status), TERN_E_OLD_GENERATION);
}

/* Unknown keys (integer or text) are skipped: newer peers can add fields. */
static void test_unknown_keys_skipped(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t n = unhex(event_hex, buf + 0, sizeof(buf));
	/* Map of 9 -> 11 entries: append 30: [1, 2] and "x": {}. */
	buf[0] = 0xab;
	static const uint8_t extra[] = {0x18, 0x1e, 0x82, 0x01, 0x02, 0x61, 'x', 0xa0};
	memcpy(buf + n, extra, sizeof(extra));
	struct tern_event_msg e;
	assert_int_equal(tern_event_decode(&e, buf, n + sizeof(extra)), 0);
	assert_int_equal(e.seq, 7);
}

/* Every wire status maps to an error and back; unknown errors travel as ERROR. */
static void test_status_mapping(void **state)
{
	(void)state;
	assert_int_equal(tern_status_from_err(0), TERN_ST_OK);
	for (uint16_t st = 2; st < TERN_ST__COUNT; st++)
		assert_int_equal(tern_status_from_err(tern_status_to_err(st)), st);
	assert_int_equal(tern_status_from_err(-1000), TERN_ST_ERROR);
	assert_string_equal(tern_status_name(TERN_ST__COUNT), "unknown");
	assert_string_equal(tern_status_name(TERN_ST_BAD_SIGNATURE), "bad-signature");
}

/* Decoders on every prefix and every single-byte change: an error or a valid message. */
static void test_truncated_and_flipped(void **state)
{
	(void)state;
	const char *hexes[] = {desired_hex, state_hex, event_hex, state_ev_hex};
	for (int which = 0; which < 4; which++) {
		uint8_t buf[256];
		size_t n = unhex(hexes[which], buf, sizeof(buf));
		for (size_t len = 0; len < n; len++) {
			struct tern_desired d;
			struct tern_state_msg s;
			struct tern_event_msg e;
			int rc = which == 0   ? tern_desired_decode(&d, buf, len)
				 : which == 2 ? tern_event_decode(&e, buf, len)
					      : tern_state_decode(&s, buf, len);
			assert_true(rc < 0);
		}
		for (size_t i = 0; i < n; i++) {
			for (int bit = 0; bit < 8; bit++) {
				struct tern_desired d;
				struct tern_state_msg s;
				struct tern_event_msg e;
				buf[i] ^= (uint8_t)(1u << bit);
				int rc = which == 0   ? tern_desired_decode(&d, buf, n)
					 : which == 2 ? tern_event_decode(&e, buf, n)
						      : tern_state_decode(&s, buf, n);
				assert_true(rc <= 0);
				buf[i] ^= (uint8_t)(1u << bit);
			}
		}
	}
}

/* Two signing keys for the signed-message tests: A is trusted, B is not. */
struct keys {
	struct tern_signer a, b;
	struct tern_keyring kr;
};

static int keys_setup(void **state)
{
	static struct keys k;
	memset(&k, 0, sizeof(k));
	if (tern_signer_generate(&k.a) || tern_signer_generate(&k.b) ||
	    tern_keyring_add(&k.kr, &k.a.pub))
		return -1;
	*state = &k;
	return 0;
}

static int keys_teardown(void **state)
{
	struct keys *k = *state;
	tern_signer_free(&k->a);
	tern_signer_free(&k->b);
	return 0;
}

static void test_desired_signed_accepted(void **state)
{
	struct keys *k = *state;
	uint8_t msg[TERN_SIGNED_DESIRED_MAX];
	struct tern_desired d = sample_desired(), got;
	size_t n = tern_desired_sign(&k->a, &d, msg, sizeof(msg));
	assert_true(n > 0);
	assert_int_equal(msg[0], 0xd2); /* tagged COSE_Sign1 */
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 4), 0);
	assert_memory_equal(&got, &d, sizeof(d));
	/* Deterministic: the same command signs to the same bytes. */
	uint8_t again[TERN_SIGNED_DESIRED_MAX];
	assert_int_equal(tern_desired_sign(&k->a, &d, again, sizeof(again)), n);
	assert_memory_equal(again, msg, n);
	assert_int_equal(tern_desired_sign(&k->a, &d, again, n - 1), 0);
}

static void test_desired_unknown_key(void **state)
{
	struct keys *k = *state;
	uint8_t msg[TERN_SIGNED_DESIRED_MAX];
	struct tern_desired d = sample_desired(), got;
	size_t n = tern_desired_sign(&k->b, &d, msg, sizeof(msg));
	assert_true(n > 0);
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 0), TERN_E_UNKNOWN_KEY);
}

/* Signed by B, but claiming A's key id (the kid is unprotected): the signature fails. */
static void test_desired_forged_kid(void **state)
{
	struct keys *k = *state;
	uint8_t msg[TERN_SIGNED_DESIRED_MAX];
	struct tern_desired d = sample_desired(), got;
	size_t n = tern_desired_sign(&k->b, &d, msg, sizeof(msg));
	uint8_t *kid = find(msg, n, k->b.pub.kid, TERN_KID_LEN);
	assert_non_null(kid);
	memcpy(kid, k->a.pub.kid, TERN_KID_LEN);
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 0), TERN_E_BAD_SIGNATURE);
}

/* A generation or a device id changed after signing: the signature fails. */
static void test_desired_altered(void **state)
{
	struct keys *k = *state;
	uint8_t msg[TERN_SIGNED_DESIRED_MAX];
	struct tern_desired d = sample_desired(), got;
	size_t n = tern_desired_sign(&k->a, &d, msg, sizeof(msg));
	uint8_t *gen = find(msg, n, "\x02\x05\x03", 3); /* key 2: generation 5 */
	assert_non_null(gen);
	gen[1] = 0x09;
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 0), TERN_E_BAD_SIGNATURE);
	gen[1] = 0x05;
	uint8_t *id = find(msg, n, "dev-1", 5);
	id[4] = '2';
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-2", 0), TERN_E_BAD_SIGNATURE);
	id[4] = '1';
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 0), 0);
	/* Trailing bytes after the message are refused. */
	msg[n] = 0;
	assert_int_equal(tern_desired_open(&got, msg, n + 1, &k->kr, "dev-1", 0), TERN_E_TRAILING);
}

static void test_desired_misaddressed(void **state)
{
	struct keys *k = *state;
	uint8_t msg[TERN_SIGNED_DESIRED_MAX];
	struct tern_desired d = sample_desired(), got;
	size_t n = tern_desired_sign(&k->a, &d, msg, sizeof(msg));
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-2", 0), TERN_E_WRONG_DEVICE);
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-10", 0), TERN_E_WRONG_DEVICE);
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-", 0), TERN_E_WRONG_DEVICE);
}

static void test_desired_replayed(void **state)
{
	struct keys *k = *state;
	uint8_t msg[TERN_SIGNED_DESIRED_MAX];
	struct tern_desired d = sample_desired(), got;
	size_t n = tern_desired_sign(&k->a, &d, msg, sizeof(msg));
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 4), 0);
	/* Once generation 5 is accepted, the same message again is a replay. */
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 5),
			 TERN_E_OLD_GENERATION);
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 6),
			 TERN_E_OLD_GENERATION);
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", UINT64_MAX),
			 TERN_E_OLD_GENERATION);
}

/* A COSE_Sign1 made without the desired-state AAD (like a manifest) does not verify. */
static void test_desired_needs_aad(void **state)
{
	struct keys *k = *state;
	uint8_t payload[TERN_DESIRED_MAX], msg[TERN_SIGNED_DESIRED_MAX];
	struct tern_desired d = sample_desired(), got;
	size_t plen = tern_desired_encode(&d, payload, sizeof(payload));
	size_t n = tern_cose_sign1_sign(&k->a, payload, plen, NULL, 0, msg, sizeof(msg));
	assert_true(n > 0);
	assert_int_equal(tern_desired_open(&got, msg, n, &k->kr, "dev-1", 0), TERN_E_BAD_SIGNATURE);
}

static void test_desired_garbage(void **state)
{
	struct keys *k = *state;
	struct tern_desired got;
	static const uint8_t junk[] = {'o', 'f', 'f', 'l', 'i', 'n', 'e'};
	assert_true(tern_desired_open(&got, junk, sizeof(junk), &k->kr, "dev-1", 0) < 0);
	assert_true(tern_desired_open(&got, junk, 0, &k->kr, "dev-1", 0) < 0);
	uint8_t msg[TERN_SIGNED_DESIRED_MAX];
	struct tern_desired d = sample_desired();
	size_t n = tern_desired_sign(&k->a, &d, msg, sizeof(msg));
	for (size_t len = 0; len < n; len++)
		assert_true(tern_desired_open(&got, msg, len, &k->kr, "dev-1", 0) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_desired_golden),
	    cmocka_unit_test(test_desired_invalid),
	    cmocka_unit_test(test_state_golden),
	    cmocka_unit_test(test_state_last_event),
	    cmocka_unit_test(test_event_golden),
	    cmocka_unit_test(test_unknown_keys_skipped),
	    cmocka_unit_test(test_status_mapping),
	    cmocka_unit_test(test_truncated_and_flipped),
	    cmocka_unit_test(test_desired_signed_accepted),
	    cmocka_unit_test(test_desired_unknown_key),
	    cmocka_unit_test(test_desired_forged_kid),
	    cmocka_unit_test(test_desired_altered),
	    cmocka_unit_test(test_desired_misaddressed),
	    cmocka_unit_test(test_desired_replayed),
	    cmocka_unit_test(test_desired_needs_aad),
	    cmocka_unit_test(test_desired_garbage),
	};
	return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
