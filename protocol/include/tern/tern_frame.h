/*
 * USB framing (docs/usb.md): every message is a 16-byte little-endian header followed by
 * a CBOR body (a map with small integer keys). The header carries a CRC32 (IEEE) over
 * its first 12 bytes and the body, so a damaged frame is detected and can be resent.
 *
 * The frames form a byte stream on each bulk endpoint: a receiver need not see one frame
 * per transfer (struct tern_frame_rx reassembles them). Every request from the host is
 * answered by exactly one reply with the same sequence number and TERN_FRAME_F_REPLY set:
 * the request's own reply type, ACK, or ERROR with a wire status.
 *
 * Encoders write into caller buffers and return bytes written, or 0 when the buffer is
 * too small or the message is invalid. Decoders never allocate and never read past the
 * buffer; decoded strings and byte strings borrow from the buffer given to them.
 */
#ifndef TERN_FRAME_H
#define TERN_FRAME_H

#include "tern/tern_cose.h"
#include "tern/tern_manifest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_FRAME_MAGIC0	 'T'
#define TERN_FRAME_MAGIC1	 'n'
#define TERN_FRAME_PROTO	 1	       /* protocol version carried in HELLO and INFO */
#define TERN_FRAME_HDR_LEN	 16	       /* bytes */
#define TERN_FRAME_CRC_SPAN	 12	       /* header bytes covered by the CRC */
#define TERN_FRAME_DATA_MAX	 (64u * 1024u) /* payload bytes in one DATA frame */
#define TERN_FRAME_BODY_MAX	 (TERN_FRAME_DATA_MAX + 64u) /* any body, bytes */
#define TERN_FRAME_MAX		 (TERN_FRAME_HDR_LEN + TERN_FRAME_BODY_MAX)
#define TERN_FRAME_TEXT_MAX	 96 /* ERROR detail text (bytes) */
#define TERN_FRAME_SERIAL_MAX	 32 /* USB serial number (bytes) */
#define TERN_FRAME_DEVICE_ID_MAX 64
#define TERN_FRAME_CONFIG_MAX	 4096 /* PROVISION configuration (bytes) */

/* Header flags. Bits not defined here must be zero (a frame with them is refused). */
#define TERN_FRAME_F_REPLY 0x01u /* device -> host answer to the request with this seq */
#define TERN_FRAME_F_KNOWN TERN_FRAME_F_REPLY

/*
 * The header as it lies on the wire: byte arrays only, so the struct has no padding, no
 * alignment needs and no host byte order. Multi-byte fields are little-endian.
 */
struct tern_frame_hdr {
	uint8_t magic[2]; /* 'T' 'n' */
	uint8_t type;	  /* enum tern_frame_type */
	uint8_t flags;	  /* TERN_FRAME_F_* */
	uint8_t seq[4];	  /* request sequence number, echoed by the reply */
	uint8_t len[4];	  /* body bytes after the header */
	uint8_t crc[4];	  /* CRC32 (IEEE) over bytes 0..11 and then the body */
};
_Static_assert(sizeof(struct tern_frame_hdr) == TERN_FRAME_HDR_LEN, "frame header is 16 bytes");

/* Message types: stable numbers, append only. */
enum tern_frame_type {
	TERN_MSG_HELLO = 0x01,	   /* host -> device: {1: proto}; reply INFO */
	TERN_MSG_INFO = 0x02,	   /* device -> host: identity and a state summary */
	TERN_MSG_OFFER = 0x03,	   /* host -> device: {1: signed manifest}; reply ACK */
	TERN_MSG_DATA = 0x04,	   /* host -> device: {1: comp, 2: kind, 3: offset, 4: bytes} */
	TERN_MSG_DONE = 0x05,	   /* host -> device: all bytes sent; reply ACK */
	TERN_MSG_ACTIVATE = 0x06,  /* host -> device: trial-boot the staged slots */
	TERN_MSG_CONFIRM = 0x07,   /* host -> device: mark the trial good now */
	TERN_MSG_REBOOT = 0x08,	   /* host -> device: reboot (re-enumerates) after the ACK */
	TERN_MSG_STATE = 0x09,	   /* host -> device: {} ; reply STATE with the state map */
	TERN_MSG_ERROR = 0x0a,	   /* device -> host: {1: status, 2: text} */
	TERN_MSG_PROVISION = 0x0b, /* host -> device: {1: id, 2: [keys], 3: config} or
				      {4: COSE_Sign1 of that map} */
	TERN_MSG_ACK = 0x0c,	   /* device -> host: {} or {1: comp, 2: kind, 3: offset} */
	TERN_MSG__END
};

/* Which side sends a message type. */
enum tern_frame_dir { TERN_DIR_TO_DEVICE = 1, TERN_DIR_TO_HOST = 2 };

/* One row of the message table: what a type is called, who sends it, what answers it. */
struct tern_frame_msg_desc {
	uint8_t type;
	const char *name;
	enum tern_frame_dir dir;
	uint8_t reply; /* expected reply type for a request (ERROR may always answer); 0 */
};

/* The row for @type, or NULL for a type this build does not know. */
const struct tern_frame_msg_desc *tern_frame_msg(uint8_t type);

/* "hello", "data", ...; "unknown" for a type this build does not know. */
const char *tern_frame_type_name(uint8_t type);

/*
 * Wire status in ERROR frames and STATE replies: the project's one stable status enum,
 * enum tern_status in tern_msg.h (shared with the MQTT path; append only, never internal
 * codes). TERN_ST_CRC, _UNKNOWN_TYPE and _PROVISIONED came with USB. This header does not
 * include tern_msg.h: its enum tern_status and the agent's struct tern_status share a tag
 * name, so code that sees the agent (boards/sim/usb.c) uses only the functions below.
 */
/* Maps an internal code (0 or TERN_E*) to its wire status (tern_status_from_err(), with
 * every "not the expected bytes" code as MALFORMED); unmapped codes give ERROR. */
uint16_t tern_frame_status_from_err(int rc);
/* Maps a wire status back to an internal code; ERROR and statuses this build does not
 * know give TERN_E_DEVICE ("the device refused ... update tern"). */
int tern_frame_status_to_err(uint64_t status);
/* Stable short name ("bad-signature"); "unknown" when this build does not know it. */
const char *tern_frame_status_name(uint64_t status);

/* Device states on the wire: the numbers of the agent's and the MQTT path's enums. */
enum tern_frame_dev_state {
	TERN_DS_IDLE = 0,
	TERN_DS_DOWNLOADING = 1,
	TERN_DS_VERIFYING = 2,
	TERN_DS_STAGED = 3,
	TERN_DS_TRIAL = 4,
	TERN_DS_CONFIRMED = 5,
	TERN_DS_ROLLED_BACK = 6,
	TERN_DS_FAILED = 7,
	TERN_DS__END
};

/* "idle", "downloading", ..., "failed"; "unknown" when out of range. */
const char *tern_frame_state_name(uint64_t state);

/* ---- Frames. */

/* A decoded frame. @body borrows from the decoder's buffer. */
struct tern_frame {
	uint8_t type;
	uint8_t flags;
	uint32_t seq;
	const uint8_t *body;
	size_t body_len;
};

/*
 * Writes header and body (@body may overlap @buf + TERN_FRAME_HDR_LEN, as after
 * tern_frame_body()). Returns TERN_FRAME_HDR_LEN + @body_len, or 0 when @size is too
 * small, @body_len exceeds TERN_FRAME_BODY_MAX or @flags has unknown bits.
 */
size_t tern_frame_encode(uint8_t *buf, size_t size, uint8_t type, uint8_t flags, uint32_t seq,
			 const uint8_t *body, size_t body_len);

/*
 * Writes the header in front of a body the caller already wrote in place at
 * @buf + TERN_FRAME_HDR_LEN (no copy). Same return as tern_frame_encode().
 */
size_t tern_frame_seal(uint8_t *buf, size_t size, uint8_t type, uint8_t flags, uint32_t seq,
		       size_t body_len);

/* Where a body is written in place in a frame buffer of @size bytes, and its room. */
uint8_t *tern_frame_body(uint8_t *buf, size_t size, size_t *room);

/*
 * Decodes one frame at the start of @buf. On success fills @f (borrowing @buf) and sets
 * @used to the frame's length. Returns 0; TERN_E_TRUNCATED when @buf holds only the
 * start of a frame (read more); TERN_E_MALFORMED for a wrong magic or unknown flag bits;
 * TERN_E_TOO_LARGE for a length above TERN_FRAME_BODY_MAX (decided from the header
 * alone); TERN_E_CRC when the bytes do not match the CRC (then @used is still set to the
 * announced frame length and @f has the header fields, not to be trusted).
 */
int tern_frame_decode(const uint8_t *buf, size_t len, struct tern_frame *f, size_t *used);

/*
 * Reassembles frames from a byte stream in a caller-owned buffer (at least
 * TERN_FRAME_MAX bytes for the largest frame). No heap.
 */
struct tern_frame_rx {
	uint8_t *buf;
	size_t size;
	size_t len;  /* bytes held */
	size_t skip; /* bytes of the frame last returned, dropped on the next call */
};

void tern_frame_rx_init(struct tern_frame_rx *rx, uint8_t *buf, size_t size);

/*
 * Appends @len bytes. Returns 0, or TERN_E_TOO_LARGE when they do not fit (the caller
 * takes frames out with tern_frame_rx_next() first; a buffer of TERN_FRAME_MAX bytes
 * plus one transfer always has room then).
 */
int tern_frame_rx_push(struct tern_frame_rx *rx, const uint8_t *data, size_t len);

/* Room left for the next push (bytes), after dropping the frame last returned. */
size_t tern_frame_rx_room(struct tern_frame_rx *rx);

/*
 * Takes the next frame. Returns 1 with @f set (its body valid until the next call), 0
 * when more bytes are needed, or an error after which the stream has been resynchronised:
 * TERN_E_CRC (the damaged frame is dropped as long as its header announced; @f holds its
 * unverified header so the receiver can answer ERROR/CRC with that seq), TERN_E_MALFORMED (bytes dropped up to the
 * next magic), TERN_E_TOO_LARGE (the absurd header dropped).
 */
int tern_frame_rx_next(struct tern_frame_rx *rx, struct tern_frame *f);

/* ---- Message bodies (CBOR maps; unknown keys are skipped). */

/* HELLO: {1: protocol version}. */
size_t tern_msg_hello_encode(uint32_t proto, uint8_t *buf, size_t size);
int tern_msg_hello_decode(const uint8_t *buf, size_t len, uint32_t *proto);

/* INFO keys. */
enum tern_info_key {
	TERN_IK_PROTO = 1,	    /* uint, required */
	TERN_IK_BOARD = 2,	    /* text, required */
	TERN_IK_SERIAL = 3,	    /* text, required */
	TERN_IK_DEVICE_ID = 4,	    /* text, "" or absent when not provisioned */
	TERN_IK_VERSION = 5,	    /* text: version running, required */
	TERN_IK_SLOT = 6,	    /* uint: active slot 0 (A) or 1 (B), required */
	TERN_IK_STATE = 7,	    /* uint enum tern_frame_dev_state, required */
	TERN_IK_MAX_DATA = 8,	    /* uint: largest DATA payload the device takes */
	TERN_IK_SEQUENCE = 9,	    /* uint: sequence number of the running release */
	TERN_IK_PROVISION_GEN = 10, /* uint: last provisioning generation taken (absent: 0) */
};

struct tern_msg_info {
	uint32_t proto;
	char board[TERN_NAME_MAX + 1];
	char serial[TERN_FRAME_SERIAL_MAX + 1];
	char device_id[TERN_FRAME_DEVICE_ID_MAX + 1];
	char version[TERN_VERSION_MAX + 1];
	uint32_t slot;
	uint32_t state;
	uint32_t max_data;
	uint64_t sequence;
	uint64_t provision_gen; /* a signed re-provisioning must carry a higher one */
};

size_t tern_msg_info_encode(const struct tern_msg_info *m, uint8_t *buf, size_t size);
int tern_msg_info_decode(const uint8_t *buf, size_t len, struct tern_msg_info *m);

/* STATE reply keys (numbers shared with the MQTT state message where they overlap). */
enum tern_fstate_key {
	TERN_FSK_STATE = 3,	  /* uint, required */
	TERN_FSK_SLOT = 4,	  /* uint, required */
	TERN_FSK_VERSION = 5,	  /* text, required: version running */
	TERN_FSK_TARGET = 6,	  /* text: version being installed, optional */
	TERN_FSK_DONE = 7,	  /* uint: bytes (or chunks) verified */
	TERN_FSK_TOTAL = 8,	  /* uint: of how many */
	TERN_FSK_LAST_STATUS = 9, /* uint enum tern_status of the last failure */
};

struct tern_msg_state {
	uint32_t state;
	uint32_t slot;
	char version[TERN_VERSION_MAX + 1];
	char target[TERN_VERSION_MAX + 1]; /* "" when none */
	uint64_t done, total;
	uint32_t last_status;
};

size_t tern_msg_state_encode(const struct tern_msg_state *m, uint8_t *buf, size_t size);
int tern_msg_state_decode(const uint8_t *buf, size_t len, struct tern_msg_state *m);

/*
 * OFFER: {1: signed manifest (bstr), 2: true when offered as a revert (optional)}. A
 * revert may go back to an older release (tern_agent_offer_revert(): signed, and not
 * below the security floor); a device that does not know key 2 takes a plain offer and
 * refuses an older release. @manifest borrows from @buf when decoded; @revert may be NULL.
 */
size_t tern_msg_offer_encode(const uint8_t *manifest, size_t len, bool revert, uint8_t *buf,
			     size_t size);
int tern_msg_offer_decode(const uint8_t *buf, size_t len, const uint8_t **manifest,
			  size_t *manifest_len, bool *revert);

/* DATA: which bytes of which component. */
enum tern_data_kind { TERN_DATA_PAYLOAD = 0, TERN_DATA_INDEX = 1 };

struct tern_msg_data {
	uint32_t comp;	      /* component number in the manifest */
	uint32_t kind;	      /* enum tern_data_kind */
	uint64_t offset;      /* into the component's payload or chunk index */
	const uint8_t *bytes; /* borrowed */
	size_t len;	      /* at most TERN_FRAME_DATA_MAX */
};

size_t tern_msg_data_encode(const struct tern_msg_data *m, uint8_t *buf, size_t size);
int tern_msg_data_decode(const uint8_t *buf, size_t len, struct tern_msg_data *m);

/* The body of DONE, ACTIVATE, CONFIRM, REBOOT and a STATE request: the empty map. */
size_t tern_msg_empty_encode(uint8_t *buf, size_t size);
/* Accepts any map (unknown keys skipped) and nothing after it. */
int tern_msg_empty_decode(const uint8_t *buf, size_t len);

/* ERROR: {1: status, 2: text (optional, for people)}. @text borrows when decoded. */
struct tern_msg_error {
	uint32_t status;
	const char *text;
	size_t text_len;
};

size_t tern_msg_error_encode(const struct tern_msg_error *m, uint8_t *buf, size_t size);
int tern_msg_error_decode(const uint8_t *buf, size_t len, struct tern_msg_error *m);

/* ACK: {} or, after OFFER and DATA, where the device wants the next bytes. */
struct tern_msg_ack {
	bool has_next;
	uint32_t comp;
	uint32_t kind;
	uint64_t offset;
};

size_t tern_msg_ack_encode(const struct tern_msg_ack *m, uint8_t *buf, size_t size);
int tern_msg_ack_decode(const uint8_t *buf, size_t len, struct tern_msg_ack *m);

/*
 * PROVISION: identity, trusted keys and configuration. A blank device takes the plain
 * map; a device that is already provisioned only takes {4: COSE_Sign1} whose payload is
 * that map, signed by a key it trusts with the external AAD TERN_PROVISION_AAD followed
 * by the device's USB serial number, so a request cannot be replayed on another device.
 * Key 5, the provisioning generation, stops a replay on the same device: the device keeps
 * the last generation it took (INFO key 10) and refuses a signed request whose generation
 * is not higher (TERN_E_OLD_GENERATION); the host sends the device's generation + 1.
 */
#define TERN_PROVISION_AAD "tern-provision-v1:"

struct tern_msg_provision {
	char device_id[TERN_FRAME_DEVICE_ID_MAX + 1]; /* [A-Za-z0-9._-], 1..64 bytes */
	const uint8_t *keys[TERN_KEYRING_MAX];	      /* each TERN_P256_POINT_LEN, borrowed */
	size_t n_keys;
	const uint8_t *config; /* borrowed; NULL when absent */
	size_t config_len;
	const uint8_t *signed_req; /* decoded {4: ...}: the COSE_Sign1, borrowed; else NULL */
	size_t signed_len;
	uint64_t generation; /* key 5; 0 when absent */
};

/*
 * Device side: may a request with generation @req_gen replace a provisioning whose last
 * generation is @cur_gen? A plain request (a blank device) always may; a signed one only
 * with a higher generation. Returns 0 or TERN_E_OLD_GENERATION.
 */
int tern_provision_generation_check(bool is_signed, uint64_t req_gen, uint64_t cur_gen);

/* Encodes the plain map. Bytes written, or 0 (invalid @m or @size too small). */
size_t tern_msg_provision_encode(const struct tern_msg_provision *m, uint8_t *buf, size_t size);

/* Encodes {4: @cose}, a signed request. Bytes written or 0. */
size_t tern_msg_provision_encode_signed(const uint8_t *cose, size_t len, uint8_t *buf, size_t size);

/* Decodes either form: the plain map fills @m, the signed one sets only @m->signed_req. */
int tern_msg_provision_decode(const uint8_t *buf, size_t len, struct tern_msg_provision *m);

/* Writes TERN_PROVISION_AAD + @serial into @out; returns its length, or 0 if too small. */
size_t tern_provision_aad(const char *serial, uint8_t *out, size_t size);

/*
 * Device side of a signed request: parses the COSE_Sign1 in @m->signed_req, finds its key
 * in @kr, verifies it bound to @serial and decodes its payload into @out (borrowing from
 * the request). Returns 0, a parse error, TERN_E_UNKNOWN_KEY, TERN_E_BAD_SIGNATURE, or a
 * decoding error (a signed payload must be the plain map).
 */
int tern_msg_provision_open(const struct tern_msg_provision *m, const struct tern_keyring *kr,
			    const char *serial, struct tern_msg_provision *out);

/* ---- Commands as data: a message type -> handler table for the receiving side. */

/*
 * A handler answers request @req: it writes a reply body of at most @room bytes at
 * @body, sets @reply_type and returns the body length, or returns a negative TERN_E*
 * code (the dispatcher then answers ERROR with the mapped wire status).
 */
typedef int (*tern_frame_handler_fn)(void *ctx, const struct tern_frame *req, uint8_t *reply_type,
				     uint8_t *body, size_t room);

struct tern_frame_handler {
	uint8_t type;
	tern_frame_handler_fn fn;
};

/*
 * Looks @req's type up in @table (@n rows) and writes the whole reply frame (same seq,
 * F_REPLY) into @out: the handler's reply, ERROR/UNKNOWN_TYPE for a type without a
 * handler, ERROR with the mapped status when the handler fails. Returns the reply's
 * length, or 0 when @size is too small for even an ERROR frame.
 */
size_t tern_frame_dispatch(const struct tern_frame_handler *table, size_t n, void *ctx,
			   const struct tern_frame *req, uint8_t *out, size_t size);

/* Writes an ERROR reply frame for @seq with @status and optional @text. Bytes or 0. */
size_t tern_frame_error_reply(uint32_t seq, uint32_t status, const char *text, uint8_t *out,
			      size_t size);

#endif
