/*
 * The MQTT messages (docs/mqtt.md): the signed desired state (host -> device) and the
 * device's state and events (device -> host), all CBOR maps with small integer keys.
 *
 * Decoders never allocate and read only the caller's buffer; text fields are copied
 * into fixed arrays in the structs. Unknown keys are skipped so either side can add
 * fields. Encoders write into caller buffers and return bytes written, or 0 when the
 * message is not valid or the buffer is too small.
 *
 * Errors never go on the wire as internal TERN_E* codes: they travel as a stable
 * enum tern_wire_status (tern_status_from_err() / tern_status_to_err()).
 */
#ifndef TERN_MSG_H
#define TERN_MSG_H

#include "tern/tern_cose.h"
#include "tern/tern_manifest.h"
#include "tern/tern_topic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * External AAD bound into every desired-state signature (RFC 9052 section 4.3). It keeps
 * a signed manifest from ever passing as a desired state, or the reverse, although both
 * are signed by the same release key.
 */
#define TERN_DESIRED_AAD "tern-desired-v1"

#define TERN_DESIRED_MAX	256 /* encoded desired-state payload (bytes) */
#define TERN_SIGNED_DESIRED_MAX (TERN_DESIRED_MAX + 128)
#define TERN_EVENT_MAX		384			   /* encoded event (bytes) */
#define TERN_STATE_MAX		(512 + TERN_EVENT_MAX + 8) /* encoded device state, last event included */
#define TERN_EVENT_DETAIL_MAX	96			   /* event detail text (bytes) */
#define TERN_SLOTS		2			   /* A and B */

/* ---- Wire status: stable numbers, never internal codes. Append only. */
enum tern_wire_status {
	TERN_ST_OK = 0,
	TERN_ST_ERROR = 1, /* an error without a more precise status */
	TERN_ST_NOMEM = 2,
	TERN_ST_IO = 3,
	TERN_ST_TRUNCATED = 4,
	TERN_ST_MALFORMED = 5,
	TERN_ST_TOO_LARGE = 6,
	TERN_ST_UNSUPPORTED_ALG = 7,
	TERN_ST_BAD_SIGNATURE = 8,
	TERN_ST_UNKNOWN_KEY = 9,
	TERN_ST_DIGEST = 10,
	TERN_ST_CRITICAL = 11,
	TERN_ST_FORMAT_VERSION = 12,
	TERN_ST_WRONG_BOARD = 13,
	TERN_ST_OLD_SEQUENCE = 14,
	TERN_ST_BELOW_FLOOR = 15,
	TERN_ST_SLOT_TOO_SMALL = 16,
	TERN_ST_BUSY = 17,
	TERN_ST_STATE = 18,
	TERN_ST_NOT_FOUND = 19,
	TERN_ST_FLASH = 20,
	TERN_ST_POWER_CUT = 21,
	TERN_ST_WRONG_DEVICE = 22,
	TERN_ST_OLD_GENERATION = 23,
	TERN_ST_BROKER = 24,
	TERN_ST_CRC = 25,	   /* USB: the request frame was damaged; send it again */
	TERN_ST_UNKNOWN_TYPE = 26, /* USB: the device does not handle this message type */
	TERN_ST_PROVISIONED = 27,  /* already provisioned; a signed request is needed */
	TERN_ST_OFFSET = 28,	   /* bytes at an offset the device does not expect */
	TERN_ST_GEOMETRY = 29,	   /* chunk size does not fit the device's flash */
	TERN_ST_HEALTH = 30,	   /* the trial image failed its health check */
	TERN_ST_TRIAL_BOOT = 31,   /* the trial image never reached the agent */
	TERN_ST_CANCELED = 32,	   /* the update was canceled before it was staged */
	TERN_ST_NO_BOOTCTL = 33,   /* no valid boot control record */
	TERN_ST_NO_IMAGE = 34,	   /* no slot holds a bootable verified image */
	TERN_ST__COUNT
};

/* Maps an internal code (0 or TERN_E*) to its wire status; unknown codes give ERROR. */
uint16_t tern_status_from_err(int rc);
/* Maps a wire status back to an internal code (0, a TERN_E*, or TERN_E_MALFORMED). */
int tern_status_to_err(uint64_t status);
/* Stable short name of a wire status ("bad-signature"), "unknown" when out of range. */
const char *tern_status_name(uint64_t status);

/* ---- Desired state: host -> device, COSE_Sign1 over this payload, retained. */
enum tern_action {
	TERN_ACTION_INSTALL = 0,  /* fetch, verify and stage the release */
	TERN_ACTION_ACTIVATE = 1, /* boot the staged release on trial */
	TERN_ACTION_REVERT = 2,	  /* go back to an older release still at or above the floor */
	TERN_ACTION__COUNT
};

enum tern_activate_mode {
	TERN_ACTIVATE_NOW = 0,	 /* activate as soon as staged */
	TERN_ACTIVATE_LATER = 1, /* stage, then wait for an ACTIVATE */
	TERN_ACTIVATE__COUNT
};

/* Desired-state map keys (all required). */
enum tern_desired_key {
	TERN_DK_DEVICE = 1,
	TERN_DK_GENERATION = 2,
	TERN_DK_RELEASE = 3,
	TERN_DK_SEQUENCE = 4,
	TERN_DK_ACTION = 5,
	TERN_DK_ACTIVATE = 6,
	TERN_DK_ISSUED = 7,
};

struct tern_desired {
	char device_id[TERN_DEVICE_ID_MAX + 1];
	uint64_t generation; /* grows with every command to this device; starts at 1 */
	char release_id[TERN_RELEASE_ID_MAX + 1];
	uint64_t sequence; /* the release's manifest sequence number */
	enum tern_action action;
	enum tern_activate_mode activate;
	uint64_t issued; /* seconds since 1970 UTC, host clock (for people, not checked) */
};

const char *tern_action_name(enum tern_action a);
const char *tern_activate_name(enum tern_activate_mode m);

/* Checks ids, generation >= 1 and enum ranges. Returns 0 or TERN_E_MALFORMED. */
int tern_desired_check(const struct tern_desired *d);

/* Encodes the payload (canonical, keys ascending). Bytes written or 0. */
size_t tern_desired_encode(const struct tern_desired *d, uint8_t *buf, size_t size);

/* Decodes and checks a payload of exactly @len bytes. Errors as tern_manifest_decode(). */
int tern_desired_decode(struct tern_desired *d, const uint8_t *buf, size_t len);

/*
 * What a device does with a desired-state message from the broker: parses the
 * COSE_Sign1, verifies it against @kr with TERN_DESIRED_AAD, decodes the payload and
 * checks that it is addressed to @device_id and that its generation is above
 * @last_generation (the last one this device accepted). Returns 0 or, in this order
 * of checks: a parse error, TERN_E_UNKNOWN_KEY (kid not in @kr), TERN_E_BAD_SIGNATURE
 * (forged or altered), a decode error, TERN_E_WRONG_DEVICE, TERN_E_OLD_GENERATION.
 * On error @d may hold partial data and must not be acted on.
 */
int tern_desired_open(struct tern_desired *d, const uint8_t *buf, size_t len,
		      const struct tern_keyring *kr, const char *device_id,
		      uint64_t last_generation);

struct tern_signer;
/*
 * Host only (libternsign): encodes @d and signs it as a tagged COSE_Sign1 with
 * TERN_DESIRED_AAD. Returns bytes written to @out, or 0 (invalid @d, @size too small,
 * signing failed).
 */
size_t tern_desired_sign(const struct tern_signer *sg, const struct tern_desired *d, uint8_t *out,
			 size_t size);

/* ---- Device state: device -> host, retained on dev/ID/state. */
enum tern_dev_state {
	TERN_STATE_IDLE = 0,
	TERN_STATE_DOWNLOADING = 1,
	TERN_STATE_VERIFYING = 2,
	TERN_STATE_STAGED = 3,
	TERN_STATE_TRIAL = 4,
	TERN_STATE_CONFIRMED = 5,
	TERN_STATE_ROLLED_BACK = 6,
	TERN_STATE_FAILED = 7,
	TERN_STATE__COUNT
};

/* "idle", "downloading", ..., "rolled-back", "failed"; "unknown" when out of range. */
const char *tern_dev_state_name(uint64_t state);

enum tern_state_key {
	TERN_SK_DEVICE = 1,	 /* text, required */
	TERN_SK_BOARD = 2,	 /* text, required */
	TERN_SK_STATE = 3,	 /* uint enum tern_dev_state, required */
	TERN_SK_ACTIVE_SLOT = 4, /* uint 0 (A) or 1 (B), required */
	TERN_SK_SLOTS = 5,	 /* array of TERN_SLOTS slot maps, required */
	TERN_SK_TARGET = 6,	 /* text: release being worked on, optional */
	TERN_SK_DONE = 7,	 /* uint: chunks verified so far */
	TERN_SK_TOTAL = 8,	 /* uint: chunks in the target release */
	TERN_SK_LAST_STATUS = 9, /* uint enum tern_wire_status of the last failure */
	TERN_SK_GENERATION = 10, /* uint: last desired generation accepted */
	TERN_SK_TIME = 11,	 /* uint: device clock, seconds */
	TERN_SK_FLOOR = 12,	 /* uint: security counter floor */
	/* bstr, optional: the device's last event that tells an outcome (a transition, or a
	 * refusal other than old-generation), the bytes it published on dev/ID/events, so a
	 * recorder that missed the event (killed after paho acknowledged it) has it again
	 * from the retained state. Must decode as an event of the same device. */
	TERN_SK_LAST_EVENT = 13,
};

/* Slot map keys; an empty slot is an empty map. */
enum tern_slot_key {
	TERN_SLK_RELEASE = 1,  /* text */
	TERN_SLK_VERSION = 2,  /* text */
	TERN_SLK_SEQUENCE = 3, /* uint */
	TERN_SLK_GOOD = 4,     /* bool: confirmed good */
};

struct tern_slot_info {
	char release_id[TERN_RELEASE_ID_MAX + 1]; /* "" when the slot is empty */
	char version[TERN_VERSION_MAX + 1];
	uint64_t sequence;
	bool good;
};

struct tern_state_msg {
	char device_id[TERN_DEVICE_ID_MAX + 1];
	char board[TERN_NAME_MAX + 1];
	enum tern_dev_state state;
	uint32_t active_slot;
	struct tern_slot_info slots[TERN_SLOTS];
	char target[TERN_RELEASE_ID_MAX + 1]; /* "" when none */
	uint64_t done, total;
	uint16_t last_status; /* enum tern_wire_status */
	uint64_t generation;
	uint64_t time;
	uint32_t floor;
	uint8_t last_event[TERN_EVENT_MAX]; /* TERN_SK_LAST_EVENT; last_event_len 0: none */
	size_t last_event_len;
};

size_t tern_state_encode(const struct tern_state_msg *s, uint8_t *buf, size_t size);
int tern_state_decode(struct tern_state_msg *s, const uint8_t *buf, size_t len);

/* ---- Events: device -> host on dev/ID/events, one per transition or refusal. */
enum tern_event_kind {
	TERN_EV_TRANSITION = 0, /* state changed from -> to */
	TERN_EV_REFUSED = 1,	/* a desired state or release was refused (status says why) */
	TERN_EV_ERROR = 2,	/* a failure that did not change the state (e.g. bad chunk) */
	TERN_EV__COUNT
};

const char *tern_event_kind_name(uint64_t kind);

enum tern_event_key {
	TERN_EVK_DEVICE = 1,	  /* text, required */
	TERN_EVK_SEQ = 2,	  /* uint: per-device event counter, required */
	TERN_EVK_TIME = 3,	  /* uint, required */
	TERN_EVK_KIND = 4,	  /* uint enum tern_event_kind, required */
	TERN_EVK_FROM = 5,	  /* uint enum tern_dev_state, required */
	TERN_EVK_TO = 6,	  /* uint enum tern_dev_state, required */
	TERN_EVK_RELEASE = 7,	  /* text, optional */
	TERN_EVK_STATUS = 8,	  /* uint enum tern_wire_status, required */
	TERN_EVK_DETAIL = 9,	  /* text, optional */
	TERN_EVK_GENERATION = 10, /* uint: the desired generation concerned, optional */
};

struct tern_event_msg {
	char device_id[TERN_DEVICE_ID_MAX + 1];
	uint64_t seq;
	uint64_t time;
	enum tern_event_kind kind;
	enum tern_dev_state from, to;
	char release_id[TERN_RELEASE_ID_MAX + 1]; /* "" when none */
	uint16_t status;
	char detail[TERN_EVENT_DETAIL_MAX + 1]; /* "" when none; UTF-8 without NUL */
	uint64_t generation;			/* 0 when none */
};

size_t tern_event_encode(const struct tern_event_msg *e, uint8_t *buf, size_t size);
int tern_event_decode(struct tern_event_msg *e, const uint8_t *buf, size_t len);

#endif
