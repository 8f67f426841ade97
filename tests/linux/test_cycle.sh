#!/usr/bin/env bash
# The full update cycle of ternd on file-backed slots, from the example folders
# (boards/linux/examples/files-uboot and files-grub): install a release made with
# `tern release create`, "reboot" with the folder's ./boot (it plays the bootloader's
# BOOT_ORDER / BOOT_x_LEFT logic over the same environment with fw_setenv or
# grub-editenv, then ternd starts as a new process), trial, health check passes ->
# confirmed; fails -> rolled back and reported; a trial that never reaches ternd -> the
# bootloader falls back; a power cut during the environment update -> still bootable;
# refusals leave the device unchanged. Prints "N passed, N failed".
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
B=$(cd "$BUILD" && pwd)
SRC=$(pwd)/boards/linux/examples
PY=/usr/bin/python3
work=$(mktemp -d /tmp/tern-cycle.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$B/tern" key generate --out "$work/k.key" >/dev/null || exit 1
"$B/tern" key generate --out "$work/other.key" >/dev/null || exit 1
# rel NAME VERSION SEQ [args]: a release with a fresh random firmware image
rel() {
	local name=$1 ver=$2 seq=$3 size=$((200000 + $3 * 1000))
	shift 3
	[ "$name" = r2 ] && size=1500000 # long enough to be killed in the middle
	head -c $size /dev/urandom >"$work/$name.bin"
	"$B/tern" release create --key "$work/k.key" --board example --version "$ver" \
		--sequence "$seq" --firmware "$work/$name.bin" --out "$work/$name.tern" "$@" >/dev/null
}
head -c 10000 /dev/urandom >"$work/cfg.bin"
rel r2 2.0.0 2 --config "$work/cfg.bin" --chunk-size 4K
rel r3 3.0.0 3
rel r4 4.0.0 4
rel r5 5.0.0 5 --security-counter 1
rel r6 6.0.0 6 --security-counter 1
rel r7 7.0.0 7 --security-counter 1
rel old 4.5.0 4 --security-counter 1
rel r8 8.0.0 8 --security-counter 1
"$B/tern" release create --key "$work/k.key" --board other-board --version 9.0.0 --sequence 9 \
	--firmware "$work/r2.bin" --out "$work/wrong-board.tern" >/dev/null
"$B/tern" release create --key "$work/other.key" --board example --version 9.0.0 --sequence 9 \
	--firmware "$work/r2.bin" --out "$work/unknown-key.tern" >/dev/null
"$B/tern" release create --key "$work/k.key" --board example --version 0.9.0 --sequence 10 \
	--security-counter 0 --firmware "$work/r2.bin" --out "$work/below-floor.tern" >/dev/null

# The key names of `ternd sim status --json`: the Linux status must have them all.
"$B/tern" key generate --out "$work/sim.key" >/dev/null
"$B/ternd" sim init "$work/simdev" --keyring "$work/sim.pub" --slot-size 64K >/dev/null
sim_keys=$("$B/ternd" sim status "$work/simdev" --json | $PY -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin))))')

cycle() {
	local kind=$1 d=$work/$1
	if [ "$kind" = script ]; then
		# The script backend, over the U-Boot example: a user's command answers
		# get-primary, set-primary, get-state and set-state (here with fw_setenv).
		cp -r "$SRC/files-uboot" "$d"
		sed -i -e 's/^bootloader = uboot/bootloader = script/' \
			-e 's|^fw_env_config = fw_env.config|script = ./bootctl|' "$d/ternd.conf"
		cat >"$d/bootctl" <<'SCRIPT'
#!/bin/sh
e() { fw_printenv -c fw_env.config -n "$1" 2>/dev/null; }
case "$1" in
get-primary) set -- $(e BOOT_ORDER); echo "$1" ;;
set-primary) if [ "$2" = A ]; then o="A B"; else o="B A"; fi
	fw_setenv -c fw_env.config BOOT_ORDER "$o" ;;
get-state) if [ "$(e "BOOT_$2_LEFT")" -gt 0 ]; then echo good; else echo bad; fi ;;
set-state) if [ "$3" = good ]; then n=3; else n=0; fi
	fw_setenv -c fw_env.config "BOOT_$2_LEFT" $n ;;
*) exit 2 ;;
esac
SCRIPT
		chmod +x "$d/bootctl"
	else
		cp -r "$SRC/files-$kind" "$d"
	fi
	local T="$B/ternd --config $d/ternd.conf"
	j() { $T status --json | $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
	if [ "$kind" != grub ]; then
		var() { (cd "$d" && fw_printenv -c fw_env.config -n "$1" 2>/dev/null); }
	else
		var() { grub-editenv "$d/grubenv" list | sed -n "s/^$1=//p"; }
	fi
	vars() { echo "$(var BOOT_ORDER)/$(var BOOT_A_LEFT)/$(var BOOT_B_LEFT)"; }
	boot() { "$d/boot" >/dev/null; }
	# refused NAME RELEASE REASON [ARGS]: one line naming REASON, status unchanged
	refused() {
		local before after out rc
		before=$($T status --json)
		out=$($T install "$2" ${4:-} 2>&1 >/dev/null)
		rc=$?
		after=$($T status --json)
		if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] &&
			printf '%s' "$out" | grep -q "($3)" && [ "$before" = "$after" ]; then
			ok "$kind: $1"
		else
			bad "$kind: $1" "exit $rc: $out"
		fi
	}

	if [ -f "$d/setup" ] && [ "$("$d/setup" --help 2>/dev/null)" = "usage: ./setup [--key SIGNING.pub] [--slot-size MiB]" ]; then
		ok "$kind: setup --help prints its usage and does nothing else"
	elif [ -f "$d/setup" ]; then bad "$kind: setup --help"; fi
	if (cd "$work" && "$d/setup" --key "$work/k.pub" >/dev/null); then ok "$kind: setup"; else bad "$kind: setup"; return; fi
	if $T check >/dev/null; then ok "$kind: ternd check"; else bad "$kind: ternd check" "$($T check 2>&1)"; return; fi
	same "$kind: first start provisions slot A" "A provisioned 1.0.0" "$(j 'd["running_slot"], d["last_event"], d["running_version"]')" 
	same "$kind: status --json has every key of ternd sim status" "" \
		"$($T status --json | $PY -c "import json,sys; print(' '.join(sorted(set('$sim_keys'.split()) - set(json.load(sys.stdin)))))")"
	same "$kind: B not bootable while empty" "A B/3/0" "$(vars)"

	# ternd killed in the middle of writing the slot (the file size limit stops it at
	# 1200 KiB into slot B, after the first group of 256 chunk markers was committed):
	# the slot is not bootable, and installing again resumes.
	{ (ulimit -f 1200; exec $T install "$work/r2.tern") >/dev/null 2>&1; } 2>/dev/null
	same "$kind: killed mid-install: downloading, part verified, B not bootable" "downloading True A B/3/0" \
		"$(j 'd["state"], 0 < d["progress"]["verified"] < d["progress"]["chunks"]') $(vars)"

	# 2.0.0 (firmware + config): install, reboot, trial, health passes -> confirmed
	if $T install "$work/r2.tern" >/dev/null; then ok "$kind: install 2.0.0 (resumed)"; else bad "$kind: install 2.0.0 (resumed)"; fi
	same "$kind: activation arms B with the release's attempts" "B A/3/3" "$(vars)"
	if cmp -s -n "$(stat -c %s "$work/r2.bin")" "$work/r2.bin" "$d/slots/firmware-b.img" &&
		cmp -s -n 10000 "$work/cfg.bin" "$d/slots/config-b.img"; then
		ok "$kind: slot B and config-B hold the release's bytes"
	else
		bad "$kind: slot B and config-B hold the release's bytes"
	fi
	boot
	same "$kind: the bootloader starts B on trial" "trial B True" "$(j 'd["state"], d["running_slot"], d["running_trial"]')"
	out=$($T run 2>&1)
	case "$out" in *confirmed*) ok "$kind: run: health passes, confirmed" ;; *) bad "$kind: run: confirmed" "$out" ;; esac
	same "$kind: confirmed 2.0.0 with its config" "confirmed B 2.0.0 config-B" \
		"$(j 'd["state"], d["running_slot"], d["running_version"], d["running_config"]["slot"]')"
	out=$($T status 2>&1)
	case "$out" in *"this boot:      trial boot of slot B"*"(the trial is over)"*) ok "$kind: status: this boot was a trial, and it is over" ;;
	*) bad "$kind: status after the confirmation" "$out" ;; esac
	same "$kind: B first, full attempts, A kept as fallback" "B A/3/3" "$(vars)"
	boot
	same "$kind: a normal boot uses an attempt" "B A/3/2" "$(vars)"
	$T run >/dev/null
	same "$kind: ternd gives it back (mark good every boot)" "B A/3/3" "$(vars)"

	# 3.0.0 fails its health check: rolled back, reported with the command's output
	if $T install "$work/r3.tern" --no-activate >/dev/null; then ok "$kind: install 3.0.0 --no-activate"; else bad "$kind: install 3.0.0 --no-activate"; fi
	same "$kind: the slot being written is not bootable" "B A/0/3" "$(vars)"
	$T activate >/dev/null
	same "$kind: activate arms the staged release" "A B/3/3" "$(vars)"
	echo "database will not start" >"$d/health-fail"
	boot
	out=$($T run 2>&1)
	case "$out" in *"rolled back"*"database will not start"*"rebooting"*) ok "$kind: run: health fails, rolled back, reboots" ;; *) bad "$kind: run: health fails" "$out" ;; esac
	same "$kind: the reboot command went back to B" "B" "$(sed -n 's/.*tern.slot=\(.\).*/\1/p' "$d/cmdline")"
	$T run >/dev/null
	same "$kind: reported: rolled back, health-check-failed, output kept" \
		"rolled-back B health-check-failed bad health: database will not start" \
		"$(j 'd["state"], d["running_slot"], d["last_reason"], d["slots"]["A"]["state"], d["last_health"]["output"]')"
	same "$kind: A is not bootable after its rollback" "B A/0/3" "$(vars)"
	rm -f "$d/health-fail"

	# 4.0.0 never reaches ternd (crashes at every boot): the bootloader falls back
	$T install "$work/r4.tern" >/dev/null
	boot; boot; boot
	same "$kind: three crashed trial boots used the attempts" "A B/0/3" "$(vars)"
	boot
	out=$($T run 2>&1)
	case "$out" in *"never reached ternd"*) ok "$kind: the fallback is noticed" ;; *) bad "$kind: fallback noticed" "$out" ;; esac
	same "$kind: reported: rolled back, trial-boot-failed" "rolled-back B trial-boot-failed bad" \
		"$(j 'd["state"], d["running_slot"], d["last_reason"], d["slots"]["A"]["state"]')"

	# The script backend runs the cycle up to here and the power cut; what follows does
	# not depend on the backend (and script calls are slow).
	if [ "$kind" != script ]; then
	# 5.0.0 confirmed by an integrator's own check (mark-good); floor rises
	$T install "$work/r5.tern" >/dev/null
	boot
	if $T mark-good >/dev/null; then ok "$kind: mark-good ends the trial"; else bad "$kind: mark-good"; fi
	same "$kind: confirmed 5.0.0, floor 1" "confirmed A 5.0.0 1" "$(j 'd["state"], d["running_slot"], d["running_version"], d["security_floor"]')"
	# 6.0.0 marked bad by the integrator
	$T install "$work/r6.tern" >/dev/null
	boot
	if $T mark-bad >/dev/null; then ok "$kind: mark-bad ends the trial"; else bad "$kind: mark-bad"; fi
	same "$kind: marked bad: rolled back, A first again" "rolled-back A B/3/0" "$(j 'd["state"]') $(vars)"
	boot
	same "$kind: the next boot runs A" "A 5.0.0" "$(j 'd["running_slot"], d["running_version"]')"
	if $T mark-bad >/dev/null 2>&1; then bad "$kind: mark-bad outside a trial is refused"; else ok "$kind: mark-bad outside a trial is refused"; fi

	# Refusals change nothing
	refused "older release refused" "$work/old.tern" "not-newer"
	refused "wrong board refused" "$work/wrong-board.tern" "wrong-board"
	refused "unknown key refused" "$work/unknown-key.tern" "unknown-key"
	refused "below the security floor refused" "$work/below-floor.tern" "below-floor"
	cp "$d/ternd.conf" "$d/ternd.conf.orig"
	printf '\n[boot]\nmounts = fake-mounts\n' >>"$d/ternd.conf"
	echo "$d/slots/firmware-b.img /mnt ext4 rw,relatime 0 0" >"$d/fake-mounts"
	refused "a mounted slot is never written" "$work/r7.tern" "slot-mounted"
	cp "$d/ternd.conf.orig" "$d/ternd.conf"
	fi

	# A power cut during the environment update: the activation's write is torn.
	local pre target
	pre=$(vars)
	[ "$(j 'd["running_slot"]')" = A ] && target=B || target=A
	if [ "$kind" != grub ]; then
		$T install "$work/r7.tern" >/dev/null
		# The newest copy is the one with the armed BOOT_ORDER: garble it mid-data.
		newer=uboot-env.1
		grep -q "BOOT_ORDER=$target" "$d/uboot-env.0" && newer=uboot-env.0
		printf 'torn' | dd of="$d/$newer" bs=1 seek=30 conv=notrunc status=none
	else
		cp "$d/grubenv" "$d/grubenv.before"
		$T install "$work/r7.tern" >/dev/null
		# grubenv is replaced by rename: a cut before the rename leaves the old block.
		cp "$d/grubenv.before" "$d/grubenv"
	fi
	if [ "$kind" = script ]; then
		# Only the script's last call (set-primary) is lost: the slot is good, not first.
		same "$kind: power cut in the env update: the previous primary stands" "${pre%%/*}" "$(var BOOT_ORDER)"
	else
		same "$kind: power cut in the env update: the previous environment stands" "$pre" "$(vars)"
	fi
	if boot; then ok "$kind: ... and the device boots"; else bad "$kind: ... and the device boots"; fi
	out=$($T run 2>&1)
	case "$out" in *"armed now"*) ok "$kind: ternd completes the interrupted activation" ;; *) bad "$kind: interrupted activation" "$out" ;; esac
	boot
	$T run >/dev/null
	same "$kind: then the trial runs and is confirmed" "confirmed $target 7.0.0" "$(j 'd["state"], d["running_slot"], d["running_version"]')"
	[ "$kind" = script ] && return

	# A power cut between a rollback's record write and its bootloader write: the bad
	# slot boots once more; ternd (started as systemd does: check, then run) reboots.
	$T install "$work/r8.tern" >/dev/null
	echo "no network" >"$d/health-fail"
	boot
	mkdir -p "$d/env-saved"
	cp "$d"/uboot-env.* "$d"/grubenv "$d/env-saved/" 2>/dev/null
	$T run >/dev/null
	cp "$d"/env-saved/* "$d/"
	boot
	same "$kind: the rolled-back slot booted again" "A" "$(sed -n 's/.*tern.slot=\(.\).*/\1/p' "$d/cmdline")"
	out=$($T check 2>&1)
	case "$out" in *"A runs but is bad"*) ok "$kind: check names the bad slot that runs" ;; *) bad "$kind: check names the bad slot" "$out" ;; esac
	out=$($T run 2>&1)
	case "$out" in *"rebooting: the running slot is not good"*) ok "$kind: run reboots out of it" ;; *) bad "$kind: run reboots out of it" "$out" ;; esac
	same "$kind: back on B, rollback reported" "B rolled-back health-check-failed 7.0.0" \
		"$(j 'd["running_slot"], d["state"], d["last_reason"], d["running_version"]')"
	same "$kind: A not bootable" "B A/0/3" "$(vars)"
	rm -f "$d/health-fail"

	# Revert to 5.0.0 (overwritten by 8.0.0 in A): downloaded again, trial, confirmed;
	# the confirmed sequence goes back, the floor stays.
	refused "an older release without --revert refused" "$work/r5.tern" "not-newer"
	out=$($T install "$work/r5.tern" --revert)
	case "$out" in *"staged 5.0.0"*"slot A; activated"*) ok "$kind: revert to 5.0.0 downloads it into A" ;; *) bad "$kind: revert download" "$out" ;; esac
	boot
	$T run >/dev/null
	same "$kind: revert confirmed: 5.0.0 on A, confirmed sequence 5, floor 1" "confirmed A 5.0.0 5 1 A B/3/3" \
		"$(j 'd["state"], d["running_slot"], d["running_version"], d["confirmed_sequence"], d["security_floor"]') $(vars)"
	# 7.0.0 is newer again and still whole in B: staged without a download; then a
	# revert to 5.0.0, whole in A, the same way.
	out=$($T install "$work/r7.tern")
	case "$out" in *"staged 7.0.0"*"kept in the slot: nothing downloaded"*) ok "$kind: 7.0.0 again: staged from B, no download" ;; *) bad "$kind: 7.0.0 from B" "$out" ;; esac
	boot
	$T run >/dev/null
	same "$kind: 7.0.0 confirmed again" "confirmed B 7.0.0 7" "$(j 'd["state"], d["running_slot"], d["running_version"], d["confirmed_sequence"]')"
	out=$($T install "$work/r5.tern" --revert)
	case "$out" in *"staged 5.0.0"*"kept in the slot: nothing downloaded"*) ok "$kind: revert to 5.0.0 in A: no download" ;; *) bad "$kind: fast revert" "$out" ;; esac
	same "$kind: the fast revert arms A" "A B/3/3" "$(vars)"
	boot
	$T run >/dev/null
	same "$kind: fast revert confirmed" "confirmed A 5.0.0 5 1" \
		"$(j 'd["state"], d["running_slot"], d["running_version"], d["confirmed_sequence"], d["security_floor"]')"
	refused "a revert below the security floor refused" "$work/below-floor.tern" "below-floor" --revert

	# One ternd at a time: while another holds the device's lock, a second one refuses.
	out=$(flock "$d/state/lock" $T install "$work/r8.tern" 2>&1)
	case "$out" in *"another ternd is working on this device"*) ok "$kind: a second ternd refuses while one works" ;; *) bad "$kind: lock" "$out" ;; esac
	if flock "$d/state/lock" $T status --json >/dev/null; then ok "$kind: status still reads meanwhile (e.g. from a health check)"; else bad "$kind: status under the lock"; fi

	# The running slot must be known, and the signs must agree
	echo "root=/dev/tern-example-a tern.slot=B" >"$d/cmdline"
	cat /proc/sys/kernel/random/uuid >"$d/boot_id"
	out=$($T status 2>&1)
	case "$out" in *"refusing to guess"*) ok "$kind: tern.slot and root= disagreeing is refused" ;; *) bad "$kind: slot signs disagree" "$out" ;; esac
	echo "quiet" >"$d/cmdline"
	out=$($T status 2>&1)
	case "$out" in *"names no slot"*) ok "$kind: no slot named is refused" ;; *) bad "$kind: no slot named" "$out" ;; esac
}

cycle uboot
cycle grub
cycle script
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
