#!/usr/bin/env bash
# The two demo scenarios as assertions, against the fleet simulator (ternd fleet: sim
# devices running the agent over MQTT) and a real mosquitto:
#   1. a bad release: one device in ten of the canary wave fails its health check and
#      rolls back; the rollout pauses by itself; the rest of the fleet is untouched;
#   2. a good release through three waves to every device;
#   3. a third release over devices on the second, aborted with --revert once its first
#      wave is confirmed: those members go back to the second release from their
#      inactive slot (no download), the others never take the third.
#   4. an abort withdraws what devices have not taken: with --activate together, the
#      staged members are never activated, and devices that were offline when the
#      release was sent connect afterwards and never install it;
#   5. devices downloading when the abort comes cancel the download.
# Skipped (0 passed, 0 failed, said plainly) while ternd has no fleet command.
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TERN=$BUILD/tern
TERND=${TERND:-$BUILD/ternd}
PY=/usr/bin/python3
N=${FLEET_DEVICES:-30}
source "$HERE/../lib/broker.sh"

if ! "$TERND" fleet --help >/dev/null 2>&1; then
	echo "skipped: $TERND has no 'fleet' command (the fleet simulator is not merged yet)"
	echo "0 passed, 0 failed"
	exit 0
fi
work=$(mktemp -d /tmp/tern-fleet-rollout.XXXXXX)
fleet_pid=""
run_pid=""
cleanup() {
	[ -n "$run_pid" ] && kill "$run_pid" 2>/dev/null
	[ -n "$fleet_pid" ] && kill "$fleet_pid" 2>/dev/null && wait "$fleet_pid" 2>/dev/null
	broker_stop
	[ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
export HOME=$work TERN_DB=$work/tern.db USER=tester
unset TERN_CONFIG TERN_USERNAME TERN_PASSWORD TERN_CAFILE TERN_CERT TERN_CERT_KEY TERN_PREFIX

q() { sqlite3 -cmd ".timeout 10000" "$TERN_DB" "$1"; }
status() { "$TERN" rollout status "$1" --json | $PY -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
waves() {
	"$TERN" rollout status "$1" --json | $PY -c '
import json, sys
print(" ".join("%s:%d/%d/%d/%d" % (w["state"], w["size"], w["succeeded"], w["failed"], w["pending"])
               for w in json.load(sys.stdin)["waves"]))'
}

broker_start "$work/broker" || { bad "start mosquitto"; finish; }
export TERN_BROKER=$BROKER_URL
"$TERN" key generate --out signing.key >/dev/null
"$TERND" sim mkimage --health ok --version 1.1.0 --size 128K --out a.bin >/dev/null
"$TERND" sim mkimage --health ok --version 1.2.0 --size 128K --out b.bin >/dev/null
printf 'Release 1.1.0.\n' >a.md
printf 'Release 1.2.0.\n' >b.md
"$TERN" release create --key signing.key --board sim --version 1.1.0 --sequence 2 --firmware a.bin \
	--notes a.md --out a.tern >/dev/null
"$TERN" release create --key signing.key --board sim --version 1.2.0 --sequence 3 --firmware b.bin \
	--notes b.md --out b.tern >/dev/null
"$TERN" publish a.tern >/dev/null && "$TERN" publish b.tern >/dev/null
check "two releases published" [ "$(q "select count(*) from releases where complete=1")" -eq 2 ]
ids=$(seq -f "sim-%04g" 1 "$N" | paste -sd, -)

# --- 1. the bad release
"$TERN" rollout create a.tern --key signing.key --name bad --devices "$ids" --waves 10,50%,100% \
	--bake 2s --max-failures 5% --device-timeout 60s >/dev/null
victim=$("$TERN" rollout status bad --members | awk '$1 == 1 {print $2; exit}')
"$TERND" fleet --devices "$N" --dir "$work/fleet" --broker "$BROKER_URL" --keyring signing.pub --unhealthy "$victim" \
	>fleet1.log 2>&1 &
fleet_pid=$!
"$TERN" rollout run bad --no-wait >bad.txt 2>&1
check "the bad rollout pauses by itself (run --no-wait exits 3)" [ $? -eq 3 ]
check "... paused with the reason" [ "$(status bad reason)" = "wave 1: 1 of 10 devices failed, above the maximum of 5%" ]
check "... canary 9 succeeded, 1 failed; waves 2 and 3 not started" \
	[ "$(waves bad)" = "halted:10/9/1/0 pending:$((N / 2 - 10))/0/0/$((N / 2 - 10)) pending:$((N - N / 2))/0/0/$((N - N / 2))" ]
check "... $victim rolled back by itself and runs 1.0.0" \
	[ "$(q "select state || ' ' || version from devices where id='$victim'")" = "rolled-back 1.0.0" ]
check "... its failure recorded with the agent's reason" \
	grep -q "^rolled-back: " <<<"$(q "select reason from rollout_members where rollout='bad' and device_id='$victim'")"
check "... the rest of the fleet untouched: no desired state, still 1.0.0" \
	[ "$(q "select count(*) from rollout_members m left join desired d on d.device_id=m.device_id where m.rollout='bad' and m.wave>0 and d.device_id is null")" -eq $((N - 10)) ]
"$TERN" report bad >bad.md
check "report: 9 succeeded, 1 failed, $((N - 10)) not deployed" \
	grep -q "9 succeeded, 1 failed (0 timed out), 0 pending, $((N - 10)) not deployed" bad.md
check "report: the rollback with its reason" grep -qE "^\| $victim \| 1 \| failed \| rolled-back: " bad.md
"$TERN" rollout abort bad >/dev/null
kill -TERM "$fleet_pid"
wait "$fleet_pid"
fleet_pid=""

# --- 2. the good release, three waves, every device
"$TERND" fleet --devices "$N" --dir "$work/fleet" --broker "$BROKER_URL" --keyring signing.pub >fleet2.log 2>&1 &
fleet_pid=$!
"$TERN" rollout create b.tern --key signing.key --name good --devices "$ids" --waves 3,50%,100% \
	--bake 1s --max-failures 5% --min-success 95% --device-timeout 60s --approve-each-wave >/dev/null
"$TERN" rollout run good --no-wait >good.txt 2>&1
check "the good rollout: wave 1 passes and waits for approval" \
	[ "$(status good state):$(waves good | cut -d' ' -f1,2)" = "waiting-approval:passed:3/3/0/0 pending:$((N / 2 - 3))/0/0/$((N / 2 - 3))" ]
"$TERN" rollout pause good --by ops >/dev/null
check "... paused" [ "$(status good state)" = paused ]
"$TERN" rollout resume good --by ops >/dev/null
check "... resumed: still waiting for approval (a pause does not skip it)" [ "$(status good state)" = waiting-approval ]
"$TERN" rollout approve good --by ops >/dev/null
"$TERN" rollout run good --no-wait >>good.txt 2>&1
check "... approved: wave 2 passes and waits again" [ "$(status good state):$(waves good | cut -d' ' -f2 | cut -d: -f1)" = "waiting-approval:passed" ]
"$TERN" rollout approve good --by ops >/dev/null
"$TERN" rollout run good >>good.txt 2>&1
check "the good rollout runs to the end" [ $? -eq 0 ]
check "... done, three waves passed, every member succeeded" \
	[ "$(status good state) $(waves good)" = "done passed:3/3/0/0 passed:$((N / 2 - 3))/$((N / 2 - 3))/0/0 passed:$((N - N / 2))/$((N - N / 2))/0/0" ]
check "... every device confirmed on 1.2.0" \
	[ "$(q "select count(*) from devices where version='1.2.0' and state='confirmed'")" -eq "$N" ]
check "... one install command per device" \
	[ "$(q "select count(distinct device_id) || '/' || count(*) from desired where release_id='sim-1.2.0-3'")" = "$N/$N" ]
"$TERN" report good --format html --out good.html
check "report: html with the numbers" grep -q "$N succeeded, 0 failed" good.html

# --- 3. 1.3.0 over devices on 1.2.0, aborted with --revert after the first wave
"$TERND" sim mkimage --health ok --version 1.3.0 --size 128K --out c.bin >/dev/null
printf 'Release 1.3.0.\n' >c.md
"$TERN" release create --key signing.key --board sim --version 1.3.0 --sequence 4 --firmware c.bin \
	--notes c.md --out c.tern >/dev/null
"$TERN" publish c.tern >/dev/null
"$TERN" rollout create c.tern --key signing.key --name third --devices "$ids" --waves 3,100% \
	--bake 0 --max-failures 5% --device-timeout 60s --approve-each-wave >/dev/null
"$TERN" rollout run third --no-wait >third.txt 2>&1
check "third rollout: wave 1 confirmed, waits for approval" \
	[ "$(status third state):$(waves third)" = "waiting-approval:passed:3/3/0/0 pending:$((N - 3))/0/0/$((N - 3))" ]
wave1=$(q "select group_concat(quote(device_id)) from rollout_members where rollout='third' and wave=0")
check "... its members confirmed on 1.3.0" \
	[ "$(q "select count(*) from devices where id in ($wave1) and version='1.3.0' and state='confirmed'")" -eq 3 ]
t0=$(date +%s.%N)
"$TERN" rollout abort third --revert --by ops >abort.txt 2>&1
check "abort --revert drives the revert to its end (exit 0)" [ $? -eq 0 ]
echo "     abort --revert of 3 devices, from the slot: $($PY -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)") s"
check "... aborted, revert finished" [ "$(status third state) $(status third revert)" = "aborted finished" ]
check "... 3 members reverted" \
	[ "$(q "select count(*) from rollout_members where rollout='third' and revert_outcome='reverted'")" -eq 3 ]
check "... the wave-1 devices confirmed on 1.2.0 again, with the revert's generation" \
	[ "$(q "select count(*) from devices d join rollout_members m on m.device_id=d.id where m.rollout='third' and m.wave=0 and d.version='1.2.0' and d.state='confirmed' and d.generation=m.revert_generation")" -eq 3 ]
check "... from their inactive slot: staged without a download" \
	[ "$(q "select group_concat(s) from (select distinct e.to_state s from events e join rollout_members m on m.device_id=e.device_id and e.generation=m.revert_generation where m.rollout='third' and e.kind='transition' order by s)")" = "confirmed,staged" ]
check "... the others never took 1.3.0: one install command per wave-1 member, none else" \
	[ "$(q "select count(*) from desired where release_id='sim-1.3.0-4'"):$(q "select count(*) from desired where release_id='sim-1.3.0-4' and device_id not in ($wave1)")" = "3:0" ]
check "... every device confirmed on 1.2.0" \
	[ "$(q "select count(*) from devices where version='1.2.0' and state='confirmed'")" -eq "$N" ]
check "status --json: 3 reverts sent, 3 reverted, 0 not, 0 pending" \
	[ "$("$TERN" rollout status third --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["reverts"])')" = "{'sent': 3, 'reverted': 3, 'not_reverted': 0, 'pending': 0}" ]
check "status --members: each wave-1 member succeeded, then reverted" \
	[ "$("$TERN" rollout status third --members | grep -c "^1 sim-[0-9]* succeeded; revert: reverted$")" -eq 3 ]
"$TERN" report third >third.md
check "report: the reverts" grep -q "reverted: 3 back on their previous release, 0 not" third.md
check "report: each revert listed" [ "$(grep -cE "^\| sim-[0-9]+ \| sim-1.2.0-3 \| reverted \|" third.md)" -eq 3 ]

# --- 4. abort: what devices have not taken is withdrawn
"$TERND" sim mkimage --health ok --version 1.4.0 --size 128K --out e.bin >/dev/null
printf 'Release 1.4.0.\n' >e.md
"$TERN" release create --key signing.key --board sim --version 1.4.0 --sequence 5 --firmware e.bin \
	--notes e.md --out e.tern >/dev/null
"$TERN" publish e.tern >/dev/null
kill -TERM "$fleet_pid"
wait "$fleet_pid"
on=$((N * 2 / 3))
offline=$(seq -f "sim-%04g" $((on + 1)) "$N" | paste -sd, -)
"$TERND" fleet --devices "$on" --dir "$work/fleet" --broker "$BROKER_URL" --keyring signing.pub >fleet3.log 2>&1 &
fleet_pid=$!
"$TERN" rollout create e.tern --key signing.key --name late --devices "$ids" --waves 100% \
	--max-failures 50% --device-timeout 60s --activate together >/dev/null
"$TERN" rollout run late >late.txt 2>&1 &
run_pid=$!
staged() { q "select count(*) from devices d join rollout_members m on m.device_id=d.id and m.rollout='late' where d.state='staged' and d.generation>=m.generation"; }
for _ in $(seq 1 600); do [ "$(staged)" -eq "$on" ] && break; sleep 0.1; done
check "$on online devices staged 1.4.0; the wave waits for the $((N - on)) offline ones" [ "$(staged)" -eq "$on" ]
"$TERN" rollout abort late --by ops >abort.txt 2>&1
check "abort while the controller runs: it carries the abort out" grep -q "its controller (pid $run_pid" abort.txt
check "... and has withdrawn when the abort command returns" \
	[ "$(q "select count(*) from rollout_events where rollout='late' and kind='withdraw-done'")" -eq 1 ]
wait "$run_pid"
check "... and finishes (exit 0)" [ $? -eq 0 ]
run_pid=""
check "... every member withdrawn: $on staged (not activated), $((N - on)) not taken" \
	[ "$(status late withdrawn):$(q "select count(*) from rollout_withdrawals where rollout='late' and was='staged, not activated'")" = "$N:$on" ]
check "... no activate command issued" \
	[ "$(q "select count(*) from desired where release_id='sim-1.4.0-5' and action<>'install'")" -eq 0 ]
kill -TERM "$fleet_pid"
wait "$fleet_pid"
"$TERND" fleet --devices "$N" --dir "$work/fleet" --broker "$BROKER_URL" --keyring signing.pub >fleet4.log 2>&1 &
fleet_pid=$!
settled() { q "select count(*) from devices d where d.generation=(select max(generation) from desired x where x.device_id=d.id)"; }
for _ in $(seq 1 20); do
	"$TERN" watch --duration 1 --quiet >/dev/null 2>&1
	[ "$(settled)" -eq "$N" ] && break
done
check "every device, the late ones too, took its newest command (the withdrawal)" [ "$(settled)" -eq "$N" ]
check "... none runs 1.4.0: all $N on 1.2.0" [ "$(q "select count(*) from devices where version='1.2.0'")" -eq "$N" ]
check "... none booted 1.4.0 (no trial)" \
	[ "$(q "select count(*) from events where release_id='sim-1.4.0-5' and to_state in ('trial','confirmed','rolled-back')")" -eq 0 ]
check "... the late devices never downloaded it" \
	[ "$(q "select count(*) from events where release_id='sim-1.4.0-5' and device_id in ('${offline//,/\',\'}')")" -eq 0 ]
"$TERN" report late >late.md
check "report: $N withdrawn by the abort" grep -q "$N withdrawn by the abort" late.md

# --- 5. abort while devices download (slowly): the downloads are canceled
# 128 chunks of 4 KiB: two windows of 64, so the newer command, queued behind the
# chunks already on their way (a slow link: at most one chunk per 40 ms), is read
# before the second window.
"$TERND" sim mkimage --health ok --version 1.5.0 --size 512K --out f.bin >/dev/null
printf 'Release 1.5.0.\n' >f.md
"$TERN" release create --key signing.key --board sim --version 1.5.0 --sequence 6 --firmware f.bin \
	--chunk-size 4K --notes f.md --out f.tern >/dev/null
"$TERN" publish f.tern >/dev/null
kill -TERM "$fleet_pid"
wait "$fleet_pid"
"$TERND" fleet --devices "$N" --dir "$work/fleet" --broker "$BROKER_URL" --keyring signing.pub \
	--slow "$offline" --slow-ms 40 >fleet5.log 2>&1 &
fleet_pid=$!
"$TERN" rollout create f.tern --key signing.key --name slow --devices "$offline" --waves 100% \
	--max-failures 50% --device-timeout 60s >/dev/null
"$TERN" rollout run slow >slow.txt 2>&1 &
run_pid=$!
downloading() { q "select count(*) from devices d join rollout_members m on m.device_id=d.id and m.rollout='slow' where d.state='downloading' and d.generation>=m.generation"; }
for _ in $(seq 1 300); do [ "$(downloading)" -eq $((N - on)) ] && break; sleep 0.1; done
check "$((N - on)) devices downloading 1.5.0 slowly" [ "$(downloading)" -eq $((N - on)) ]
"$TERN" rollout abort slow --by ops >abort.txt 2>&1
wait "$run_pid"
run_pid=""
canceled=$(q "select count(*) from rollout_withdrawals where rollout='slow' and was='download canceled'")
check "abort while they download: withdrawn as 'download canceled' ($canceled)" \
	[ "$canceled" -ge 1 ] && [ "$(status slow withdrawn)" -eq "$canceled" ]
for _ in $(seq 1 20); do
	"$TERN" watch --duration 1 --quiet >/dev/null 2>&1
	[ "$(q "select count(*) from rollout_withdrawals x join devices d on d.id=x.device_id where x.rollout='slow' and d.generation=x.generation and d.state<>'downloading'")" -eq "$canceled" ] && break
done
check "... each took the newer command and stopped downloading" \
	[ "$(q "select count(*) from rollout_withdrawals x join devices d on d.id=x.device_id where x.rollout='slow' and d.generation=x.generation and d.state<>'downloading'")" -eq "$canceled" ]
check "... the agent canceled the download" \
	[ "$(q "select count(distinct e.device_id) from events e join rollout_withdrawals x on x.device_id=e.device_id and x.rollout='slow' where e.status='canceled'")" -eq "$canceled" ]
check "... none of them staged or booted 1.5.0; they run 1.2.0" \
	[ "$(q "select count(*) from events e join rollout_withdrawals x on x.device_id=e.device_id and x.rollout='slow' where e.release_id='sim-1.5.0-6' and e.to_state in ('staged','trial','confirmed')"):$(q "select count(*) from devices d join rollout_withdrawals x on x.device_id=d.id and x.rollout='slow' where d.version='1.2.0'")" = "0:$canceled" ]
# --- 6. an older release to devices that run a newer one: each refuses it (not-newer)
# after accepting the command; that is a failure at once, not a wait for the time-out.
"$TERN" rollout create a.tern --key signing.key --name older --devices "$ids" --waves 1,100% \
	--device-timeout 30s >/dev/null
"$TERN" rollout run older --no-wait >older.txt 2>&1
check "an older release: the rollout pauses by itself (run --no-wait exits 3)" [ $? -eq 3 ]
check "... the canary failed, refused as not newer" \
	[ "$(q "select outcome || ' ' || reason from rollout_members where rollout='older' and wave=0")" = "failed refused: not-newer: release refused" ]
check "... paused with the reason" [ "$(status older reason)" = "wave 1: 1 of 1 devices failed, above the maximum of 0%" ]
finish
