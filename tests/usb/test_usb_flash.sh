#!/usr/bin/env bash
# `tern usb flash` end to end: the real tern against emulated devices with the real agent
# core on the sim board behind the bus (scripts/usb-emu --keyring): install, trial boot
# and confirm seen after re-enumeration; rollback of an unhealthy image; refusals (wrong
# board before a byte is sent, not newer, unknown key); --serial with two devices;
# unplugged mid-transfer and resumed; damaged frames resent; --no-reboot then reboot;
# protocol efficiency; `ternd sim status` agrees with what the host reports.
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export BUILD=$(cd "$BUILD" && pwd)
TERN=$BUILD/tern
TERND=$BUILD/ternd
EMU="$ROOT/scripts/usb-emu"
export TERN_USB_EMU=$BUILD/tern-usb-emu
work=$(mktemp -d /tmp/tern-usb-flash.XXXXXX)
export TMPDIR=$work/tmp
mkdir -m 1777 "$TMPDIR"
source "$ROOT/tests/lib/broker.sh"
trap 'broker_stop; rm -rf "$work"' EXIT
cd "$work" || exit 1

# run NAME WANT-EXIT EMU-ARGS... -- CMD...: the exit status must be WANT-EXIT (0 or 1)
run() {
	local name=$1 want=$2
	shift 2
	"$EMU" "$@" >out.txt 2>err.txt
	local rc=$?
	if [ "$want" = 0 ] && [ $rc -eq 0 ]; then ok "$name"
	elif [ "$want" != 0 ] && [ $rc -ne 0 ]; then ok "$name"
	else bad "$name" "exit $rc: $(cat out.txt err.txt)"; fi
}
status_of() { "$TERND" sim status "$1" --json; }
field() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

"$TERN" key generate --out signing.key >/dev/null
"$TERN" key generate --out other.key >/dev/null
"$TERND" sim mkimage --health ok --size 1M --version 1.2.0 --out ok.bin >/dev/null
"$TERND" sim mkimage --health fail --size 200K --version 1.3.0 --out sick.bin >/dev/null
"$TERND" sim mkimage --health ok --size 100K --version 1.4.0 --out small.bin >/dev/null
mk() { "$TERN" release create --key "$1" --board "$2" --version "$3" --sequence "$4" \
	--firmware "$5" --out "$6" >/dev/null; }
mk signing.key sim 1.2.0 2 ok.bin ok.tern
mk signing.key sim 1.3.0 3 sick.bin sick.tern
mk signing.key other-board 1.4.0 4 small.bin board.tern
mk other.key sim 1.4.0 4 small.bin forged.tern
mk signing.key sim 1.4.0 4 small.bin small.tern
KR=(--keyring signing.pub)

# --- install, trial, confirm
run "flash: installs, reboots, confirms" 0 "${KR[@]}" --dir devs -- "$TERN" usb flash ok.tern
check "flash reports confirmed in slot B" grep -qx "EMU00001 runs 1.2.0 in slot B: confirmed" out.txt
check "flash: progress summary" grep -qE "^EMU00001: sent 1\.0 MiB in" out.txt
eff=$(grep -oE '[0-9.]+ bytes on the wire per payload byte' out.txt | cut -d' ' -f1)
check "protocol efficiency at most 1.01 ($eff)" /usr/bin/python3 -c "import sys; sys.exit(not 1.0 <= float('$eff') <= 1.01)"
check "ternd sees slot B 1.2.0 confirmed" \
	[ "$(status_of devs/EMU00001 | field 'd["state"] + " " + d["slots"]["B"]["version"]')" = "confirmed 1.2.0" ]
run "status after flash" 0 "${KR[@]}" --dir devs -- "$TERN" usb status
check "status: running 1.2.0 in slot B" grep -q "^running: 1.2.0 (sequence 2) in slot B" out.txt

# --- refusals
run "same release again: refused" 1 "${KR[@]}" --dir devs -- "$TERN" usb flash ok.tern
check "not newer, in words" grep -q "refused 1.2.0 ok.tern: the release is not newer" err.txt
run "wrong board: refused" 1 "${KR[@]}" --dir devs --verbose -- "$TERN" usb flash board.tern
check "wrong board: before a byte was sent" grep -q "is for board other-board, but EMU00001 is a 'sim' board; nothing was sent" err.txt
check "wrong board: the device saw only HELLO" grep -q "EMU00001: 1 frames, 0 damaged" err.txt
run "unknown key: refused" 1 "${KR[@]}" --dir devs -- "$TERN" usb flash forged.tern
check "unknown key, in words" grep -q "refused 1.4.0 forged.tern: signed by a key this device" err.txt
check "refusals left the device as it was" \
	[ "$(status_of devs/EMU00001 | field 'd["state"] + " " + d["running_version"]')" = "confirmed 1.2.0" ]

# --- rollback of an unhealthy image
run "unhealthy image: rolled back" 1 "${KR[@]}" --dir devs -- "$TERN" usb flash sick.tern
check "rollback reported with its reason" grep -q "EMU00001 rolled back to 1.2.0 in slot B: the new image failed its health check" err.txt
check "ternd: rolled back, 1.2.0 runs" \
	[ "$(status_of devs/EMU00001 | field 'd["state"] + " " + d["running_version"]')" = "rolled-back 1.2.0" ]

# --- no udevd: no hotplug event reaches libusb, and flash still follows the reboot (a
#     fresh scan finds the device again by serial); a device that stays away is reported
run "no hotplug events: a rollback is seen" 1 "${KR[@]}" --no-uevents --dir nohp -- "$TERN" usb flash sick.tern
check "no hotplug: rollback with its reason" grep -q "EMU00001 rolled back to 1.0.0 in slot A: the new image failed its health check" err.txt
run "no hotplug events: flash follows the reboot" 0 "${KR[@]}" --no-uevents --dir nohp -- \
	"$TERN" usb flash small.tern --wait-confirm
check "no hotplug: confirmed, seen by the host" grep -qx "EMU00001 runs 1.4.0 in slot B: confirmed" out.txt
run "a device that does not come back" 1 "${KR[@]}" --boot-ms 2500 --dir away -- "$TERN" usb flash small.tern --wait 1
check "did not come back, in words" grep -qx "tern usb flash: device EMU00001 did not come back within 1 s after its reboot; check its console, then 'tern usb status --serial EMU00001'" err.txt
check "it had taken the release before it left" grep -q "EMU00001: 1.4.0 staged; rebooting into its trial" out.txt

# --- two devices: --serial, and the other one untouched
run "two devices, no --serial: refused" 1 "${KR[@]}" --devices 2 --dir two -- "$TERN" usb flash ok.tern
check "several devices, in words" grep -q "several tern devices are connected" err.txt
run "two devices, --serial EMU00002" 0 "${KR[@]}" --devices 2 --dir two -- "$TERN" usb flash ok.tern --serial EMU00002
check "EMU00002 updated" [ "$(status_of two/EMU00002 | field 'd["running_version"]')" = 1.2.0 ]
check "EMU00001 untouched" [ "$(status_of two/EMU00001 | field 'd["running_version"]')" = 1.0.0 ]

# --- a release still whole in the inactive slot: staged at the offer, no bytes sent
run "flash 1.2.0 into B" 0 "${KR[@]}" --dir kept -- "$TERN" usb flash ok.tern
"$TERND" sim install kept/EMU00001 small.tern >/dev/null && "$TERND" sim reboot kept/EMU00001 >/dev/null &&
	"$TERND" sim install kept/EMU00001 ok.tern --revert >/dev/null && "$TERND" sim reboot kept/EMU00001 >/dev/null
check "1.4.0 into A, then a revert to 1.2.0 (B); A keeps 1.4.0, good" \
	[ "$(status_of kept/EMU00001 | field 'd["running_version"], d["slots"]["A"]["version"], d["slots"]["A"]["state"]')" = "('1.2.0', '1.4.0', 'good')" ]
run "flash 1.4.0 again over USB" 0 "${KR[@]}" --dir kept -- "$TERN" usb flash small.tern
check "... confirmed in slot A" grep -qx "EMU00001 runs 1.4.0 in slot A: confirmed" out.txt
check "... without a data transfer (no progress summary)" sh -c '! grep -q "^EMU00001: sent" out.txt'

# --- going back: --revert (signed, not below the floor), from the inactive slot if there
run "flash the older 1.2.0 (in slot B) without --revert: refused" 1 "${KR[@]}" --dir kept -- \
	"$TERN" usb flash ok.tern
check "... not newer, and how to go back" grep -qx "tern usb flash: EMU00001 refused 1.2.0 ok.tern: the release is not newer than what the device runs; to go back to it, flash it with --revert" err.txt
run "flash 1.2.0 --revert" 0 "${KR[@]}" --dir kept -- "$TERN" usb flash ok.tern --revert
check "... confirmed in slot B" grep -qx "EMU00001 runs 1.2.0 in slot B: confirmed" out.txt
check "... from the inactive slot: no data transfer" sh -c '! grep -q "^EMU00001: sent" out.txt'
check "... ternd sees 1.2.0 confirmed in B, 1.4.0 kept in A" \
	[ "$(status_of kept/EMU00001 | field 'd["state"], d["running_version"], d["slots"]["A"]["version"]')" = "('confirmed', '1.2.0', '1.4.0')" ]
mk signing.key sim 1.1.0 1 small.bin older.tern
run "--revert to 1.1.0, in no slot: sent and installed" 0 "${KR[@]}" --dir kept -- \
	"$TERN" usb flash older.tern --revert
check "... confirmed in slot A" grep -qx "EMU00001 runs 1.1.0 in slot A: confirmed" out.txt
check "... after a transfer" grep -q "^EMU00001: sent" out.txt
run "--revert does not pass an untrusted signature" 1 "${KR[@]}" --dir kept -- \
	"$TERN" usb flash forged.tern --revert
check "... refused: unknown key" grep -q "refused 1.4.0 forged.tern: .*key" err.txt
"$TERN" release create --key signing.key --board sim --version 1.5.0 --sequence 5 \
	--security-counter 3 --firmware small.bin --out floor.tern >/dev/null
run "a release that raises the security floor to 3" 0 "${KR[@]}" --dir kept -- "$TERN" usb flash floor.tern
run "--revert below the floor (1.2.0 has counter 0): refused" 1 "${KR[@]}" --dir kept -- \
	"$TERN" usb flash ok.tern --revert
check "... refused: below the floor" grep -q "refused 1.2.0 ok.tern: .*floor" err.txt
check "... and it still runs 1.5.0" \
	[ "$(status_of kept/EMU00001 | field 'd["state"], d["running_version"]')" = "('confirmed', '1.5.0')" ]

# --- unplugged mid-transfer, plugged back, rerun: resumes
# A random point inside the data frames (HELLO, OFFER and the index come first; 1 MiB is
# 64 frames); printed so a failure can be replayed.
cut=$((8 + RANDOM % 53))
echo "     (unplugged at bulk OUT transfer $cut)"
run "unplug at transfer $cut, then rerun" 0 "${KR[@]}" --dir unplug --unplug-after $cut -- sh -c \
	"'$TERN' usb flash ok.tern 2>first.err; echo first=\$?; sleep 0.3; '$TERN' usb flash ok.tern"
check "first run: unplugged, told to rerun" grep -q "was unplugged or stopped answering after .* run the same command again: it resumes" first.err
check "first run failed" grep -qx "first=1" out.txt
check "second run resumed" grep -qE "^EMU00001: resuming: [0-9.]+ KiB of the release are on the device already" out.txt
check "second run confirmed" grep -qx "EMU00001 runs 1.2.0 in slot B: confirmed" out.txt

# --- interrupted (Ctrl-C or SIGTERM) mid-transfer: tern stops at a frame boundary, lets
#     the device go, says how to go on; the rerun in the same session resumes. The signal
#     comes once the device has verified a chunk (at "downloading" alone it could come
#     before the first byte, and then there is nothing to resume).
"$TERND" sim mkimage --health ok --size 7M --version 1.5.0 --out big.bin >/dev/null
mk signing.key sim 1.5.0 5 big.bin big.tern
cat >intr.sh <<EOF
"$TERN" usb flash big.tern 2>intr.err & p=\$!
i=0
while [ \$i -lt 1000 ] && ! "$TERND" sim status intr/EMU00001 --json 2>/dev/null | grep -qE '"state": "downloading".*"verified": [1-9]'; do
	sleep 0.01; i=\$((i + 1))
done
kill -TERM \$p; wait \$p; echo first=\$?
"$TERN" usb flash big.tern
EOF
run "interrupted, then run again in the same session" 0 "${KR[@]}" --dir intr -- sh intr.sh
check "interrupted: exit 130" grep -qx "first=130" out.txt
check "interrupted, in words" grep -qE "^tern usb flash: interrupted after [0-9.]+ [KM]iB of 7\.0 MiB were on EMU00001; run the same command again: it resumes where it stopped$" intr.err
check "the rerun resumed" grep -qE "^EMU00001: resuming: [0-9.]+ [KM]iB of the release are on the device already" out.txt
check "the rerun confirmed" grep -qx "EMU00001 runs 1.5.0 in slot B: confirmed" out.txt

# --- flash --no-reboot, then flash again: the same release only needs its reboot; another
#     one is refused with what to do
run "staged already: the same release is rebooted into" 0 "${KR[@]}" --dir again -- sh -c \
	"'$TERN' usb flash small.tern --no-reboot && '$TERN' usb flash small.tern --no-reboot && '$TERN' usb flash small.tern"
check "staged already, said" grep -qx "EMU00001: 1.4.0 staged and activated already; it starts on trial at the next boot" out.txt
check "rebooted into the staged release" grep -qx "EMU00001: 1.4.0 staged already; rebooting into its trial" out.txt
check "and confirmed" grep -qx "EMU00001 runs 1.4.0 in slot B: confirmed" out.txt
run "another release staged: refused, with what to do" 1 "${KR[@]}" --dir again2 -- sh -c \
	"'$TERN' usb flash ok.tern --no-reboot && '$TERN' usb flash small.tern"
check "staged, in words" grep -qx "tern usb flash: EMU00001 refused 1.4.0 small.tern: another update is in progress: it has 1.2.0 staged for its next boot; reboot it into that trial first ('tern usb reboot --serial EMU00001'), then flash again" err.txt
run "another release half-installed: refused, with what to do" 1 "${KR[@]}" --dir again3 --unplug-after 20 -- sh -c \
	"'$TERN' usb flash ok.tern 2>/dev/null; sleep 0.3; '$TERN' usb flash small.tern"
check "half-installed, in words" grep -qE "^tern usb flash: EMU00001 refused 1.4.0 small.tern: another update is in progress: it is installing 1.2.0 \([0-9]+ of 64 chunks so far\); let it finish, or finish it with 'tern usb flash' and that release \(it resumes\), then flash this one$" err.txt

# --- damaged frames during the transfer are resent
run "damaged DATA frames" 0 "${KR[@]}" --dir crc --corrupt-out 7 --corrupt-in 9 -- "$TERN" usb flash ok.tern
check "still confirmed" grep -qx "EMU00001 runs 1.2.0 in slot B: confirmed" out.txt

# --- --no-reboot, then reboot by hand
run "--no-reboot" 0 "${KR[@]}" --dir manual -- sh -c \
	"'$TERN' usb flash small.tern --no-reboot && '$TERN' usb status && '$TERN' usb reboot && '$TERN' usb status"
check "staged and activated" grep -q "EMU00001: 1.4.0 staged and activated" out.txt
check "before the reboot: staged, 1.0.0 runs" grep -q "^state:   staged" out.txt
check "after the reboot: confirmed" grep -q "^state:   confirmed" out.txt
check "after the reboot: 1.4.0 runs" grep -q "^running: 1.4.0 (sequence 4) in slot B" out.txt

# --- confirm: only a trial can be confirmed (the sim decides its trials at boot)
run "confirm with nothing on trial: refused" 1 "${KR[@]}" --dir devs -- "$TERN" usb confirm
check "confirm refusal, in words" grep -q "only a release on trial can be confirmed" err.txt
for c in list status flash reboot confirm provision; do
	if "$TERN" usb $c --help | grep -q "^usage: tern usb $c"; then ok "help: usb $c"; else bad "help: usb $c"; fi
done

# --- provision: a blank device takes its id, keys and configuration; changing them needs a
#     request signed by a key it trusts (bound to its serial)
"$TERN" key generate --out fleet.key >/dev/null
mk fleet.key sim 1.2.0 2 ok.bin fleet.tern
printf 'broker=mqtts://broker.example:8883\n' >dev.conf
run "provision a blank device" 0 "${KR[@]}" --dir prov -- "$TERN" usb provision --id dev-1 \
	--keyring fleet.pub --config dev.conf
check "provision says what it did" grep -qx "EMU00001 provisioned as dev-1 (generation 1): 1 trusted key(s), configuration written" out.txt
check "device id kept by the device" grep -qx "dev-1" prov/EMU00001/device_id
check "configuration kept by the device" cmp -s dev.conf prov/EMU00001/provisioned.conf
check "provision recorded it in the inventory" grep -qx "dev-1 recorded in tern.db: 'tern devices' lists it" out.txt
"$TERN" devices --db tern.db --json >devices.json 2>&1
check "tern devices lists it before it first connects" \
	grep -q '^{"id":"dev-1","board":"sim","version":"1.0.0",' devices.json
check "never heard over MQTT: online null" grep -q '"id":"dev-1".*"online":null' devices.json
check "a provisioned event in the audit trail" [ "$(sqlite3 tern.db \
	"SELECT count(*) FROM events WHERE device_id='dev-1' AND kind='provisioned' AND detail LIKE '%serial EMU00001%'")" = 1 ]
run "list shows the device id" 0 "${KR[@]}" --dir prov -- "$TERN" usb list --json
check "json: device_id and generation" grep -q '"device_id": "dev-1", "provision_generation": 1,' out.txt
run "again without --key: refused" 1 "${KR[@]}" --dir prov -- "$TERN" usb provision --id dev-2 --keyring fleet.pub
check "already provisioned, in words" grep -q "is provisioned already (as dev-1); to change it, sign the request with --key" err.txt
run "signed by a key it does not trust: refused" 1 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-2 --keyring fleet.pub --key signing.key
check "untrusted signer, in words" grep -q "refused: signed by a key this device" err.txt
run "releases now need the new key" 1 "${KR[@]}" --dir prov -- "$TERN" usb flash ok.tern
run "a release signed with the provisioned key installs" 0 "${KR[@]}" --dir prov -- "$TERN" usb flash fleet.tern
run "re-provision signed by a trusted key" 0 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-2 --keyring fleet.pub --keyring signing.pub --key fleet.key
check "new id" grep -qx "dev-2" prov/EMU00001/device_id
check "provision says the previous id leaves the inventory" \
	grep -qx "dev-1 (the device's previous id) removed from 'tern devices'; its history stays, with a 'replaced' event" out.txt
check "the device keeps its provisioning generation (plain 1, then signed 2)" grep -qx 2 prov/EMU00001/provision_gen
run "a signed request of an old generation (a replay): refused" 1 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-9 --keyring fleet.pub --key fleet.key --generation 2
check "replay, in words" grep -q "EMU00001 refused a request of generation 2: it has taken generation 2 already" err.txt
check "the replay changed nothing" grep -qx "dev-2" prov/EMU00001/device_id
"$TERN" devices --db tern.db >devices.txt 2>&1
check "re-provisioned: the new id in tern devices, with what it runs" \
	grep -qE '^dev-2 +sim +1\.2\.0 +B +confirmed ' devices.txt
check "... and the old id is gone from it (one row for the serial)" bash -c '! grep -q "^dev-1 " devices.txt'
check "a replaced event on the old id names the new one" [ "$(sqlite3 tern.db \
	"SELECT detail FROM events WHERE device_id='dev-1' AND kind='replaced'")" = "re-provisioned over USB as dev-2 (serial EMU00001)" ]
check "the old id's history stays" [ "$(sqlite3 tern.db \
	"SELECT count(*) FROM events WHERE device_id='dev-1' AND kind='provisioned'")" = 1 ]
# A board that had connected as dev-1 left retained messages under that id in the broker,
# which tern usb provision does not reach: a later watch keeps them in dev-1's history
# but does not list dev-1 again - unless a report was made after the replacement (a board
# given the id elsewhere).
# state_msg ID SECONDS-FROM-NOW FILE: a device state as a board reports it (cbor2)
state_msg() {
	/usr/bin/python3 -c 'import cbor2, sys, time
slot = {1: "sim-1.2.0-2", 2: "1.2.0", 3: 2, 4: True}
open(sys.argv[3], "wb").write(cbor2.dumps({1: sys.argv[1], 2: "sim", 3: 5, 4: 1, 5: [{}, slot],
    10: 0, 11: int(time.time()) + int(sys.argv[2]), 12: 0}))' "$@"
}
if broker_start "$work/broker"; then
	state_msg dev-1 -60 old-state.bin
	mosquitto_pub -L "$BROKER_URL/tern/dev/dev-1/state" -r -q 1 -f old-state.bin
	mosquitto_pub -L "$BROKER_URL/tern/dev/dev-1/online" -r -q 1 -m offline
	TERN_DB=tern.db "$TERN" watch --duration 1 --broker "$BROKER_URL" >watch.txt 2>&1
	"$TERN" devices --db tern.db >devices.txt 2>&1
	check "a watch that gets the replaced id's retained state does not list it again" \
		bash -c '! grep -q "^dev-1 " devices.txt && grep -qE "^dev-2 " devices.txt'
	check "... it is in dev-1's history, and the watch says why it is not listed" bash -c \
		"[ \"\$(sqlite3 tern.db \"SELECT count(*) FROM device_states WHERE device_id='dev-1'\")\" = 1 ] && grep -q 'dev-1 state confirmed.*(sent before the id was replaced over USB: history only)' watch.txt"
	cp tern.db relist.db
	state_msg dev-1 5 new-state.bin
	mosquitto_pub -L "$BROKER_URL/tern/dev/dev-1/state" -r -q 1 -f new-state.bin
	TERN_DB=relist.db "$TERN" watch --duration 1 --quiet --broker "$BROKER_URL" >/dev/null 2>&1
	check "... a report made after the replacement lists the id again" \
		bash -c '"$1" devices --db relist.db | grep -q "^dev-1 "' _ "$TERN"
	broker_stop
else
	bad "start mosquitto"
fi
prov_gen() { sqlite3 "$1" "SELECT generation FROM provisioning WHERE device_id='$2'"; }
check "the inventory keeps the last provisioning generation per id" \
	[ "$(prov_gen tern.db dev-1)/$(prov_gen tern.db dev-2)" = "1/2" ]

# --- the inventory is the authority for the provisioning generation
run "provisioned with another inventory (--generation 3)" 0 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-2 --keyring fleet.pub --key fleet.key --db elsewhere.db --generation 3
check "the other inventory recorded generation 3" [ "$(prov_gen elsewhere.db dev-2)" = 3 ]
run "a device provisioned elsewhere: refused" 1 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-2 --keyring fleet.pub --key fleet.key
check "provisioned elsewhere, in words" grep -qx "tern usb provision: EMU00001 (dev-2) has taken provisioning generation 3, but tern.db gave dev-2 generation 2 at most: it was provisioned elsewhere; check which inventory is right, then give --generation N (above 3) to go on; nothing was sent" err.txt
check "refused before sending: the device kept generation 3" grep -qx 3 prov/EMU00001/provision_gen
run "an inventory that never provisioned the id: refused" 1 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-2 --keyring fleet.pub --key fleet.key --db fresh.db
check "never provisioned here, in words" grep -q "but fresh.db never provisioned dev-2: it was provisioned elsewhere" err.txt
run "--generation overrides the refusal" 0 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-2 --keyring fleet.pub --keyring signing.pub --key fleet.key --generation 4
check "generation 4 taken" grep -qx "EMU00001 provisioned as dev-2 (generation 4): 2 trusted key(s)" out.txt
check "the inventory recorded generation 4" [ "$(prov_gen tern.db dev-2)" = 4 ]
check "the audit trail names the generation" [ "$(sqlite3 tern.db \
	"SELECT count(*) FROM events WHERE device_id='dev-2' AND kind='provisioned' AND detail LIKE '%generation 4)'")" = 1 ]
# A device that lost its files is blank again and reports generation 0: the inventory's
# number goes on (not 1), so an old signed request of generation 4 stays refused.
rm prov/EMU00001/device_id prov/EMU00001/provision_gen
run "a device that lost its identity: provisioned again, plain" 0 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-2 --keyring fleet.pub --keyring signing.pub
check "max(inventory, device) + 1: generation 5" grep -qx "EMU00001 provisioned as dev-2 (generation 5): 2 trusted key(s)" out.txt
check "the device keeps generation 5" grep -qx 5 prov/EMU00001/provision_gen
run "an old signed request (generation 4) after that: refused" 1 "${KR[@]}" --dir prov -- "$TERN" usb provision \
	--id dev-9 --keyring fleet.pub --key fleet.key --generation 4
check "old generation, in words" grep -q "EMU00001 refused a request of generation 4: it has taken generation 5 already" err.txt
run "inventory not usable: refused before the device is touched" 1 "${KR[@]}" --dir prov3 -- "$TERN" usb provision \
	--id dev-3 --keyring fleet.pub --db /nonexistent/tern.db
check "inventory not usable, in words" grep -qx "tern usb provision: the inventory /nonexistent/tern.db cannot be used; nothing was sent to EMU00001" err.txt
check "the device stayed blank" [ ! -e prov3/EMU00001/device_id ]
run "TERN_DB names the inventory" 0 "${KR[@]}" --dir prov3 -- env TERN_DB=other.db "$TERN" usb provision \
	--id dev-3 --keyring signing.pub
check "recorded in TERN_DB" grep -qx "dev-3 recorded in other.db: 'tern devices' lists it" out.txt
check "TERN_DB: generation 1" [ "$(prov_gen other.db dev-3)" = 1 ]
# Recording fails after the device took the request (here a trigger refuses the write):
# said so with the generation to give when running it again.
sqlite3 broken.db "CREATE TABLE provisioning(device_id TEXT PRIMARY KEY, generation INTEGER NOT NULL,
	serial TEXT, provisioned_at INTEGER NOT NULL); CREATE TRIGGER full BEFORE INSERT ON provisioning
	BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
run "recording fails after provisioning: said so" 1 "${KR[@]}" --dir prov3 -- "$TERN" usb provision \
	--id dev-3 --keyring signing.pub --key signing.key --db broken.db --generation 2
check "unrecorded, in words" grep -qx "tern usb provision: EMU00001 is provisioned (generation 2), but recording it in broken.db failed; once it can be written, run the same command again with --key and --generation 3" err.txt
check "nothing half-recorded" [ "$(sqlite3 broken.db "SELECT count(*) FROM events")" = 0 ]
sqlite3 broken.db "DROP TRIGGER full"
run "run again as told: recorded" 0 "${KR[@]}" --dir prov3 -- "$TERN" usb provision \
	--id dev-3 --keyring signing.pub --key signing.key --db broken.db --generation 3
check "recorded: generation 3" [ "$(prov_gen broken.db dev-3)" = 3 ]
check "ternd reads the provisioned keyring" sh -c "'$TERND' sim status prov/EMU00001 >/dev/null"
run "bad id refused before any device is touched" 2 --dir prov2 -- "$TERN" usb provision --id "a b" --keyring fleet.pub
check "bad id, in words" grep -q "letters, digits" err.txt

# --- valgrind over a whole flash (umockdev's own buffer traffic suppressed)
run "valgrind: flash" 0 "${KR[@]}" --dir vg -- valgrind -q --error-exitcode=9 --leak-check=full \
	--errors-for-leak-kinds=definite --suppressions="$ROOT/tests/usb/umockdev.supp" \
	"$TERN" usb flash ok.tern

check "no umockdev or emulator folders left" [ -z "$(ls -A "$TMPDIR")" ]
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
