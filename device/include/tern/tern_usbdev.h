/*
 * The device side of the USB transport (docs/usb.md): bytes from the bulk OUT endpoint
 * in, reply bytes for the bulk IN endpoint out. It reassembles frames, dispatches them
 * through a message type -> handler table and answers every request with one reply.
 *
 * What the device does with a request is the backend's business: a struct of function
 * pointers (NULL = not supported: the host gets ERROR/unknown-type). The sim board's
 * backend drives the agent core (tern_agent_offer(), tern_agent_feed(), ...); the USB
 * emulator's interim backend keeps a small state file. The same code sits behind a
 * Linux FunctionFS gadget and behind the umockdev emulator.
 *
 * Portable: no heap, no POSIX, no file-scope state; everything is in struct tern_usbdev.
 */
#ifndef TERN_USBDEV_H
#define TERN_USBDEV_H

#include "tern/tern_agent.h"
#include "tern/tern_frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_USBDEV_RX_SIZE   (TERN_FRAME_MAX + 4096) /* the largest frame and then some */
#define TERN_USBDEV_TX_SIZE   4096		      /* queued replies (bytes) */
#define TERN_USBDEV_REPLY_MAX 512		      /* the largest reply frame (bytes) */

/*
 * What a device does. Every function returns 0 or a negative TERN_E* code (mapped to a
 * wire status for the host). @be is the backend's context, passed back unchanged.
 */
struct tern_usbdev_ops {
	/* HELLO: identity and a state summary. */
	int (*info)(void *be, struct tern_msg_info *info);
	/* STATE */
	int (*state)(void *be, struct tern_msg_state *st);
	/* OFFER: a signed manifest, @revert when offered as a revert (which may be older:
	 * tern_agent_offer_revert()); on acceptance sets @next to the first bytes wanted. */
	int (*offer)(void *be, const uint8_t *manifest, size_t len, bool revert,
		     struct tern_msg_ack *next);
	/* DATA: bytes of a component or its chunk index; sets @next as for offer. */
	int (*data)(void *be, const struct tern_msg_data *d, struct tern_msg_ack *next);
	int (*done)(void *be);
	int (*activate)(void *be);
	int (*confirm)(void *be);
	/* REBOOT: called before the ACK is sent; the bus re-enumerates after it. May be NULL
	 * (a plain reboot). */
	int (*reboot)(void *be);
	int (*provision)(void *be, const struct tern_msg_provision *p);
};

struct tern_usbdev_stats {
	uint64_t frames;     /* requests answered */
	uint64_t crc_errors; /* damaged requests (answered ERROR/crc) */
	uint64_t dropped;    /* bytes dropped while resynchronising */
};

struct tern_usbdev {
	const struct tern_usbdev_ops *ops;
	void *be;
	bool reboot_requested;
	struct tern_usbdev_stats stats;
	struct tern_frame_rx rx;
	size_t tx_len;
	uint8_t reply[TERN_USBDEV_REPLY_MAX];
	uint8_t tx[TERN_USBDEV_TX_SIZE];
	uint8_t rxbuf[TERN_USBDEV_RX_SIZE];
};

/* What a board knows of itself for HELLO's INFO (strings borrowed, "" when unset). */
struct tern_usbdev_ident {
	const char *board, *serial, *device_id;
	uint64_t provision_gen;
};

/*
 * For a backend's info and state ops: INFO from the board's identity @id, the agent's
 * status @st and the firmware slot that runs (@slot, 0 or 1): slot, version, state,
 * sequence and frame size; STATE from @st and @slot, with the target (the job's
 * version, or once staged and activated the staged slot's), progress and last status.
 * Strings are copied (cut to fit).
 */
void tern_usbdev_info_from_status(const struct tern_usbdev_ident *id, const struct tern_status *st,
				  unsigned slot, struct tern_msg_info *info);
void tern_usbdev_state_from_status(const struct tern_status *st, unsigned slot,
				   struct tern_msg_state *m);

/* Prepares @d for a fresh connection (after every boot). @ops and @be are borrowed. */
void tern_usbdev_init(struct tern_usbdev *d, const struct tern_usbdev_ops *ops, void *be);

/*
 * Bytes the OUT endpoint may take now. A transport that gets more than this holds the
 * transfer back (on a real bus: NAK) until the host has read replies.
 */
size_t tern_usbdev_out_room(struct tern_usbdev *d);

/*
 * Takes @len bytes written by the host to bulk OUT and answers every whole frame in them
 * (the replies queue for bulk IN). Returns 0, or TERN_E_TOO_LARGE when @len exceeds
 * tern_usbdev_out_room() (nothing taken).
 */
int tern_usbdev_out(struct tern_usbdev *d, const uint8_t *buf, size_t len);

/* Reply bytes waiting for bulk IN. */
size_t tern_usbdev_in_pending(const struct tern_usbdev *d);

/* Moves up to @size waiting reply bytes to @buf and returns how many; then answers
 * frames that waited for room. */
size_t tern_usbdev_in(struct tern_usbdev *d, uint8_t *buf, size_t size);

/* True once after a REBOOT request was acknowledged: the transport re-enumerates. */
bool tern_usbdev_take_reboot(struct tern_usbdev *d);

#endif
