#!/usr/bin/env bash
# Scenario tests through the `ternd sim` commands, with releases made by `tern release
# create`: good release confirmed, unhealthy
# release rolled back, crashing release rolled back after its attempts, refusals
# (downgrade, wrong board, replay, corrupt, truncated, unknown key) that leave the device
# unchanged and bootable, and reverts (from the other slot, downloaded and resumed after a
# power cut, below the floor refused). Prints "N passed, N failed".
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
TERND=$BUILD/ternd
TERN=$BUILD/tern
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# json DEV EXPR: evaluates a Python expression on the status document `d`.
json() {
	"$TERND" sim status "$1" --json | "$PY" -c "import json,sys; d=json.load(sys.stdin); print($2)"
}

# expect NAME WANT GOT (the suite's `same`)
expect() { same "$@"; }

# refused NAME DEV RELEASE REASON [ARGS]: install (with ARGS) fails with one line naming
# REASON, and the device's status is unchanged.
refused() {
	local before after out rc
	before=$("$TERND" sim status "$2" --json)
	out=$("$TERND" sim install "$2" "$3" ${5:-} 2>&1)
	rc=$?
	after=$("$TERND" sim status "$2" --json)
	if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] &&
		printf '%s' "$out" | grep -q "($4)" && [ "$before" = "$after" ]; then
		ok "$1"
	else
		bad "$1" "exit $rc, output: $out"
	fi
}

"$TERN" key generate --out "$work/k.key" >/dev/null || exit 1
"$TERN" key generate --out "$work/other.key" >/dev/null || exit 1
dev=$work/dev
mk() { # mk NAME HEALTH VERSION SEQ SEC [extra `tern release create` args]
	local name=$1 health=$2 ver=$3 seq=$4 sec=$5
	shift 5
	local board=(--board sim)
	[ "${1:-}" = "--board" ] && board=()
	"$TERND" sim mkimage --health "$health" --size 100K --version "$ver" \
		--out "$work/$name.bin" >/dev/null &&
		"$TERN" release create --key "$work/k.key" "${board[@]}" --firmware "$work/$name.bin" \
			--version "$ver" --sequence "$seq" --security-counter "$sec" \
			--out "$work/$name.tern" "$@" >/dev/null
}

if "$TERND" sim init "$dev" --keyring "$work/k.pub" --slot-size 1M --version 1.0.0 >/dev/null; then
	ok "init"
else
	bad "init"
fi
expect "factory state" "idle A 1.0.0 0" "$(json "$dev" 'd["state"], d["running_slot"], d["running_version"], d["security_floor"]' | tr -d "(),'")"

# Good release: staged, then confirmed on reboot; the floor rises.
mk good ok 1.1.0 2 1
"$TERND" sim install "$dev" "$work/good.tern" >/dev/null
expect "good release staged" "staged True" "$(json "$dev" 'd["state"], d["trial_pending"]' | tr -d "(),'")"
"$TERND" sim reboot "$dev" >/dev/null
expect "good release confirmed" "confirmed B 1.1.0 1 good" \
	"$(json "$dev" 'd["state"], d["running_slot"], d["running_version"], d["security_floor"], d["slots"]["B"]["state"]' | tr -d "(),'")"
"$TERND" sim reboot "$dev" >/dev/null
expect "normal reboot keeps it" "confirmed B 0" "$(json "$dev" 'd["state"], d["running_slot"], d["attempts_left"]' | tr -d "(),'")"

# Refusals: the device stays as it is.
refused "replay of the confirmed release refused" "$dev" "$work/good.tern" not-newer
mk old ok 1.0.5 1 1
refused "downgrade refused" "$dev" "$work/old.tern" not-newer
mk wrongboard ok 1.2.0 3 1 --board other-board
refused "wrong board refused" "$dev" "$work/wrongboard.tern" wrong-board
mk lowsec ok 1.2.0 3 0
refused "security counter below the floor refused" "$dev" "$work/lowsec.tern" below-floor
"$TERND" sim mkimage --health ok --size 100K --version 1.2.0 --out "$work/other.bin" >/dev/null
"$TERN" release create --key "$work/other.key" --board sim --firmware "$work/other.bin" \
	--version 1.2.0 --sequence 3 --security-counter 1 --out "$work/otherkey.tern" >/dev/null
refused "unknown key refused" "$dev" "$work/otherkey.tern" unknown-key
mk corrupt ok 1.2.0 3 1
size=$(stat -c %s "$work/corrupt.tern")
printf '\x00' | dd of="$work/corrupt.tern" bs=1 seek=$((size - 5000)) conv=notrunc 2>/dev/null
out=$("$TERND" sim install "$dev" "$work/corrupt.tern" 2>&1)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "(digest-mismatch)"; then
	ok "corrupt payload refused"
else
	bad "corrupt payload refused (exit $rc: $out)"
fi
expect "after a corrupt payload: still running 1.1.0" "failed B 1.1.0 digest-mismatch" \
	"$(json "$dev" 'd["state"], d["running_slot"], d["running_version"], d["last_reason"]' | tr -d "(),'")"
mk trunc ok 1.2.0 3 1
head -c $((size / 2)) "$work/trunc.tern" >"$work/trunc2.tern"
out=$("$TERND" sim install "$dev" "$work/trunc2.tern" 2>&1)
if [ $? -ne 0 ] && printf '%s' "$out" | grep -q "(truncated)"; then
	ok "truncated release refused"
else
	bad "truncated release refused ($out)"
fi
"$TERND" sim reboot "$dev" >/dev/null
expect "still bootable after refusals" "B 1.1.0" "$(json "$dev" 'd["running_slot"], d["running_version"]' | tr -d "(),'")"

mk smallchunk ok 1.2.0 3 1 --chunk-size 1K
refused "chunk smaller than a flash sector refused" "$dev" "$work/smallchunk.tern" chunk-geometry
"$TERND" sim mkimage --health ok --size 2M --version 1.2.0 --out "$work/big.bin" >/dev/null
"$TERN" release create --key "$work/k.key" --board sim --firmware "$work/big.bin" \
	--version 1.2.0 --sequence 3 --security-counter 1 --out "$work/big.tern" >/dev/null
refused "image larger than the slot refused" "$dev" "$work/big.tern" slot-too-small

# Unhealthy release: trial boot, health check fails, back to the previous image.
mk sick fail 1.3.0 4 1
"$TERND" sim install "$dev" "$work/sick.tern" >/dev/null
"$TERND" sim reboot "$dev" >"$work/reboot.log"
expect "unhealthy release rolled back with reason" "rolled-back B 1.1.0 health-check-failed bad" \
	"$(json "$dev" 'd["state"], d["running_slot"], d["running_version"], d["last_reason"], d["slots"]["A"]["state"]' | tr -d "(),'")"

# Crashing release: every trial boot crashes; the bootloader falls back when they run out.
mk crash crash 1.4.0 5 1 --trial-attempts 2
"$TERND" sim install "$dev" "$work/crash.tern" >/dev/null
"$TERND" sim reboot "$dev" >"$work/reboot.log"
expect "crashing release rolled back after its attempts" "rolled-back B 1.1.0 trial-boot-failed" \
	"$(json "$dev" 'd["state"], d["running_slot"], d["running_version"], d["last_reason"]' | tr -d "(),'")"
expect "two crashed trial boots" "2" "$(grep -c 'crashed' "$work/reboot.log")"

# A release with a config component: the running config is reported.
printf 'mode=fast\nlevel=3\n' >"$work/app.conf"
"$TERND" sim mkimage --health ok --size 100K --version 1.5.0 --out "$work/cfg.bin" >/dev/null
"$TERN" release create --key "$work/k.key" --board sim --firmware "$work/cfg.bin" \
	--config "$work/app.conf" --version 1.5.0 --sequence 6 --security-counter 2 \
	--out "$work/cfg.tern" >/dev/null
"$TERND" sim install "$dev" "$work/cfg.tern" >/dev/null && "$TERND" sim reboot "$dev" >/dev/null
expect "config component confirmed" "confirmed 1.5.0 config-A 1.5.0 2" \
	"$(json "$dev" 'd["state"], d["running_version"], d["running_config"]["slot"], d["running_config"]["version"], d["security_floor"]' | tr -d "(),'")"

# Staged without activation waits; activate arms it.
mk later ok 1.6.0 7 2
"$TERND" sim install "$dev" "$work/later.tern" --no-activate >/dev/null
"$TERND" sim reboot "$dev" >/dev/null
expect "staged release waits for activate" "staged 1.5.0" "$(json "$dev" 'd["state"], d["running_version"]' | tr -d "(),'")"
"$TERND" sim activate "$dev" >/dev/null && "$TERND" sim reboot "$dev" >/dev/null
expect "activated release confirmed" "confirmed 1.6.0" "$(json "$dev" 'd["state"], d["running_version"]' | tr -d "(),'")"

# Power cut through the commands: install cut short, reboot, install resumes from the
# verified chunks; then a cut during the trial boot, and the next reboot confirms.
mk cut ok 1.7.0 8 2
"$TERND" sim install "$dev" "$work/cut.tern" --power-cut-at 12 --torn >/dev/null 2>&1
rc=$?
expect "install cut by a power cut exits 3" "3" "$rc"
expect "device off until reboot" "False" "$(json "$dev" 'd["powered"]')"
if ! "$TERND" sim install "$dev" "$work/cut.tern" >/dev/null 2>&1; then ok "install refused while off"; else bad "install refused while off"; fi
"$TERND" sim reboot "$dev" >/dev/null
expect "after the cut: still 1.6.0, download pending" "downloading 1.6.0" "$(json "$dev" 'd["state"], d["running_version"]' | tr -d "(),'")"
out=$("$TERND" sim install "$dev" "$work/cut.tern")
if printf '%s' "$out" | grep -q "was interrupted: [1-9][0-9]* of"; then ok "install resumes from verified chunks"; else bad "install resumes from verified chunks ($out)"; fi
"$TERND" sim reboot "$dev" --power-cut-at 3 >/dev/null 2>&1
"$TERND" sim reboot "$dev" >/dev/null
expect "cut during the trial boot, then confirmed" "confirmed 1.7.0 2" "$(json "$dev" 'd["state"], d["running_version"], d["security_floor"]' | tr -d "(),'")"

# An interrupted install can be abandoned.
mk gone ok 1.8.0 9 2
"$TERND" sim install "$dev" "$work/gone.tern" --power-cut-at 12 >/dev/null 2>&1
"$TERND" sim reboot "$dev" >/dev/null
"$TERND" sim cancel "$dev" >/dev/null
expect "cancel leaves the running image" "failed canceled 1.7.0 empty" \
	"$(json "$dev" 'd["state"], d["last_reason"], d["running_version"], d["slots"]["A" if d["running_slot"] == "B" else "B"]["state"]' | tr -d "(),'")"

# Revert: back to an older release still at or above the floor. 1.9.0 confirmed keeps
# 1.7.0 in the other slot: the revert to it stages it without a download.
mk newer ok 1.9.0 10 2
"$TERND" sim install "$dev" "$work/newer.tern" >/dev/null && "$TERND" sim reboot "$dev" >/dev/null
refused "an older release without --revert refused" "$dev" "$work/cut.tern" not-newer
out=$("$TERND" sim install "$dev" "$work/cut.tern" --revert)
if printf '%s' "$out" | grep -q "^staged 1.7.0 .*(kept in the slot: nothing downloaded); activated"; then
	ok "revert to the release in the other slot: staged without a download"
else
	bad "revert to the release in the other slot: staged without a download ($out)"
fi
"$TERND" sim reboot "$dev" >/dev/null
expect "revert confirmed: 1.7.0 runs, confirmed sequence 8, floor stays 2" "confirmed 1.7.0 8 2 good" \
	"$(json "$dev" 'd["state"], d["running_version"], d["confirmed_sequence"], d["security_floor"], d["slots"]["A" if d["running_slot"] == "B" else "B"]["state"]' | tr -d "(),'")"
# 1.6.0 is in neither slot: downloaded, cut by a power cut, resumed by a plain install
# (the journal remembers the revert).
"$TERND" sim install "$dev" "$work/later.tern" --revert --power-cut-at 12 >/dev/null 2>&1
expect "revert download cut by a power cut exits 3" "3" "$?"
"$TERND" sim reboot "$dev" >/dev/null
out=$("$TERND" sim install "$dev" "$work/later.tern")
if printf '%s' "$out" | grep -q "was interrupted: [1-9][0-9]* of" && ! printf '%s' "$out" | grep -q "kept in the slot"; then
	ok "interrupted revert download resumed without --revert"
else
	bad "interrupted revert download resumed without --revert ($out)"
fi
"$TERND" sim reboot "$dev" >/dev/null
expect "downloaded revert confirmed: 1.6.0, confirmed sequence 7, floor 2" "confirmed 1.6.0 7 2" \
	"$(json "$dev" 'd["state"], d["running_version"], d["confirmed_sequence"], d["security_floor"]' | tr -d "(),'")"
refused "revert below the security floor refused" "$dev" "$work/good.tern" below-floor --revert
refused "revert to another board's release refused" "$dev" "$work/wrongboard.tern" wrong-board --revert
refused "revert to a release signed by an unknown key refused" "$dev" "$work/otherkey.tern" unknown-key --revert

# Bad command lines: one line, non-zero.
out=$("$TERND" sim status "$work/nope" 2>&1)
if [ $? -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]; then ok "missing device folder"; else bad "missing device folder ($out)"; fi
out=$("$TERND" sim install "$dev" "$work/missing.tern" 2>&1)
if [ $? -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]; then ok "missing release file"; else bad "missing release file ($out)"; fi
if ! "$TERND" sim mkimage --health maybe --out "$work/x.bin" >/dev/null 2>&1; then ok "mkimage refuses a bad --health"; else bad "mkimage refuses a bad --health"; fi
printf 'not a release at all' >"$work/junk.tern"
refused "junk file refused" "$dev" "$work/junk.tern" not-a-release

# Usage errors: one line, naming the mistake and where the whole usage is.
TERND=$(realpath "$TERND")
cd "$work" || exit 1
expect_fail "ternd: an unknown command" "unknown command \(see 'ternd --help'\)" "$TERND" frobnicate
expect_fail "ternd sim: an unknown command" "unknown sim command \(see 'ternd sim --help'\)" \
	"$TERND" sim frobnicate
expect_fail "ternd sim install without a release" "install needs DEVDIR and RELEASE" \
	"$TERND" sim install "$dev"
expect_fail "ternd fleet: a bad value" "--devices needs a valid value \(see 'ternd fleet --help'\)" \
	"$TERND" fleet --devices x --dir f --broker mqtt://127.0.0.1:1
"$TERND" >out.txt 2>err.txt
alone_rc=$?
check "ternd alone: the whole usage, exit 2" eval '[ $alone_rc -eq 2 ] && grep -q "^usage:" err.txt'
cd - >/dev/null || exit 1

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
