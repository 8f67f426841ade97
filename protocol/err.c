/* Sentences for tern error codes. */
#include "tern/tern_err.h"

#include <stddef.h>

struct err_text {
	const char *name;
	const char *text;
};

/* Indexed by -rc. Keep in the order of enum tern_err. */
static const struct err_text err_texts[] = {
    [0] = {"ok", "success"},
    [-TERN_E_NOMEM] = {"no-memory", "out of memory; close other programs or use a smaller release"},
    [-TERN_E_INVAL] = {"invalid-argument",
		       "invalid argument (a bug in the caller; please report it)"},
    [-TERN_E_IO] = {"io", "read or write failed; check the path, the disk and its permissions"},
    [-TERN_E_TRUNCATED] = {"truncated",
			   "the file ends early; it was cut short in transfer - copy it again"},
    [-TERN_E_NOT_RELEASE] = {"not-a-release",
			     "not a tern release (no COSE_Sign1 signed manifest at its start)"},
    [-TERN_E_MALFORMED] = {"malformed",
			   "the release is damaged: its structure is not what tern writes"},
    [-TERN_E_TOO_LARGE] = {"too-large", "a length or field in the input exceeds tern's limits; the "
					"file is damaged or not for tern"},
    [-TERN_E_BUF_SMALL] = {"buffer-too-small", "internal buffer too small for this input"},
    [-TERN_E_UNSUPPORTED_ALG] =
	{"unsupported-algorithm",
	 "unsupported signature algorithm; tern accepts only ES256 (ECDSA P-256 with SHA-256)"},
    [-TERN_E_BAD_SIGNATURE] =
	{"bad-signature",
	 "bad signature: the release was changed after signing or signed by another key"},
    [-TERN_E_UNKNOWN_KEY] = {"unknown-key", "signed by a key this device or command does not "
					    "trust; check the key id against your keyring"},
    [-TERN_E_DIGEST] =
	{"digest-mismatch",
	 "content does not match its signed digest: the file is corrupted - copy it again"},
    [-TERN_E_CRITICAL] = {"unknown-critical", "the release needs a feature this tern does not have "
					      "(unknown critical field); update tern"},
    [-TERN_E_TRAILING] =
	{"trailing-bytes",
	 "unexpected bytes after the end of the release; the file is damaged or was appended to"},
    [-TERN_E_FORMAT_VERSION] = {"format-version",
				"release format version not supported by this tern; update tern"},
    [-TERN_E_KEY] = {"bad-key", "the key file is unreadable or not a P-256 key"},
    [-TERN_E_PUBLIC_KEY] = {"public-key", "this is a public key; signing needs the private key "
					  "file (the one written by 'tern key generate --out')"},
    [-TERN_E_KEY_PERMS] = {"key-permissions",
			   "the signing key can be read by other users; run 'chmod 600' on it"},
    [-TERN_E_CRYPTO] = {"crypto", "the crypto library failed"},
    [-TERN_E_NOT_CBOR] = {"not-cbor",
			  "not well-formed CBOR; the file is damaged or not a tern release"},
    [-TERN_E_WRONG_BOARD] = {"wrong-board", "the release is for another board"},
    [-TERN_E_OLD_SEQUENCE] = {"not-newer", "the release is not newer than what the device runs"},
    [-TERN_E_BELOW_FLOOR] =
	{"below-floor",
	 "the release's security counter is below the device's floor (anti-rollback)"},
    [-TERN_E_SLOT_TOO_SMALL] = {"slot-too-small",
				"a component is larger than its slot on the device"},
    [-TERN_E_BUSY] = {"busy", "another update is in progress; wait for it or cancel it"},
    [-TERN_E_STATE] = {"bad-state", "not possible in the device's current state"},
    [-TERN_E_NOT_FOUND] = {"not-found", "not found"},
    [-TERN_E_EXISTS] = {"exists", "the file exists already; remove it or choose another name"},
    [-TERN_E_USAGE] = {"usage", "bad command line; see --help"},
    [-TERN_E_FLASH] = {"flash", "flash write or erase failed"},
    [-TERN_E_POWER_CUT] = {"power-cut", "power was cut (simulated)"},
    [-TERN_E_OFFSET] = {"bad-offset", "payload bytes at an unexpected offset; resume from the "
				      "offset the device reports"},
    [-TERN_E_GEOMETRY] = {"chunk-geometry",
			  "the release's chunk size is not a multiple of this "
			  "device's flash sector; rebuild it with a larger chunk size"},
    [-TERN_E_HEALTH] = {"health-check-failed",
			"the new image failed its health check; the device went back to the "
			"previous one"},
    [-TERN_E_TRIAL_BOOT] = {"trial-boot-failed",
			    "the new image never started the agent (crash or hang) within its "
			    "trial attempts; the device went back to the previous one"},
    [-TERN_E_CANCELED] = {"canceled", "the update was canceled before it was staged"},
    [-TERN_E_NO_BOOTCTL] = {"no-boot-control",
			    "no valid boot control record on the device; re-provision it"},
    [-TERN_E_NO_IMAGE] = {"no-bootable-image",
			  "no slot holds a complete verified image the device may boot"},
    [-TERN_E_WRONG_DEVICE] = {"wrong-device", "the signed command is addressed to another "
					      "device; it was ignored"},
    [-TERN_E_OLD_GENERATION] =
	{"old-generation", "the signed command is not newer than the last one this device "
			   "accepted (a replay or a stale copy); deploy again to issue a new one"},
    [-TERN_E_BROKER] = {"broker", "the MQTT broker is unreachable or refused the connection; "
				  "check --broker, the credentials and the CA file"},
    [-TERN_E_DB] = {"database", "the host database failed; check --db (or $TERN_DB) and that "
				"its folder is writable"},
    [-TERN_E_BOOTENV] = {"bootloader-env",
			 "the bootloader's environment is missing, damaged or unreadable; create "
			 "it (fw_setenv -f, grub-editenv create) or fix the boot settings"},
    [-TERN_E_BOOT_FAILED] = {"boot-failed",
			     "the confirmed image stopped booting (its attempts ran out); the "
			     "bootloader went back to the other slot"},
    [-TERN_E_MOUNTED] = {"slot-mounted", "the slot to be written is mounted; unmount it first"},
    [-TERN_E_RUNNING_SLOT] = {"running-slot-unknown",
			      "cannot tell which slot runs (kernel command line slot marker and "
			      "root= missing or disagreeing); nothing was written"},
    [-TERN_E_CRC] = {"crc", "a frame was damaged in transfer (CRC mismatch); retry, and try "
			    "another cable or port if it repeats"},
    [-TERN_E_USB] = {"usb", "the USB transfer failed: the device was unplugged or reset; plug "
			    "it back in and run the command again"},
    [-TERN_E_NO_ACCESS] = {"no-access", "the device is connected but this user may not open "
					"it; install scripts/udev/70-tern.rules (see docs/usb.md)"},
    [-TERN_E_AMBIGUOUS] = {"ambiguous", "several tern devices are connected; choose one with "
					"--serial (see 'tern usb list')"},
    [-TERN_E_TIMEOUT] = {"timeout", "the device did not answer in time; unplug it, plug it "
				    "back in and retry"},
    [-TERN_E_DEVICE] = {"device-error", "the device refused the request with a status this "
					"tern does not know; update tern"},
    [-TERN_E_NO_DEVICE] = {"no-device", "no tern device found on USB; check the cable, the "
					"port and that the board is powered"},
    [-TERN_E_PRIVATE_KEY] = {"private-key",
			     "this is a private signing key; give its public key instead (the .pub "
			     "file 'tern key generate' wrote beside it)"},
};

_Static_assert(sizeof(err_texts) / sizeof(err_texts[0]) == (size_t)-TERN_E__LAST,
	       "every error code has a sentence");

static const struct err_text *lookup(int rc)
{
	if (rc > 0 || rc <= TERN_E__LAST)
		return NULL;
	return &err_texts[-rc];
}

const char *tern_strerror(int rc)
{
	const struct err_text *t = lookup(rc);
	return t && t->text ? t->text : "unknown error";
}

const char *tern_errname(int rc)
{
	const struct err_text *t = lookup(rc);
	return t && t->name ? t->name : "unknown";
}
