#!/usr/bin/env bash
# tern publish, deploy, watch and devices against a real mosquitto on loopback, checked by
# an independent peer (python3-paho-mqtt: tests/mqtt/mqtt_tool.py) and by the protocol
# library's own desired-state decoder (build/tests/mqtt/desired_check).
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TERN=$BUILD/tern
CHECK=$BUILD/tests/mqtt/desired_check
TOOL="/usr/bin/python3 $HERE/mqtt_tool.py"
source "$HERE/../lib/broker.sh"

work=$(mktemp -d /tmp/tern-mqtt-test.XXXXXX)
cleanup() {
	broker_stop
	[ -n "${watch_pid:-}" ] && kill "$watch_pid" 2>/dev/null
	[ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
# No config file or environment from the machine running the tests.
export HOME=$work TERN_DB=$work/tern.db
unset TERN_CONFIG TERN_BROKER TERN_USERNAME TERN_PASSWORD TERN_CAFILE TERN_CERT TERN_CERT_KEY TERN_PREFIX


if ! broker_start "$work/broker"; then
	bad "start mosquitto"
	finish
fi
ok "mosquitto on 127.0.0.1:$BROKER_PORT"
URL=$BROKER_URL

# --- a release of more than 1020 chunks (mosquitto's silent default queue limit)
"$TERN" key generate --out signing.key >/dev/null
"$TERN" key generate --out other.key >/dev/null
head -c $((1100 * 1024 - 100)) /dev/urandom >fw.bin
head -c 3000 /dev/urandom >app.conf
"$TERN" release create --key signing.key --board sim --version 1.1.0 --sequence 2 \
	--chunk-size 1K --firmware fw.bin --config app.conf --out big.tern >/dev/null
expect_ok "publish 1100+3 chunks" "$TERN" publish big.tern --pubkey signing.pub --broker "$URL"
check "publish prints the release id" grep -q "^published sim-1.1.0-2 to $URL: 1103 chunks" out.txt
expect_ok "independent subscriber reads every retained chunk whole, matching the index" \
	$TOOL read-release "$URL" tern big.tern
cat out.txt
expect_ok "publishing again skips what the broker acknowledged" "$TERN" publish big.tern --broker "$URL"
check "... and says so" grep -q "1103 already acknowledged" out.txt

# --- refusals before anything reaches the broker
cp big.tern corrupt.tern
# Flip the bits of one payload byte (writing a fixed byte could leave it unchanged).
/usr/bin/python3 -c "
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) - 2000] ^= 0xff
open(p, 'wb').write(b)" corrupt.tern
expect_fail "a corrupted release is refused before publishing" "chunk .*corrupted" \
	"$TERN" publish corrupt.tern --broker "$URL"
expect_fail "a release signed by another key is refused with --pubkey" "not trust" \
	"$TERN" publish big.tern --pubkey other.pub --broker "$URL"
expect_fail "no broker" "no broker" "$TERN" publish big.tern
expect_fail "bad broker URL" "not valid" "$TERN" publish big.tern --broker http://x
expect_fail "unreachable broker" "broker mqtt://127.0.0.1:1: " "$TERN" publish big.tern --broker mqtt://127.0.0.1:1
expect_fail "client certificate without TLS" "need an mqtts" "$TERN" publish big.tern --broker "$URL" \
	--cert c.crt --cert-key c.key
expect_fail "client certificate without its key" "together" "$TERN" publish big.tern \
	--broker mqtts://127.0.0.1 --cert c.crt
expect_fail "bad prefix" "prefix" "$TERN" publish big.tern --broker "$URL" --prefix 'a/+'

# --- an interrupted publish continues where the broker stopped acknowledging
head -c $((700 * 1024)) /dev/urandom >fw2.bin
"$TERN" release create --key signing.key --board sim --version 1.2.0 --sequence 3 \
	--chunk-size 1K --firmware fw2.bin --out r2.tern >/dev/null
TERN_TEST_PUBLISH_EXIT_AFTER=4 "$TERN" publish r2.tern --broker "$URL" --prefix lab/a >out.txt 2>err.txt
check "interrupted publish (simulated crash after 4 windows)" [ $? -eq 3 ]
expect_ok "after the crash the manifest is not in the broker (it goes last)" \
	$TOOL absent "$URL" lab/a/rel/sim-1.2.0-3/manifest
expect_ok "the publish resumes" "$TERN" publish r2.tern --broker "$URL" --prefix lab/a
skipped=$(sed -n 's/.*700 chunks (\([0-9]*\) already acknowledged, resumed).*/\1/p' out.txt)
check "... from the windows recorded before the crash (4 or 5: $skipped chunks skipped)" \
	[ "${skipped:-0}" -eq 256 -o "${skipped:-0}" -eq 320 ]
expect_ok "the resumed release reads back whole" $TOOL read-release "$URL" lab/a r2.tern
expect_ok "--force publishes everything again" "$TERN" publish r2.tern --broker "$URL" --prefix lab/a --force
check "... without skipping" grep -q "700 chunks, 1 index" out.txt

# --- deploy: signed desired states, generations from the database
expect_ok "deploy by release id to two devices" "$TERN" deploy sim-1.1.0-2 --key signing.key \
	--device dev-1 --device dev-2 --broker "$URL"
check "deploy prints generation 1" grep -q "to dev-1: install, activate now, generation 1" out.txt
expect_ok "fetch dev-1's retained desired state" $TOOL get "$URL" tern/dev/dev-1/desired d1.bin
expect_ok "dev-1 accepts it" "$CHECK" d1.bin signing.pub dev-1 0
check "... generation 1, release and sequence from the manifest" \
	grep -q "accepted dev-1 generation 1 release sim-1.1.0-2 sequence 2 action install activate now" out.txt
expect_ok "an independent COSE implementation verifies it (Python cryptography, AAD)" \
	$TOOL verify-desired d1.bin signing.pub
check "... and reads the payload" grep -q "verified: {1: 'dev-1', 2: 1, 3: 'sim-1.1.0-2', 4: 2, 5: 0, 6: 0, 7: " out.txt
"$CHECK" d1.bin signing.pub dev-2 0 >out.txt
check "dev-2 refuses dev-1's desired state (misaddressed)" grep -q "refused: wrong-device" out.txt
"$CHECK" d1.bin signing.pub dev-1 1 >out.txt
check "dev-1 refuses it once generation 1 is accepted (replayed)" grep -q "refused: old-generation" out.txt
"$CHECK" d1.bin other.pub dev-1 0 >out.txt
check "a device trusting another key refuses it (unknown key)" grep -q "refused: unknown-key" out.txt
cp d1.bin forged.bin
printf '\x05' | dd of=forged.bin bs=1 seek=$(($(grep -obUaP "\x02\x01\x03" d1.bin | head -1 | cut -d: -f1) + 1)) conv=notrunc 2>/dev/null
"$CHECK" forged.bin signing.pub dev-1 0 >out.txt
check "a desired state altered after signing is refused (forged generation)" grep -q "refused: bad-signature" out.txt
expect_ok "deploy the release file, activate later" "$TERN" deploy big.tern --key signing.key \
	--device dev-1 --activate later --broker "$URL"
check "... generation 2" grep -q "to dev-1: install, activate later, generation 2" out.txt
$TOOL get "$URL" tern/dev/dev-1/desired d2.bin >/dev/null
expect_ok "dev-1 accepts generation 2 after 1" "$CHECK" d2.bin signing.pub dev-1 1
check "... with activate later" grep -q "generation 2 .* activate later" out.txt
expect_fail "deploy of an unknown release id" "not in the database" \
	"$TERN" deploy nope-1 --key signing.key --device dev-1 --broker "$URL"
"$TERN" release create --key signing.key --board sim --version 9.0 --sequence 90 --firmware fw.bin \
	--out unpublished.tern >/dev/null
expect_fail "deploy of a release file never published (devices could not fetch it)" \
	"release sim-9.0-90 is not published.*tern publish unpublished.tern' first" \
	"$TERN" deploy unpublished.tern --key signing.key --device dev-1 --broker "$URL"
expect_fail "deploy with a public key" "public key" \
	"$TERN" deploy sim-1.1.0-2 --key signing.pub --device dev-1 --broker "$URL"
expect_fail "deploy to a bad device id" "device id" \
	"$TERN" deploy sim-1.1.0-2 --key signing.key --device 'a/b' --broker "$URL"
expect_fail "deploy needs --device or --all" "--device ID" \
	"$TERN" deploy sim-1.1.0-2 --key signing.key --broker "$URL"
check "generations recorded in the database" \
	[ "$(sqlite3 "$TERN_DB" "select group_concat(device_id || ':' || generation) from desired order by device_id, generation")" = "dev-1:1,dev-1:2,dev-2:1" ]
# Deploy records and publishes in batches of 100 devices: 250 devices (and one twice)
# cross two batch boundaries; every state is recorded once with its own generation and
# the retained states of the first and last devices check.
many=""
for i in $(seq 1 250); do many="$many --device many-$i"; done
expect_ok "deploy to 251 devices (3 batches, many-7 twice)" "$TERN" deploy sim-1.1.0-2 \
	--key signing.key $many --device many-7 --broker "$URL"
same "... 251 deployed lines" 251 "$(grep -c '^deployed sim-1.1.0-2 to many-' out.txt)"
counts=$(sqlite3 -separator ' ' "$TERN_DB" \
	"select count(distinct device_id), count(*) from desired where device_id like 'many-%'")
gens=$(sqlite3 "$TERN_DB" \
	"select group_concat(device_id || ':' || generation) from desired where device_id = 'many-7' order by generation")
same "... each recorded once, many-7 twice (generations 1 and 2)" "250 251 many-7:1,many-7:2" \
	"$counts $gens"
$TOOL get "$URL" tern/dev/many-1/desired m1.bin >/dev/null
expect_ok "... many-1's retained state (first batch) checks" "$CHECK" m1.bin signing.pub many-1 0
$TOOL get "$URL" tern/dev/many-250/desired m250.bin >/dev/null
expect_ok "... many-250's (last batch) too" "$CHECK" m250.bin signing.pub many-250 0
$TOOL get "$URL" tern/dev/many-7/desired m7.bin >/dev/null
expect_ok "... many-7's retained state is its second" "$CHECK" m7.bin signing.pub many-7 1
check "... generation 2" grep -q "accepted many-7 generation 2" out.txt
# --- pacing (--rate): states go out in turn; interrupted, deploy says how far it got
# and the broker holds exactly that many. Only lower bounds of time are checked: pacing
# promises that no state goes early; a slow machine only makes a deploy longer.
paced=""
for i in $(seq 1 12); do paced="$paced --device paced-$i"; done
t0=$(date +%s%N)
expect_ok "deploy 12 devices at --rate 10" "$TERN" deploy sim-1.1.0-2 --key signing.key \
	$paced --rate 10 --broker "$URL"
check "... took at least 1.1 s (state 12 is due 11 / 10 s after the first)" \
	[ $(($(date +%s%N) - t0)) -ge 1100000000 ]
same "... all 12 retained" 12 "$($TOOL count-retained "$URL" tern/dev/+/desired /paced-)"
expect_fail "--rate takes a number" "--rate takes desired states a second" \
	"$TERN" deploy sim-1.1.0-2 --key signing.key --device x-1 --rate fast --broker "$URL"
slow=""
for i in $(seq 1 200); do slow="$slow --device slow-$i"; done
"$TERN" deploy sim-1.1.0-2 --key signing.key $slow --rate 20 --broker "$URL" \
	>slow.out 2>slow.err &
slow_pid=$!
first_in() { [ "$($TOOL count-retained "$URL" tern/dev/+/desired /slow-)" -ge 1 ]; }
wait_until 10 first_in
kill -TERM "$slow_pid"
wait "$slow_pid"
check "interrupted deploy exits 1" [ $? -eq 1 ]
check "... says it was interrupted" grep -q "deploy interrupted (Terminated)" slow.err
handed=$(sed -n 's/.*deploy stopped after handing \([0-9]*\) of 200 desired states.*/\1/p' slow.err)
check "... and how many states it handed to the broker (some, not all): ${handed:-none}" \
	[ -n "$handed" -a "${handed:-0}" -ge 1 -a "${handed:-0}" -lt 200 ]
same "... exactly those are retained" "$handed" \
	"$($TOOL count-retained "$URL" tern/dev/+/desired /slow-)"
same "... a 'deployed' line for each of them" "$handed" "$(grep -c '^deployed' slow.out)"
expect_ok "run again, all at once (--rate 0), for the rest" "$TERN" deploy sim-1.1.0-2 \
	--key signing.key $slow --rate 0 --broker "$URL"
same "... now all 200 retained" 200 "$($TOOL count-retained "$URL" tern/dev/+/desired /slow-)"
$TOOL get "$URL" tern/dev/slow-1/desired s1.bin >/dev/null
expect_ok "... slow-1 holds its newer state" "$CHECK" s1.bin signing.pub slow-1 1
check "... generation 2" grep -q "accepted slow-1 generation 2" out.txt

# paho's own trace, asked for with its environment variables, works as paho documents it
# (tern otherwise keeps paho from tracing into memory: tern/tern_paho.h).
expect_ok "deploy with paho's trace asked for (MQTT_C_CLIENT_TRACE, level PROTOCOL)" \
	env MQTT_C_CLIENT_TRACE="$work/paho.trace" MQTT_C_CLIENT_TRACE_LEVEL=PROTOCOL \
	"$TERN" deploy sim-1.1.0-2 --key signing.key --device traced-1 --broker "$URL"
check "... paho wrote the connect to the file" grep -q -- "-> CONNECT version 4" paho.trace
check "... and the desired state's publish and its acknowledgement" \
	sh -c 'grep -q -- "-> PUBLISH msgid: 1 qos: 1 retained: 1" paho.trace &&
		grep -q -- "<- PUBACK msgid: 1" paho.trace'

# The broker is reached before any generation is taken: an unreachable one wastes none.
expect_fail "deploy with no broker listening" "connect" \
	"$TERN" deploy sim-1.1.0-2 --key signing.key --device nobroker-1 --broker mqtt://127.0.0.1:1
same "... records no generation" 0 \
	"$(sqlite3 "$TERN_DB" "select count(*) from desired where device_id = 'nobroker-1'")"

# --- an empty inventory says why it is empty (and --json stays [] for scripts)
"$TERN" devices --db empty.db >out.txt 2>err.txt
check "devices, none yet: exit 0" [ $? -eq 0 ]
check "... the header only" [ "$(wc -l <out.txt)" = 1 ]
check "... and one line saying 'tern watch' records them" \
	grep -q "no devices in empty.db yet: 'tern watch' records them" err.txt
check "devices --json, none yet: []" [ "$("$TERN" devices --db empty.db --json 2>&1)" = "[]" ]

# --- tern watch records fake devices; tern devices shows them
"$TERN" watch --duration 30 --broker "$URL" >watch.txt 2>watch.err &
watch_pid=$!
for _ in $(seq 1 50); do grep -q watching watch.err && break; sleep 0.1; done
check "watch subscribed" grep -q "watching tern/dev/+/{state,events,online}" watch.err
expect_ok "fake device sim-7 (clean disconnect)" $TOOL device "$URL" tern sim-7 sim
expect_ok "fake device sim-8 (dies: its last will says offline)" $TOOL device "$URL" tern sim-8 sim-rev2 --die
for _ in $(seq 1 50); do
	[ "$(grep -c offline watch.txt)" -ge 2 ] && break
	sleep 0.1
done
expect_ok "deploy while watch records (WAL: no lock-out)" "$TERN" deploy sim-1.1.0-2 \
	--key signing.key --device sim-7 --broker "$URL"
check "... generation 2: sim-7 reported it had accepted 1" grep -q "to sim-7: .* generation 2" out.txt
expect_ok "devices while watch records" "$TERN" devices --json
kill -TERM "$watch_pid"
wait "$watch_pid"
check "watch stops on SIGTERM, exit 0" [ $? -eq 0 ]
watch_pid=""
check "watch printed a line per event (not the redelivered one, nor the copy in the state)" \
	[ "$(grep -c ' event ' watch.txt)" -eq 4 ]
check "watch printed the refusal with its reason" grep -q "sim-7 event refused downloading -> downloading status old-generation: generation 1 <= 1" watch.txt
check "watch printed states" [ "$(grep -c ' state ' watch.txt)" -ge 4 ]
check "... with the last error" grep -q "sim-7 state failed, slot B: sim-1.1.0-2 1.1.0, target sim-1.1.0-2, last error digest-mismatch" watch.txt
check "watch flagged the undecodable event" grep -q "sim-8 refused a events message: not-cbor" watch.txt
check "watch counted what it recorded" grep -q "recorded" watch.err
expect_ok "devices --json" "$TERN" devices --json
cp out.txt devices.json
PY=/usr/bin/python3
check "devices --json: both devices with id, board, version, state, online, last_error" $PY -c '
import json, sys
d = {x["id"]: x for x in json.load(open("devices.json"))}
want = {
 "sim-7": dict(board="sim", version="1.1.0", state="failed", online=False, last_error="digest-mismatch", slot="B"),
 "sim-8": dict(board="sim-rev2", version="1.1.0", state="failed", online=False, last_error="digest-mismatch", slot="B"),
}
for dev, fields in want.items():
    for k, v in fields.items():
        if d[dev][k] != v:
            sys.exit("%s.%s = %r, want %r" % (dev, k, d[dev][k], v))
assert d["sim-7"]["progress"] == {"done": 5, "total": 10}
assert d["sim-7"]["target"] == "sim-1.1.0-2"
'
expect_ok "devices (table)" "$TERN" devices
check "devices table row" grep -qE "^sim-8 +sim-rev2 +1.1.0 +B +failed +5/10 +no .* digest-mismatch" out.txt
check "audit trail: every event once, the undecodable one too" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) from events where kind in ('transition','refused','malformed')")" -eq 6 ]
check "audit trail: online and offline" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) from events where kind in ('online','offline')")" -ge 4 ]
check "state history kept" [ "$(sqlite3 "$TERN_DB" "select count(*) from device_states")" -ge 4 ]
check "database is in WAL mode" [ "$(sqlite3 "$TERN_DB" "pragma journal_mode")" = wal ]
expect_ok "watch --duration ends by itself (retained states recorded again)" \
	"$TERN" watch --duration 1 --quiet --broker "$URL"
expect_ok "deploy --all reaches every device in the database" "$TERN" deploy sim-1.1.0-2 \
	--key signing.key --all --broker "$URL"
check "... sim-7 and sim-8 (and dev-1, dev-2 are not devices that reported)" \
	[ "$(grep -c '^deployed' out.txt)" -eq 2 ]
check "... sim-7: generation 3 (after 2, deployed while watch ran)" grep -q "to sim-7: .* generation 3" out.txt

# --- the watch session outlives the process and the connection
expect_ok "fake device sim-9 sends events while no watch runs" $TOOL device "$URL" tern sim-9 sim
expect_ok "the next watch gets them (the broker kept its session)" \
	"$TERN" watch --duration 1 --quiet --broker "$URL"
check "... sim-9's events are in the audit trail" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) from events where device_id='sim-9' and kind in ('transition','refused')")" -eq 2 ]

# --- tern devices --refresh: what the broker retains, for when no watch runs
expect_fail "devices --refresh needs a broker" "no broker" "$TERN" devices --refresh --db refresh.db
TERN_DB=refresh.db "$TERN" devices --refresh --json --broker "$URL" >refresh.json 2>refresh.err
check "devices --refresh into an empty database lists what the broker retains" $PY -c '
import json, sys
d = {x["id"]: x for x in json.load(open("refresh.json"))}
assert d["sim-7"]["state"] == "failed" and d["sim-7"]["online"] is False, d.get("sim-7")
assert d["sim-9"]["version"] == "1.1.0" and d["sim-9"]["board"] == "sim", d.get("sim-9")
'
check "... says how many reports it recorded" grep -q "report(s) retained by $URL recorded" refresh.err
check "... with each device's last event, from its state" \
	[ "$(sqlite3 refresh.db "select count(*) from events where device_id='sim-7' and kind='refused'")" -eq 1 ]

# --- a device that accepted more than the database knows (database lost or restored)
"$TERN" watch --duration 30 --quiet --broker "$URL" --client-id watch-gen >/dev/null 2>watch3.err &
watch_pid=$!
for _ in $(seq 1 50); do grep -q watching watch3.err && break; sleep 0.1; done
$TOOL device "$URL" tern sim-11 sim --generation 41 >/dev/null
for _ in $(seq 1 50); do
	[ "$(sqlite3 "$TERN_DB" "select generation from devices where id='sim-11'")" = 41 ] && break
	sleep 0.1
done
kill -TERM "$watch_pid"
wait "$watch_pid"
watch_pid=""
expect_ok "deploy to a device that reported generation 41" "$TERN" deploy sim-1.1.0-2 \
	--key signing.key --device sim-11 --broker "$URL"
check "... issues 42, not 1" grep -q "to sim-11: install, activate now, generation 42" out.txt

# --- options from the environment and the config file; the flag wins
TERN_BROKER=$URL "$TERN" deploy sim-1.1.0-2 --key signing.key --device env-1 >out.txt 2>err.txt
check "broker from \$TERN_BROKER" grep -q "to env-1" out.txt
mkdir -p conf
printf '# tern\nbroker = %s\nprefix=lab/b\n' "$URL" >conf/tern.conf
TERN_CONFIG=conf/tern.conf "$TERN" deploy sim-1.1.0-2 --key signing.key --device cfg-1 >out.txt 2>err.txt
check "broker and prefix from \$TERN_CONFIG" grep -q "to cfg-1" out.txt
expect_ok "... published under the configured prefix" $TOOL get "$URL" lab/b/dev/cfg-1/desired c.bin
TERN_CONFIG=conf/tern.conf TERN_BROKER=mqtt://127.0.0.1:1 "$TERN" deploy sim-1.1.0-2 \
	--key signing.key --device cfg-2 --broker "$URL" --prefix lab/c >out.txt 2>err.txt
check "flag beats environment beats config" grep -q "to cfg-2" out.txt
expect_ok "... prefix flag too" $TOOL get "$URL" lab/c/dev/cfg-2/desired c2.bin
mkdir -p .config/tern
printf 'broker=%s\n' "$URL" >.config/tern/tern.conf
expect_ok "~/.config/tern/tern.conf" "$TERN" deploy sim-1.1.0-2 --key signing.key --device home-1
printf 'brokr=x\n' >conf/bad.conf
expect_fail "an unknown config key is named" "line 1: unknown key 'brokr'" \
	env TERN_CONFIG=conf/bad.conf "$TERN" devices
for cmd in publish deploy devices watch; do
	if "$TERN" $cmd --help | grep -q "^usage: tern $cmd"; then ok "help: $cmd"; else bad "help: $cmd"; fi
done

# --- the broker restarts under a running watch (last: the broker comes back empty)
"$TERN" watch --duration 30 --broker "$URL" --client-id watch-restart >watch2.txt 2>watch2.err &
watch_pid=$!
for _ in $(seq 1 50); do grep -q watching watch2.err && break; sleep 0.1; done
broker_restart
check "broker restarted on port $BROKER_PORT" kill -0 "$BROKER_PID"
for _ in $(seq 1 100); do grep -q "connected again" watch2.err && break; sleep 0.1; done
check "watch says the connection dropped" grep -q "connection lost; reconnecting" watch2.err
check "watch reconnects by itself" grep -q "connected again" watch2.err
expect_ok "fake device sim-10 after the restart" $TOOL device "$URL" tern sim-10 sim
for _ in $(seq 1 50); do grep -q "sim-10 offline" watch2.txt && break; sleep 0.1; done
kill -TERM "$watch_pid"
wait "$watch_pid"
watch_pid=""
check "watch subscribed again and recorded sim-10" \
	[ "$(sqlite3 "$TERN_DB" "select count(*) from events where device_id='sim-10' and kind in ('transition','refused')")" -eq 2 ]

finish
