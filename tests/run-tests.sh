#!/usr/bin/env bash
# Runs test programs and scripts, shows their output (stdout and stderr), and ends with
# one line "N passed, N failed" counting test cases:
#  - cmocka programs: their "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" lines;
#  - scripts that print their own "N passed, N failed" line: that line;
#  - anything else: one case, passed when it exits 0.
# A program that exits non-zero counts at least one failure whatever it printed.
# Usage: run-tests.sh LOGDIR CMD... (each CMD one word; env may be set by the caller)
set -u
logdir=$1
shift
mkdir -p "$logdir"
total_pass=0
total_fail=0
failed_names=()
for cmd in "$@"; do
	name=${cmd#./}
	log="$logdir/$(echo "$name" | tr '/' '_').log"
	echo "=== $name"
	"$cmd" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=0 f=0 counted=0
	if grep -qE '^\[  PASSED  \] [0-9]+ test' "$log"; then
		p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
		f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
		counted=1
	elif grep -qE '^[0-9]+ passed, [0-9]+ failed' "$log"; then
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
		p=$(echo "$line" | awk '{print $1}')
		f=$(echo "$line" | awk '{print $3}')
		counted=1
	fi
	if [ $counted -eq 0 ]; then
		if [ $rc -eq 0 ]; then p=1; else f=1; fi
	elif [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if [ "$f" -ne 0 ]; then
		failed_names+=("$name (exit $rc, log $log)")
		echo "--- $name: FAILED ($p passed, $f failed)"
	else
		echo "--- $name: ok ($p passed)"
	fi
done
if [ ${#failed_names[@]} -gt 0 ]; then
	echo "Failed:"
	printf '  %s\n' "${failed_names[@]}"
fi
echo "$total_pass passed, $total_fail failed"
[ $total_fail -eq 0 ]
