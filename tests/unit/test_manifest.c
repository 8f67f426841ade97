/*
 * The manifest: encode/decode round trips up to every bound, golden bytes (checked
 * independently with Python's cbor2 against the key table), the decoding rules
 * (unknown keys skipped, critical keys, duplicates, missing keys, format version,
 * trailing bytes, limits), and the chunk arithmetic.
 */
#include "tern/tern_cbor.h"
#include "tern/tern_err.h"
#include "tern/tern_manifest.h"

#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#define GOLDEN_SCRIPT "tests/interop/check_manifest_golden.py"

static void set_str(char *dst, size_t size, const char *src)
{
	int n = snprintf(dst, size, "%s", src);
	assert_true(n >= 0 && (size_t)n < size);
}

/* A string of @n copies of @c. */
static void fill_str(char *dst, size_t n, char c)
{
	memset(dst, c, n);
	dst[n] = '\0';
}

static void add_component(struct tern_manifest *m, const char *name, enum tern_component_kind kind,
			  const char *slot, uint64_t size, uint8_t digest_start)
{
	struct tern_component *c = &m->components[m->n_components++];
	set_str(c->name, sizeof(c->name), name);
	c->kind = kind;
	set_str(c->slot_group, sizeof(c->slot_group), slot);
	c->size = size;
	for (size_t i = 0; i < TERN_SHA256_LEN; i++)
		c->index_digest[i] = (uint8_t)(digest_start + i);
}

/* The fixed manifest whose bytes are golden (see check_manifest_golden.py). */
static void golden_manifest(struct tern_manifest *m)
{
	static const char notes[] = "Fix the watchdog reset.\n";
	static const struct tern_early_life el = TERN_EARLY_LIFE_DEFAULT;
	memset(m, 0, sizeof(*m));
	m->format_version = TERN_FORMAT_VERSION;
	set_str(m->release_id, sizeof(m->release_id), "rel-2026.11-a");
	set_str(m->version, sizeof(m->version), "1.4.2");
	m->sequence = 42;
	m->security_counter = 3;
	set_str(m->boards[0], sizeof(m->boards[0]), "sim");
	set_str(m->boards[1], sizeof(m->boards[1]), "pi4-b");
	m->n_boards = 2;
	m->chunk_size = TERN_CHUNK_DEFAULT;
	add_component(m, "fw", TERN_KIND_FIRMWARE, "system", 1000000, 0x00);
	add_component(m, "cfg", TERN_KIND_CONFIG, "config", 4096, 0xa0);
	m->notes = notes;
	m->notes_len = sizeof(notes) - 1;
	m->created = 1764201600; /* 2025-11-27 00:00:00 UTC */
	m->early_life = el;
}

/* A small valid manifest with one component of @kind. */
static void simple_manifest(struct tern_manifest *m, enum tern_component_kind kind)
{
	memset(m, 0, sizeof(*m));
	m->format_version = TERN_FORMAT_VERSION;
	set_str(m->release_id, sizeof(m->release_id), "r1");
	set_str(m->version, sizeof(m->version), "1.0");
	m->sequence = 1;
	set_str(m->boards[0], sizeof(m->boards[0]), "sim");
	m->n_boards = 1;
	m->chunk_size = TERN_CHUNK_MIN;
	add_component(m, kind == TERN_KIND_FIRMWARE ? "fw" : "cfg", kind,
		      kind == TERN_KIND_FIRMWARE ? "system" : "config", 5000, 0x11);
	m->created = 1;
	m->early_life = (struct tern_early_life){5, 120, 30};
}

static void assert_manifest_equal(const struct tern_manifest *a, const struct tern_manifest *b)
{
	assert_int_equal(a->format_version, b->format_version);
	assert_string_equal(a->release_id, b->release_id);
	assert_string_equal(a->version, b->version);
	assert_true(a->sequence == b->sequence);
	assert_int_equal(a->security_counter, b->security_counter);
	assert_int_equal(a->n_boards, b->n_boards);
	for (size_t i = 0; i < a->n_boards; i++)
		assert_string_equal(a->boards[i], b->boards[i]);
	assert_int_equal(a->chunk_size, b->chunk_size);
	assert_int_equal(a->n_components, b->n_components);
	for (size_t i = 0; i < a->n_components; i++) {
		const struct tern_component *x = &a->components[i], *y = &b->components[i];
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->kind, y->kind);
		assert_string_equal(x->slot_group, y->slot_group);
		assert_true(x->size == y->size);
		assert_memory_equal(x->index_digest, y->index_digest, TERN_SHA256_LEN);
	}
	assert_int_equal(a->notes_len, b->notes_len);
	if (a->notes_len)
		assert_memory_equal(a->notes, b->notes, a->notes_len);
	assert_true(a->created == b->created);
	assert_int_equal(a->early_life.trial_attempts, b->early_life.trial_attempts);
	assert_int_equal(a->early_life.health_timeout_s, b->early_life.health_timeout_s);
	assert_int_equal(a->early_life.settle_s, b->early_life.settle_s);
}

/* Decodes an exact heap copy of @len bytes at @buf. */
static int decode_exact(struct tern_manifest *m, const uint8_t *buf, size_t len)
{
	uint8_t *copy = test_dup(buf, len);
	int rc = tern_manifest_decode(m, copy, len);
	/* Notes borrow from the input: compare before it is freed. */
	if (rc == 0 && m->notes_len) {
		assert_true(m->notes >= (const char *)copy &&
			    m->notes + m->notes_len <= (const char *)copy + len);
		m->notes = NULL; /* dangling after free; callers compare separately */
	}
	free(copy);
	return rc;
}

/* Encodes, checks the size rule, decodes and compares every field. */
static void round_trip(const struct tern_manifest *m)
{
	static uint8_t buf[TERN_MANIFEST_MAX];
	size_t n = tern_manifest_encode(m, buf, sizeof(buf));
	assert_true(n > 0);
	/* Exact-size output works, one byte less gives 0. */
	uint8_t *exact = malloc(n);
	assert_non_null(exact);
	assert_int_equal(tern_manifest_encode(m, exact, n), n);
	assert_memory_equal(exact, buf, n);
	assert_int_equal(tern_manifest_encode(m, exact, n - 1), 0);

	struct tern_manifest d;
	assert_int_equal(tern_manifest_decode(&d, exact, n), 0);
	assert_manifest_equal(m, &d);
	free(exact);
}

static void test_round_trip_kinds(void **state)
{
	(void)state;
	struct tern_manifest m;
	static const char notes[] = "Config only: new broker address.";
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	round_trip(&m);
	simple_manifest(&m, TERN_KIND_CONFIG);
	round_trip(&m);
	m.notes = notes;
	m.notes_len = sizeof(notes) - 1;
	round_trip(&m);
	golden_manifest(&m); /* firmware and config, with notes */
	round_trip(&m);
	m.notes = NULL;
	m.notes_len = 0;
	round_trip(&m);
	/* Large values in every field. */
	m.sequence = UINT64_MAX;
	m.security_counter = UINT32_MAX;
	m.created = UINT64_MAX;
	m.chunk_size = TERN_CHUNK_MAX;
	m.components[0].size = TERN_COMPONENT_MAX;
	m.early_life = (struct tern_early_life){UINT32_MAX, UINT32_MAX, 0};
	round_trip(&m);
}

static void test_round_trip_max_bounds(void **state)
{
	(void)state;
	struct tern_manifest m;
	static char notes[TERN_NOTES_MAX];
	memset(&m, 0, sizeof(m));
	m.format_version = TERN_FORMAT_VERSION;
	fill_str(m.release_id, TERN_RELEASE_ID_MAX, 'r');
	fill_str(m.version, TERN_VERSION_MAX, 'v');
	m.sequence = 7;
	for (size_t i = 0; i < TERN_MAX_BOARDS; i++) {
		fill_str(m.boards[i], TERN_NAME_MAX, 'b');
		m.boards[i][0] = (char)('0' + i);
	}
	m.n_boards = TERN_MAX_BOARDS;
	m.chunk_size = TERN_CHUNK_MAX;
	for (size_t i = 0; i < TERN_MAX_COMPONENTS; i++) {
		char name[TERN_NAME_MAX + 1];
		fill_str(name, TERN_NAME_MAX, 'c');
		name[0] = (char)('0' + i);
		char slot[TERN_NAME_MAX + 1];
		fill_str(slot, TERN_NAME_MAX, 's');
		add_component(&m, name, i % 2 ? TERN_KIND_CONFIG : TERN_KIND_FIRMWARE, slot,
			      TERN_COMPONENT_MAX - i, (uint8_t)(i * 32));
	}
	for (size_t i = 0; i < sizeof(notes); i++)
		notes[i] = (char)(' ' + i % 90);
	m.notes = notes;
	m.notes_len = sizeof(notes);
	m.created = 1764201600;
	round_trip(&m);
	assert_true(tern_manifest_has_board(&m, m.boards[3]));

	/* One past each bound: the encoder refuses. */
	uint8_t buf[TERN_MANIFEST_MAX];
	struct tern_manifest bad = m;
	bad.notes_len = TERN_NOTES_MAX + 1;
	static char long_notes[TERN_NOTES_MAX + 1];
	memset(long_notes, 'n', sizeof(long_notes));
	bad.notes = long_notes;
	assert_int_equal(tern_manifest_check(&bad), TERN_E_TOO_LARGE);
	assert_int_equal(tern_manifest_encode(&bad, buf, sizeof(buf)), 0);
	bad = m;
	bad.n_boards = TERN_MAX_BOARDS + 1;
	assert_int_equal(tern_manifest_check(&bad), TERN_E_TOO_LARGE);
	bad = m;
	bad.n_components = TERN_MAX_COMPONENTS + 1;
	assert_int_equal(tern_manifest_check(&bad), TERN_E_TOO_LARGE);
	bad = m;
	bad.components[1].size = TERN_COMPONENT_MAX + 1;
	assert_int_equal(tern_manifest_check(&bad), TERN_E_TOO_LARGE);
}

/* Golden bytes: derived once from tern_manifest_encode() and checked independently by
 * tests/interop/check_manifest_golden.py (test_golden_independent below). */
static const uint8_t golden[] =
    {
	0xab,									/* map(11) */
	0x01, 0x01,								/* 1: 1 (format) */
	0x02, 0x6d, 0x72, 0x65, 0x6c, 0x2d, 0x32, 0x30, 0x32, 0x36, 0x2e, 0x31, /* 2: "rel-2026.11-a" */
	0x31, 0x2d, 0x61, 0x03, 0x65, 0x31, 0x2e, 0x34, 0x2e, 0x32,		/* 3: "1.4.2" */
	0x04, 0x18, 0x2a,							/* 4: 42 */
	0x05, 0x03,								/* 5: 3 */
	0x06, 0x82, 0x63, 0x73, 0x69, 0x6d, 0x65, 0x70, 0x69, 0x34, 0x2d, 0x62, /* 6: ["sim", "pi4-b"] */
	0x07, 0x19, 0x40, 0x00,							/* 7: 16384 */
	0x08, 0x82,								/* 8: array(2) */
	0xa5, 0x01, 0x62, 0x66, 0x77, 0x02, 0x00,	/* map(5), 1: "fw", 2: 0 */
	0x03, 0x66, 0x73, 0x79, 0x73, 0x74, 0x65, 0x6d, /* 3: "system" */
	0x04, 0x1a, 0x00, 0x0f, 0x42, 0x40,		/* 4: 1000000 */
	0x05, 0x58, 0x20, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* 5: digest 00..1f */
	0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0xa5, 0x01, 0x63,
	0x63, 0x66, 0x67, 0x02, 0x01,			/* map(5), 1: "cfg", 2: 1 */
	0x03, 0x66, 0x63, 0x6f, 0x6e, 0x66, 0x69, 0x67, /* 3: "config" */
	0x04, 0x19, 0x10, 0x00,				/* 4: 4096 */
	0x05, 0x58, 0x20, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, /* 5: digest a0..bf */
	0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5,
	0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0x09, 0x78, 0x18,
	0x46, 0x69, 0x78, 0x20, 0x74, 0x68, 0x65, 0x20, 0x77, /* 9: "Fix the watchdog reset.\n" */
	0x61, 0x74, 0x63, 0x68, 0x64, 0x6f, 0x67, 0x20, 0x72, 0x65, 0x73, 0x65, 0x74,
	0x2e, 0x0a, 0x0a, 0x1a, 0x69, 0x27, 0x94, 0x80,	      /* 10: 1764201600 */
	0x0b, 0xa3, 0x01, 0x03, 0x02, 0x18, 0x3c, 0x03, 0x0a, /* 11: {1: 3, 2: 60, 3: 10} */
};

static void test_golden_bytes(void **state)
{
	(void)state;
	struct tern_manifest m, d;
	uint8_t buf[1024];
	golden_manifest(&m);
	size_t n = tern_manifest_encode(&m, buf, sizeof(buf));
	if (n != sizeof(golden) || memcmp(buf, golden, n) != 0) {
		char hex[2 * sizeof(buf) + 1];
		test_hex(buf, n, hex);
		print_message("encoded now: %s\n", hex);
	}
	assert_int_equal(n, sizeof(golden));
	assert_memory_equal(buf, golden, sizeof(golden));
	/* And the golden bytes decode to the manifest. */
	assert_int_equal(tern_manifest_decode(&d, golden, sizeof(golden)), 0);
	assert_manifest_equal(&m, &d);
}

static void test_golden_independent(void **state)
{
	(void)state;
	char hex[2 * sizeof(golden) + 1];
	char cmd[sizeof(hex) + 256];
	if (access(GOLDEN_SCRIPT, R_OK) != 0 || access(TEST_PYTHON, X_OK) != 0)
		fail_msg("run from the source tree with %s installed", TEST_PYTHON);
	test_hex(golden, sizeof(golden), hex);
	int n = snprintf(cmd, sizeof(cmd), "%s %s %s", TEST_PYTHON, GOLDEN_SCRIPT, hex);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	assert_int_equal(system(cmd), 0);
}

/*
 * A hand-written manifest map for the decoding rules: the valid entries of
 * simple_manifest(), minus @omit, plus duplicates and extra entries.
 */
struct variant {
	uint32_t omit;	      /* bit k: leave key k out */
	uint32_t dup;	      /* bit k: write key k twice */
	const uint64_t *crit; /* key 0 with these keys (NULL: no key 0) */
	size_t n_crit;
	bool crit_text;		/* key 0 lists a text label */
	uint64_t format;	/* key 1 (0 means TERN_FORMAT_VERSION) */
	uint64_t chunk_size;	/* key 7 (0 means TERN_CHUNK_MIN) */
	bool unknown_int;	/* extra entry 99: [1, {2: "x"}] */
	bool unknown_text;	/* extra entry "future": {1: 2} */
	bool unknown_in_nested; /* unknown keys in the component and early-life maps */
	const char *release_id, *version, *board, *name, *slot, *notes;
	size_t notes_len;
	bool trailing;	     /* a byte after the map */
	size_t n_boards;     /* boards b0, b1, ... (0 means one board) */
	size_t n_components; /* components c0, c1, ... (0 means one) */
	size_t digest_len;   /* index digest length (0 means 32) */
	size_t n_crit_fill;  /* key 0 lists key 1 this many more times */
};

static void put_entry(struct tern_cbor_writer *w, uint64_t key, const struct variant *v)
{
	static const uint8_t digest[TERN_SHA256_LEN + 1] = {1, 2, 3};
	size_t n;
	tern_cbor_put_uint(w, key);
	switch (key) {
	case TERN_MK_CRITICAL:
		tern_cbor_put_array(w, v->n_crit + v->crit_text + v->n_crit_fill);
		for (size_t i = 0; i < v->n_crit; i++)
			tern_cbor_put_uint(w, v->crit[i]);
		for (size_t i = 0; i < v->n_crit_fill; i++)
			tern_cbor_put_uint(w, TERN_MK_FORMAT);
		if (v->crit_text)
			tern_cbor_put_cstr(w, "future");
		break;
	case TERN_MK_FORMAT:
		tern_cbor_put_uint(w, v->format ? v->format : TERN_FORMAT_VERSION);
		break;
	case TERN_MK_RELEASE_ID:
		tern_cbor_put_cstr(w, v->release_id ? v->release_id : "r1");
		break;
	case TERN_MK_VERSION:
		tern_cbor_put_cstr(w, v->version ? v->version : "1.0");
		break;
	case TERN_MK_SEQUENCE:
		tern_cbor_put_uint(w, 1);
		break;
	case TERN_MK_SECURITY_COUNTER:
		tern_cbor_put_uint(w, 0);
		break;
	case TERN_MK_BOARDS:
		n = v->n_boards ? v->n_boards : 1;
		tern_cbor_put_array(w, n);
		tern_cbor_put_cstr(w, v->board ? v->board : "sim");
		for (size_t i = 1; i < n; i++) {
			char name[24];
			int w_len = snprintf(name, sizeof(name), "b%zu", i);
			assert_true(w_len > 0 && (size_t)w_len < sizeof(name));
			tern_cbor_put_cstr(w, name);
		}
		break;
	case TERN_MK_CHUNK_SIZE:
		tern_cbor_put_uint(w, v->chunk_size ? v->chunk_size : TERN_CHUNK_MIN);
		break;
	case TERN_MK_COMPONENTS:
		n = v->n_components ? v->n_components : 1;
		tern_cbor_put_array(w, n);
		for (size_t i = 1; i < n; i++) {
			char name[24];
			int w_len = snprintf(name, sizeof(name), "c%zu", i);
			assert_true(w_len > 0 && (size_t)w_len < sizeof(name));
			tern_cbor_put_map(w, 5);
			tern_cbor_put_uint(w, TERN_CK_NAME);
			tern_cbor_put_cstr(w, name);
			tern_cbor_put_uint(w, TERN_CK_KIND);
			tern_cbor_put_uint(w, TERN_KIND_CONFIG);
			tern_cbor_put_uint(w, TERN_CK_SLOT_GROUP);
			tern_cbor_put_cstr(w, name);
			tern_cbor_put_uint(w, TERN_CK_SIZE);
			tern_cbor_put_uint(w, 10);
			tern_cbor_put_uint(w, TERN_CK_INDEX_DIGEST);
			tern_cbor_put_bytes(w, digest, TERN_SHA256_LEN);
		}
		tern_cbor_put_map(w, v->unknown_in_nested ? 7 : 5);
		tern_cbor_put_uint(w, TERN_CK_NAME);
		tern_cbor_put_cstr(w, v->name ? v->name : "fw");
		tern_cbor_put_uint(w, TERN_CK_KIND);
		tern_cbor_put_uint(w, TERN_KIND_FIRMWARE);
		tern_cbor_put_uint(w, TERN_CK_SLOT_GROUP);
		tern_cbor_put_cstr(w, v->slot ? v->slot : "system");
		tern_cbor_put_uint(w, TERN_CK_SIZE);
		tern_cbor_put_uint(w, 5000);
		tern_cbor_put_uint(w, TERN_CK_INDEX_DIGEST);
		tern_cbor_put_bytes(w, digest, v->digest_len ? v->digest_len : TERN_SHA256_LEN);
		if (v->unknown_in_nested) {
			tern_cbor_put_uint(w, 42);
			tern_cbor_put_array(w, 2);
			tern_cbor_put_cstr(w, "delta");
			tern_cbor_put_bytes(w, digest, 4);
			tern_cbor_put_cstr(w, "x-vendor");
			tern_cbor_put_int(w, -5);
		}
		break;
	case TERN_MK_NOTES:
		tern_cbor_put_text(w, v->notes, v->notes_len);
		break;
	case TERN_MK_CREATED:
		tern_cbor_put_uint(w, 1);
		break;
	case TERN_MK_EARLY_LIFE:
		tern_cbor_put_map(w, v->unknown_in_nested ? 4 : 3);
		tern_cbor_put_uint(w, TERN_EK_TRIAL_ATTEMPTS);
		tern_cbor_put_uint(w, 5);
		tern_cbor_put_uint(w, TERN_EK_HEALTH_TIMEOUT);
		tern_cbor_put_uint(w, 120);
		tern_cbor_put_uint(w, TERN_EK_SETTLE);
		tern_cbor_put_uint(w, 30);
		if (v->unknown_in_nested) {
			tern_cbor_put_uint(w, 9);
			tern_cbor_put_bool(w, true);
		}
		break;
	default:
		fail();
	}
}

/* Writes the variant into @buf; returns its length. */
static size_t write_variant(const struct variant *v, uint8_t *buf, size_t size)
{
	uint8_t body[TERN_MANIFEST_MAX + 1024];
	struct tern_cbor_writer w;
	size_t n_entries = 0;
	tern_cbor_writer_init(&w, body, sizeof(body));
	for (uint64_t key = 0; key < TERN_MK__COUNT; key++) {
		bool present = key == TERN_MK_CRITICAL ? v->crit != NULL || v->crit_text
			       : key == TERN_MK_NOTES  ? v->notes != NULL
						       : !(v->omit & (1u << key));
		if (!present)
			continue;
		for (int times = v->dup & (1u << key) ? 2 : 1; times > 0; times--) {
			put_entry(&w, key, v);
			n_entries++;
		}
	}
	if (v->unknown_int) {
		tern_cbor_put_uint(&w, 99);
		tern_cbor_put_array(&w, 2);
		tern_cbor_put_uint(&w, 1);
		tern_cbor_put_map(&w, 1);
		tern_cbor_put_uint(&w, 2);
		tern_cbor_put_cstr(&w, "x");
		n_entries++;
	}
	if (v->unknown_text) {
		tern_cbor_put_cstr(&w, "future");
		tern_cbor_put_map(&w, 1);
		tern_cbor_put_uint(&w, 1);
		tern_cbor_put_uint(&w, 2);
		n_entries++;
	}
	size_t body_len = tern_cbor_writer_len(&w);
	assert_true(body_len > 0);
	struct tern_cbor_writer out;
	tern_cbor_writer_init(&out, buf, size);
	tern_cbor_put_map(&out, n_entries);
	size_t head = tern_cbor_writer_len(&out);
	assert_true(head > 0 && head + body_len + 1 <= size);
	memcpy(buf + head, body, body_len);
	size_t len = head + body_len;
	if (v->trailing)
		buf[len++] = 0x00;
	return len;
}

static int decode_variant(const struct variant *v, struct tern_manifest *m)
{
	static uint8_t buf[TERN_MANIFEST_MAX + 2048];
	size_t len = write_variant(v, buf, sizeof(buf));
	return decode_exact(m, buf, len);
}

static void test_variant_baseline(void **state)
{
	(void)state;
	struct variant v = {0};
	struct tern_manifest m, want;
	assert_int_equal(decode_variant(&v, &m), 0);
	simple_manifest(&want, TERN_KIND_FIRMWARE);
	memset(want.components[0].index_digest, 0, TERN_SHA256_LEN);
	memcpy(want.components[0].index_digest, "\x01\x02\x03", 3);
	want.security_counter = 0;
	assert_manifest_equal(&m, &want);
	/* No early-life map: the defaults. */
	v.omit = 1u << TERN_MK_EARLY_LIFE;
	assert_int_equal(decode_variant(&v, &m), 0);
	assert_int_equal(m.early_life.trial_attempts, 3);
	assert_int_equal(m.early_life.health_timeout_s, 60);
	assert_int_equal(m.early_life.settle_s, 10);
}

static void test_unknown_keys_skipped(void **state)
{
	(void)state;
	struct tern_manifest m;
	struct variant v = {.unknown_int = true};
	assert_int_equal(decode_variant(&v, &m), 0);
	v = (struct variant){.unknown_text = true};
	assert_int_equal(decode_variant(&v, &m), 0);
	v = (struct variant){.unknown_in_nested = true, .unknown_int = true, .unknown_text = true};
	assert_int_equal(decode_variant(&v, &m), 0);
	assert_string_equal(m.components[0].name, "fw");
	assert_true(m.components[0].size == 5000);
	assert_int_equal(m.early_life.settle_s, 30);
}

static void test_critical(void **state)
{
	(void)state;
	struct tern_manifest m;
	static const uint64_t unknown[] = {99}, known[] = {TERN_MK_FORMAT, TERN_MK_COMPONENTS},
			      all_known[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
			      mixed[] = {TERN_MK_FORMAT, 12};
	struct variant v = {.crit = unknown, .n_crit = 1, .unknown_int = true};
	assert_int_equal(decode_variant(&v, &m), TERN_E_CRITICAL);
	/* Even when key 99 is absent from the map. */
	v = (struct variant){.crit = unknown, .n_crit = 1};
	assert_int_equal(decode_variant(&v, &m), TERN_E_CRITICAL);
	v = (struct variant){.crit = mixed, .n_crit = 2};
	assert_int_equal(decode_variant(&v, &m), TERN_E_CRITICAL);
	v = (struct variant){.crit = known, .n_crit = 0, .crit_text = true};
	assert_int_equal(decode_variant(&v, &m), TERN_E_CRITICAL);
	v = (struct variant){.crit = known, .n_crit = 2};
	assert_int_equal(decode_variant(&v, &m), 0);
	v = (struct variant){.crit = all_known, .n_crit = 12};
	assert_int_equal(decode_variant(&v, &m), 0);
	v = (struct variant){.crit = known, .n_crit = 0}; /* empty list */
	assert_int_equal(decode_variant(&v, &m), 0);
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	struct tern_manifest m;
	static const uint64_t known[] = {1};
	for (uint64_t key = 0; key < TERN_MK__COUNT; key++) {
		struct variant v = {.dup = 1u << key};
		if (key == TERN_MK_CRITICAL) {
			v.crit = known;
			v.n_crit = 1;
		}
		if (key == TERN_MK_NOTES) {
			v.notes = "n";
			v.notes_len = 1;
		}
		print_message("duplicate key %u\n", (unsigned)key);
		assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
	}
}

static void test_missing_keys(void **state)
{
	(void)state;
	struct tern_manifest m;
	static const uint64_t required[] = {
	    TERN_MK_FORMAT,	TERN_MK_RELEASE_ID,	  TERN_MK_VERSION,
	    TERN_MK_SEQUENCE,	TERN_MK_SECURITY_COUNTER, TERN_MK_BOARDS,
	    TERN_MK_CHUNK_SIZE, TERN_MK_COMPONENTS,	  TERN_MK_CREATED};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		struct variant v = {.omit = 1u << required[i]};
		print_message("missing key %u\n", (unsigned)required[i]);
		assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
	}
	/* An empty map, and something that is not a map. */
	const uint8_t empty[] = {0xa0}, array[] = {0x80}, text[] = {0x61, 'x'};
	assert_int_equal(decode_exact(&m, empty, sizeof(empty)), TERN_E_MALFORMED);
	assert_int_equal(decode_exact(&m, array, sizeof(array)), TERN_E_MALFORMED);
	assert_int_equal(decode_exact(&m, text, sizeof(text)), TERN_E_MALFORMED);
	assert_int_equal(decode_exact(&m, empty, 0), TERN_E_TRUNCATED);
}

static void test_format_version(void **state)
{
	(void)state;
	struct tern_manifest m;
	struct variant v = {.format = 2};
	assert_int_equal(decode_variant(&v, &m), TERN_E_FORMAT_VERSION);
	v.format = UINT64_MAX;
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	v.format = 1000;
	assert_int_equal(decode_variant(&v, &m), TERN_E_FORMAT_VERSION);
	/* And the encoder refuses another version. */
	uint8_t buf[512];
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.format_version = 2;
	assert_int_equal(tern_manifest_check(&m), TERN_E_FORMAT_VERSION);
	assert_int_equal(tern_manifest_encode(&m, buf, sizeof(buf)), 0);
}

static void test_trailing_bytes(void **state)
{
	(void)state;
	struct tern_manifest m;
	struct variant v = {.trailing = true};
	assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
}

static void test_chunk_size_rules(void **state)
{
	(void)state;
	struct tern_manifest m;
	static const uint64_t bad[] = {
	    1,	      512,	  1000,	     1023, 1025, 3000, 16383, 16385, (1u << 20) + 1024,
	    1u << 21, 1ull << 32, UINT64_MAX};
	static const uint64_t good[] = {1024, 2048, 4096, 16384, 65536, 1u << 20};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct variant v = {.chunk_size = bad[i]};
		int rc = decode_variant(&v, &m);
		print_message("chunk size %llu: %s\n", (unsigned long long)bad[i],
			      tern_errname(rc));
		assert_true(rc == TERN_E_MALFORMED || rc == TERN_E_TOO_LARGE);
	}
	static const uint32_t bad32[] = {0,	   1,	       512,	   1000,
					 1023,	   1025,       3000,	   (1u << 20) + 1024,
					 1u << 21, UINT32_MAX, 0x80000000u};
	for (size_t i = 0; i < sizeof(bad32) / sizeof(bad32[0]); i++) {
		uint8_t buf[512];
		simple_manifest(&m, TERN_KIND_FIRMWARE);
		m.chunk_size = bad32[i];
		assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED);
		assert_int_equal(tern_manifest_encode(&m, buf, sizeof(buf)), 0);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct variant v = {.chunk_size = good[i]};
		assert_int_equal(decode_variant(&v, &m), 0);
		assert_int_equal(m.chunk_size, good[i]);
	}
}

static void test_long_strings(void **state)
{
	(void)state;
	struct tern_manifest m;
	char id[TERN_RELEASE_ID_MAX + 2], name[TERN_NAME_MAX + 2], ver[TERN_VERSION_MAX + 2];
	static char notes[TERN_NOTES_MAX + 1];
	fill_str(id, TERN_RELEASE_ID_MAX + 1, 'i');
	fill_str(name, TERN_NAME_MAX + 1, 'n');
	fill_str(ver, TERN_VERSION_MAX + 1, 'v');
	memset(notes, 'x', sizeof(notes));
	struct variant v = {.release_id = id};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	v = (struct variant){.version = ver};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	v = (struct variant){.board = name};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	v = (struct variant){.name = name};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	v = (struct variant){.slot = name};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	v = (struct variant){.notes = notes, .notes_len = TERN_NOTES_MAX + 1};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	/* Exactly at the bounds: fine. */
	id[TERN_RELEASE_ID_MAX] = '\0';
	name[TERN_NAME_MAX] = '\0';
	ver[TERN_VERSION_MAX] = '\0';
	v = (struct variant){.release_id = id,
			     .version = ver,
			     .board = name,
			     .name = name,
			     .slot = name,
			     .notes = notes,
			     .notes_len = TERN_NOTES_MAX};
	assert_int_equal(decode_variant(&v, &m), 0);
	assert_int_equal(strlen(m.release_id), TERN_RELEASE_ID_MAX);
	assert_int_equal(strlen(m.boards[0]), TERN_NAME_MAX);
	assert_int_equal(m.notes_len, TERN_NOTES_MAX);
}

static void test_bad_fields(void **state)
{
	(void)state;
	struct tern_manifest m;
	struct variant v = {.name = "has space"};
	assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
	v = (struct variant){.board = "a/b"};
	assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
	v = (struct variant){.release_id = ""};
	assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
	v = (struct variant){.notes = "a\0b", .notes_len = 3};
	assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);

	/* Through the encoder's checks. */
	uint8_t buf[512];
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.components[0].size = 0;
	assert_int_equal(tern_manifest_encode(&m, buf, sizeof(buf)), 0);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.components[0].kind = (enum tern_component_kind)2;
	assert_int_equal(tern_manifest_check(&m), TERN_E_CRITICAL);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.n_boards = 0;
	assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.n_components = 0;
	assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.components[1] = m.components[0];
	m.n_components = 2;
	assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED); /* same name twice */
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.version[0] = '\0';
	assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.notes = NULL;
	m.notes_len = 3;
	assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED);
}

/*
 * Version and notes are CBOR text: well-formed UTF-8 (RFC 3629), which strict decoders
 * such as Python's cbor2 insist on. Multi-byte text is fine; the rest is refused by the
 * encoder and the decoder alike.
 */
static void test_utf8(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "caf\xc3\xa9",	/* U+00E9 */
	    "\xe2\x82\xac 5",	/* U+20AC */
	    "\xf0\x9f\x98\x80", /* U+1F600 */
	    "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last one */
	    "\xed\x9f\xbf",	/* U+D7FF, just below the surrogates */
	    "\xee\x80\x80",	/* U+E000, just above */
	    "\xc2\x80\xdf\xbf", /* U+0080, U+07FF */
	};
	static const char *const bad[] = {
	    "\x80",		/* a continuation byte alone */
	    "a\xc3",		/* cut short */
	    "\xe2\x82",		/* cut short */
	    "\xc0\xaf",		/* overlong '/' */
	    "\xc1\xbf",		/* overlong */
	    "\xe0\x80\xaf",	/* overlong */
	    "\xf0\x80\x80\xaf", /* overlong */
	    "\xed\xa0\x80",	/* U+D800, a surrogate */
	    "\xed\xbf\xbf",	/* U+DFFF */
	    "\xf4\x90\x80\x80", /* U+110000 */
	    "\xf5\x80\x80\x80", /* no such lead byte */
	    "\xff",		/* no such byte */
	    "\xc3\x28",		/* bad continuation */
	};
	struct tern_manifest m;
	uint8_t buf[512];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		simple_manifest(&m, TERN_KIND_FIRMWARE);
		m.notes = good[i];
		m.notes_len = strlen(good[i]);
		set_str(m.version, sizeof(m.version), good[i]);
		round_trip(&m);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("bad UTF-8 #%zu\n", i);
		simple_manifest(&m, TERN_KIND_FIRMWARE);
		m.notes = bad[i];
		m.notes_len = strlen(bad[i]);
		assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED);
		assert_int_equal(tern_manifest_encode(&m, buf, sizeof(buf)), 0);
		struct variant v = {.notes = bad[i], .notes_len = strlen(bad[i])};
		assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);

		simple_manifest(&m, TERN_KIND_FIRMWARE);
		set_str(m.version, sizeof(m.version), bad[i]);
		assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED);
		v = (struct variant){.version = bad[i]};
		assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
	}
}

/* Counts at and past their bounds, and field lengths the decoder must check. */
static void test_counts_and_lengths(void **state)
{
	(void)state;
	struct tern_manifest m;
	struct variant v = {.n_boards = TERN_MAX_BOARDS, .n_components = TERN_MAX_COMPONENTS};
	assert_int_equal(decode_variant(&v, &m), 0);
	assert_int_equal(m.n_boards, TERN_MAX_BOARDS);
	assert_int_equal(m.n_components, TERN_MAX_COMPONENTS);
	assert_true(tern_manifest_has_board(&m, "b3"));
	v = (struct variant){.n_boards = TERN_MAX_BOARDS + 1};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	v = (struct variant){.n_components = TERN_MAX_COMPONENTS + 1};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);
	/* The index digest is a SHA-256: 32 bytes exactly. */
	v = (struct variant){.digest_len = TERN_SHA256_LEN - 1};
	assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
	v = (struct variant){.digest_len = TERN_SHA256_LEN + 1};
	assert_int_equal(decode_variant(&v, &m), TERN_E_MALFORMED);
	/* A critical list longer than any manifest map. */
	static const uint64_t one[] = {TERN_MK_FORMAT};
	v = (struct variant){.crit = one, .n_crit = 1, .n_crit_fill = 63};
	assert_int_equal(decode_variant(&v, &m), 0);
	v = (struct variant){.crit = one, .n_crit = 1, .n_crit_fill = 64};
	assert_int_equal(decode_variant(&v, &m), TERN_E_TOO_LARGE);

	/* Fixed-size fields without their NUL: the check does not read past them. */
	uint8_t buf[512];
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	memset(m.release_id, 'r', sizeof(m.release_id));
	assert_int_equal(tern_manifest_check(&m), TERN_E_TOO_LARGE);
	assert_int_equal(tern_manifest_encode(&m, buf, sizeof(buf)), 0);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	memset(m.version, 'v', sizeof(m.version));
	assert_int_equal(tern_manifest_check(&m), TERN_E_TOO_LARGE);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	memset(m.boards[0], 'b', sizeof(m.boards[0]));
	assert_int_equal(tern_manifest_check(&m), TERN_E_TOO_LARGE);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	memset(m.components[0].slot_group, 's', sizeof(m.components[0].slot_group));
	assert_int_equal(tern_manifest_check(&m), TERN_E_TOO_LARGE);
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	m.release_id[0] = '\0';
	assert_int_equal(tern_manifest_check(&m), TERN_E_MALFORMED);
}

/* Hand-made wrong types and shapes in otherwise valid manifests. */
static void test_wrong_types(void **state)
{
	(void)state;
	struct tern_manifest m;
	uint8_t buf[512];
	simple_manifest(&m, TERN_KIND_FIRMWARE);
	size_t n = tern_manifest_encode(&m, buf, sizeof(buf));
	assert_true(n > 0);
	/* Find the format entry (01 01) right after the map head and make the value text. */
	assert_int_equal(buf[0], 0xaa);
	assert_int_equal(buf[1], 0x01);
	assert_int_equal(buf[2], 0x01);
	buf[2] = 0x60; /* "" */
	assert_int_equal(decode_exact(&m, buf, n), TERN_E_MALFORMED);
	buf[2] = 0x21; /* -2 */
	assert_int_equal(decode_exact(&m, buf, n), TERN_E_MALFORMED);
	buf[2] = 0xf5; /* true */
	assert_int_equal(decode_exact(&m, buf, n), TERN_E_MALFORMED);
	buf[2] = 0x01;
	/* A map that claims more entries than it has. */
	buf[0] = 0xab;
	assert_true(decode_exact(&m, buf, n) < 0);
	buf[0] = 0xb9; /* 2-byte count */
	assert_true(decode_exact(&m, buf, n) < 0);
	/* A map with more entries than any manifest has. */
	const uint8_t huge[] = {0xb9, 0xff, 0xff, 0x01, 0x01};
	assert_int_equal(decode_exact(&m, huge, sizeof(huge)), TERN_E_TOO_LARGE);
	/* Longer than any manifest may be. */
	uint8_t *big = calloc(1, TERN_MANIFEST_MAX + 1);
	assert_non_null(big);
	assert_int_equal(tern_manifest_decode(&m, big, TERN_MANIFEST_MAX + 1), TERN_E_TOO_LARGE);
	free(big);
}

/* Every prefix of a valid manifest fails; none reads past its end. */
static void test_truncations(void **state)
{
	(void)state;
	struct tern_manifest m;
	uint8_t buf[1024];
	golden_manifest(&m);
	size_t n = tern_manifest_encode(&m, buf, sizeof(buf));
	assert_true(n > 0);
	for (size_t len = 0; len < n; len++)
		assert_true(decode_exact(&m, buf, len) < 0);
	assert_int_equal(decode_exact(&m, buf, n), 0);
}

static void test_has_board(void **state)
{
	(void)state;
	struct tern_manifest m;
	golden_manifest(&m);
	assert_true(tern_manifest_has_board(&m, "sim"));
	assert_true(tern_manifest_has_board(&m, "pi4-b"));
	assert_false(tern_manifest_has_board(&m, "pi4"));
	assert_false(tern_manifest_has_board(&m, ""));
}

static void test_chunk_arithmetic(void **state)
{
	(void)state;
	const uint32_t k = TERN_CHUNK_MIN;
	assert_true(tern_chunk_count(0, k) == 0);
	assert_true(tern_chunk_count(1, k) == 1);
	assert_true(tern_chunk_count(k - 1, k) == 1);
	assert_true(tern_chunk_count(k, k) == 1);
	assert_true(tern_chunk_count(k + 1, k) == 2);
	assert_true(tern_chunk_count(5000, 0) == 0);
	assert_true(tern_chunk_count(TERN_COMPONENT_MAX, k) == (uint64_t)1 << 30);
	assert_true(tern_chunk_count(TERN_COMPONENT_MAX + 1, TERN_CHUNK_MAX) ==
		    ((uint64_t)1 << 20) + 1);
	assert_true(tern_chunk_count(UINT64_MAX, k) == (uint64_t)1 << 54);
	assert_true(tern_chunk_count(UINT64_MAX, 1) == UINT64_MAX);

	assert_int_equal(tern_chunk_len(k + 1, k, 0), k);
	assert_int_equal(tern_chunk_len(k + 1, k, 1), 1);
	assert_int_equal(tern_chunk_len(k + 1, k, 2), 0);
	assert_int_equal(tern_chunk_len(2 * k, k, 1), k);
	assert_int_equal(tern_chunk_len(2 * k, k, 2), 0);
	assert_int_equal(tern_chunk_len(0, k, 0), 0);
	assert_int_equal(tern_chunk_len(100, k, 0), 100);
	assert_int_equal(tern_chunk_len(5000, 0, 0), 0);
	assert_int_equal(tern_chunk_len(UINT64_MAX, TERN_CHUNK_MAX, (UINT64_MAX >> 20)), 1048575);
	/* Indices far past the end, where index * chunk_size wraps around 2^64. */
	assert_int_equal(tern_chunk_len(2 * k, k, (uint64_t)1 << 54), 0);
	assert_int_equal(tern_chunk_len(2 * k, k, ((uint64_t)1 << 54) + 1), 0);
	assert_int_equal(tern_chunk_len(10 * k, TERN_CHUNK_MAX, (uint64_t)1 << 44), 0);
	assert_int_equal(tern_chunk_len(100, k, UINT64_MAX), 0);
	/* The lengths of all chunks add up to the size. */
	uint64_t sum = 0, size = 10 * k + 123;
	for (uint64_t i = 0; i < tern_chunk_count(size, k) + 2; i++)
		sum += tern_chunk_len(size, k, i);
	assert_true(sum == size);

	assert_true(tern_index_size(0, k) == 0);
	assert_true(tern_index_size(1, k) == TERN_SHA256_LEN);
	assert_true(tern_index_size(k + 1, k) == 2 * TERN_SHA256_LEN);
	assert_true(tern_index_size(TERN_COMPONENT_MAX, k) == (uint64_t)TERN_SHA256_LEN << 30);
	assert_true(tern_index_size(5000, 0) == 0);
	/* Too large to count in 64 bits: saturates instead of wrapping to a small size. */
	assert_true(tern_index_size(UINT64_MAX, 1) == UINT64_MAX);
	assert_true(tern_index_size(UINT64_MAX, 16) == UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_kinds),
	    cmocka_unit_test(test_round_trip_max_bounds),
	    cmocka_unit_test(test_golden_bytes),
	    cmocka_unit_test(test_golden_independent),
	    cmocka_unit_test(test_variant_baseline),
	    cmocka_unit_test(test_unknown_keys_skipped),
	    cmocka_unit_test(test_critical),
	    cmocka_unit_test(test_duplicate_keys),
	    cmocka_unit_test(test_missing_keys),
	    cmocka_unit_test(test_format_version),
	    cmocka_unit_test(test_trailing_bytes),
	    cmocka_unit_test(test_chunk_size_rules),
	    cmocka_unit_test(test_long_strings),
	    cmocka_unit_test(test_bad_fields),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_counts_and_lengths),
	    cmocka_unit_test(test_wrong_types),
	    cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_has_board),
	    cmocka_unit_test(test_chunk_arithmetic),
	};
	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
