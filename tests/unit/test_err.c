/* Error codes: every code has a stable name and a sentence; unknown codes are safe. */
#include "tern/tern_err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void test_every_code_named(void **state)
{
	(void)state;
	for (int rc = 0; rc > TERN_E__LAST; rc--) {
		const char *name = tern_errname(rc), *text = tern_strerror(rc);
		assert_non_null(name);
		assert_non_null(text);
		assert_string_not_equal(name, "unknown");
		assert_string_not_equal(text, "unknown error");
		assert_true(strlen(text) > 5);
		/* Names are unique, lowercase words joined by '-'. */
		for (const char *p = name; *p; p++)
			assert_true((*p >= 'a' && *p <= 'z') || *p == '-');
		for (int other = 0; other > rc; other--)
			assert_string_not_equal(name, tern_errname(other));
	}
	assert_string_equal(tern_errname(TERN_E_BAD_SIGNATURE), "bad-signature");
	assert_string_equal(tern_errname(0), "ok");
}

static void test_unknown_codes(void **state)
{
	(void)state;
	static const int odd[] = {1,	 42,	    TERN_E__LAST, TERN_E__LAST - 1,
				  -1000, INT32_MIN, INT32_MAX};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		assert_string_equal(tern_errname(odd[i]), "unknown");
		assert_string_equal(tern_strerror(odd[i]), "unknown error");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_code_named),
	    cmocka_unit_test(test_unknown_codes),
	};
	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
