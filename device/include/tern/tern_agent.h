/*
 * The device agent core: the update state machine, driven by a transport-neutral API.
 *
 * A transport (MQTT, USB, a file) only moves bytes into it: offer the signed manifest,
 * feed each component's chunk index, feed payload bytes at an offset (in order, resumed,
 * or repeated), finish, activate. After each boot the board calls tern_agent_start()
 * with what the bootloader chose, and, in TRIAL, reports the health check.
 *
 * No heap, no POSIX, no file-scope state: everything lives in the caller's struct
 * tern_agent. Every flash access goes through the board (tern_board.h). Durable state is
 * the boot control record (tern_bootctl.h) and the install journal (the compact signed
 * facts of the release being installed, the verified chunk indexes, and one marker per
 * verified chunk); after a power cut tern_agent_start() resumes from them.
 */
#ifndef TERN_AGENT_H
#define TERN_AGENT_H

#include "tern/tern_board.h"
#include "tern/tern_bootctl.h"
#include "tern/tern_cose.h"
#include "tern/tern_manifest.h"
#include "tern/tern_sha256.h"

#include <stdbool.h>
#include <stdint.h>

/* Write buffer for unaligned payload tails (bytes; a multiple of TERN_WRITE_ALIGN_MAX). */
#ifndef TERN_AGENT_WBUF
#define TERN_AGENT_WBUF 1024
#endif
_Static_assert(TERN_AGENT_WBUF % TERN_WRITE_ALIGN_MAX == 0, "write buffer holds whole units");

/* Chunk digests read from the journal at a time (each costs 32 bytes of RAM). */
#ifndef TERN_AGENT_INDEX_CACHE
#define TERN_AGENT_INDEX_CACHE 16
#endif

/* A release may carry one firmware and one config component. */
#define TERN_AGENT_MAX_COMPONENTS TERN_N_PAIRS

enum tern_state {
	TERN_ST_IDLE = 0,
	TERN_ST_DOWNLOADING = 1,
	TERN_ST_VERIFYING = 2,
	TERN_ST_STAGED = 3,
	TERN_ST_TRIAL = 4,
	TERN_ST_CONFIRMED = 5,
	TERN_ST_ROLLED_BACK = 6,
	TERN_ST_FAILED = 7,
};

struct tern_agent_config {
	const struct tern_board *board; /* borrowed; must outlive the agent */
	const struct tern_keyring *keyring;
	const char *board_id;  /* compared with the manifest's boards */
	bool verify_on_finish; /* re-hash the written slots before STAGED */
};

/* One component of the release being installed (RAM copy of the journal's facts). */
struct tern_job_comp {
	uint8_t pair; /* enum tern_pair */
	uint8_t slot; /* target slot in the pair */
	bool index_done;
	uint64_t size;
	uint8_t index_digest[TERN_SHA256_LEN];
	uint64_t n_chunks;
	uint64_t n_verified;
	uint64_t first_missing; /* no chunk below this lacks its marker */
	uint64_t end_marked;	/* no chunk at or above this has its marker */
	uint64_t index_marker_off;
	uint64_t marker_off; /* journal offsets */
	uint64_t index_off;
	uint64_t index_size;
};

/* The release being installed: what the agent needs from its signed manifest. */
struct tern_job {
	char release_id[TERN_RELEASE_ID_MAX + 1];
	char version[TERN_VERSION_MAX + 1];
	uint64_t sequence;
	uint32_t security_counter;
	uint32_t chunk_size;
	uint32_t trial_attempts;
	unsigned n_comp;
	bool revert; /* offered as a revert: may be older than the confirmed release */
	struct tern_job_comp comp[TERN_AGENT_MAX_COMPONENTS];
	uint64_t layout_size; /* journal bytes used */
};

/* What is being streamed right now: a component's index, or one chunk. */
enum tern_stream_kind { TERN_STREAM_NONE, TERN_STREAM_INDEX, TERN_STREAM_CHUNK };

struct tern_agent {
	struct tern_agent_config cfg;
	enum tern_state state;
	int reason; /* last failure or rollback reason, 0 if none */
	bool reboot_needed;
	struct tern_bootctl bc;
	struct tern_boot_result boot;
	struct tern_area_info areas[TERN_AREA__COUNT];
	struct tern_job job;
	/* Streaming position. */
	enum tern_stream_kind sk;
	unsigned s_comp;
	uint64_t s_chunk;
	uint64_t s_pos;	    /* bytes accepted into the current index or chunk */
	uint64_t s_flushed; /* of which written to flash (a multiple of the write unit) */
	size_t wlen;	    /* bytes waiting in wbuf */
	/* A window of the current component's chunk index, read from the journal. */
	uint64_t idx_first; /* first chunk whose digest is cached */
	unsigned idx_n;	    /* digests cached (0: none) */
	unsigned idx_comp;
	uint8_t idx_cache[TERN_AGENT_INDEX_CACHE * TERN_SHA256_LEN];
	struct tern_sha256 sha;
	/* The write buffer doubles as scratch for decoding a manifest during an offer. */
	union {
		_Alignas(8) uint8_t wbuf[TERN_AGENT_WBUF];
		struct tern_manifest m;
	} u;
	_Alignas(8) uint8_t rec[TERN_BOOTCTL_REC_SIZE]; /* record scratch */
};

/* Status snapshot for reports (state topic, `ternd sim status`). */
struct tern_status {
	enum tern_state state;
	int reason;
	unsigned last_event; /* enum tern_event */
	uint64_t event_sequence;
	uint8_t running[TERN_N_PAIRS];
	bool running_trial;
	bool trial_pending;
	unsigned attempts_left;
	uint32_t security_floor;	/* firmware pair */
	uint32_t config_security_floor; /* config pair */
	uint64_t confirmed_sequence;
	struct tern_slot_meta slots[TERN_N_SLOTS];
	uint8_t active[TERN_N_PAIRS];
	/* While downloading. */
	uint64_t n_chunks;
	uint64_t n_verified;
	char job_version[TERN_VERSION_MAX + 1];
	uint64_t job_sequence;
};

/* Prepares @ag (no flash access). @cfg is copied; what it points to is borrowed. */
void tern_agent_init(struct tern_agent *ag, const struct tern_agent_config *cfg);

/*
 * Loads the durable state after a boot (or when a process attaches to a running
 * device): @boot says which slots the bootloader started. Resumes an interrupted
 * download from its journal. In TRIAL the caller runs the health check next.
 * Returns 0, TERN_E_NO_BOOTCTL, or a flash error.
 */
int tern_agent_start(struct tern_agent *ag, const struct tern_boot_result *boot);

/*
 * Offers a signed manifest (a COSE_Sign1 of exactly @len bytes; borrowed for the call).
 * On acceptance the target slots are marked installing and the journal is written: state
 * DOWNLOADING. When the target (inactive) slots already hold exactly this release, good
 * (the release before an update, or one left by a revert), one record write stages them
 * instead: state STAGED, nothing to download. The same release offered again while it
 * downloads (or once staged) is accepted as a resume and changes nothing. Refusals leave
 * flash untouched: TERN_E_BAD_SIGNATURE, TERN_E_UNKNOWN_KEY, TERN_E_WRONG_BOARD,
 * TERN_E_BELOW_FLOOR, TERN_E_OLD_SEQUENCE (not newer than the confirmed release, unless
 * it resumes an interrupted revert), TERN_E_SLOT_TOO_SMALL, TERN_E_GEOMETRY, TERN_E_BUSY,
 * or a decoding error.
 */
int tern_agent_offer(struct tern_agent *ag, const uint8_t *signed_manifest, size_t len);

/*
 * The same as a revert ordered by the deployment: the release may be older than (or the
 * same as) the confirmed one, every other check stands (signature, key, board, geometry,
 * security counter at or above the floor). Its journal remembers the revert, so a plain
 * offer resumes it after a power cut. Confirming it sets the confirmed sequence to the
 * release's; the floor never falls.
 */
int tern_agent_offer_revert(struct tern_agent *ag, const uint8_t *signed_manifest, size_t len);

/*
 * Feeds bytes of component @comp's chunk index at @off, in order (bytes already
 * accepted may be sent again). When the index is whole it must hash to the manifest's
 * digest, else TERN_E_DIGEST and the index starts again from 0.
 */
int tern_agent_feed_index(struct tern_agent *ag, unsigned comp, uint64_t off, const void *buf,
			  size_t len);

/*
 * Feeds payload bytes of component @comp at @off. A chunk is started only at its first
 * byte and must then continue in order; chunks already verified are skipped. Each
 * chunk is hashed as it is written to the inactive slot and checked against the index
 * when complete: a bad chunk is erased and refused alone (TERN_E_DIGEST; feeding stops
 * there). TERN_E_OFFSET for bytes that neither continue nor start a chunk.
 */
int tern_agent_feed(struct tern_agent *ag, unsigned comp, uint64_t off, const void *buf,
		    size_t len);

/*
 * Where the transport should resume: sets @comp, @is_index and @off to the first bytes
 * still needed. Returns 0, or TERN_E_STATE when nothing is needed (all verified, or not
 * downloading).
 */
int tern_agent_next_needed(struct tern_agent *ag, unsigned *comp, bool *is_index, uint64_t *off);

/*
 * Sets *@verified to whether chunk @k of component @comp is written and verified (carries
 * its marker), so a transport that resumes asks only for the chunks still missing.
 * Answered from RAM below the first missing chunk and above the last marked one, else
 * from the journal. Returns 0, TERN_E_STATE when not downloading, TERN_E_INVAL for a
 * component or chunk that does not exist, or a flash error.
 */
int tern_agent_chunk_verified(struct tern_agent *ag, unsigned comp, uint64_t k, bool *verified);

/*
 * Ends the download: every chunk must carry its marker (TERN_E_TRUNCATED otherwise,
 * still DOWNLOADING). VERIFYING then (optionally) re-hashes the slots, and the slots are
 * marked staged: STAGED.
 */
int tern_agent_finish(struct tern_agent *ag);

/* Arms the trial of the staged slots for the next boot (STAGED, trial pending). */
int tern_agent_activate(struct tern_agent *ag);

/*
 * Reports the health check in TRIAL. Pass: the trial slots become active and good, the
 * security floor rises, CONFIRMED. Fail: they are marked bad, ROLLED_BACK with
 * TERN_E_HEALTH, and tern_agent_reboot_needed() turns true.
 */
int tern_agent_health(struct tern_agent *ag, bool healthy);

/* Abandons a download (slots back to empty): FAILED with @reason (TERN_E_CANCELED if 0). */
int tern_agent_cancel(struct tern_agent *ag, int reason);

/* True when the device must reboot to leave a rolled-back trial image. */
bool tern_agent_reboot_needed(const struct tern_agent *ag);

void tern_agent_status(const struct tern_agent *ag, struct tern_status *st);

const char *tern_state_name(enum tern_state st);

#endif
