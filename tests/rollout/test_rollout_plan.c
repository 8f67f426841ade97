/* The pure logic of rollouts: durations, ratios, wave sizes, member order, gates. */
#include "rollout_plan.h"

#include "tern/tern_err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

static void test_durations(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint64_t secs;
	} ok[] = {{"0", 0}, {"45", 45}, {"45s", 45}, {"10m", 600}, {"2h", 7200}, {"1d", 86400}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 99;
		assert_int_equal(rollout_parse_duration(ok[i].in, &v), 0);
		assert_int_equal(v, ok[i].secs);
	}
	static const char *const bad[] = {
	    "", "s", "-1", "10x", "1.5h", "10mm", "m10", "400d", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v;
		assert_int_equal(rollout_parse_duration(bad[i], &v), TERN_E_USAGE);
	}
	char buf[32];
	assert_string_equal(rollout_format_duration(0, buf, sizeof(buf)), "0s");
	assert_string_equal(rollout_format_duration(600, buf, sizeof(buf)), "10m");
	assert_string_equal(rollout_format_duration(90, buf, sizeof(buf)), "1m30s");
	assert_string_equal(rollout_format_duration(7200, buf, sizeof(buf)), "2h");
	assert_string_equal(rollout_format_duration(9000, buf, sizeof(buf)), "2h30m");
}

static void test_ratios(void **state)
{
	(void)state;
	uint32_t ppm;
	assert_int_equal(rollout_parse_ratio("5%", &ppm), 0);
	assert_int_equal(ppm, 50000);
	assert_int_equal(rollout_parse_ratio("2.5%", &ppm), 0);
	assert_int_equal(ppm, 25000);
	assert_int_equal(rollout_parse_ratio("100%", &ppm), 0);
	assert_int_equal(ppm, ROLLOUT_PPM);
	assert_int_equal(rollout_parse_ratio("0%", &ppm), 0);
	assert_int_equal(ppm, 0);
	assert_int_equal(rollout_parse_ratio("0.0001%", &ppm), 0);
	assert_int_equal(ppm, 1);
	static const char *const bad[] = {"5",	      "%",   "101%", "5.%", ".5%",
					  "1.00001%", "5%%", "-5%",  "a%"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(rollout_parse_ratio(bad[i], &ppm), TERN_E_USAGE);
	char buf[16];
	assert_string_equal(rollout_format_ratio(50000, buf, sizeof(buf)), "5%");
	assert_string_equal(rollout_format_ratio(25000, buf, sizeof(buf)), "2.5%");
	assert_string_equal(rollout_format_ratio(ROLLOUT_PPM, buf, sizeof(buf)), "100%");
}

static void sizes_of(const char *spec, uint64_t n, const char *want)
{
	struct rollout_wave_spec w[ROLLOUT_MAX_WAVES];
	uint64_t sizes[ROLLOUT_MAX_WAVES];
	size_t n_spec, n_waves;
	char got[256] = "";
	assert_int_equal(rollout_parse_waves(spec, w, ROLLOUT_MAX_WAVES, &n_spec), 0);
	assert_int_equal(rollout_wave_sizes(w, n_spec, n, sizes, ROLLOUT_MAX_WAVES, &n_waves), 0);
	size_t pos = 0;
	for (size_t i = 0; i < n_waves; i++)
		pos += (size_t)snprintf(got + pos, sizeof(got) - pos, "%s%llu", i ? "," : "",
					(unsigned long long)sizes[i]);
	assert_string_equal(got, want);
}

static void test_wave_sizes(void **state)
{
	(void)state;
	sizes_of("1,10%,50%,100%", 1000, "1,99,400,500");
	sizes_of("1,10%,50%,100%", 50, "1,4,20,25");
	sizes_of("10,50%,100%", 50, "10,15,25");
	/* Percentages round up, so a small set still gets a canary; empty waves go. */
	sizes_of("10%,100%", 5, "1,4");
	sizes_of("1,10%,50%,100%", 3, "1,1,1");
	sizes_of("1,10%,50%,100%", 1, "1");
	/* A count above the set is cut to it; the rollout may stop short of 100%. */
	sizes_of("5,500", 20, "5,15");
	sizes_of("1,20%", 100, "1,19");
	struct rollout_wave_spec w[ROLLOUT_MAX_WAVES];
	size_t n;
	static const char *const bad[] = {"",	     ",", "1,,2", "0",	  "0%",	 "10,5",
					  "50%,10%", "x", "10%x", "1,-2", "101%"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(rollout_parse_waves(bad[i], w, ROLLOUT_MAX_WAVES, &n),
				 TERN_E_USAGE);
	assert_int_equal(rollout_parse_waves("1,2,3", w, 2, &n), TERN_E_USAGE);
	uint64_t sizes[4];
	assert_int_equal(rollout_parse_waves("10%", w, ROLLOUT_MAX_WAVES, &n), 0);
	assert_int_equal(rollout_wave_sizes(w, n, 0, sizes, 4, &n), TERN_E_INVAL);
}

static void test_member_order(void **state)
{
	(void)state;
	const char *a[] = {"d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"};
	const char *b[] = {"d8", "d7", "d6", "d5", "d4", "d3", "d2", "d1"};
	const char *other[] = {"d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"};
	assert_int_equal(rollout_order("spring", a, 8), 0);
	assert_int_equal(rollout_order("spring", b, 8), 0);
	/* The same set in any order gives the same order: stable across reruns. */
	for (size_t i = 0; i < 8; i++)
		assert_string_equal(a[i], b[i]);
	/* Another rollout name picks another order (not the same canary every time). */
	assert_int_equal(rollout_order("autumn", other, 8), 0);
	bool same = true;
	for (size_t i = 0; i < 8; i++)
		same = same && !strcmp(a[i], other[i]);
	assert_false(same);
	/* Adding a device does not reorder the others (each key depends on one id). */
	const char *c[] = {"d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"};
	assert_int_equal(rollout_order("spring", c, 9), 0);
	size_t j = 0;
	for (size_t i = 0; i < 9; i++)
		if (strcmp(c[i], "d9"))
			assert_string_equal(c[i], a[j++]);
	uint8_t k1[32], k2[32];
	rollout_member_key("ab", "c", k1);
	rollout_member_key("a", "bc", k2);
	assert_memory_not_equal(k1, k2, 32); /* the separator keeps fields apart */
	assert_int_equal(rollout_order("x", NULL, 0), 0);
}

static enum rollout_gate gate(uint64_t size, uint64_t ok, uint64_t failed, uint64_t pending,
			      const char *max, const char *min, bool bake_over)
{
	uint32_t maxp = 0, minp = 0;
	assert_int_equal(rollout_parse_ratio(max, &maxp), 0);
	if (min)
		assert_int_equal(rollout_parse_ratio(min, &minp), 0);
	struct rollout_counts c = {size, ok, failed, pending};
	return rollout_gate(&c, maxp, minp, bake_over);
}

static void test_gates(void **state)
{
	(void)state;
	/* 1 of 10 failed is 10%: above 5% pauses at once, even while others are pending. */
	assert_int_equal(gate(10, 0, 1, 9, "5%", NULL, false), ROLLOUT_GATE_TOO_MANY_FAILED);
	/* Exactly at the maximum is allowed: 1 of 20 is 5%. */
	assert_int_equal(gate(20, 19, 1, 0, "5%", NULL, true), ROLLOUT_GATE_PASS);
	assert_int_equal(gate(20, 18, 2, 0, "5%", NULL, true), ROLLOUT_GATE_TOO_MANY_FAILED);
	/* Pending members or an unfinished bake wait. */
	assert_int_equal(gate(20, 19, 0, 1, "5%", NULL, true), ROLLOUT_GATE_WAIT);
	assert_int_equal(gate(20, 20, 0, 0, "5%", NULL, false), ROLLOUT_GATE_WAIT);
	/* The success minimum is judged after the bake. */
	assert_int_equal(gate(20, 19, 1, 0, "5%", "95%", true), ROLLOUT_GATE_PASS);
	assert_int_equal(gate(20, 18, 1, 1, "10%", "95%", true), ROLLOUT_GATE_WAIT);
	assert_int_equal(gate(20, 18, 2, 0, "10%", "95%", true), ROLLOUT_GATE_TOO_FEW_SUCCEEDED);
	assert_int_equal(gate(20, 18, 2, 0, "10%", "95%", false), ROLLOUT_GATE_WAIT);
	/* 0% tolerates no failure; 100% tolerates all. */
	assert_int_equal(gate(1000, 999, 1, 0, "0%", NULL, true), ROLLOUT_GATE_TOO_MANY_FAILED);
	assert_int_equal(gate(3, 0, 3, 0, "100%", NULL, true), ROLLOUT_GATE_PASS);
	/* Fractions are exact: 2.5% of 40 is 1 device. */
	assert_int_equal(gate(40, 39, 1, 0, "2.5%", NULL, true), ROLLOUT_GATE_PASS);
	assert_int_equal(gate(40, 38, 2, 0, "2.5%", NULL, true), ROLLOUT_GATE_TOO_MANY_FAILED);
	/* Large fleets do not overflow. */
	assert_int_equal(gate(UINT32_MAX, UINT32_MAX, 0, 0, "5%", "100%", true), ROLLOUT_GATE_PASS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),  cmocka_unit_test(test_ratios),
	    cmocka_unit_test(test_wave_sizes), cmocka_unit_test(test_member_order),
	    cmocka_unit_test(test_gates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
