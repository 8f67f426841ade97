# Interoperability: tern's C against outside implementations of the same formats.
#   test_cose_empty_protected  COSE WG example sign-pass-01 (empty protected map), in C
UNIT_TESTS += test_cose_empty_protected
