UNIT_TESTS += test_sha256
CRYPTO_TESTS += test_sha256
UNIT_TESTS += test_cbor
