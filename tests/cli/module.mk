SCRIPT_TESTS += tests/cli/test_cli.sh
