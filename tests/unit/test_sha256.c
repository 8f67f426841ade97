/* SHA-256 through tern's hashing interface, against FIPS 180-2 vectors. */
#include "tern/tern_sha256.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void hex(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

static void test_abc(void **state)
{
	(void)state;
	uint8_t d[32];
	char h[65];
	tern_sha256("abc", 3, d);
	hex(d, 32, h);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_empty(void **state)
{
	(void)state;
	uint8_t d[32];
	char h[65];
	tern_sha256("", 0, d);
	hex(d, 32, h);
	assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* One million 'a', fed in uneven pieces through the incremental interface. */
static void test_million_a_incremental(void **state)
{
	(void)state;
	static uint8_t buf[1000];
	struct tern_sha256 h;
	uint8_t d[32];
	char out[65];
	memset(buf, 'a', sizeof(buf));
	tern_sha256_init(&h);
	size_t left = 1000000, step = 1;
	while (left) {
		size_t n = step < left ? step : left;
		if (n > sizeof(buf))
			n = sizeof(buf);
		tern_sha256_update(&h, buf, n);
		left -= n;
		step = step * 7 % 997 + 1;
	}
	tern_sha256_final(&h, d);
	hex(d, 32, out);
	assert_string_equal(out,
			    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_backend_named(void **state)
{
	(void)state;
	const char *b = tern_sha256_backend();
	assert_true(strcmp(b, "libcrypto") == 0 || strcmp(b, "mbedtls") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_abc),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_million_a_incremental),
	    cmocka_unit_test(test_backend_named),
	};
	return cmocka_run_group_tests_name(tern_sha256_backend(), tests, NULL, NULL);
}
