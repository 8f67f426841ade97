#!/usr/bin/env bash
# The device core keeps its promises: no heap, no POSIX or stdio calls (only the string
# functions a freestanding build provides and libternproto), and no file-scope mutable
# state (empty .data and .bss; const tables live in read-only sections).
set -u
BUILD=${BUILD:-build}
objs=$(ls "$BUILD"/obj/device/*.o)
pass=0
fail=0
allowed='^(memcpy|memset|memcmp|memmove|strcmp|strlen|tern_[a-z0-9_]+|__stack_chk_fail)$'
bad_syms=$(nm -u $objs | awk 'NF == 2 { print $2 }' | sort -u | grep -Ev "$allowed")
if [ -z "$bad_syms" ]; then
	pass=$((pass + 1))
	echo "ok   - device core calls only string functions and libternproto"
else
	fail=$((fail + 1))
	echo "FAIL - device core calls:" $bad_syms
fi
mutable=0
for o in $objs; do
	n=0
	for hex in $(objdump -h "$o" | awk '$2 == ".data" || $2 == ".bss" { print $3 }'); do
		n=$((n + 16#$hex))
	done
	if [ "$n" -ne 0 ]; then
		echo "  $o has $n bytes of .data/.bss"
		mutable=1
	fi
done
if [ $mutable -eq 0 ]; then
	pass=$((pass + 1))
	echo "ok   - device core has no file-scope mutable state"
else
	fail=$((fail + 1))
	echo "FAIL - device core has file-scope mutable state"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
