UNIT_TESTS += test_sha256 test_topic test_msg
CRYPTO_TESTS += test_sha256 test_msg
UNIT_TESTS += test_cbor

# COSE WG conformance: the vectors in tests/vectors/cose-wg/ become a C table at build
# time, so a new vector file is a new test case.
COSE_WG_VECTORS := $(sort $(wildcard tests/vectors/cose-wg/*.json))
UNIT_TESTS += test_cose_wg
CRYPTO_TESTS += test_cose_wg

$(BUILD)/gen/cose_wg_vectors.h: tests/unit/gen_cose_vectors.py $(COSE_WG_VECTORS) tests/unit/module.mk
	@mkdir -p $(dir $@)
	/usr/bin/python3 tests/unit/gen_cose_vectors.py $@ $(COSE_WG_VECTORS)

$(BUILD)/obj/tests/unit/test_cose_wg.o: $(BUILD)/gen/cose_wg_vectors.h
$(BUILD)/obj/tests/unit/test_cose_wg.o: ALL_CFLAGS += -I$(BUILD)/gen
UNIT_TESTS += test_sign
CRYPTO_TESTS += test_sign
UNIT_TESTS += test_manifest
UNIT_TESTS += test_release
UNIT_TESTS += test_err
