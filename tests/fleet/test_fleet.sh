#!/usr/bin/env bash
# End to end: `ternd fleet` (sim devices with the agent's MQTT transport) against a real
# mosquitto, driven by the real host commands (tern publish, deploy, watch, devices).
#   1. 50 devices (in 2 processes), one release: all CONFIRMED; tern devices --json
#      shows it. Forged, replayed and misaddressed desired states are refused, reported,
#      change nothing.
#   2. A release of more than 1020 chunks to 8 devices; the broker killed (-9) and
#      restarted mid-transfer (it comes back empty: the operator publishes again); one
#      device powered off mid-download, one loses its network, one crashes on its trial
#      boot: all finish, none installs twice, none re-downloads from zero, and every
#      resume fetches only the chunks still missing.
#   3. Devices offline when deployed converge when they connect; a chunk corrupted in
#      the broker is detected, reported, fetched again alone with backoff, and the
#      install succeeds once it is republished; a chunk that stays corrupt makes the
#      device give up after a bounded number of attempts, on its old image.
#   4. TLS, the ACL template and a password per device (--password-file).
#   5. TLS with a client certificate per device (--cert-dir), the CN as username.
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TERN=$BUILD/tern
TERND=$BUILD/ternd
PY=/usr/bin/python3
TOOL="$PY $HERE/../mqtt/mqtt_tool.py"
source "$HERE/../lib/broker.sh"

work=$(mktemp -d /tmp/tern-fleet-test.XXXXXX)
chmod 711 "$work" # the TLS broker, started as root, runs as user mosquitto
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


# fleet_start NAME ARGS...: ternd fleet in the background, JSON lines into NAME.out
fleet_start() {
	local name=$1
	shift
	"$TERND" fleet --broker "$URL" --json "$@" >"$name.out" 2>"$name.err" &
	fleet_pid=$!
	fleet_out=$name.out
}
# fleet_stop: SIGTERM, wait; the per-device lines are then in $fleet_out
fleet_stop() {
	kill -TERM "$fleet_pid" 2>/dev/null
	wait "$fleet_pid"
	local rc=$?
	fleet_pid=""
	return $rc
}
# last_status FIELD...: a value from the last status line, e.g. last_status states confirmed
last_status() {
	$PY - "$fleet_out" "$@" <<'EOF'
import json, sys
v = None
for line in open(sys.argv[1]):
    try:
        x = json.loads(line)
    except ValueError:
        continue
    if "devices" in x:
        v = x
for k in sys.argv[2:]:
    v = (v or {}).get(k, 0)
print(v or 0)
EOF
}
confirmed_is() { [ "$(last_status states confirmed)" -eq "$1" ]; }
settled_is() { [ "$(last_status settled)" -eq "$1" ]; }
# dev_field ID FIELD: from the per-device lines printed when the fleet stopped
dev_field() {
	$PY -c '
import json, sys
for line in open(sys.argv[1]):
    x = json.loads(line)
    if x.get("id") == sys.argv[2]:
        print(x[sys.argv[3]])
' "$fleet_out" "$1" "$2"
}
# all_devices PYTHON-EXPR: true when EXPR holds for every per-device line (as d)
all_devices() {
	$PY -c '
import json, sys
devs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"id\"")]
bad = [d["id"] for d in devs if not (eval(sys.argv[2]))]
if not devs or bad:
    sys.exit("no devices" if not devs else "fails for %s: %s" % (bad[:5], [d for d in devs if d["id"] in bad][:2]))
' "$fleet_out" "$1"
}
events_where() { sqlite3 "$TERN_DB" "select count(*) from events where $1"; }

if ! broker_start "$work/broker"; then
	bad "start mosquitto"
	finish
fi
ok "mosquitto on 127.0.0.1:$BROKER_PORT"
URL=$BROKER_URL
"$TERN" watch --broker "$URL" --quiet --duration 600 >watch.out 2>watch.err &
watch_pid=$!
wait_until 5 grep -qs watching watch.err

"$TERN" key generate --out signing.key >/dev/null
"$TERN" key generate --out other.key >/dev/null
mkrel() { # VERSION SEQUENCE SIZE OUT [HEALTH]
	"$TERND" sim mkimage --health "${5:-ok}" --size "$3" --version "$1" --out "fw-$1.bin" >/dev/null &&
		"$TERN" release create --key signing.key --board sim --version "$1" --sequence "$2" \
			--chunk-size 4K --firmware "fw-$1.bin" --out "$4" >/dev/null
}
mkrel 2.0.0 2 200K r2.tern
mkrel 3.0.0 3 4120K big.tern # 1030 chunks of 4 KiB
mkrel 4.0.0 4 200K r4.tern
mkrel 5.0.0 5 200K r5.tern
for r in r2 big r4 r5; do "$TERN" publish $r.tern --broker "$URL" >/dev/null || bad "publish $r"; done
check "releases published (big: 1030 chunks)" [ "$(sqlite3 "$TERN_DB" "select count(*) from releases where complete=1")" -eq 4 ]

# ---------------------------------------------------------------- 1. 50 devices
devs50=()
for i in $(seq 1 50); do devs50+=(--device "$(printf 'sim-%04u' "$i")"); done
fleet_start f1 --devices 50 --dir fleet1 --keyring signing.pub --processes 2
check "50 devices (in 2 processes) connect" wait_until 20 eval '[ "$(last_status connected)" -eq 50 ]'
# sched_policies PID...: true when in each process with paho's receive thread that thread
# is SCHED_OTHER (0) and every other thread SCHED_BATCH (3) (docs/mqtt.md, "Scheduling")
sched_policies() {
	$PY - "$@" <<'EOF'
import os, sys
seen = 0
for pid in sys.argv[1:]:
    tasks = "/proc/%s/task" % pid
    try:
        tids = os.listdir(tasks)
        names = {t: open("%s/%s/comm" % (tasks, t)).read().strip() for t in tids}
        policy = {t: int(open("%s/%s/stat" % (tasks, t)).read().rsplit(")", 1)[1].split()[38]) for t in tids}
    except OSError:
        continue
    if "MQTTAsync_rcv" not in names.values():
        continue
    seen += 1
    for t in tids:
        want = 0 if names[t] == "MQTTAsync_rcv" else 3
        if policy[t] != want:
            sys.exit("%s/%s (%s): policy %d, not %d" % (pid, t, names[t], policy[t], want))
sys.exit(0 if seen else "no process with paho's receive thread")
EOF
}
check "the fleet's threads but paho's receive thread run SCHED_BATCH, in each process" \
	wait_until 5 eval 'sched_policies $fleet_pid $(pgrep -P $fleet_pid)'
"$TERN" deploy sim-2.0.0-2 --key signing.key "${devs50[@]}" --broker "$URL" >deploy.out 2>&1
check "deploy to 50 devices" [ "$(grep -c '^deployed' deploy.out)" -eq 50 ]
t0=$(date +%s.%N)
check "all 50 end CONFIRMED" wait_until 60 confirmed_is 50
echo "     (deploy to all confirmed: $($PY -c "import time; print('%.1f s' % (time.time() - $t0))"))"
check "tern devices --json: 50 devices confirmed on 2.0.0, online, no error" wait_until 10 $PY -c '
import json, subprocess, sys
d = json.loads(subprocess.run([sys.argv[1], "devices", "--json"], capture_output=True, check=True).stdout)
ok = [x for x in d if x["version"] == "2.0.0" and x["state"] == "confirmed" and x["online"] and x["board"] == "sim" and not x["last_error"]]
sys.exit(0 if len(ok) == 50 else 1)' "$TERN"
check "the audit trail has each device's transitions" \
	[ "$(events_where "kind='transition' and to_state='confirmed'")" -eq 50 ]
check "ternd sim status reads a fleet device's folder" \
	eval '"$TERND" sim status fleet1/sim-0007 --json | grep -q "\"running_version\": \"2.0.0\""'

# Refusals, on sim-0001 (confirmed on 2.0.0, generation 1).
$TOOL get "$URL" tern/dev/sim-0001/desired gen1.bin >/dev/null
$TOOL get "$URL" tern/dev/sim-0002/desired other-dev.bin >/dev/null
"$TERN" deploy sim-2.0.0-2 --key signing.key --device sim-0001 --broker "$URL" >/dev/null
wait_until 10 eval '[ "$(sqlite3 "$TERN_DB" "select generation from devices where id=\"sim-0001\"")" = 2 ]'
check "sim-0001 accepts generation 2 (it runs that release already: nothing to do)" \
	[ "$(sqlite3 "$TERN_DB" "select generation from devices where id='sim-0001'")" = 2 ]
"$TERND" sim status fleet1/sim-0001 --json >before.json
"$TERN" deploy sim-4.0.0-4 --key other.key --device sim-0001 --broker "$URL" >/dev/null 2>&1
mosquitto_pub -L "$URL/tern/dev/sim-0001/desired" -r -q 1 -f gen1.bin
mosquitto_pub -L "$URL/tern/dev/sim-0001/desired" -r -q 1 -f other-dev.bin
check "forged (unknown key), replayed (generation 1) and misaddressed: three refusals reported" \
	wait_until 10 eval '[ "$(events_where "device_id=\"sim-0001\" and kind=\"refused\"")" -eq 3 ]'
for st in unknown-key old-generation wrong-device; do
	check "... $st" [ "$(events_where "device_id='sim-0001' and kind='refused' and status='$st'")" -eq 1 ]
done
sleep 0.5
"$TERND" sim status fleet1/sim-0001 --json >after.json
check "... and nothing changed on the device" cmp -s before.json after.json
check "... it still reports generation 2, confirmed on 2.0.0" \
	[ "$(sqlite3 "$TERN_DB" "select generation || ' ' || state || ' ' || version from devices where id='sim-0001'")" = "2 confirmed 2.0.0" ]
# A recorder killed after paho acknowledged an event and before recording it (the test
# hook exits there): the broker never sends that event again, but the device's retained
# state carries its last event, so the next watch records it from the state, once.
kill "$watch_pid" 2>/dev/null
wait "$watch_pid" 2>/dev/null
TERN_TEST_RECORDER_EXIT_ON=refused "$TERN" watch --broker "$URL" --quiet --duration 30 \
	>crash.out 2>crash.err &
watch_pid=$!
wait_until 5 grep -qs watching crash.err
"$TERN" deploy sim-4.0.0-4 --key other.key --device sim-0001 --broker "$URL" >/dev/null 2>&1
wait_until 10 eval '! kill -0 $watch_pid 2>/dev/null'
wait "$watch_pid"
check "a watch killed while recording sim-0001's second refusal (exit 3)" [ $? -eq 3 ]
check "... had not recorded it" [ "$(events_where "device_id='sim-0001' and kind='refused' and status='unknown-key'")" -eq 1 ]
# Its own client id: the killed watch's session may still hold the event (when its
# PUBACK never reached the broker), and then that copy, not the state's, would come.
"$TERN" watch --broker "$URL" --duration 600 --client-id watch-next >watch.out 2>watch.err &
watch_pid=$!
check "the next watch records it from sim-0001's retained state" wait_until 10 eval \
	'[ "$(events_where "device_id=\"sim-0001\" and kind=\"refused\" and status=\"unknown-key\"")" -eq 2 ]'
check "... and says where it came from" grep -q "sim-0001 event refused .*unknown-key.*(from its state: the event itself was not recorded)" watch.out
"$TERN" watch --broker "$URL" --duration 1 --quiet --client-id watch-again >/dev/null 2>&1
check "... once: a watch that sees the state again adds nothing" \
	[ "$(events_where "device_id='sim-0001' and kind='refused' and status='unknown-key'")" -eq 2 ]
# Activate later: staged, waiting; then an activate command boots it on trial.
"$TERN" deploy sim-4.0.0-4 --key signing.key --device sim-0003 --activate later --broker "$URL" >/dev/null
check "activate later: sim-0003 stages 4.0.0 and waits on 2.0.0" wait_until 20 eval \
	'[ "$(sqlite3 "$TERN_DB" "select state || \" \" || version || \" \" || target from devices where id=\"sim-0003\"")" = "staged 2.0.0 sim-4.0.0-4" ]'
"$TERN" deploy sim-4.0.0-4 --key signing.key --device sim-0003 --action activate --broker "$URL" >/dev/null
check "... then an activate command runs it: confirmed on 4.0.0" wait_until 20 eval \
	'[ "$(sqlite3 "$TERN_DB" "select state || \" \" || version from devices where id=\"sim-0003\"")" = "confirmed 4.0.0" ]'
fleet_stop
check "fleet stops on SIGTERM" [ $? -eq 0 ]
check "every device installed each release once, from one offer (sim-0003: two releases)" \
	all_devices 'd["installs"] == d["fresh_offers"] == (2 if d["id"] == "sim-0003" else 1)'
check "--processes 2: one line per device, sim-0001 to sim-0050, then one summary for all" \
	$PY -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
ids = sorted(json.loads(l)["id"] for l in lines if l.startswith("{\"id\""))
last = json.loads(lines[-1])
sys.exit(0 if ids == ["sim-%04d" % i for i in range(1, 51)] and last["devices"] == 50
         and last["states"] == {"confirmed": 50} else 1)' "$fleet_out"

"$TERND" fleet --devices 4 --processes 2 --dir fleet-none --broker "$URL" >np.out 2>np.err
np_rc=$?
check "--processes: a process that cannot start its devices ends the run, said per process" eval \
	'[ $np_rc -ne 0 ] && grep -q "process 1 (devices 1 to 2) failed" np.err && grep -q "process 2 (devices 3 to 4) failed" np.err'

# The transport's record (DEVDIR/mqtt.state): two copies written in place by turns. A
# damaged newer copy falls back to the older one; both damaged is said in one line; the
# plain-text record of an older ternd is still read.
damage_record() { # FILE newer|both
	$PY - "$1" "$2" <<'EOF'
import sys
path, which = sys.argv[1], sys.argv[2]
raw = bytearray(open(path, "rb").read())
slots = []
for k in (0, 1):
    s = raw[k * 4096:(k + 1) * 4096]
    if s.startswith(b"tern-record "):
        slots.append((int(s.split(b" ")[1]), k, s.index(b"\n") + 1))
slots.sort()
for seq, k, head in (slots[-1:] if which == "newer" else slots):
    if which == "newer":
        raw[k * 4096 + head + 3] ^= 0x20  # its text: the CRC no longer matches
    else:
        raw[k * 4096] = ord("X")  # its header (a flip could undo an earlier one)
open(path, "wb").write(bytes(raw))
sys.exit(0 if len(slots) == 2 else 1)
EOF
}
rec=fleet1/sim-0005/mqtt.state
check "the record holds two copies" damage_record "$rec" newer
fleet_start f1b --devices 5 --dir fleet1 --duration 2
wait "$fleet_pid"
fleet_pid=""
check "a damaged newer copy: the older one is used (generation 1, confirmed, no error)" \
	eval '[ "$(dev_field sim-0005 generation) $(dev_field sim-0005 state)" = "1 confirmed" ] && ! grep -q sim-0005 f1b.err'
damage_record "$rec" both
fleet_start f1c --devices 5 --dir fleet1 --duration 1
wait "$fleet_pid"
fleet_pid=""
check "both copies damaged: one line naming the file" \
	eval '[ "$(grep -c "sim-0005/mqtt.state: both copies of the device.s MQTT record are damaged" f1c.err)" -eq 1 ]'
printf 'generation=1\nattempted=1\ndone=1\nevents=40\nslot0=\nslot1=sim-2.0.0-2\ndesired=\nreported=5\n' >"$rec"
fleet_start f1d --devices 5 --dir fleet1 --duration 2
wait "$fleet_pid"
fleet_pid=""
check "a plain-text record (older ternd) is read" \
	eval '[ "$(dev_field sim-0005 generation) $(dev_field sim-0005 state)" = "1 confirmed" ] && ! grep -q sim-0005 f1d.err'

# ------------------------------------------- 2. > 1020 chunks, broker killed mid-transfer
fleet_start f2 --devices 8 --dir fleet2 --keyring signing.pub --id-prefix big- --slot-size 5M \
	--slow all --slow-ms 2 --power-cut big-0002 --off-ms 1500 --net-drop big-0003 \
	--drop-ms 1500 --crash big-0004 --unhealthy big-0005 --power-cut-install big-0006
wait_until 10 eval '[ "$(last_status connected)" -eq 8 ]'
devs8=()
for i in $(seq 1 8); do devs8+=(--device "$(printf 'big-%04u' "$i")"); done
"$TERN" deploy sim-3.0.0-3 --key signing.key "${devs8[@]}" --broker "$URL" >/dev/null
check "transfer under way (some chunks fetched)" wait_until 20 eval '[ "$(last_status chunks)" -ge 2000 ]'
kill -9 "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null
BROKER_PID=""
sleep 0.5
broker_restart
check "broker killed and restarted (empty: no persistence in tests)" kill -0 "$BROKER_PID"
"$TERN" publish big.tern --broker "$URL" --force >/dev/null
check "the operator publishes the release again" [ $? -eq 0 ]
check "all 8 settle (6 confirmed, 2 rolled back)" wait_until 90 settled_is 8
fleet_stop
check "... 6 CONFIRMED on 3.0.0" [ "$(grep -c '"state": "confirmed", "version": "3.0.0"' "$fleet_out")" -eq 6 ]
check "... the trial that crashed on boot rolled back to 1.0.0" \
	[ "$(dev_field big-0004 state) $(dev_field big-0004 version) $(dev_field big-0004 reason)" = "rolled-back 1.0.0 trial-boot-failed" ]
check "the unhealthy trial image rolled back to 1.0.0" \
	[ "$(dev_field big-0005 state) $(dev_field big-0005 version) $(dev_field big-0005 reason)" = "rolled-back 1.0.0 health-check-failed" ]
check "big-0006 lost power at the end of its install and still confirmed" \
	[ "$(dev_field big-0006 power_cuts) $(dev_field big-0006 state)" = "1 confirmed" ]
check "none installed twice" all_devices 'd["installs"] <= 1'
check "none re-downloaded from zero (one fresh offer each)" all_devices 'd["fresh_offers"] == 1'
# Resuming asks only for the chunks not yet verified (each by its own topic): the whole
# transfer, through a broker restart, a network drop and power cuts, fetches the 1030
# chunks once, plus at most the one chunk a power cut caught half written.
check "resumes fetched only what was missing: 1030 chunks each (+1 per power cut)" \
	all_devices 'd["chunks_fetched"] - d["bad_chunks"] <= 1030 + d["power_cuts"]'
check "... no chunk arrived again after it was verified" all_devices 'd["chunks_again"] == 0'
check "big-0002 lost power mid-download and resumed from its record" \
	[ "$(dev_field big-0002 power_cuts) $(dev_field big-0002 resumes) $(dev_field big-0002 state)" = "1 1 confirmed" ]
check "big-0003 lost its network and came back" [ "$(dev_field big-0003 connects)" -ge 2 ]
check "everyone reconnected after the broker restart" all_devices 'd["connects"] >= 2'
for r in r4 r5; do "$TERN" publish $r.tern --broker "$URL" --force >/dev/null || bad "publish $r again"; done

# ----------------------------- 3. offline deploy, corrupted chunk in the broker, giving up
"$TERN" deploy sim-4.0.0-4 --key signing.key --device cc-0001 --device cc-0002 --broker "$URL" >/dev/null
"$TERN" deploy sim-5.0.0-5 --key signing.key --device cc-0003 --broker "$URL" >/dev/null
dd if=/dev/urandom of=junk.bin bs=4096 count=1 2>/dev/null
mosquitto_pub -L "$URL/tern/rel/sim-4.0.0-4/firmware/0/5" -r -q 1 -f junk.bin
mosquitto_pub -L "$URL/tern/rel/sim-5.0.0-5/firmware/0/7" -r -q 1 -f junk.bin
fleet_start f3 --devices 3 --dir fleet3 --keyring signing.pub --retry-min-ms 400 \
	--retry-max-ms 800 --max-attempts 5 --id-prefix cc-
check "devices deployed while offline start when they connect; the bad chunk is reported" \
	wait_until 20 eval '[ "$(events_where "device_id in (\"cc-0001\",\"cc-0002\") and kind=\"error\" and status=\"digest-mismatch\"")" -ge 2 ]'
check "... with what and when" \
	[ "$(events_where "device_id='cc-0001' and kind='error' and detail like 'chunk 5 of firmware: digest-mismatch; fetching it again in % ms%'")" -ge 1 ]
check "... the devices keep running their old image" \
	eval '"$TERND" sim status fleet3/cc-0001 --json | grep -q "\"running_version\": \"1.0.0\""'
dd if=fw-4.0.0.bin of=chunk5.bin bs=4096 skip=5 count=1 2>/dev/null
mosquitto_pub -L "$URL/tern/rel/sim-4.0.0-4/firmware/0/5" -r -q 1 -f chunk5.bin
check "once the chunk is republished, both finish CONFIRMED on 4.0.0" wait_until 30 eval \
	'[ "$(sqlite3 "$TERN_DB" "select count(*) from devices where id in (\"cc-0001\",\"cc-0002\") and version=\"4.0.0\" and state=\"confirmed\"")" -eq 2 ]'
check "cc-0003 gives up on a chunk that stays corrupt: failed, old image" wait_until 30 eval \
	'[ "$(sqlite3 "$TERN_DB" "select state || \" \" || version || \" \" || last_status from devices where id=\"cc-0003\"")" = "failed 1.0.0 digest-mismatch" ]'
fleet_stop
check "the fix fetched that chunk again alone, not the whole image (50 chunks + retries)" \
	all_devices 'd["id"] == "cc-0003" or (d["chunks_fetched"] - d["bad_chunks"] == 50 and 1 <= d["bad_chunks"] <= 5 and d["indexes_fetched"] == 1)'
check "the give-up was bounded: 5 attempts" [ "$(dev_field cc-0003 bad_chunks)" -eq 5 ]
check "... and reported" \
	[ "$(events_where "device_id='cc-0003' and kind='error' and detail like '%gave up after 5 attempts'")" -eq 1 ]

# A network drop (a radio that loses its link): the device says `offline` itself before
# it disconnects - a clean DISCONNECT suppresses the will - so that publish must reach paho
# before the disconnect (the fleet's outbox is flushed first; the outbox thread is
# usually quick enough anyway, so this checks the promise, not the flush); `online`
# when it is back.
fleet_start f3b --devices 1 --dir fleet3b --keyring signing.pub --id-prefix nd- \
	--net-drop all --drop-ms 800 --slow all --slow-ms 20
wait_until 10 eval '[ "$(last_status connected)" -eq 1 ]'
"$TERN" deploy sim-4.0.0-4 --key signing.key --device nd-0001 --broker "$URL" >/dev/null
check "a device that loses its network says offline first, and online once it is back" \
	wait_until 30 eval '[ "$(events_where "device_id=\"nd-0001\" and kind=\"online\" and seq > (select max(seq) from events where device_id=\"nd-0001\" and kind=\"offline\")")" -ge 1 ]'
check "... and finishes CONFIRMED on 4.0.0" wait_until 30 eval \
	'[ "$(sqlite3 "$TERN_DB" "select state || \" \" || version from devices where id=\"nd-0001\"")" = "confirmed 4.0.0" ]'
fleet_stop
check "... after one drop and one reconnect" [ "$(dev_field nd-0001 connects)" -eq 2 ]

# A device asks for the manifest and, in the same SUBSCRIBE, every index; when the
# release is published while it waits, the index arrives before the manifest (tern
# publish sends the manifest last) and is asked for again once the manifest is in - not
# only after the fetch timeout (30 s here).
mosquitto_pub -L "$URL/tern/rel/sim-4.0.0-4/manifest" -r -n
fleet_start f3c --devices 1 --dir fleet3c --keyring signing.pub --id-prefix ea- \
	--fetch-timeout-ms 30000
wait_until 10 eval '[ "$(last_status connected)" -eq 1 ]'
"$TERN" deploy sim-4.0.0-4 --key signing.key --device ea-0001 --broker "$URL" >/dev/null
wait_until 10 eval '[ "$(last_status settled)" -eq 0 ]' # accepted, waiting for the manifest
sleep 0.5
"$TERN" publish r4.tern --broker "$URL" --force >/dev/null
check "published while it waited: it confirms without waiting for its fetch timeout" wait_until 15 eval \
	'[ "$(sqlite3 "$TERN_DB" "select state || \" \" || version from devices where id=\"ea-0001\"")" = "confirmed 4.0.0" ]'
fleet_stop

# ------------------------ 4. TLS, per-device passwords and the ACL template (username = id)
broker_stop
kill "$watch_pid" 2>/dev/null
wait "$watch_pid" 2>/dev/null
watch_pid=""
# --password-file: each device its own password; what is wrong with the file is said in
# one line before anything connects.
printf '# fleet passwords\ntls-0001:pw-one\n\ntls-0002:pw:two\n' >passwords
chmod 600 passwords
bad_file() { # NAME FILE-CONTENT EXPECTED-LINE [ARGS...]
	local name=$1 content=$2 want=$3
	shift 3
	printf '%b' "$content" >pw.bad
	"$TERND" fleet --devices 2 --dir fleetpw --broker mqtt://127.0.0.1:1 --keyring signing.pub \
		--id-prefix tls- --password-file pw.bad "$@" >pw.out 2>pw.err
	local rc=$?
	check "$name" eval '[ $rc -ne 0 ] && [ "$(wc -l <pw.err)" -eq 1 ] && grep -q "$want" pw.err'
}
bad_file "--password-file: a line that is not ID:PASSWORD is refused with its number" \
	'tls-0001:a\ntls-0002\n' 'pw.bad line 2: expected ID:PASSWORD'
bad_file "--password-file: a device without a password is named" \
	'tls-0001:a\nother-0009:b\n' 'pw.bad has no password for tls-0002'
bad_file "--password-file: an id given twice is refused" \
	'tls-0001:a\ntls-0002:b\ntls-0001:c\n' 'pw.bad line 3: tls-0001 has a password already'
bad_file "--password-file: an id that cannot be a device id is refused" \
	'tls/1:a\n' "line 1: 'tls/1' is not a device id"
bad_file "--password-file with --password is refused" 'tls-0001:a\ntls-0002:b\n' \
	'leave out --password and --username' --password x
"$TERND" fleet --devices 2 --dir fleetpw --broker mqtt://127.0.0.1:1 --keyring signing.pub \
	--id-prefix tls- --password-file no-such-file >pw.out 2>pw.err
check "--password-file that cannot be read: one line" \
	eval '[ "$(wc -l <pw.err)" -eq 1 ] && grep -q "no-such-file" pw.err'
if broker_start_tls "$work/tls" operator:op-secret tls-0001:pw-one tls-0002:pw:two; then
	URL=$BROKER_URL
	OP=(--broker "$URL" --cafile "$BROKER_CA" --username operator --password op-secret)
	"$TERN" publish r2.tern "${OP[@]}" --force >/dev/null || bad "TLS: publish"
	fleet_start f4 --devices 2 --dir fleet4 --keyring signing.pub --id-prefix tls- \
		--password-file passwords --cafile "$BROKER_CA"
	check "TLS + ACL: both devices connect as themselves, each with its own password" \
		wait_until 15 eval '[ "$(last_status connected)" -eq 2 ]'
	"$TERN" deploy sim-2.0.0-2 --key signing.key --device tls-0001 --device tls-0002 "${OP[@]}" >/dev/null
	check "TLS + ACL: both CONFIRMED on 2.0.0 (reading rel/#, their own desired)" \
		wait_until 30 confirmed_is 2
	fleet_stop
else
	bad "start the TLS broker"
fi

# ------------------- 5. TLS with a client certificate per device (CN = id), no passwords
broker_stop
if broker_start_tls_certs "$work/certs" operator cert-0001 cert-0002; then
	URL=$BROKER_URL
	OP=(--broker "$URL" --cafile "$BROKER_CA" --cert "$BROKER_DIR/operator.crt" --cert-key "$BROKER_DIR/operator.key")
	check "certificates: the operator publishes with its certificate" \
		"$TERN" publish r2.tern "${OP[@]}" --force
	"$TERND" fleet --devices 2 --dir fleetc --broker "$URL" --keyring signing.pub \
		--id-prefix cert- --cert-dir "$work/nowhere" --cafile "$BROKER_CA" >c.out 2>c.err
	check "--cert-dir without the device's certificate: one line naming the file" \
		eval '[ "$(wc -l <c.err)" -eq 1 ] && grep -q "cannot read $work/nowhere/cert-0001.crt" c.err'
	"$TERND" fleet --devices 2 --dir fleetc --broker "mqtt://127.0.0.1:$BROKER_PORT" --keyring signing.pub \
		--id-prefix cert- --cert-dir "$BROKER_DIR" >c.out 2>c.err
	check "--cert-dir on mqtt:// is refused" grep -q "needs an mqtts:// broker" c.err
	fleet_start f5 --devices 2 --dir fleet5 --keyring signing.pub --id-prefix cert- \
		--cert-dir "$BROKER_DIR" --cafile "$BROKER_CA"
	check "certificates: both devices connect with their own certificate" \
		wait_until 15 eval '[ "$(last_status connected)" -eq 2 ]'
	"$TERN" deploy sim-2.0.0-2 --key signing.key --device cert-0001 --device cert-0002 "${OP[@]}" >/dev/null
	check "certificates + ACL: both CONFIRMED on 2.0.0" wait_until 30 confirmed_is 2
	fleet_stop
else
	bad "start the TLS broker with client certificates"
fi
finish
