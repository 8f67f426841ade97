/*
 * Boot control: the small record that the agent and the bootloader share, and the
 * bootloader's half of the contract (choose the slots, count trial attempts, fall back).
 *
 * The record is kept twice, one copy per sector of TERN_AREA_BOOTCTL, each with a
 * sequence number and a CRC32. A write goes to the older copy (erase, then write), so a
 * power cut during it leaves the newer copy valid. On flash the record is
 * TERN_BOOTCTL_REC_SIZE bytes, little-endian, field by field (no struct images).
 */
#ifndef TERN_BOOTCTL_H
#define TERN_BOOTCTL_H

#include "tern/tern_board.h"
#include "tern/tern_crc32.h"
#include "tern/tern_manifest.h"

#include <stdbool.h>
#include <stdint.h>

#define TERN_BOOTCTL_MAGIC    0x4c544254u /* "TBTL" */
#define TERN_BOOTCTL_REC_SIZE 512u
#define TERN_SLOT_NONE	      0xffu

enum tern_slot_state {
	TERN_SLOT_EMPTY = 0,	  /* nothing bootable */
	TERN_SLOT_INSTALLING = 1, /* being written by an update */
	TERN_SLOT_STAGED = 2,	  /* written and verified, not yet confirmed */
	TERN_SLOT_GOOD = 3,	  /* confirmed */
	TERN_SLOT_BAD = 4,	  /* failed its trial */
};

/* Events the record remembers, so the agent can report them after a reboot. */
enum tern_event {
	TERN_EV_NONE = 0,
	TERN_EV_PROVISIONED = 1,
	TERN_EV_INSTALLING = 2,
	TERN_EV_STAGED = 3,
	TERN_EV_ACTIVATED = 4,
	TERN_EV_CONFIRMED = 5,
	TERN_EV_ROLLED_BACK = 6,
	TERN_EV_FAILED = 7,
};

/* What one slot holds (copied from the signed manifest that filled it). */
struct tern_slot_meta {
	uint8_t state; /* enum tern_slot_state */
	uint8_t trial_attempts;
	uint32_t security_counter;
	uint64_t sequence;
	uint64_t size;
	uint32_t chunk_size;
	uint8_t index_digest[TERN_SHA256_LEN];
	char version[TERN_VERSION_MAX + 1];
};

struct tern_bootctl {
	uint32_t seq;		      /* record sequence; the valid copy with the highest wins */
	uint8_t active[TERN_N_PAIRS]; /* slot 0 or 1 per pair (TERN_SLOT_NONE: no config) */
	uint8_t trial_slot[TERN_N_PAIRS];      /* TERN_SLOT_NONE when the pair is not on trial */
	uint8_t trial_pending;		       /* 1 while a trial has been activated */
	uint8_t attempts_left;		       /* trial boots left before falling back */
	uint8_t last_event;		       /* enum tern_event */
	int32_t last_reason;		       /* 0 or a TERN_E_* code */
	uint64_t event_sequence;	       /* release sequence the last event is about */
	uint32_t security_floor[TERN_N_PAIRS]; /* per pair; raised only by a confirmation */
	uint64_t confirmed_sequence;	       /* sequence of the last confirmed release */
	struct tern_slot_meta slots[TERN_N_SLOTS];
};

_Static_assert(TERN_N_SLOTS == 2 * TERN_N_PAIRS, "two slots per pair");

/* Serializes @bc into exactly TERN_BOOTCTL_REC_SIZE bytes (CRC32 last). */
void tern_bootctl_encode(const struct tern_bootctl *bc, uint8_t out[TERN_BOOTCTL_REC_SIZE]);

/* Parses one copy; false when its magic or CRC32 is wrong. */
bool tern_bootctl_decode(struct tern_bootctl *bc, const uint8_t in[TERN_BOOTCTL_REC_SIZE]);

/*
 * Reads both copies and keeps the newest valid one in @bc. Returns 0,
 * TERN_E_NO_BOOTCTL when neither copy is valid, or a flash error. @buf is scratch of
 * TERN_BOOTCTL_REC_SIZE bytes.
 */
int tern_bootctl_load(const struct tern_board *b, struct tern_bootctl *bc, uint8_t *buf);

/*
 * Writes @bc with the next sequence number over the older copy (erase, then one
 * write), then flushes. On success @bc->seq is the new sequence. The newer copy on
 * flash is never touched, so a failure at any point leaves it valid.
 */
int tern_bootctl_store(const struct tern_board *b, struct tern_bootctl *bc, uint8_t *buf);

/*
 * Checks that slot @slot of @pair holds the complete image its meta describes: every
 * chunk is hashed, the chunk digests are hashed into an index digest, and that must
 * equal the meta's index_digest (which came from a signed manifest). @buf is scratch
 * of @buf_len bytes (at least 64). Returns true when it matches.
 */
bool tern_slot_verify(const struct tern_board *b, enum tern_pair pair, unsigned slot,
		      const struct tern_slot_meta *meta, uint8_t *buf, size_t buf_len);

/* Which slots the bootloader started, passed to the agent. */
struct tern_boot_result {
	uint8_t slot[TERN_N_PAIRS]; /* TERN_SLOT_NONE for an empty config pair */
	bool trial;		    /* these are the trial slots */
};

/*
 * The bootloader's part: loads the record; with a trial pending and attempts left it
 * consumes one attempt (written before booting) and boots the trial slots; with none
 * left, or a trial slot that does not verify, it marks them bad, records ROLLED_BACK
 * and boots the active slots. Active slots are verified too and must not be below the
 * security floor. Returns 0 and fills @res, or TERN_E_NO_BOOTCTL, TERN_E_NO_IMAGE, or a
 * flash error (then nothing may be booted; the caller retries after power returns).
 */
int tern_boot_select(const struct tern_board *b, struct tern_boot_result *res, uint8_t *buf,
		     size_t buf_len);

/* Names for status output: "empty", "installing", ..., and "none", "staged", ... */
const char *tern_slot_state_name(unsigned state);
const char *tern_event_name(unsigned ev);

#endif
