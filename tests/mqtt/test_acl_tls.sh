#!/usr/bin/env bash
# The broker configuration tern ships (scripts/mosquitto/*.template) over TLS with
# per-client passwords, then with a client certificate per client instead: the operator
# may do everything; a device writes only its own dev/<id>/ topics and reads releases and
# its own desired state.
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TERN=$BUILD/tern
TOOL="/usr/bin/python3 $HERE/mqtt_tool.py"
source "$HERE/../lib/broker.sh"

work=$(mktemp -d /tmp/tern-acl-test.XXXXXX)
trap 'broker_stop; rm -rf "$work"' EXIT
chmod 711 "$work" # mosquitto, started as root, runs as user mosquitto
cd "$work" || exit 1
export HOME=$work TERN_DB=$work/tern.db
unset TERN_CONFIG TERN_BROKER TERN_USERNAME TERN_PASSWORD TERN_CAFILE TERN_CERT TERN_CERT_KEY TERN_PREFIX

refused() {
	local name=$1
	shift
	if "$@"; then bad "$name" "was allowed: $*"; else ok "$name"; fi
}

if ! broker_start_tls "$work/broker" operator:op-secret dev-1:pw-1 dev-2:pw-2; then
	bad "start mosquitto with TLS, passwords and the ACL template"
	finish
fi
ok "mosquitto with TLS on 127.0.0.1:$BROKER_PORT"
URL=$BROKER_URL
export MQTT_CAFILE=$BROKER_CA
OP=(--broker "$URL" --cafile "$BROKER_CA" --username operator --password op-secret)

"$TERN" key generate --out signing.key >/dev/null
head -c 5000 /dev/urandom >fw.bin
"$TERN" release create --key signing.key --board sim --version 1.0 --sequence 1 \
	--chunk-size 1K --firmware fw.bin --out r.tern >/dev/null
check "operator publishes a release over TLS" "$TERN" publish r.tern "${OP[@]}"
check "operator deploys to dev-1 and dev-2" "$TERN" deploy sim-1.0-1 --key signing.key \
	--device dev-1 --device dev-2 "${OP[@]}"
"$TERN" publish r.tern --broker "$URL" --username operator --password op-secret >out.txt 2>err.txt
check "without the CA file the broker's certificate is refused" grep -q "broker $URL:" err.txt
"$TERN" publish r.tern --broker "$URL" --cafile "$BROKER_CA" --username operator --password nope >out.txt 2>err.txt
check "a wrong password is refused" grep -qi "refused" err.txt
broker_client_cert operator "$work"
check "a client certificate and key are presented (--cert, --cert-key)" "$TERN" deploy sim-1.0-1 \
	--key signing.key --device dev-1 "${OP[@]}" --cert operator.crt --cert-key operator.key
"$TERN" deploy sim-1.0-1 --key signing.key --device dev-1 "${OP[@]}" --cert nope.crt \
	--cert-key operator.key >out.txt 2>err.txt
check "a missing client certificate fails with one line" [ "$(wc -l <err.txt)" -eq 1 ]
check "plain mqtt:// to the TLS port fails" bash -c "! '$TERN' deploy sim-1.0-1 --key signing.key --device dev-1 --broker mqtt://127.0.0.1:$BROKER_PORT 2>/dev/null"

# Reading: releases and its own desired state only.
check "dev-1 reads the release manifest" $TOOL try "$URL" dev-1 pw-1 sub tern/rel/sim-1.0-1/manifest
check "dev-1 reads release chunks" $TOOL try "$URL" dev-1 pw-1 sub "tern/rel/sim-1.0-1/firmware/0/+"
check "dev-1 reads its own desired state" $TOOL try "$URL" dev-1 pw-1 sub tern/dev/dev-1/desired
refused "dev-1 cannot read dev-2's desired state" $TOOL try "$URL" dev-1 pw-1 sub tern/dev/dev-2/desired
refused "dev-1 cannot read dev-2's state" $TOOL try "$URL" dev-1 pw-1 sub "tern/dev/dev-2/#"

# Writing: an operator-side watcher sees only what the ACL lets through.
"$TERN" watch --duration 30 "${OP[@]}" >watch.txt 2>watch.err &
watch_pid=$!
for _ in $(seq 1 50); do grep -q watching watch.err && break; sleep 0.1; done
check "dev-1 publishes its own online" $TOOL try "$URL" dev-1 pw-1 pub tern/dev/dev-1/online
$TOOL try "$URL" dev-1 pw-1 pub tern/dev/dev-2/online
$TOOL try "$URL" dev-1 pw-1 pub tern/rel/sim-1.0-1/manifest
$TOOL try "$URL" dev-1 pw-1 pub tern/rel/evil-1/manifest
$TOOL try "$URL" dev-1 pw-1 pub tern/dev/dev-1/desired
$TOOL try "$URL" dev-2 pw-2 pub tern/dev/dev-2/events
sleep 0.5
kill -TERM "$watch_pid"
wait "$watch_pid"
check "the watcher recorded dev-1's own topic" grep -q "dev-1 refused a online message" watch.txt
check "... and dev-2's own events" grep -q "dev-2 refused a events message" watch.txt
refused "dev-1 cannot publish dev-2's state or online" grep -q "dev-2 refused a online" watch.txt
check "the retained manifest is still the operator's" env MQTT_USER=dev-2 MQTT_PASS=pw-2 $TOOL get "$URL" tern/rel/sim-1.0-1/manifest m.bin
check "... byte for byte" cmp -s m.bin <(head -c "$(stat -c %s m.bin)" r.tern)
MQTT_USER=operator MQTT_PASS=op-secret $TOOL absent "$URL" tern/rel/evil-1/manifest
check "dev-1 cannot publish a release (nothing retained on rel/evil-1)" [ $? -eq 0 ]
MQTT_USER=operator MQTT_PASS=op-secret $TOOL get "$URL" tern/dev/dev-1/desired d.bin >/dev/null
check "dev-1 cannot overwrite its own desired state" bash -c "! grep -q 'probe from' d.bin"

# The same ACL when each client's certificate is its identity (require_certificate,
# use_identity_as_username: the CN is the username %u stands for), no passwords.
broker_stop
if ! broker_start_tls_certs "$work/certs" operator dev-1 dev-2; then
	bad "start mosquitto with client certificates"
	finish
fi
ok "mosquitto with client certificates on 127.0.0.1:$BROKER_PORT"
URL=$BROKER_URL
export MQTT_CAFILE=$BROKER_CA
C=$BROKER_DIR
OP=(--broker "$URL" --cafile "$BROKER_CA" --cert "$C/operator.crt" --cert-key "$C/operator.key")
as() { # NAME CMD...: runs CMD with NAME's certificate
	local name=$1
	shift
	MQTT_CERT=$C/$name.crt MQTT_KEY=$C/$name.key "$@"
}
check "certificates: the operator publishes and deploys" eval \
	'"$TERN" publish r.tern "${OP[@]}" >/dev/null && "$TERN" deploy sim-1.0-1 --key signing.key --device dev-1 --device dev-2 "${OP[@]}" >/dev/null'
quiet() { "$@" 2>/dev/null; } # the refused TLS handshakes make paho-mqtt print tracebacks
refused "certificates: a client without a certificate is refused" quiet $TOOL try "$URL" dev-1 x sub tern/rel/sim-1.0-1/manifest
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other-ca.key \
	-out other-ca.crt -days 2 -subj "/CN=dev-1" >/dev/null 2>&1
refused "certificates: a self-signed certificate claiming CN=dev-1 is refused" \
	quiet env MQTT_CERT=other-ca.crt MQTT_KEY=other-ca.key $TOOL try "$URL" - - sub tern/rel/sim-1.0-1/manifest
check "certificates: dev-1 reads the release" as dev-1 $TOOL try "$URL" - - sub tern/rel/sim-1.0-1/manifest
check "certificates: dev-1 reads its own desired state" as dev-1 $TOOL try "$URL" - - sub tern/dev/dev-1/desired
refused "certificates: dev-1 cannot read dev-2's desired state" as dev-1 $TOOL try "$URL" - - sub tern/dev/dev-2/desired
"$TERN" watch --duration 30 "${OP[@]}" >watch.txt 2>watch.err &
watch_pid=$!
for _ in $(seq 1 50); do grep -q watching watch.err && break; sleep 0.1; done
check "certificates: dev-1 publishes its own state" as dev-1 $TOOL try "$URL" - - pub tern/dev/dev-1/state
as dev-1 $TOOL try "$URL" - - pub tern/dev/dev-2/state
as dev-1 $TOOL try "$URL" - - pub tern/dev/dev-2/online
as dev-1 $TOOL try "$URL" - - pub tern/rel/evil-2/manifest
as dev-1 $TOOL try "$URL" - - pub tern/rel/sim-1.0-1/manifest
as dev-2 $TOOL try "$URL" - - pub tern/dev/dev-2/events
sleep 0.5
kill -TERM "$watch_pid"
wait "$watch_pid"
check "certificates: the watcher recorded dev-1's own state" grep -q "dev-1 refused a state message" watch.txt
check "... and dev-2's own events (the last thing published)" grep -q "dev-2 refused a events message" watch.txt
refused "certificates: dev-1 cannot publish dev-2's state or online" grep -q "dev-2 refused a \(state\|online\)" watch.txt
as dev-2 $TOOL get "$URL" tern/rel/sim-1.0-1/manifest m2.bin >/dev/null
check "certificates: the retained manifest is still the operator's, byte for byte" \
	cmp -s m2.bin <(head -c "$(stat -c %s m2.bin)" r.tern)
as operator $TOOL absent "$URL" tern/rel/evil-2/manifest
check "certificates: dev-1 cannot publish a release (nothing retained on rel/evil-2)" [ $? -eq 0 ]
finish
