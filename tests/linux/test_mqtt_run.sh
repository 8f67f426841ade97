#!/usr/bin/env bash
# `ternd run` as a daemon updated over MQTT (docs/linux.md, "run"): the files-uboot
# example with [mqtt] pointing at a real mosquitto (tests/lib/broker.sh), driven by the
# host's own commands (tern release create, publish, deploy, watch, devices).
#   1. ternd run serves MQTT; tern deploy 2.0.0: it downloads, activates, runs the
#      reboot command (the example's ./boot, which plays the bootloader) and exits as a
#      reboot ends it; started again, the trial passes and is confirmed; the device
#      reports 2.0.0 confirmed over MQTT and `ternd status --json` agrees.
#   2. 3.0.0 fails its health check: rolled back to 2.0.0 and reported over MQTT.
#   3. SIGTERM: a clean stop that publishes "offline"; --duration ends it too; [mqtt]
#      client_id and keepalive reach the broker.
#   4. The shipped broker configuration: TLS, a password per client, the ACL (the device
#      may only write its own topics): ca, username and password_file; 4.0.0 confirmed.
#   5. ternd killed in the middle of a download (a file size limit stops it 1200 KiB into
#      the slot): started again, it resumes from the agent's journal and finishes.
#   6. tern deploy --revert to 4.0.0, still whole in slot A: staged from the slot (no
#      download), reboot, trial, confirmed and reported.
# Every process started here is stopped by its PID, also on failure.
# Prints "N passed, N failed".
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$HERE/../../boards/linux/examples/files-uboot
TERN=$BUILD/tern
TERND=$BUILD/ternd
PY=/usr/bin/python3
source "$HERE/../lib/broker.sh"

work=$(mktemp -d /tmp/tern-linux-mqtt.XXXXXX)
chmod 711 "$work" # mosquitto, started as root, runs as user mosquitto
ternd_pid=""
watch_pid=""
cleanup() {
	[ -n "$ternd_pid" ] && kill "$ternd_pid" 2>/dev/null && wait "$ternd_pid" 2>/dev/null
	[ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
	broker_stop
	[ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
export HOME=$work TERN_DB=$work/tern.db
unset TERN_CONFIG TERN_BROKER TERN_USERNAME TERN_PASSWORD TERN_CAFILE TERN_CERT TERN_CERT_KEY TERN_PREFIX

# wait_until SECONDS CMD...: polls CMD every 0.1 s

if ! broker_start "$work/broker"; then
	bad "start mosquitto"
	finish
fi
ok "mosquitto on 127.0.0.1:$BROKER_PORT"
URL=$BROKER_URL
"$TERN" watch --broker "$URL" --quiet --duration 300 >watch.out 2>watch.err &
watch_pid=$!
wait_until 5 grep -qs watching watch.err

# The device: the example folder, with [mqtt] pointing at the broker.
d=$work/dev
cp -r "$SRC" "$d"
"$TERN" key generate --out signing.key >/dev/null
printf '\n[mqtt]\nurl = %s\n' "$URL" >>"$d/ternd.conf"
if (cd "$work" && "$d/setup" --key "$work/signing.pub" >/dev/null); then ok "setup"; else bad "setup"; finish; fi
ID=example-uboot-1
T="$TERND --config $d/ternd.conf"
j() { $T status --json | $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# dev PYTHON-EXPR: EXPR over this device's row of `tern devices --json` (as x)
dev() {
	"$TERN" devices --json | $PY -c "import json,sys
x = ([x for x in json.load(sys.stdin) if x['id'] == '$ID'] + [None])[0]
print(($1) if x else None)" 2>/dev/null
}
dev_is() { [ "$(dev "$1")" = "$2" ]; }

for v in 2 3 4 5; do
	size=300000
	[ $v = 5 ] && size=2000000 # long enough to be killed in the middle
	head -c $size /dev/urandom >fw-$v.bin
	"$TERN" release create --key signing.key --board example --version $v.0.0 --sequence $v \
		--chunk-size 4K --firmware fw-$v.bin --out r$v.tern >/dev/null || bad "release $v.0.0"
	[ $v -ge 4 ] || "$TERN" publish r$v.tern --broker "$URL" >/dev/null || bad "publish $v.0.0"
done

# run_start NAME: `ternd run` in the background, output in NAME.log
run_start() {
	$T run >"$1.log" 2>&1 &
	ternd_pid=$!
	run_log=$1.log
}
# run_exits SECONDS: waits for it to end by itself; its exit status in $run_rc
run_exits() {
	local i
	for i in $(seq 1 $(($1 * 10))); do
		if ! kill -0 "$ternd_pid" 2>/dev/null; then
			wait "$ternd_pid"
			run_rc=$?
			ternd_pid=""
			return 0
		fi
		sleep 0.1
	done
	return 1
}
serving() { grep -qs "serving MQTT" "$run_log"; }

# ------------------------------------------------------------ 1. an update to 2.0.0
run_start run1
check "ternd run serves MQTT" wait_until 5 serving
check "the device reports itself: idle on 1.0.0, online" wait_until 5 dev_is \
	'x["state"], x["version"], x["online"]' "('idle', '1.0.0', True)"
"$TERN" deploy example-2.0.0-2 --key signing.key --device "$ID" --broker "$URL" >deploy.out 2>&1 ||
	bad "deploy 2.0.0" "$(cat deploy.out)"
if run_exits 20; then
	same "ternd downloads, activates, runs the reboot command and exits (0)" 0 "$run_rc"
else
	bad "ternd exits for the reboot" "$(cat "$run_log")"
fi
check "the log says why" grep -q "rebooting: activated" "$run_log"
same "the reboot command played the bootloader: slot B on trial" "B" \
	"$(sed -n 's/.*tern.slot=\(.\).*/\1/p' "$d/cmdline")"
cmp -s -n 300000 fw-2.bin "$d/slots/firmware-b.img" && ok "slot B holds 2.0.0's bytes" ||
	bad "slot B holds 2.0.0's bytes"
check "offline reported when it went down for the reboot" wait_until 5 dev_is 'x["online"]' False
check "transport record kept in the state folder" grep -q "^generation=1$" "$d/state/mqtt"

run_start run2
check "after the reboot: trial, health passes, confirmed; serving again" wait_until 10 serving
check "run log: confirmed" grep -q "health check passed; confirmed" "$run_log"
check "the device reports 2.0.0 confirmed on slot B, online, no error" wait_until 5 dev_is \
	'x["state"], x["version"], x["slot"], x["online"], x["last_error"]' \
	"('confirmed', '2.0.0', 'B', True, None)"
same "ternd status --json agrees" "confirmed 2.0.0 B False" \
	"$(j 'd["state"], d["running_version"], d["running_slot"], d["running_trial"]')"
check "the audit trail has the download (transitions up to staged)" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) from events where device_id='$ID' and kind='transition' and to_state='staged'")" -ge 1 ]
check "the audit trail has the trial's outcome: staged -> confirmed" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) from events where device_id='$ID' and kind='transition' and from_state='staged' and to_state='confirmed' and release_id='example-2.0.0-2' and detail like 'trial passed%'")" -eq 1 ]
check "ternd keeps serving (no reboot loop)" kill -0 "$ternd_pid"

# ------------------------------------------------------------ 2. an unhealthy 3.0.0
echo "database will not start" >"$d/health-fail"
"$TERN" deploy example-3.0.0-3 --key signing.key --device "$ID" --broker "$URL" >deploy.out 2>&1 ||
	bad "deploy 3.0.0" "$(cat deploy.out)"
if run_exits 20; then same "3.0.0 activated: ternd reboots and exits" 0 "$run_rc"; else bad "ternd exits for the 3.0.0 reboot"; fi
same "the bootloader starts A (3.0.0) on trial" "A" "$(sed -n 's/.*tern.slot=\(.\).*/\1/p' "$d/cmdline")"
# The trial: health fails, rolled back, the reboot command goes back to B; ternd exits.
run_start run3
if run_exits 20; then same "trial boot: health fails, rolled back, reboot" 0 "$run_rc"; else bad "the failed trial reboots"; fi
check "run log: rolled back with the command's output" grep -q "database will not start" "$run_log"
same "back on B" "B" "$(sed -n 's/.*tern.slot=\(.\).*/\1/p' "$d/cmdline")"
run_start run4
check "after the rollback: serving again" wait_until 10 serving
check "the device reports rolled-back on 2.0.0, health-check-failed" wait_until 5 dev_is \
	'x["state"], x["version"], x["slot"], x["last_error"]' \
	"('rolled-back', '2.0.0', 'B', 'health-check-failed')"
same "ternd status --json agrees" "rolled-back 2.0.0 B health-check-failed" \
	"$(j 'd["state"], d["running_version"], d["running_slot"], d["last_reason"]')"
check "the audit trail has the rollback: staged -> rolled-back, health-check-failed" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) from events where device_id='$ID' and kind='transition' and from_state='staged' and to_state='rolled-back' and release_id='example-3.0.0-3' and status='health-check-failed'")" -eq 1 ]
check "event counters never repeat across the reboots" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) - count(distinct device_seq) from events where device_id='$ID' and device_seq is not null")" -eq 0 ]
rm -f "$d/health-fail"

# ------------------------------------------------------------ 3. stopping
kill -TERM "$ternd_pid"
if run_exits 5; then same "SIGTERM: a clean stop (exit 0)" 0 "$run_rc"; else bad "SIGTERM stops ternd"; fi
check "stopped: offline reported" wait_until 5 dev_is 'x["online"]' False
check "stopped: no last will needed (clean disconnect in the broker log)" \
	grep -q "Client $ID disconnected\.$\|Client $ID disconnected$" "$BROKER_LOG"
$T run --duration 1 >run5.log 2>&1
same "--duration 1 ends it (exit 0)" 0 "$?"
check "it served for that second" grep -q "duration reached" run5.log
check "by default the client id is the device id, keepalive 30 s (broker log)" \
	grep -q "as $ID (p[0-9], c1, k30)" "$BROKER_LOG"
# [mqtt] client_id and keepalive reach the broker: its log names the client and keepalive.
printf 'client_id = lab-gw-7\nkeepalive = 45\n' >>"$d/ternd.conf"
$T run --duration 2 >run5b.log 2>&1
same "client_id, keepalive: --duration 2 ends it (exit 0)" 0 "$?"
check "the broker saw client id lab-gw-7 with keepalive 45" \
	grep -q "as lab-gw-7 (p[0-9], c1, k45)" "$BROKER_LOG"
check "run says which client id and keepalive" grep -q "client id lab-gw-7, keepalive 45 s" run5b.log
sed -i -e '/^client_id = /d' -e '/^keepalive = /d' "$d/ternd.conf"
# The state carries the device's last outcome event (docs/mqtt.md, key 13), from its
# record after a restart: here the roll back of 3.0.0, three runs ago.
state_hex=$(mosquitto_sub -L "$URL/tern/dev/$ID/state" -C 1 -W 5 -F %x 2>/dev/null)
check "after restarts its retained state still carries its last outcome: the roll back of 3.0.0" \
	/usr/bin/python3 -c 'import cbor2, sys
s = cbor2.loads(bytes.fromhex(sys.argv[1]))
e = cbor2.loads(s[13])
sys.exit(not (e[4] == 0 and e[5] == 3 and e[6] == 6 and e[7] == "example-3.0.0-3"))' "$state_hex"

# ------------------------------------------------------------ 4. TLS, passwords, ACL
kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
watch_pid=""
broker_stop
if ! broker_start_tls "$work/tls" operator:op-secret "$ID:dev-secret"; then
	bad "start mosquitto with TLS"
	finish
fi
URL=$BROKER_URL
OP=(--broker "$URL" --username operator --password op-secret --cafile "$BROKER_CA")
"$TERN" watch "${OP[@]}" --quiet --duration 300 >watch2.out 2>watch2.err &
watch_pid=$!
wait_until 5 grep -qs watching watch2.err
"$TERN" publish r4.tern "${OP[@]}" >/dev/null || bad "publish 4.0.0 over TLS"
printf 'dev-secret\n' >"$d/mqtt-password"
sed -i -e "s|^url = .*|url = $URL|" "$d/ternd.conf"
printf 'ca = %s\nusername = %s\npassword_file = mqtt-password\n' "$BROKER_CA" "$ID" >>"$d/ternd.conf"
run_start run6
check "TLS: serving, reports 2.0.0 online" wait_until 10 dev_is 'x["version"], x["online"]' "('2.0.0', True)"
"$TERN" deploy example-4.0.0-4 --key signing.key --device "$ID" "${OP[@]}" >deploy.out 2>&1 ||
	bad "deploy 4.0.0" "$(cat deploy.out)"
if run_exits 20; then same "TLS: 4.0.0 downloaded through the ACL, reboot" 0 "$run_rc"; else bad "TLS: ternd exits for the reboot" "$(cat "$run_log")"; fi
run_start run7
check "TLS: after the reboot 4.0.0 confirmed and reported" wait_until 10 dev_is \
	'x["state"], x["version"], x["online"]' "('confirmed', '4.0.0', True)"
check "TLS: its events pass the ACL (staged -> confirmed of 4.0.0 recorded)" wait_until 5 eval \
	'[ "$(sqlite3 "$TERN_DB" "select count(*) from events where device_id='"'$ID'"' and to_state='"'confirmed'"' and release_id='"'example-4.0.0-4'"'")" -eq 1 ]'
kill -TERM "$ternd_pid"
if run_exits 5; then same "TLS: SIGTERM stops it" 0 "$run_rc"; else bad "TLS: SIGTERM stops it"; fi

# ------------------------------------------------------------ 5. killed mid-download
"$TERN" publish r5.tern "${OP[@]}" >/dev/null || bad "publish 5.0.0 over TLS"
{ (ulimit -f 1200; exec $T run) >run8.log 2>&1 & } 2>/dev/null
ternd_pid=$!
run_log=run8.log
wait_until 10 serving
"$TERN" deploy example-5.0.0-5 --key signing.key --device "$ID" "${OP[@]}" >deploy.out 2>&1 ||
	bad "deploy 5.0.0" "$(cat deploy.out)"
if run_exits 20 2>/dev/null; then same "killed mid-download (SIGXFSZ)" 153 "$run_rc"; else bad "killed mid-download"; fi
same "downloading, part verified, B not bootable" "downloading True 0" \
	"$(j 'd["state"], 0 < d["progress"]["verified"] < d["progress"]["chunks"]') $(cd "$d" && fw_printenv -c fw_env.config -n BOOT_B_LEFT)"
run_start run9
if run_exits 20; then same "started again: resumes, finishes, reboots" 0 "$run_rc"; else bad "resumed download reboots" "$(cat "$run_log")"; fi
run_start run10
check "5.0.0 confirmed and reported" wait_until 10 dev_is 'x["state"], x["version"], x["slot"]' \
	"('confirmed', '5.0.0', 'B')"
cmp -s -n 2000000 fw-5.bin "$d/slots/firmware-b.img" && ok "slot B holds 5.0.0's bytes" ||
	bad "slot B holds 5.0.0's bytes"
check "event counters never repeat across the kills and reboots" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) - count(distinct device_seq) from events where device_id='$ID' and device_seq is not null")" -eq 0 ]

# ------------------------------------------------------------ 6. revert to 4.0.0
"$TERN" deploy example-4.0.0-4 --revert --key signing.key --device "$ID" "${OP[@]}" >deploy.out 2>&1 ||
	bad "deploy --revert 4.0.0" "$(cat deploy.out)"
rgen=$(sed -n 's/.*generation \([0-9]*\)$/\1/p' deploy.out)
if run_exits 20; then same "revert: staged from slot A, activated, reboot" 0 "$run_rc"; else bad "revert reboots" "$(cat "$run_log")"; fi
same "the reboot command armed A" "A" "$(sed -n 's/.*tern.slot=\(.\).*/\1/p' "$d/cmdline")"
run_start run11
check "4.0.0 confirmed again and reported" wait_until 10 dev_is \
	'x["state"], x["version"], x["slot"]' "('confirmed', '4.0.0', 'A')"
check "... no download: its transitions are staged, confirmed" wait_until 5 eval \
	'[ "$(sqlite3 "$TERN_DB" "select group_concat(to_state) from (select to_state from events where device_id='"'$ID'"' and kind='"'transition'"' and generation=$rgen order by seq)")" = staged,confirmed ]'
same "ternd status --json: confirmed 4.0.0 on A, confirmed sequence 4, 5.0.0 good in B" \
	"confirmed 4.0.0 A 4 5.0.0 good" \
	"$(j 'd["state"], d["running_version"], d["running_slot"], d["confirmed_sequence"], d["slots"]["B"]["version"], d["slots"]["B"]["state"]')"
kill -TERM "$ternd_pid"
if run_exits 5; then same "SIGTERM stops it" 0 "$run_rc"; else bad "SIGTERM stops it"; fi

finish
