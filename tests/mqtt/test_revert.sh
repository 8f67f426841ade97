#!/usr/bin/env bash
# `tern deploy --revert` to one device running the real agent (`ternd fleet --devices 1`:
# a sim device with the agent's MQTT transport) through a real mosquitto, recorded by
# `tern watch`:
#   - a revert to a release in neither slot downloads it, trial, confirmed;
#   - a revert to the release still whole in the inactive slot is staged without a
#     download (no "downloading" transition), trial, confirmed;
#   - a revert below the security floor is refused, reported with its reason, and
#     changes nothing (even though that release is whole in the inactive slot).
# Prints the time of each revert (for docs/mqtt.md; never a pass/fail condition).
set -u
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TERN=$BUILD/tern
TERND=$BUILD/ternd
PY=/usr/bin/python3
source "$HERE/../lib/broker.sh"
source "$HERE/../lib/suite.sh"

work=$(mktemp -d /tmp/tern-revert-test.XXXXXX)
fleet_pid=""
watch_pid=""
cleanup() {
	[ -n "$fleet_pid" ] && kill "$fleet_pid" 2>/dev/null && wait "$fleet_pid" 2>/dev/null
	[ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
	broker_stop
	[ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
export HOME=$work TERN_DB=$work/tern.db
unset TERN_CONFIG TERN_BROKER TERN_USERNAME TERN_PASSWORD TERN_CAFILE TERN_CERT TERN_CERT_KEY TERN_PREFIX

q() { sqlite3 "$TERN_DB" "$1"; }
DEV=sim-0001
# dev: state, version, generation of the device as last recorded
dev() { q "select state || ' ' || version || ' ' || generation from devices where id='$DEV'"; }
# wait_dev WANT SECONDS: until dev prints WANT
dev_is() { [ "$(dev)" = "$1" ]; }
wait_dev() { wait_until "$2" dev_is "$1"; }
# deploy REL [ARGS]: deploys, sets $gen to the generation it printed and $t0 to the time
deploy() {
	local rel=$1
	shift
	t0=$(date +%s.%N)
	"$TERN" deploy "$rel" --key signing.key --device "$DEV" "$@" >out.txt 2>err.txt
	gen=$(sed -n 's/.*generation \([0-9]*\)$/\1/p' out.txt)
}
# transitions: the device's transitions for generation $gen, in order
transitions() {
	q "select group_concat(to_state, ',') from (select to_state from events where device_id='$DEV' and generation=$gen and kind='transition' order by seq)"
}
elapsed() { $PY -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)"; }

broker_start "$work/broker" || { bad "start mosquitto"; finish; }
export TERN_BROKER=$BROKER_URL
"$TERN" key generate --out signing.key >/dev/null
# rel NAME VERSION SEQ SC: a healthy sim image of 1.5 MiB in a release (96 chunks)
rel() {
	"$TERND" sim mkimage --health ok --version "$2" --size 1536K --out "$1.bin" >/dev/null &&
		"$TERN" release create --key signing.key --board sim --version "$2" --sequence "$3" \
			--security-counter "$4" --firmware "$1.bin" --out "$1.tern" >/dev/null &&
		"$TERN" publish "$1.tern" >/dev/null
}
rel r2 1.1.0 2 1 && rel r3 1.2.0 3 1 && rel r4 1.3.0 4 1 && rel r5 1.4.0 5 2
check "four releases published" [ "$(q "select count(*) from releases where complete=1")" -eq 4 ]

"$TERN" watch --quiet >watch.out 2>watch.err &
watch_pid=$!
for _ in $(seq 1 50); do grep -q watching watch.err && break; sleep 0.1; done
"$TERND" fleet --devices 1 --dir "$work/fleet" --broker "$BROKER_URL" --keyring signing.pub \
	>fleet.out 2>fleet.err &
fleet_pid=$!
for r in 1.1.0:sim-1.1.0-2 1.2.0:sim-1.2.0-3 1.3.0:sim-1.3.0-4; do
	deploy "${r#*:}"
	wait_dev "confirmed ${r%%:*} $gen" 30 || break
done
check "1.1.0, 1.2.0, 1.3.0 installed in turn: 1.3.0 confirmed" [ "$(dev)" = "confirmed 1.3.0 $gen" ]

# --- a revert to 1.1.0: in neither slot (1.2.0 and 1.3.0), downloaded
deploy sim-1.1.0-2 --revert
check "deploy --revert prints the action" grep -q "to $DEV: revert, activate now, generation $gen" out.txt
if wait_dev "confirmed 1.1.0 $gen" 60; then
	ok "revert to 1.1.0 (downloaded): confirmed, back on 1.1.0"
	echo "     time from deploy --revert to confirmed (download, 96 chunks): $(elapsed) s"
else
	bad "revert to 1.1.0 (downloaded)" "device: $(dev)"
fi
check "... it downloaded: a downloading transition for that generation" \
	[ "$(q "select count(*) from events where device_id='$DEV' and generation=$gen and kind='transition' and to_state='downloading'")" -ge 1 ]
check "... the desired state is a signed revert in the database" \
	[ "$(q "select action from desired where device_id='$DEV' and generation=$gen")" = revert ]

# --- 1.3.0 again: newer than 1.1.0, still whole in the other slot: no download
deploy sim-1.3.0-4
wait_dev "confirmed 1.3.0 $gen" 30
check "1.3.0 again: confirmed" [ "$(dev)" = "confirmed 1.3.0 $gen" ]
check "... from the slot: staged without a downloading transition" \
	[ "$(transitions)" = "staged,confirmed" ]

# --- a revert to 1.1.0 again: whole in the inactive slot now, the fast path
deploy sim-1.1.0-2 --revert
if wait_dev "confirmed 1.1.0 $gen" 30; then
	ok "revert to 1.1.0 (in the inactive slot): confirmed"
	echo "     time from deploy --revert to confirmed (from the slot, no download): $(elapsed) s"
else
	bad "revert to 1.1.0 (in the inactive slot)" "device: $(dev)"
fi
check "... no download: confirmed -> staged -> confirmed" \
	[ "$(transitions)" = "staged,confirmed" ]

# --- 1.4.0 (into the slot of 1.3.0) raises the floor to 2; a revert to 1.1.0 (counter
# 1, whole in the other slot) is refused, reported, and changes nothing
deploy sim-1.4.0-5
wait_dev "confirmed 1.4.0 $gen" 30
check "1.4.0 confirmed (security counter 2)" [ "$(dev)" = "confirmed 1.4.0 $gen" ]
before=$(q "select active_slot || ' ' || release_id || ' ' || floor from devices where id='$DEV'")
deploy sim-1.1.0-2 --revert
for _ in $(seq 1 100); do
	[ "$(q "select count(*) from events where device_id='$DEV' and generation=$gen and kind='refused'")" -ge 1 ] && break
	sleep 0.1
done
check "a revert below the floor is refused and reported: below-floor" \
	[ "$(q "select status || ': ' || detail from events where device_id='$DEV' and generation=$gen and kind='refused'")" = "below-floor: revert refused" ]
wait_dev "confirmed 1.4.0 $gen" 10
check "... the device still runs 1.4.0, confirmed (it reports the generation)" [ "$(dev)" = "confirmed 1.4.0 $gen" ]
check "... same slot, release and floor ($before)" [ "$(q "select active_slot || ' ' || release_id || ' ' || floor from devices where id='$DEV'")" = "${before:-none}" ]
check "... no transition for that generation" \
	[ "$(q "select count(*) from events where device_id='$DEV' and generation=$gen and kind='transition'")" -eq 0 ]

kill -TERM "$fleet_pid"
wait "$fleet_pid"
fleet_pid=""
"$TERND" sim status "$work/fleet/$DEV" --json >status.json
check "on the device: 1.4.0 confirmed, floor 2, 1.1.0 still good in the other slot" $PY -c '
import json
d = json.load(open("status.json"))
other = "A" if d["running_slot"] == "B" else "B"
assert (d["state"], d["running_version"], d["security_floor"], d["confirmed_sequence"]) == ("confirmed", "1.4.0", 2, 5), d
assert (d["slots"][other]["version"], d["slots"][other]["state"]) == ("1.1.0", "good"), d["slots"]
'
finish
