/* tern error codes: every action returns 0 or one of these negative values. */
#ifndef TERN_ERR_H
#define TERN_ERR_H

/*
 * Error codes. The numbers are frozen: a device's boot record stores the last reason as
 * a number, so a code never changes its number or name (tests/unit/test_err.c pins
 * them). Add new codes at the end, just before TERN_E__LAST, and never reuse one.
 */
enum tern_err {
	TERN_OK = 0,
	TERN_E_NOMEM = -1,	     /* out of memory */
	TERN_E_INVAL = -2,	     /* bad argument from the caller */
	TERN_E_IO = -3,		     /* read or write failed (see errno) */
	TERN_E_TRUNCATED = -4,	     /* input ends before the item it announces */
	TERN_E_NOT_RELEASE = -5,     /* input does not start with a COSE_Sign1 */
	TERN_E_MALFORMED = -6,	     /* CBOR well-formed but not the expected shape */
	TERN_E_TOO_LARGE = -7,	     /* a field or length exceeds its bound */
	TERN_E_BUF_SMALL = -8,	     /* caller's output buffer too small */
	TERN_E_UNSUPPORTED_ALG = -9, /* COSE algorithm other than ES256 */
	TERN_E_BAD_SIGNATURE = -10,  /* signature does not verify */
	TERN_E_UNKNOWN_KEY = -11,    /* no trusted key with this key id */
	TERN_E_DIGEST = -12,	     /* payload or chunk does not match its digest */
	TERN_E_CRITICAL = -13,	     /* a critical field this reader does not know */
	TERN_E_TRAILING = -14,	     /* bytes after the end of the release */
	TERN_E_FORMAT_VERSION = -15, /* manifest format version not supported */
	TERN_E_KEY = -16,	     /* key file unreadable or not the right kind */
	TERN_E_PUBLIC_KEY = -17,     /* a public key where a signing key is needed */
	TERN_E_KEY_PERMS = -18,	     /* signing key readable by others */
	TERN_E_CRYPTO = -19,	     /* the crypto library failed */
	TERN_E_NOT_CBOR = -20,	     /* bytes are not well-formed CBOR */
	TERN_E_WRONG_BOARD = -21,    /* release is for another board */
	TERN_E_OLD_SEQUENCE = -22,   /* release is not newer than the running one */
	TERN_E_BELOW_FLOOR = -23,    /* security counter below the device's floor */
	TERN_E_SLOT_TOO_SMALL = -24, /* component larger than its slot */
	TERN_E_BUSY = -25,	     /* another update is in progress */
	TERN_E_STATE = -26,	     /* operation not valid in the current state */
	TERN_E_NOT_FOUND = -27,	     /* no such file, device or item */
	TERN_E_EXISTS = -28,	     /* refusing to overwrite an existing file */
	TERN_E_USAGE = -29,	     /* bad command line */
	TERN_E_FLASH = -30,	     /* flash write, erase or read failed */
	TERN_E_POWER_CUT = -31,	     /* simulated power cut (tests) */
	TERN_E_OFFSET = -32,	     /* payload bytes at an offset the device does not expect */
	TERN_E_GEOMETRY = -33,	     /* release chunk size does not fit the device's flash */
	TERN_E_HEALTH = -34,	     /* trial image failed its health check */
	TERN_E_TRIAL_BOOT = -35,     /* trial image never reached the agent (crash or hang) */
	TERN_E_CANCELED = -36,	     /* update canceled before it was staged */
	TERN_E_NO_BOOTCTL = -37,     /* no valid boot control record */
	TERN_E_NO_IMAGE = -38,	     /* no slot holds a bootable verified image */
	TERN_E_WRONG_DEVICE = -39,   /* signed command addressed to another device */
	TERN_E_OLD_GENERATION = -40, /* command not newer than the last one accepted */
	TERN_E_BROKER = -41,	     /* MQTT broker unreachable, refused or dropped us */
	TERN_E_DB = -42,	     /* the host's database failed */
	TERN_E_BOOTENV = -43,	     /* bootloader environment missing or unreadable */
	TERN_E_BOOT_FAILED = -44,    /* the confirmed image stopped booting; bootloader fell back */
	TERN_E_MOUNTED = -45,	     /* a slot to be written is mounted */
	TERN_E_RUNNING_SLOT = -46,   /* cannot tell which slot runs, or the signs disagree */
	TERN_E_CRC = -47,	     /* a frame's CRC does not match its bytes */
	TERN_E_USB = -48,	     /* a USB transfer failed (unplugged, stalled, reset) */
	TERN_E_NO_ACCESS = -49,	     /* a device is present but may not be opened */
	TERN_E_AMBIGUOUS = -50,	     /* several devices match and none was chosen */
	TERN_E_TIMEOUT = -51,	     /* the device did not answer in time */
	TERN_E_DEVICE = -52,	     /* the device refused with a status this tern does not know */
	TERN_E_NO_DEVICE = -53,	     /* no matching device is connected */
	TERN_E_PRIVATE_KEY = -54,    /* a private key where a public key is expected */
	TERN_E__LAST = -55
};

/*
 * Returns a sentence for @rc that a technician can act on. Never NULL; unknown codes
 * give a generic sentence. The string is static.
 */
const char *tern_strerror(int rc);

/* Returns a short stable identifier for @rc, e.g. "bad-signature", for JSON and logs. */
const char *tern_errname(int rc);

#endif
