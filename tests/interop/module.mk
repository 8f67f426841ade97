# Interoperability: tern's C against outside implementations of the same formats.
#   test_cose_empty_protected  COSE WG example sign-pass-01 (empty protected map), in C
#   test_interop.sh            release files both ways with tests/interop/tern_release.py,
#                              a second implementation written from docs/FORMAT.md
UNIT_TESTS += test_cose_empty_protected
SCRIPT_TESTS += tests/interop/test_interop.sh
