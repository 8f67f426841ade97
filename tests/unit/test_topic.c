/* MQTT topic names: builders, bounds, id validation and parsers. */
#include "tern/tern_err.h"
#include "tern/tern_topic.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void test_release_topics(void **state)
{
	(void)state;
	char t[TERN_TOPIC_MAX];
	assert_int_equal(tern_topic_manifest("tern", "sim-1.2.0-12", t, sizeof(t)),
			 strlen("tern/rel/sim-1.2.0-12/manifest"));
	assert_string_equal(t, "tern/rel/sim-1.2.0-12/manifest");
	assert_true(tern_topic_index("acme/fleet", "r1", "firmware", t, sizeof(t)) > 0);
	assert_string_equal(t, "acme/fleet/rel/r1/firmware/index");
	assert_true(tern_topic_chunk("tern", "r1", "firmware", 0, t, sizeof(t)) > 0);
	assert_string_equal(t, "tern/rel/r1/firmware/0/0");
	assert_true(tern_topic_chunk("tern", "r1", "firmware", 63, t, sizeof(t)) > 0);
	assert_string_equal(t, "tern/rel/r1/firmware/0/63");
	assert_true(tern_topic_chunk("tern", "r1", "firmware", 64, t, sizeof(t)) > 0);
	assert_string_equal(t, "tern/rel/r1/firmware/1/64");
	assert_true(tern_topic_chunk("tern", "r1", "config", 1029, t, sizeof(t)) > 0);
	assert_string_equal(t, "tern/rel/r1/config/16/1029");
	assert_true(tern_topic_chunk("tern", "r1", "c", UINT64_MAX, t, sizeof(t)) > 0);
	assert_string_equal(t, "tern/rel/r1/c/288230376151711743/18446744073709551615");
	assert_true(tern_topic_window_filter("tern", "r1", "firmware", 16, t, sizeof(t)) > 0);
	assert_string_equal(t, "tern/rel/r1/firmware/16/+");
	assert_int_equal(tern_topic_index_filter("acme/fleet", "r1", t, sizeof(t)),
			 strlen("acme/fleet/rel/r1/+/index"));
	assert_string_equal(t, "acme/fleet/rel/r1/+/index");
	assert_int_equal(tern_topic_index_filter("tern", "r/1", t, sizeof(t)), 0);
	assert_int_equal(tern_topic_index_filter("tern", "r1", t, 10), 0);
}

static void test_dev_topics(void **state)
{
	(void)state;
	char t[TERN_TOPIC_MAX];
	static const char *want[] = {"tern/dev/d-1/desired", "tern/dev/d-1/state",
				     "tern/dev/d-1/events", "tern/dev/d-1/online"};
	for (int k = 0; k < TERN_DEV__COUNT; k++) {
		assert_int_equal(
		    tern_topic_dev("tern", "d-1", (enum tern_dev_topic)k, t, sizeof(t)),
		    strlen(want[k]));
		assert_string_equal(t, want[k]);
	}
	assert_true(tern_topic_dev_filter("tern", TERN_DEV_STATE, t, sizeof(t)) > 0);
	assert_string_equal(t, "tern/dev/+/state");
	assert_int_equal(tern_topic_dev("tern", "d-1", TERN_DEV__COUNT, t, sizeof(t)), 0);
}

/* Ids that could reach into other topics or ACL patterns are refused. */
static void test_invalid_ids(void **state)
{
	(void)state;
	char t[TERN_TOPIC_MAX];
	static const char *bad[] = {"", "a/b", "+", "#", "a b", "%c", "d\n", "ü"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(t, "junk", 5);
		assert_int_equal(tern_topic_dev("tern", bad[i], TERN_DEV_STATE, t, sizeof(t)), 0);
		assert_string_equal(t, "");
		assert_int_equal(tern_topic_manifest("tern", bad[i], t, sizeof(t)), 0);
		assert_int_equal(tern_topic_index("tern", "r", bad[i], t, sizeof(t)), 0);
	}
	char long_id[TERN_DEVICE_ID_MAX + 2];
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(tern_topic_dev("tern", long_id, TERN_DEV_STATE, t, sizeof(t)), 0);
	long_id[TERN_DEVICE_ID_MAX] = '\0';
	assert_true(tern_topic_dev("tern", long_id, TERN_DEV_STATE, t, sizeof(t)) > 0);
	static const char *bad_prefix[] = {"", "/tern", "tern/", "a//b", "te+rn", "#", NULL};
	for (size_t i = 0; i < sizeof(bad_prefix) / sizeof(bad_prefix[0]); i++)
		assert_int_equal(tern_topic_dev(bad_prefix[i], "d", TERN_DEV_STATE, t, sizeof(t)),
				 0);
	assert_true(tern_topic_prefix_valid("a/b.c/d_e-f"));
}

/* Every buffer size: either the whole topic and its NUL fit, or 0 and an empty string. */
static void test_bounds(void **state)
{
	(void)state;
	const char *want = "tern/rel/r1/firmware/1/64";
	for (size_t size = 0; size <= strlen(want) + 2; size++) {
		char t[64];
		memset(t, 'x', sizeof(t));
		size_t n = tern_topic_chunk("tern", "r1", "firmware", 64, t, size);
		if (size > strlen(want)) {
			assert_int_equal(n, strlen(want));
			assert_string_equal(t, want);
		} else {
			assert_int_equal(n, 0);
			if (size)
				assert_int_equal(t[0], '\0');
		}
		assert_int_equal(t[size], 'x'); /* nothing written past the buffer */
	}
}

static void test_parse_dev(void **state)
{
	(void)state;
	char id[TERN_DEVICE_ID_MAX + 1];
	enum tern_dev_topic kind;
	const char *t = "tern/dev/sim-0042/events";
	assert_int_equal(tern_topic_parse_dev("tern", t, strlen(t), id, sizeof(id), &kind), 0);
	assert_string_equal(id, "sim-0042");
	assert_int_equal(kind, TERN_DEV_EVENTS);
	t = "a/b/dev/x/online";
	assert_int_equal(tern_topic_parse_dev("a/b", t, strlen(t), id, sizeof(id), &kind), 0);
	assert_int_equal(kind, TERN_DEV_ONLINE);
	static const char *bad[] = {
	    "tern/dev/x/statex",  "tern/dev//state",	 "tern/dev/x/state/",
	    "tern/dev/x",	  "tern/devx/x/state",	 "other/dev/x/state",
	    "tern/dev/a+b/state", "tern/rel/x/manifest", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    tern_topic_parse_dev("tern", bad[i], strlen(bad[i]), id, sizeof(id), &kind),
		    TERN_E_NOT_FOUND);
	/* Not NUL-terminated: the length rules. */
	t = "tern/dev/x/stateXYZ";
	assert_int_equal(
	    tern_topic_parse_dev("tern", t, strlen("tern/dev/x/state"), id, sizeof(id), &kind), 0);
	assert_int_equal(kind, TERN_DEV_STATE);
	char small[3];
	t = "tern/dev/abc/state";
	assert_int_equal(tern_topic_parse_dev("tern", t, strlen(t), small, sizeof(small), &kind),
			 TERN_E_TOO_LARGE);
}

static void test_parse_chunk_roundtrip(void **state)
{
	(void)state;
	char t[TERN_TOPIC_MAX];
	static const uint64_t chunks[] = {0, 1, 63, 64, 65, 1020, 1021, 4095, 123456789};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		uint64_t got = UINT64_MAX;
		size_t n = tern_topic_chunk("tern", "rel-1", "fw", chunks[i], t, sizeof(t));
		assert_true(n > 0);
		assert_int_equal(tern_topic_parse_chunk("tern", "rel-1", "fw", t, n, &got), 0);
		assert_int_equal(got, chunks[i]);
	}
	uint64_t c;
	static const char *bad[] = {"tern/rel/rel-1/fw/0/64",
				    "tern/rel/rel-1/fw/1/63",
				    "tern/rel/rel-1/fw/00/0",
				    "tern/rel/rel-1/fw/0/01",
				    "tern/rel/rel-2/fw/0/0",
				    "tern/rel/rel-1/cfg/0/0",
				    "tern/rel/rel-1/fw/0/+",
				    "tern/rel/rel-1/fw/0/0/1",
				    "tern/rel/rel-1/fw/0/",
				    "tern/rel/rel-1/fw/index",
				    "tern/rel/rel-1/fw/0/99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    tern_topic_parse_chunk("tern", "rel-1", "fw", bad[i], strlen(bad[i]), &c),
		    TERN_E_NOT_FOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_release_topics), cmocka_unit_test(test_dev_topics),
	    cmocka_unit_test(test_invalid_ids),	   cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_parse_dev),	   cmocka_unit_test(test_parse_chunk_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
