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

/*
 * The numbers are frozen: a device's boot record stores the last reason as a number, so
 * a code keeps its number and name for good. New codes go at the end (before
 * TERN_E__LAST); this table only ever grows.
 */
static void test_numbers_frozen(void **state)
{
	static const struct {
		int rc;
		const char *name;
	} frozen[] = {
	    {-1, "no-memory"},
	    {-2, "invalid-argument"},
	    {-3, "io"},
	    {-4, "truncated"},
	    {-5, "not-a-release"},
	    {-6, "malformed"},
	    {-7, "too-large"},
	    {-8, "buffer-too-small"},
	    {-9, "unsupported-algorithm"},
	    {-10, "bad-signature"},
	    {-11, "unknown-key"},
	    {-12, "digest-mismatch"},
	    {-13, "unknown-critical"},
	    {-14, "trailing-bytes"},
	    {-15, "format-version"},
	    {-16, "bad-key"},
	    {-17, "public-key"},
	    {-18, "key-permissions"},
	    {-19, "crypto"},
	    {-20, "not-cbor"},
	    {-21, "wrong-board"},
	    {-22, "not-newer"},
	    {-23, "below-floor"},
	    {-24, "slot-too-small"},
	    {-25, "busy"},
	    {-26, "bad-state"},
	    {-27, "not-found"},
	    {-28, "exists"},
	    {-29, "usage"},
	    {-30, "flash"},
	    {-31, "power-cut"},
	    {-32, "bad-offset"},
	    {-33, "chunk-geometry"},
	    {-34, "health-check-failed"},
	    {-35, "trial-boot-failed"},
	    {-36, "canceled"},
	    {-37, "no-boot-control"},
	    {-38, "no-bootable-image"},
	    {-39, "wrong-device"},
	    {-40, "old-generation"},
	    {-41, "broker"},
	    {-42, "database"},
	    {-43, "bootloader-env"},
	    {-44, "boot-failed"},
	    {-45, "slot-mounted"},
	    {-46, "running-slot-unknown"},
	    {-47, "crc"},
	    {-48, "usb"},
	    {-49, "no-access"},
	    {-50, "ambiguous"},
	    {-51, "timeout"},
	    {-52, "device-error"},
	    {-53, "no-device"},
	    {-54, "private-key"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(frozen) / sizeof(frozen[0]); i++)
		assert_string_equal(tern_errname(frozen[i].rc), frozen[i].name);
	assert_true(TERN_E__LAST <= -(int)(sizeof(frozen) / sizeof(frozen[0])) - 1);
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
	    cmocka_unit_test(test_numbers_frozen),
	    cmocka_unit_test(test_unknown_codes),
	};
	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
