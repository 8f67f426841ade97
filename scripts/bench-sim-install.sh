#!/usr/bin/env bash
# Sim install throughput (issue 3 benchmark): `ternd sim install` of a release of
# BENCH_MIB MiB (feed, verify every chunk, write the slot, fdatasync) against
# `openssl dgst -sha256` plus `dd conv=fsync` of the same bytes, measured in the same run,
# best of BENCH_RUNS. Also prints sizeof(struct tern_agent).
# Usage: scripts/bench-sim-install.sh [BUILD]   (needs $BUILD/ternd, $BUILD/tests/ternd-mkrelease)
set -eu
BUILD=${1:-${BUILD:-build}}
MIB=${BENCH_MIB:-256}
RUNS=${BENCH_RUNS:-3}
TERND=$BUILD/ternd
MKREL=$BUILD/tests/ternd-mkrelease
work=$BUILD/bench-sim
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
best() { # best OLD NEW
	awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'
}

"$MKREL" genkey "$work/k.pem" "$work/k.pub"
"$TERND" sim mkimage --health ok --size "${MIB}M" --version 2.0.0 --out "$work/fw.bin" >/dev/null
"$MKREL" make --key "$work/k.pem" --fw "$work/fw.bin" --version 2.0.0 --sequence 2 \
	--out "$work/fw.tern"

t_install=
t_base=
for _ in $(seq "$RUNS"); do
	rm -rf "$work/dev" "$work/dd.out"
	"$TERND" sim init "$work/dev" --keyring "$work/k.pub" --slot-size "$((MIB + 1))M" >/dev/null
	sync
	t0=$(now)
	"$TERND" sim install "$work/dev" "$work/fw.tern" >/dev/null
	t1=$(now)
	t_install=$(best "$t_install" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
	sync
	t0=$(now)
	openssl dgst -sha256 "$work/fw.bin" >/dev/null
	dd if="$work/fw.bin" of="$work/dd.out" bs=1M conv=fsync 2>/dev/null
	t1=$(now)
	t_base=$(best "$t_base" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
done
# The installed image must verify and boot.
"$TERND" sim reboot "$work/dev" | tail -n 1

awk -v mib="$MIB" -v ti="$t_install" -v tb="$t_base" 'BEGIN {
	printf "sim install %d MiB: %.3f s (%.0f MiB/s)\n", mib, ti, mib / ti
	printf "openssl dgst -sha256 + dd conv=fsync: %.3f s (%.0f MiB/s)\n", tb, mib / tb
	printf "ratio install/raw: %.2f (goal >= 0.80)\n", tb / ti
}'
if [ -x "$BUILD/tools/agent-size" ]; then
	"$BUILD/tools/agent-size" | head -n 1
fi
