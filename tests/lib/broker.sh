# Shell functions that run a real mosquitto for a test (source this file from bash).
#
#   broker_start DIR             plain: anonymous, no TLS, on 127.0.0.1:<free port>
#   broker_start_tls DIR USER:PASS...
#                                TLS with a CA and server certificate made here, one
#                                password per user, scripts/mosquitto/acl.template
#                                (the first user is the operator, the others devices)
#   broker_start_tls_certs DIR OPERATOR DEVICE...
#                                TLS where each client's certificate (made here, CN =
#                                username) is its identity: no passwords
#   broker_client_cert NAME DIR  a client certificate and key signed by the broker's CA
#   broker_restart               stops it and starts it again on the same port
#   broker_stop                  stops the broker started last, by its PID
#
# Both fill the config from scripts/mosquitto/mosquitto.conf.template (the limits tern
# ships) and set BROKER_PORT, BROKER_PID, BROKER_URL (mqtt:// or mqtts://), BROKER_DIR,
# BROKER_LOG, and for TLS BROKER_CA (the CA certificate clients trust). They return
# non-zero, with the broker's log on stderr, if it does not accept connections within
# 5 seconds. The prefix for the ACL is $BROKER_PREFIX (default "tern").

BROKER_LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BROKER_PID=""

# Prints a TCP port that was free on 127.0.0.1 a moment ago.
broker_free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# broker_wait_port PORT PID: waits until PORT accepts connections (PID must stay alive).
broker_wait_port() {
	local port=$1 pid=$2 i
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# Makes DIR readable by the user mosquitto drops to when started as root.
broker_share_dir() {
	local dir=$1
	if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then
		chgrp -R mosquitto "$dir"
		chmod 750 "$dir"
		chmod 640 "$dir"/* 2>/dev/null
	else
		chmod 700 "$dir"
	fi
}

# broker_config TEMPLATE_VARIANT DIR PORT: writes DIR/mosquitto.conf.
broker_config() {
	local variant=$1 dir=$2 port=$3
	local sed_args=(-e "s|@PORT@|$port|" -e "s|@BIND@|127.0.0.1|" -e "s|@CONF_DIR@|$dir|g"
		-e "s|@PERSISTENCE@|false|" -e "s|@DATA_DIR@|$dir|")
	if [ "$variant" = plain ]; then
		sed_args+=(-e '/^\(password_file\|acl_file\|cafile\|certfile\|keyfile\|tls_version\) /d'
			-e 's/^allow_anonymous false/allow_anonymous true/')
	elif [ "$variant" = tls-cert ]; then
		# Identity from the client certificate (its CN is the username the ACL sees),
		# as docs/mqtt.md describes; the commented lines of the template, switched on.
		sed_args+=(-e '/^password_file /d' -e 's/^#\(require_certificate\|use_identity_as_username\) /\1 /')
	fi
	sed "${sed_args[@]}" "$BROKER_LIB_ROOT/scripts/mosquitto/mosquitto.conf.template" \
		>"$dir/mosquitto.conf"
}

# broker_run VARIANT DIR: picks a port, starts mosquitto, waits; retries on a port race.
broker_run() {
	local variant=$1 dir=$2 attempt
	BROKER_DIR=$dir
	BROKER_LOG=$dir/mosquitto.log
	for attempt in 1 2 3 4 5; do
		BROKER_PORT=$(broker_free_port) || return 1
		broker_config "$variant" "$dir" "$BROKER_PORT"
		broker_share_dir "$dir"
		mosquitto -c "$dir/mosquitto.conf" >"$BROKER_LOG" 2>&1 &
		BROKER_PID=$!
		if broker_wait_port "$BROKER_PORT" "$BROKER_PID"; then
			if [ "$variant" = plain ]; then
				BROKER_URL=mqtt://127.0.0.1:$BROKER_PORT
			else
				BROKER_URL=mqtts://127.0.0.1:$BROKER_PORT
			fi
			return 0
		fi
		kill "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
		BROKER_PID=""
	done
	echo "broker: mosquitto did not start; its log:" >&2
	cat "$BROKER_LOG" >&2
	return 1
}

broker_start() {
	mkdir -p "$1" && broker_run plain "$(cd "$1" && pwd)"
}

# broker_make_certs DIR: ca.crt/ca.key and server.crt/server.key for 127.0.0.1.
broker_make_certs() {
	local dir=$1
	(
		cd "$dir" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout ca.key -out ca.crt -days 2 -subj "/CN=tern test CA" &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext &&
			openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
				-out server.crt -days 2 -extfile server.ext
	) >"$dir/openssl.log" 2>&1 || {
		cat "$dir/openssl.log" >&2
		return 1
	}
	rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
}

# broker_client_cert NAME OUTDIR: OUTDIR/NAME.crt and OUTDIR/NAME.key, signed by the
# CA of the TLS broker started last (for clients that present a certificate).
broker_client_cert() {
	local name=$1 out=$2
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$out/$name.key" -out "$out/$name.csr" -subj "/CN=$name" >/dev/null 2>&1 &&
		openssl x509 -req -in "$out/$name.csr" -CA "$BROKER_DIR/ca.crt" \
			-CAkey "$BROKER_DIR/ca.key" -CAcreateserial -CAserial "$out/ca.srl" \
			-out "$out/$name.crt" -days 2 >/dev/null 2>&1 &&
		rm -f "$out/$name.csr" "$out/ca.srl"
}

broker_start_tls() {
	local dir user_pass user pass operator="" first=1
	mkdir -p "$1" && dir=$(cd "$1" && pwd)
	shift
	broker_make_certs "$dir" || return 1
	: >"$dir/passwd"
	for user_pass in "$@"; do
		user=${user_pass%%:*}
		pass=${user_pass#*:}
		mosquitto_passwd -b "$dir/passwd" "$user" "$pass" || return 1
		if [ $first -eq 1 ]; then
			operator=$user
			first=0
		fi
	done
	sed -e "s|@PREFIX@|${BROKER_PREFIX:-tern}|g" -e "s|@OPERATOR@|$operator|" \
		"$BROKER_LIB_ROOT/scripts/mosquitto/acl.template" >"$dir/acl"
	BROKER_CA=$dir/ca.crt
	broker_run tls "$dir"
}

# broker_start_tls_certs DIR OPERATOR DEVICE...: TLS where every client presents a
# certificate signed by the broker's CA and its CN is its username (no passwords):
# require_certificate and use_identity_as_username, the ACL template with OPERATOR.
# Makes DIR/NAME.crt and DIR/NAME.key for the operator and every device.
broker_start_tls_certs() {
	local dir name
	mkdir -p "$1" && dir=$(cd "$1" && pwd)
	shift
	broker_make_certs "$dir" || return 1
	BROKER_DIR=$dir
	for name in "$@"; do
		broker_client_cert "$name" "$dir" || return 1
	done
	sed -e "s|@PREFIX@|${BROKER_PREFIX:-tern}|g" -e "s|@OPERATOR@|$1|" \
		"$BROKER_LIB_ROOT/scripts/mosquitto/acl.template" >"$dir/acl"
	BROKER_CA=$dir/ca.crt
	broker_run tls-cert "$dir"
}

# broker_restart: stops the broker and starts it again on the same port and config
# (without persistence it comes back empty: no retained messages, no sessions).
broker_restart() {
	broker_stop
	mosquitto -c "$BROKER_DIR/mosquitto.conf" >>"$BROKER_LOG" 2>&1 &
	BROKER_PID=$!
	broker_wait_port "$BROKER_PORT" "$BROKER_PID"
}

broker_stop() {
	if [ -n "$BROKER_PID" ]; then
		kill "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
		BROKER_PID=""
	fi
}
