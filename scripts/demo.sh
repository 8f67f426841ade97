#!/usr/bin/env bash
# make demo: staged rollouts to a simulated fleet over MQTT, on this machine.
#  1. mosquitto on loopback (the test harness, with the broker configuration tern ships),
#     a signing key, two releases published into the broker;
#  2. a fleet of $DEMO_DEVICES simulated devices in one process (ternd fleet);
#  3. a bad release: one device in ten of the canary wave fails its health check and
#     rolls back by itself; the rollout pauses by itself; the rest of the fleet is not
#     touched; the operator aborts it;
#  4. a good release through three waves to every device;
#  5. both deployment records: summaries here, Markdown and HTML in $DEMO_OUT.
# Stops everything it started. BUILD, TERND, DEMO_DEVICES and DEMO_OUT may be set.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
TERN=$BUILD/tern
TERND=${TERND:-$BUILD/ternd}
N=${DEMO_DEVICES:-50}
OUT=${DEMO_OUT:-$BUILD/demo}
source "$ROOT/tests/lib/broker.sh"

if ! "$TERND" fleet --help >/dev/null 2>&1; then
	echo "demo: $TERND has no 'fleet' command yet (the fleet simulator is not built);" >&2
	echo "demo: the rollout tests run against fake devices meanwhile (make check)." >&2
	exit 1
fi

work=$(mktemp -d /tmp/tern-demo.XXXXXX)
fleet_pid=""
cleanup() {
	if [ -n "$fleet_pid" ]; then
		kill -TERM "$fleet_pid" 2>/dev/null || true
		wait "$fleet_pid" 2>/dev/null || true
	fi
	broker_stop
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
export TERN_DB=$work/tern.db HOME=$work USER=${USER:-operator}
unset TERN_CONFIG TERN_PREFIX
start=$(date +%s)
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi
[ -n "${NO_COLOR:-}" ] && say() { printf '\n== %s\n' "$*"; }
# Shows a command as an operator would type it (the long device list shortened).
run() {
	local shown="$*"
	shown=${shown#"$TERN "}
	echo "\$ tern ${shown//$ids/sim-0001,...,sim-$(printf %04d "$N")}"
	"$@"
}

ids=$(seq -f "sim-%04g" 1 "$N" | paste -sd, -)
say "mosquitto on loopback, a signing key, two releases"
broker_start "$work/broker" >/dev/null
export TERN_BROKER=$BROKER_URL
echo "broker $BROKER_URL (pid $BROKER_PID)"
"$TERN" key generate --out signing.key >/dev/null
"$TERND" sim mkimage --health ok --version 1.1.0 --size 192K --out fw-1.1.0.bin
"$TERND" sim mkimage --health ok --version 1.2.0 --size 192K --out fw-1.2.0.bin
printf 'Faster boot: the network comes up before the log service.\n' >notes-1.1.0.md
printf 'Faster boot, and the network driver fix for rev-B boards\n(1.1.0 failed its health check on some of them).\n' >notes-1.2.0.md
"$TERN" release create --key signing.key --board sim --version 1.1.0 --sequence 2 \
	--firmware fw-1.1.0.bin --notes notes-1.1.0.md --out fw-1.1.0.tern >/dev/null
"$TERN" release create --key signing.key --board sim --version 1.2.0 --sequence 3 \
	--firmware fw-1.2.0.bin --notes notes-1.2.0.md --out fw-1.2.0.tern >/dev/null
run "$TERN" publish fw-1.1.0.tern
run "$TERN" publish fw-1.2.0.tern

say "the bad release: 1.1.0 to $N devices, canary wave of 10"
run "$TERN" rollout create fw-1.1.0.tern --key signing.key --name spring-1.1.0 --devices "$ids" \
	--waves 10,50%,100% --bake 5s --max-failures 5% --device-timeout 60s
# One device in ten of the canary is a board on which 1.1.0 fails its health check.
victim=$("$TERN" rollout status spring-1.1.0 --members | awk '$1 == 1 {print $2; exit}')
echo "(the simulated $victim fails the health check of whatever it boots on trial)"

"$TERND" fleet --devices "$N" --dir "$work/fleet" --broker "$BROKER_URL" \
	--keyring signing.pub --unhealthy "$victim" >fleet1.log 2>&1 &
fleet_pid=$!
echo "fleet of $N simulated devices started (pid $fleet_pid)"
set +e
run "$TERN" rollout run spring-1.1.0 --no-wait
rc=$?
set -e
[ $rc -eq 3 ] || { echo "demo: expected the rollout to pause by itself (exit 3), got $rc" >&2; exit 1; }
run "$TERN" rollout status spring-1.1.0
run "$TERN" rollout abort spring-1.1.0

say "the good release: 1.2.0 to every device in three waves"
kill -TERM "$fleet_pid"
wait "$fleet_pid" || true
"$TERND" fleet --devices "$N" --dir "$work/fleet" --broker "$BROKER_URL" \
	--keyring signing.pub >fleet2.log 2>&1 &
fleet_pid=$!
echo "fleet restarted without the faulty board"
run "$TERN" rollout create fw-1.2.0.tern --key signing.key --name summer-1.2.0 --devices "$ids" \
	--waves 5,50%,100% --bake 3s --max-failures 5% --min-success 95% --device-timeout 60s
run "$TERN" rollout run summer-1.2.0

say "deployment records"
mkdir -p "$OUT"
for name in spring-1.1.0 summer-1.2.0; do
	"$TERN" report "$name" --summary
	"$TERN" report "$name" --out "$OUT/$name.md"
	"$TERN" report "$name" --format html --out "$OUT/$name.html"
	echo
done
echo "reports: $OUT/spring-1.1.0.html, $OUT/summer-1.2.0.html (and .md)"
echo "demo finished in $(($(date +%s) - start)) s; broker and fleet stopped"
