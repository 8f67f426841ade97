/*
 * The simulated board: flash in a file or in memory with real flash rules, a power cut
 * at flash operation N (clean or torn), the bootloader's part played by
 * tern_boot_select(), and simulated images that say how they behave when booted.
 * Everything lives in the caller's structs, so one process can run many devices.
 */
#ifndef TERN_SIM_H
#define TERN_SIM_H

#include "tern/tern_agent.h"
#include "tern/tern_board.h"
#include "tern/tern_cose.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_SIM_BOARD_ID "sim"

struct tern_sim_geometry {
	uint64_t slot_size;	/* each firmware slot */
	uint64_t cfg_slot_size; /* each config slot */
	uint64_t journal_size;	/* 0: enough for the slots at one chunk per sector */
	uint32_t sector_size;
	uint32_t write_align;
};

/* Fills @g with defaults for firmware slots of @slot_size bytes. */
void tern_sim_geometry_default(struct tern_sim_geometry *g, uint64_t slot_size);

struct tern_sim_flash {
	struct tern_sim_geometry geo;
	uint64_t area_off[TERN_AREA__COUNT];
	uint64_t area_size[TERN_AREA__COUNT];
	uint64_t total;
	uint8_t *mem;	    /* memory-backed: the caller's buffer of @total bytes */
	int fd;		    /* file-backed: the open file, else -1 */
	bool sync_on_flush; /* fdatasync at every board flush (else only tern_sim_flash_sync) */
	/* File-backed: per sector, the offset from which it is known to read erased
	 * (UINT32_MAX: unknown, read it), so writes need no read-back and erasing an erased
	 * sector writes nothing. Owned; freed by tern_sim_flash_close(). */
	uint32_t *erased_from;
	/* Power: every write and erase counts; at operation cut_at power fails. */
	uint64_t n_ops;
	uint64_t n_area_ops[TERN_AREA__COUNT]; /* writes and erases per area */
	uint64_t cut_at;		       /* 0: never */
	bool torn; /* the interrupted operation leaves partial, garbled data */
	bool powered_off;
	uint32_t rng;
	/* Rule violations (misaligned, write to unerased flash): must stay 0. */
	uint64_t violations;
	char last_violation[160];
};

/* Total bytes of flash for @g (after defaults are applied). */
uint64_t tern_sim_flash_size(const struct tern_sim_geometry *g);

/* Memory-backed flash over @mem (tern_sim_flash_size() bytes, caller-owned). With @erase
 * the whole flash starts erased (0xFF). Returns 0 or TERN_E_INVAL. */
int tern_sim_flash_open_mem(struct tern_sim_flash *f, const struct tern_sim_geometry *g,
			    uint8_t *mem, bool erase);

/* File-backed flash; @create makes a new erased file (TERN_E_EXISTS if it exists). */
int tern_sim_flash_open_file(struct tern_sim_flash *f, const struct tern_sim_geometry *g,
			     const char *path, bool create);

/* Makes a file-backed flash durable (fdatasync). */
int tern_sim_flash_sync(struct tern_sim_flash *f);

void tern_sim_flash_close(struct tern_sim_flash *f);

/* Fills @b with the sim flash operations on @f. */
void tern_sim_flash_board(struct tern_sim_flash *f, struct tern_board *b);

/* Arms a power cut at operation @n from now (0 disarms). */
void tern_sim_power_cut_at(struct tern_sim_flash *f, uint64_t n, bool torn);

/* Power comes back: operations work again, the cut is disarmed. */
void tern_sim_power_restore(struct tern_sim_flash *f);

/* --- simulated images --- */

enum tern_sim_health {
	TERN_SIM_HEALTHY = 0,
	TERN_SIM_UNHEALTHY = 1, /* boots, fails its health check */
	TERN_SIM_CRASH = 2,	/* never reaches the agent */
};

#define TERN_SIM_IMAGE_MAGIC   0x4d495354u /* "TSIM" */
#define TERN_SIM_IMAGE_HDR_LEN 64u

/* The header at the start of a sim firmware image (64 bytes on flash, little-endian). */
struct tern_sim_image {
	enum tern_sim_health health;
	uint64_t size; /* whole image, header included */
	char version[TERN_VERSION_MAX + 1];
};

/* Writes an image of @size bytes (>= TERN_SIM_IMAGE_HDR_LEN) into @out: the header, then
 * bytes derived from the version. Returns 0 or TERN_E_INVAL. */
int tern_sim_image_make(uint8_t *out, uint64_t size, enum tern_sim_health health,
			const char *version);

/* Parses a header; false when @buf does not start with one. */
bool tern_sim_image_parse(const uint8_t *buf, size_t len, struct tern_sim_image *img);

const char *tern_sim_health_name(enum tern_sim_health h);

/* --- a simulated device --- */

/* One line of what happened during a boot, for the CLI and tests. */
typedef void (*tern_sim_log_fn)(void *arg, const char *line);

struct tern_sim_device {
	struct tern_sim_flash flash;
	struct tern_board board;
	struct tern_keyring keyring;
	char board_id[TERN_NAME_MAX + 1];
	struct tern_agent agent;
	struct tern_boot_result boot; /* what runs now */
	bool running;
	unsigned n_boots;
	tern_sim_log_fn log;
	void *log_arg;
	/* Fault injection (fleet): a trial boot behaves as @trial_health says, whatever the
	 * image's header says. */
	bool force_trial_health;
	enum tern_sim_health trial_health;
	uint8_t scratch[16384];
};

/* Sets up @d over an already opened flash (copied in); agent not started. */
void tern_sim_device_init(struct tern_sim_device *d, const struct tern_sim_flash *f,
			  const struct tern_keyring *kr, const char *board_id);

/*
 * Factory provisioning: writes @image into firmware slot A and a first boot control
 * record (slot A good, sequence 0, floor 0) with @chunk_size for its digest.
 */
int tern_sim_provision(struct tern_sim_device *d, const uint8_t *image, uint64_t len,
		       const char *version, uint32_t chunk_size);

/*
 * Power on: the bootloader chooses, the image runs (a crash resets the device and the
 * bootloader runs again), the agent starts, and in TRIAL the image's health decides.
 * A failed trial reboots into the previous slots. Stops after @max_boots boots.
 * Returns 0 when an image runs with its agent up, TERN_E_NO_IMAGE after a boot loop,
 * or a flash error (TERN_E_POWER_CUT: the caller restores power and boots again).
 */
int tern_sim_boot(struct tern_sim_device *d, unsigned max_boots);

/* Attaches the agent to a device that is running @boot (CLI: a new process). */
int tern_sim_attach(struct tern_sim_device *d, const struct tern_boot_result *boot);

/*
 * Installs a whole release held in memory: offer (as a revert when @revert:
 * tern_agent_offer_revert()), indexes, payloads, finish. On a refusal of the offer flash
 * is untouched; on a bad payload the install is canceled with the reason. When the
 * inactive slots hold the release already nothing is fed. Returns 0 (STAGED) or the
 * first error.
 */
int tern_sim_install_buffer(struct tern_sim_device *d, const uint8_t *rel, size_t len, size_t piece,
			    bool revert);

/* The same from an open file, mapped a window at a time (no copy, bounded memory),
 * fed in @piece-byte parts (0: one window). */
int tern_sim_install_fd(struct tern_sim_device *d, int fd, size_t piece, bool revert);

/* `ternd sim ...` (argv[1] is "sim"): the sim board's command line. Returns the exit code. */
int tern_sim_main(int argc, char **argv);

/* Output shared by the ternd commands (`ternd sim`, `ternd --config`): @s as a JSON
 * string literal on stdout, and 2*@n lowercase hex digits plus a NUL into @out. */
void tern_sim_json_str(const char *s);

/* For the "staged ..." line of an install: " (kept in the slot: nothing downloaded)" when
 * @after (staged) is the release @before held there good, else "". */
const char *tern_sim_kept(const struct tern_slot_meta *before, const struct tern_slot_meta *after);
void tern_sim_hex(const uint8_t *d, size_t n, char *out);

/* Loads a sim device folder's trusted keys (DIR/keyring-N.pub) into @kr (caller's).
 * Returns 0, TERN_E_KEY when there is none, or the first key's error. */
int tern_sim_load_keyring(const char *dir, struct tern_keyring *kr);

/*
 * The text of `ternd sim status` on stdout: tern_sim_text_slots() prints the running
 * slot, the slots whose bit is set in @shown (bit N: slot area N), the floor, a pending
 * trial and download progress; tern_sim_text_last_event() the last event and its reason.
 */
void tern_sim_text_slots(const struct tern_status *st, unsigned shown);
void tern_sim_text_last_event(const struct tern_status *st);

/* "A", "B", "config-A", "config-B" for slot 0..3 (static strings). */
const char *tern_sim_slot_name(unsigned slot);

/*
 * The keys of `ternd sim status --json` for @st on stdout, from the opening brace up to
 * (without) the closing one, so a caller can add its own keys. @unsized_no_digest: a
 * slot of size 0 (a factory image, which has no signed digest) shows "digest": null.
 */
void tern_sim_json_status(const struct tern_status *st, bool powered, bool unsized_no_digest);

#endif
