# Tests. Each suite's module.mk adds to:
#   UNIT_TESTS   cmocka programs built from tests/unit/<name>.c (run plain and under ASan+UBSan)
#   CRYPTO_TESTS unit tests run a third time with SHA-256 on mbedtls (CRYPTO=mbedtls)
#   SCRIPT_TESTS scripts run after the build (they find binaries in $(BUILD))
# `make check` runs them all through tests/run-tests.sh, which prints "N passed, N failed".
UNIT_TESTS :=
CRYPTO_TESTS :=
SCRIPT_TESTS :=
CHECK_BUILDS := all
include $(wildcard tests/*/module.mk)

TEST_LIBS := $(PROTO_SIGN_LIB) $(PROTO_LIB) $(PROTO_LIBS) $(shell pkg-config --libs cmocka 2>/dev/null) -lpthread
UNIT_BINS := $(UNIT_TESTS:%=$(BUILD)/tests/%)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(PROTO_SIGN_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $< -o $@ $(TEST_LIBS)

check-unit-bins: $(UNIT_BINS)
check-crypto-bins: $(CRYPTO_TESTS:%=$(BUILD)/tests/%)
.PHONY: check-unit-bins check-crypto-bins check-mbedtls
.SECONDARY:

# The sanitizer pass: the same unit tests, built with clang under build/asan; the
# programs are built there too, so clang's warnings hold for all the code.
check-asan: deps
	$(MAKE) --no-print-directory BUILD=build/asan CC=clang SANITIZE=1 all check-unit-bins

# The other hashing backend: the crypto tests built with SHA-256 on mbedtls.
check-mbedtls: deps
	$(MAKE) --no-print-directory BUILD=build/mbedtls CRYPTO=mbedtls check-crypto-bins

check: deps $(CHECK_BUILDS) check-unit-bins check-asan check-mbedtls
	@ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	BUILD=$(BUILD) tests/run-tests.sh $(BUILD)/test-logs $(UNIT_BINS) \
		$(UNIT_TESTS:%=build/asan/tests/%) $(CRYPTO_TESTS:%=build/mbedtls/tests/%) $(SCRIPT_TESTS)
