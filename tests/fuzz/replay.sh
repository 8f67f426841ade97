#!/bin/sh
# Replays the committed fuzz corpus and seeds through each fuzz target once (libFuzzer
# runs every file given as an argument a single time). The targets are built by
# `make check` (fuzz-bins); this script builds nothing. Run from the source tree.
set -eu
fuzz_build=build/fuzz
status=0
for dir in tests/fuzz/seeds/*/; do
	name=$(basename "$dir")
	bin=$fuzz_build/fuzz_$name
	if [ ! -x "$bin" ]; then
		echo "replay: $bin is missing (make fuzz-bins)"
		exit 1
	fi
	files=$(find "tests/fuzz/seeds/$name" "tests/fuzz/corpus/$name" -type f 2>/dev/null | sort)
	n=$(printf '%s\n' "$files" | grep -c . || true)
	if [ "$n" -eq 0 ]; then
		echo "replay: no inputs for $name"
		exit 1
	fi
	# shellcheck disable=SC2086 # one argument per file; names have no spaces
	if "$bin" -runs=1 $files >"$fuzz_build/replay-$name.log" 2>&1; then
		echo "replay $name: $n inputs ok"
	else
		tail -n 40 "$fuzz_build/replay-$name.log"
		echo "replay $name: FAILED (log: $fuzz_build/replay-$name.log)"
		status=1
	fi
done
exit $status
