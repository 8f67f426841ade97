UNIT_TESTS += test_sha256 test_topic test_msg
CRYPTO_TESTS += test_sha256
