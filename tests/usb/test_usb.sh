#!/usr/bin/env bash
# `tern usb` end to end: the real tern binary against emulated devices (scripts/usb-emu,
# umockdev): list and --json, --serial, the errors a technician sees (several devices, no
# device, no access with the udev hint, busy), re-enumeration after a reboot (found again
# by serial), damaged frames detected and sent again, VID/PID selection, and no umockdev
# folders left behind, even when the emulator crashes.
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TERN=$(cd "$BUILD" && pwd)/tern
export BUILD=$(cd "$BUILD" && pwd)
EMU="$ROOT/scripts/usb-emu"
export TERN_USB_EMU=$BUILD/tern-usb-emu
PY=/usr/bin/python3
work=$(mktemp -d /tmp/tern-usb-test.XXXXXX)
chmod 755 "$work"
# Our own TMPDIR: leftovers of this run (and only this run) can be counted exactly.
export TMPDIR=$work/tmp
mkdir -m 1777 "$TMPDIR"
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

# emu_ok NAME EMU-ARGS... -- CMD... / emu_fail NAME REGEX EMU-ARGS... -- CMD...: the
# suite's expect_ok/expect_fail run through the USB emulator
emu_ok() {
	local name=$1
	shift
	expect_ok "$name" "$EMU" "$@"
}
emu_fail() {
	local name=$1 re=$2
	shift 2
	expect_fail "$name" "$re" "$EMU" "$@"
}

json() { $PY -c "import json,sys; d=json.load(open('out.txt')); print(eval(sys.argv[1]))" "$1"; }

# --- the emulator's own help (README: a newcomer's first command)
expect_ok "usb-emu --help exits 0" "$EMU" --help
check "... the usage and its options on stdout" grep -q -e "--keyring FILE" out.txt

# --- list
emu_ok "list --json, two devices" --devices 2 -- "$TERN" usb list --json
check "json: two devices" [ "$(json 'len(d)')" = 2 ]
check "json: serials" [ "$(json '",".join(x["serial"] for x in d)')" = "EMU00001,EMU00002" ]
check "json: ports" [ "$(json '",".join(x["port"] for x in d)')" = "1-1,1-2" ]
check "json: board, version, slot, state" \
	[ "$(json '"/".join([d[1]["board"], d[1]["version"], d[1]["slot"], d[1]["state"]])')" = "sim/1.0.0/A/idle" ]
check "json: not provisioned: device_id null, generation 0" \
	[ "$(json '"%s/%s" % (d[0]["device_id"], d[0]["provision_generation"])')" = "None/0" ]
emu_ok "list, text" --devices 2 -- "$TERN" usb list
check "text: header and two rows" [ "$(wc -l <out.txt)" = 3 ]
check "text: second row" grep -qE '^1-2 +EMU00002 +sim +1\.0\.0 +A +idle$' out.txt
emu_fail "list, no device" "no tern device found \(USB 1209:0001\)" --devices 0 -- "$TERN" usb list --json
check "list --json, no device: []" [ "$(cat out.txt)" = "[]" ]

# --- status and --serial
emu_ok "status --serial picks the second" --devices 2 -- "$TERN" usb status --serial EMU00002
check "status names the device and port" grep -q "^device:  EMU00002 at USB port 1-2" out.txt
emu_ok "status --json, one device, no --serial" --devices 1 -- "$TERN" usb status --json
check "status json: state" [ "$(json 'd["state"]')" = idle ]
emu_fail "status, several devices" "several tern devices are connected \(EMU00001, EMU00002\); choose one with --serial" \
	--devices 2 -- "$TERN" usb status
emu_fail "status, unknown serial" "no tern device with serial NOPE \(connected: EMU00001, EMU00002\)" \
	--devices 2 -- "$TERN" usb status --serial NOPE
emu_fail "status, no device" "no tern device found" --devices 0 -- "$TERN" usb status
emu_fail "status, busy" "device EMU00002 is busy: another program" \
	--devices 2 --claimed EMU00002 -- "$TERN" usb status --serial EMU00002
emu_ok "list shows a busy device and goes on" --devices 2 --claimed EMU00001 -- "$TERN" usb list --json
check "busy device: error busy, other one fine" \
	[ "$(json 'd[0].get("error", "") + "/" + d[1]["state"]')" = "busy/idle" ]
check "busy device: a sentence beside the code" \
	[ "$(json 'd[0]["message"]')" = "busy: another program has it open" ]
emu_ok "status --json: bus and address too" --devices 1 -- "$TERN" usb status --json
check "status json: bus, address, generation" \
	[ "$(json '"%d/%d/%d" % (d["bus"], d["address"], d["provision_generation"])')" = "1/2/0" ]

# --- a user without access: the udev rule is named (dropping to another user needs root)
if [ "$(id -u)" = 0 ]; then
	NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
	emu_fail "list as another user" "cannot be opened by this user; install the udev rule: .*70-tern.rules" \
		--devices 2 -- "${NOBODY[@]}" "$TERN" usb list --json
	check "no access: error in json" [ "$(json '",".join(x["error"] for x in d)')" = "no-access,no-access" ]
	emu_fail "status as another user" "connected but this user may not open it; install the udev rule" \
		--devices 1 -- "${NOBODY[@]}" "$TERN" usb status
else
	echo "skip no-access cases: they run the command as another user, which needs root"
fi
check "the udev rule file exists and names the VID" grep -q 'ATTR{idVendor}=="1209"' "$ROOT/scripts/udev/70-tern.rules"

# --- VID/PID
emu_fail "other PID: not ours" "no tern device found \(USB 1209:0001\)" --pid 0002 -- "$TERN" usb list
emu_ok "--pid finds it" --pid 0002 -- "$TERN" usb list --pid 0002
emu_ok "TERN_USB_PID finds it" --pid 0002 -- env TERN_USB_PID=0002 "$TERN" usb list
emu_fail "bad --vid" "hex USB ids" --devices 1 -- "$TERN" usb list --vid zz

# --- help: every option a usage line shows is taken; the group lists its commands
"$TERN" key generate --out help.key >/dev/null
for c in list status flash reboot confirm provision; do
	"$TERN" usb $c --help >help.txt
	usage=$(sed -n '/^usage:/,/^  [a-z]/p' help.txt | grep -v '^  [a-z]')
	opts=$(echo "$usage" | grep -oE '\[--[a-z-]+( [A-Za-z.]+)?\]|--[a-z-]+ [A-Z]+' | tr -d '[]' | tr ' ' '=')
	badopt=
	for o in $opts; do
		case $o in
		*=SECONDS | *=N) set -- "${o%%=*}" 1 ;;
		*=*.pub) set -- "${o%%=*}" help.pub ;;
		*=*) set -- "${o%%=*}" x ;;
		*) set -- "$o" ;;
		esac
		"$TERN" usb $c "$@" --help >/dev/null 2>&1 || badopt="$badopt $1"
	done
	if [ -n "$opts" ] && [ -z "$badopt" ]; then ok "help: usb $c takes every option it shows"
	else bad "help: usb $c takes every option it shows" "refused:$badopt (usage: $usage)"; fi
done
"$TERN" usb --help >help.txt
check "tern usb --help lists the commands" [ "$(grep -c '^  tern usb ' help.txt)" = 6 ]
"$TERN" usb >/dev/null 2>err.txt
check "tern usb alone: exit 2, the commands named" [ $? = 2 ]
check "tern usb alone, in words" grep -qx "tern usb: unknown or missing command; one of: list, status, flash, confirm, provision, reboot (see 'tern usb --help')" err.txt

# --- reboot: the device leaves the bus and comes back at a new address; found by serial
emu_ok "reboot and re-enumeration" --devices 2 --dir devs -- "$TERN" usb reboot --serial EMU00002
check "reboot: back at the same port, new address" grep -qE "^EMU00002 is back after [0-9.]+ s at USB port 1-2 \(address [4-9]\)" out.txt
check "reboot: the device booted twice" grep -qx "boots=2" devs/EMU00002/state
check "reboot: the other device did not" grep -qx "boots=1" devs/EMU00001/state
cat >twice.sh <<EOF
set -e
"$TERN" usb reboot --serial EMU00001 >reboots.txt
"$TERN" usb reboot --serial EMU00001 >>reboots.txt
"$TERN" usb list --json
EOF
emu_ok "two reboots, then list in the same session" --devices 2 --dir devs2 -- sh twice.sh
check "after two reboots: both listed" [ "$(json '",".join(x["serial"] for x in d)')" = "EMU00001,EMU00002" ]
check "two reboots: two new addresses" [ "$(grep -oE 'address [0-9]+' reboots.txt | sort -u | wc -l)" = 2 ]
check "after two reboots: boots=3" grep -qx "boots=3" devs2/EMU00001/state
emu_ok "reboot --no-wait" --devices 1 -- "$TERN" usb reboot --no-wait
check "reboot --no-wait says so" grep -qx "EMU00001 is rebooting" out.txt
emu_fail "reboot, several devices" "several tern devices" --devices 2 -- "$TERN" usb reboot
# Without udevd no hotplug event reaches libusb (--no-uevents: the emulator announces
# nothing): tern still finds the device again by serial, looking with a fresh scan.
emu_ok "reboot without hotplug events (no udevd)" --devices 2 --no-uevents --dir devs3 -- \
	"$TERN" usb reboot --serial EMU00002
check "no hotplug: back at a new address" grep -qE "^EMU00002 is back after [0-9.]+ s at USB port 1-2 \(address [4-9]\)" out.txt
check "no hotplug: the device booted twice" grep -qx "boots=2" devs3/EMU00002/state
emu_ok "no hotplug: list sees the device at its new address" --devices 1 --no-uevents -- sh -c \
	"'$TERN' usb reboot >/dev/null && '$TERN' usb list --json"
check "no hotplug: listed after the reboot" [ "$(json '",".join(x["serial"] for x in d)')" = "EMU00001" ]
emu_fail "reboot: a device that stays away" \
	"tern usb reboot: device EMU00001 did not come back within 1 s; check its console" \
	--devices 1 --boot-ms 2500 -- "$TERN" usb reboot --wait 1

# --- damaged frames: detected by CRC, sent again, the command still succeeds
for d in out in; do
	for n in 1 2; do
		if "$EMU" --verbose --corrupt-$d $n -- "$TERN" usb status >out.txt 2>err.txt &&
			grep -q "^state:   idle" out.txt; then
			ok "damaged bulk $d transfer $n: retried"
		else
			bad "damaged bulk $d transfer $n: retried" "$(cat err.txt)"
		fi
	done
done
"$EMU" --verbose --corrupt-out 1 -- "$TERN" usb status >out.txt 2>err.txt
check "the device counted the damaged frame" grep -q "EMU00001: 2 frames, 1 damaged" err.txt

# --- valgrind: no memory errors, no leaks (umockdev's own buffer traffic suppressed)
VG=(valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite
	--suppressions="$ROOT/tests/usb/umockdev.supp")
emu_ok "valgrind: list, two devices" --devices 2 -- "${VG[@]}" "$TERN" usb list --json
emu_ok "valgrind: reboot and re-enumeration" --devices 1 -- "${VG[@]}" "$TERN" usb reboot
emu_ok "valgrind: reboot without hotplug events" --devices 1 --no-uevents -- "${VG[@]}" "$TERN" usb reboot

# --- exit status, and nothing left behind
"$EMU" --devices 1 -- sh -c 'exit 7' >/dev/null 2>&1
check "usb-emu exits with the command's status" [ $? = 7 ]
"$EMU" --devices 1 -- sh -c 'kill -KILL $PPID; sleep 0.2' >/dev/null 2>&1
check "a crashed emulator fails the run" [ $? != 0 ]
sleep 0.3
left=$(ls -A "$TMPDIR")
check "no umockdev or emulator folders left" [ -z "$left" ]
[ -n "$left" ] && echo "     left: $left"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
