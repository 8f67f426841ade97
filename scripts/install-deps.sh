#!/bin/sh
# Installs every Debian package that tern's build, tests, benchmarks and demo need.
# Idempotent: packages already present are left alone and nothing is fetched.
# Uses sudo only when not run as root.
set -eu

PKGS="build-essential pkg-config clang clang-format libclang-rt-14-dev valgrind time
libmbedtls-dev libcbor-dev libssl-dev openssl
libpaho-mqtt-dev mosquitto mosquitto-clients
libusb-1.0-0-dev umockdev libumockdev-dev libglib2.0-dev
libsqlite3-dev sqlite3 libcmocka-dev
libubootenv-tool grub-common
qemu-system-x86 busybox-static cpio
python3 python3-cbor2 python3-cryptography python3-paho-mqtt"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	[ "${1:-}" = "-q" ] || echo "install-deps: all packages present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

echo "install-deps: installing:$missing"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
# mosquitto's package starts a system broker on port 1883; tern's tests and demo run
# their own on random loopback ports and do not need it.
echo "install-deps: done"
