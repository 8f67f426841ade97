#!/usr/bin/env bash
# The configuration file: every mistake is refused at start with one line naming the
# file, the line and the reason; paths are taken from the file's folder. Prints
# "N passed, N failed".
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
TERND=$(cd "$BUILD" && pwd)/ternd
work=$(mktemp -d /tmp/tern-config.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

good='[device]
board = example
keyring = keys
state = state
[slots]
firmware.A = a.img
firmware.B = b.img
[boot]
bootloader = grub
grubenv = grubenv
cmdline = cmdline
boot_id = boot_id
[health]
command = true'

# refused NAME WANT_REGEX CONFIG_TEXT: `ternd check` exits 1 with one stderr line
refused() {
	printf '%s\n' "$3" >c.conf
	"$TERND" --config c.conf check >out.txt 2>err.txt
	local rc=$? lines
	lines=$(wc -l <err.txt)
	if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -qE -e "^ternd: $2" err.txt; then
		ok "$1"
	else
		bad "$1" "exit $rc, stderr: $(cat err.txt)"
	fi
}

refused "unknown key" "c.conf:3: unknown key 'bord' in \[device\]" "[device]
board = example
bord = x"
refused "unknown section" "c.conf:2: unknown section \[helth\]" "# comment
[helth]"
refused "line without =" "c.conf:2: expected key = value" "[device]
board example"
refused "key before any section" "c.conf:1: key before the first \[section\]" "board = example"
refused "section header syntax" "c.conf:1: a section header is \[name\]" "[device"
refused "not a number" "c.conf:15: timeout: not a whole number" "$good
timeout = soon"
refused "number out of range" "c.conf:9: attempts: must be from 1 to 9" "[device]
board = x
keyring = k
state = s
[slots]
firmware.A = a
firmware.B = b
[boot]
attempts = 12"
refused "unknown bootloader" "c.conf:2: bootloader: must be uboot, grub or script" "[boot]
bootloader = barebox"
refused "key set twice" "c.conf:3: 'board' is set twice in \[device\]" "[device]
board = a
board = b"
refused "empty value" "c.conf:2: board: empty value" "[device]
board ="
refused "sector size not a power of two" "c.conf:2: sector_size: must be a power of two" "[device]
sector_size = 3000"
refused "yes/no" "c.conf:2: enabled: must be yes or no" "[usb]
enabled = maybe"
refused "vid range" "c.conf:2: vid: must be a number from 0 to 0xffff" "[usb]
vid = 0x12345"
refused "missing board" "c.conf:3: missing key 'board' in \[device\]" "[device]
keyring = k
state = s"
refused "missing slot" "c.conf:5: \[slots\] needs firmware.A and firmware.B" "[device]
board = x
keyring = k
state = s
[slots]"
refused "one config slot alone" "c.conf:8: \[slots\] needs both config.A and config.B, or neither" "[device]
board = x
keyring = k
state = s
[slots]
firmware.A = a
firmware.B = b
config.A = c"
refused "grub without grubenv" "c.conf:9: bootloader = grub needs 'grubenv' in \[boot\]" "[device]
board = x
keyring = k
state = s
[slots]
firmware.A = a
firmware.B = b
[boot]
bootloader = grub"
refused "two slots on one path" "c.conf:7: two slots share the path a.img" "[device]
board = x
keyring = k
state = s
[slots]
firmware.A = a.img
firmware.B = a.img"
refused "value too long" "c.conf:2: board: value too long" "[device]
board = $(printf 'b%.0s' $(seq 40))"
# [mqtt] url: scheme, host, port, nothing after (checked as the file is read).
refused "url: scheme" "c.conf:2: url: must start with mqtt:// or mqtts://" "[mqtt]
url = http://broker.example"
refused "url: no scheme" "c.conf:2: url: must start with mqtt:// or mqtts://" "[mqtt]
url = broker.example:1883"
refused "url: no host" "c.conf:2: url: no host" "[mqtt]
url = mqtt://"
refused "url: port without host" "c.conf:2: url: no host" "[mqtt]
url = mqtts://:8883"
refused "url: port out of range" "c.conf:2: url: port '70000' is not a number from 1 to 65535" "[mqtt]
url = mqtt://broker:70000"
refused "url: port 0" "c.conf:2: url: port '0' is not a number from 1 to 65535" "[mqtt]
url = mqtt://broker:0"
refused "url: port not a number" "c.conf:2: url: port 'http' is not a number from 1 to 65535" "[mqtt]
url = mqtt://broker:http"
refused "url: empty port" "c.conf:2: url: port '' is not a number from 1 to 65535" "[mqtt]
url = mqtt://broker:"
refused "url: a path" "c.conf:2: url: no path after the host" "[mqtt]
url = mqtt://broker:1883/tern"
refused "url: IPv6 without ]" "c.conf:2: url: an IPv6 host is written \\[ADDRESS\\]" "[mqtt]
url = mqtt://[::1:1883"
if "$TERND" --config missing.conf check 2>err.txt; then bad "missing file"; else
	grep -q "^ternd: missing.conf: cannot open: No such file" err.txt && ok "missing file" || bad "missing file" "$(cat err.txt)"
fi

# A well-formed file whose pieces are missing: named by path.
mkdir -p keys
refused "keyring with no key (a device with an id)" "keys: no public key" "$good
[device]
id = dev-1" 2>/dev/null
"$(dirname "$TERND")/tern" key generate --out keys/k >/dev/null
refused "slot file missing" "a.img: cannot open slot" "$good"
truncate -s 1M a.img b.img
refused "no cmdline" "cmdline: cannot read it" "$good"
echo "root=/dev/sda2 tern.slot=A" >cmdline
refused "no boot id" "boot_id: cannot read the boot id" "$good"
echo "boot-1" >boot_id
refused "grubenv missing" "bootloader: the bootloader's environment is missing" "$good"
grub-editenv grubenv create
printf '%s\n' "$good" >c.conf
if "$TERND" --config c.conf check >/dev/null 2>err.txt; then ok "a complete config passes check"; else bad "complete config" "$(cat err.txt)"; fi
# A blank device (no [device] id) may have no key yet: check passes and says so.
mkdir -p nokeys
printf '%s\n' "$good" | sed 's/^keyring = keys/keyring = nokeys/' >c.conf
if "$TERND" --config c.conf check >out.txt 2>err.txt && grep -q "not provisioned yet: no \[device\] id and no key" out.txt; then
	ok "blank device, empty keyring: check passes, says it is not provisioned"
else
	bad "blank device check" "$(cat out.txt err.txt)"
fi
# The provisioning drop-in STATE/provisioned.conf: only [provisioned], [device] id, [mqtt].
printf '%s\n' "$good" >c.conf
printf '[provisioned]\ngeneration = 2\n[device]\nid = lab-7\n[mqtt]\nurl = mqtt://10.0.0.1\n' >state/provisioned.conf
if "$TERND" --config c.conf check >/dev/null 2>err.txt; then ok "a valid drop-in passes check"; else bad "valid drop-in" "$(cat err.txt)"; fi
"$TERND" --config c.conf status >out.txt 2>&1
grep -q "^device: *lab-7 " out.txt && ok "the drop-in's id is the device's" || bad "drop-in id" "$(head -n 2 out.txt)"
printf '[device]\nid = lab-7\n[slots]\nfirmware.A = /dev/sda1\n' >state/provisioned.conf
refused "drop-in: a key provisioning may not set" "state/provisioned.conf:4: \[slots\] firmware.A cannot be set by provisioning" "$good"
printf '[device]\nid = lab 7\n' >state/provisioned.conf
refused "drop-in: a bad id" "state/provisioned.conf:2: \[device\] id must be 1 to 64" "$good"
printf '[mqtt]\nurl = mqtt://h:99999\n' >state/provisioned.conf
refused "drop-in: its url is checked too" "state/provisioned.conf:2: url: port '99999'" "$good"
rm -f state/provisioned.conf
refused "[provisioned] in ternd.conf" "c.conf:16: \[provisioned\] generation is written by ternd in STATE/provisioned.conf" "$good
[provisioned]
generation = 1"
printf '%s\n' "$good" >c.conf
# Relative paths are taken from the config file's folder, wherever ternd runs.
if (cd / && "$TERND" --config "$work/c.conf" check >/dev/null 2>&1); then ok "relative paths from the config's folder"; else bad "relative paths"; fi
# The files [mqtt] names must be readable, TLS files need mqtts://: file, line, reason.
mq() { printf '%s\n[mqtt]\n%s\n' "$good" "$1"; }
for u in mqtt://127.0.0.1 mqtt://broker.example:1883 'mqtts://[::1]:8883' tcp://h:1 ssl://h:65535; do
	mq "url = $u" >c.conf
	if "$TERND" --config c.conf check >/dev/null 2>err.txt; then ok "url $u passes check"; else bad "url $u" "$(cat err.txt)"; fi
done
refused "password_file unreadable" "c.conf:17: password_file: cannot read nopass: No such file or directory" "$(mq "url = mqtt://h
password_file = nopass")"
refused "TLS CA file missing" "c.conf:18: ca: cannot read ca.pem: No such file or directory" "$(mq "url = mqtts://h
username = d1
ca = ca.pem")"
echo "not checked here" >ca.pem
echo "not checked here" >client.crt
refused "TLS files with mqtt://" "c.conf:17: ca: TLS files need an mqtts:// url \(line 16 is mqtt://h\)" "$(mq "url = mqtt://h
ca = ca.pem")"
refused "client certificate without its key" "c.conf:18: a client certificate needs both cert and key" "$(mq "url = mqtts://h
ca = ca.pem
cert = client.crt")"
refused "client key missing" "c.conf:19: key: cannot read client.key: No such file or directory" "$(mq "url = mqtts://h
ca = ca.pem
cert = client.crt
key = client.key")"
if [ "$(id -u)" -ne 0 ]; then
	echo secret >client.key
	chmod 000 client.key
	refused "client key not readable" "c.conf:19: key: cannot read client.key: Permission denied" "$(mq "url = mqtts://h
ca = ca.pem
cert = client.crt
key = client.key")"
	rm -f client.key
fi
echo secret >client.key
mq "url = mqtts://h
ca = ca.pem
cert = client.crt
key = client.key" >c.conf
if "$TERND" --config c.conf check >/dev/null 2>err.txt; then ok "mqtts:// with readable TLS files passes check"; else bad "mqtts with files" "$(cat err.txt)"; fi
# U-Boot: fw_env.config errors name that file and line.
printf '%s\n' "$good" | sed -e 's/bootloader = grub/bootloader = uboot/' -e 's/^grubenv = grubenv/fw_env_config = fw_env.config/' >u.conf
printf 'env.bin 0x0\n' >fw_env.config
"$TERND" --config u.conf check 2>err.txt >/dev/null
grep -q "^ternd: fw_env.config:1: want PATH OFFSET SIZE" err.txt && ok "fw_env.config error: file and line" || bad "fw_env.config error" "$(cat err.txt)"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
