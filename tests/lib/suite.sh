# Counters and checks shared by the script suites (source this file from bash).
#
#   ok NAME / bad NAME [DETAIL]   count a passed / failed check and print its line
#   check NAME COMMAND...         ok when COMMAND succeeds
#   same NAME WANT GOT            ok when the two strings are equal
#   expect_ok NAME COMMAND...     ok when COMMAND exits 0 (its output in out.txt/err.txt)
#   expect_fail NAME RE COMMAND...
#                                 ok when COMMAND fails with exactly one line on stderr
#                                 matching the extended regexp RE (the "one clear line" rule)
#   wait_until SECONDS COMMAND... polls COMMAND every 0.1 s; non-zero if it never succeeds
#   finish                        prints "N passed, N failed" and exits (non-zero on failures)
#
# tests/run-tests.sh reads the last line; keep "N passed, N failed" its format.

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "     $2"; }
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else bad "$name" "condition failed: $*"; fi
}
same() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "want '$2', got '$3'"; fi; }
expect_ok() {
	local name=$1
	shift
	if "$@" >out.txt 2>err.txt; then ok "$name"; else bad "$name" "exit $?: $(cat err.txt out.txt | head -5)"; fi
}
expect_fail() {
	local name=$1 re=$2
	shift 2
	"$@" >out.txt 2>err.txt
	local rc=$? lines
	lines=$(wc -l <err.txt)
	if [ $rc -eq 0 ]; then
		bad "$name" "exit 0, expected a refusal"
	elif [ "$lines" -ne 1 ]; then
		bad "$name" "expected one line on stderr, got $lines: $(cat err.txt)"
	elif ! grep -qE -e "$re" err.txt; then
		bad "$name" "stderr '$(cat err.txt)' does not match '$re'"
	else
		ok "$name"
	fi
}
wait_until() {
	local limit=$1 i
	shift
	for i in $(seq 1 $((limit * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
finish() {
	echo "$pass passed, $fail failed"
	[ $fail -eq 0 ]
	exit
}
