/*
 * The Linux board: ternd on an embedded Linux device. Slots are files or block devices,
 * the boot control record and the install journal are files in a state folder, and the
 * bootloader is told what to boot through its own environment (U-Boot, GRUB) or a
 * user's script. See docs/linux.md for the design and the configuration file.
 */
#ifndef TERN_LINUX_H
#define TERN_LINUX_H

#include "tern/tern_agent.h"
#include "tern/tern_board.h"
#include "tern/tern_bootenv.h"
#include "tern/tern_cose.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TERN_LINUX_PATH_MAX 4096
#define TERN_LINUX_CMD_MAX  4096
#define TERN_LINUX_ID_MAX   64
#define TERN_LINUX_KEYS_MAX 48 /* keys a config file may hold */

enum tern_bootloader {
	TERN_BOOT_UBOOT = 0,
	TERN_BOOT_GRUB = 1,
	TERN_BOOT_SCRIPT = 2,
};

/* The configuration file, parsed. Paths are resolved against the file's folder. */
struct tern_linux_config {
	char path[TERN_LINUX_PATH_MAX]; /* the config file */
	char dir[TERN_LINUX_PATH_MAX];	/* its folder: commands run here */
	/* [device] */
	char device_id[TERN_LINUX_ID_MAX + 1];
	char board_id[TERN_NAME_MAX + 1];
	char keyring_dir[TERN_LINUX_PATH_MAX];
	char state_dir[TERN_LINUX_PATH_MAX];
	char factory_version[TERN_VERSION_MAX + 1];
	uint32_t sector_size; /* smallest chunk size a release may use */
	/* [slots]: firmware A/B, config A/B (config optional), root= values per firmware slot */
	char slot[TERN_N_SLOTS][TERN_LINUX_PATH_MAX];
	char root[2][256];
	/* [boot] */
	enum tern_bootloader bootloader;
	char fw_env_config[TERN_LINUX_PATH_MAX];
	char grubenv[TERN_LINUX_PATH_MAX];
	char script[TERN_LINUX_CMD_MAX];
	unsigned attempts; /* BOOT_x_LEFT given to a good slot at every boot (RAUC: 3) */
	char cmdline[TERN_LINUX_PATH_MAX];
	char slot_marker[64]; /* cmdline key naming the booted slot, e.g. tern.slot */
	char boot_id[TERN_LINUX_PATH_MAX];
	char mounts[TERN_LINUX_PATH_MAX];
	/* [health] */
	char health_cmd[TERN_LINUX_CMD_MAX];
	unsigned health_timeout; /* seconds */
	unsigned settle;	 /* seconds */
	/* [system] */
	char reboot_cmd[TERN_LINUX_CMD_MAX];
	/* [mqtt]: kept for the MQTT transport */
	char mqtt_url[512];
	char mqtt_client_id[TERN_LINUX_ID_MAX + 1];
	char mqtt_username[128];
	char mqtt_password_file[TERN_LINUX_PATH_MAX];
	char mqtt_ca[TERN_LINUX_PATH_MAX];
	char mqtt_cert[TERN_LINUX_PATH_MAX];
	char mqtt_key[TERN_LINUX_PATH_MAX];
	char mqtt_prefix[64];
	unsigned mqtt_keepalive;
	/* [usb]: kept for the USB (FunctionFS) transport */
	bool usb_enabled;
	char usb_functionfs[TERN_LINUX_PATH_MAX];
	uint16_t usb_vid;
	uint16_t usb_pid;
	char usb_serial[TERN_LINUX_ID_MAX + 1];
	/* [provisioned]: only in the drop-in STATE/provisioned.conf, which ternd writes */
	uint64_t provision_gen;
	unsigned key_line[TERN_LINUX_KEYS_MAX]; /* line of each key in the file (0: unset) */
};

/*
 * Reads and checks the configuration file @path into @cfg. On a bad file returns
 * TERN_E_MALFORMED (or TERN_E_NOT_FOUND / TERN_E_IO) and writes one line
 * "FILE:LINE: reason" into @err (@err_size bytes).
 */
int tern_linux_config_load(struct tern_linux_config *cfg, const char *path, char *err,
			   size_t err_size);

/* The same from an open file @f, named @path (paths resolve against its folder). */
int tern_linux_config_read(struct tern_linux_config *cfg, const char *path, FILE *f, char *err,
			   size_t err_size);

/*
 * Reads the provisioning drop-in from the open file @f, named @path in errors, over
 * @cfg (read from ternd.conf first): it may set only [provisioned] generation,
 * [device] id and [mqtt] keys, and its values replace the file's. tern_linux_config_load()
 * applies STATE/provisioned.conf this way when it exists. Errors as for the file.
 */
int tern_linux_dropin_read(struct tern_linux_config *cfg, const char *path, FILE *f, char *err,
			   size_t err_size);

/* STATE/provisioned.conf of @cfg into @out (@size bytes). 0 or TERN_E_TOO_LARGE. */
int tern_linux_dropin_path(const struct tern_linux_config *cfg, char *out, size_t size);

/* A device id: 1 to 64 of A-Z a-z 0-9 . _ - (it names MQTT topics). */
bool tern_linux_id_valid(const char *id);

#define TERN_LINUX_PROVISION_CONFIG_MAX 4096 /* bytes of provisioned configuration */

/* What a provisioning gives the device (USB PROVISION, already verified). Borrowed. */
struct tern_linux_provisioning {
	const char *device_id;
	const struct tern_keyring *keyring; /* replaces the keyring folder's keys */
	const uint8_t *config;		    /* ternd.conf lines ([mqtt] keys), or NULL */
	size_t config_len;
	uint64_t generation;
};

/*
 * Writes a provisioning next to @cfg's file: checks that ternd.conf with the new drop-in
 * makes a valid configuration (into @out, which the caller may then use), then writes
 * the keys as KEYRING/provisioned-N.pub (PEM), the drop-in STATE/provisioned.conf
 * ([provisioned] generation, [device] id, then the configuration's lines), and removes
 * the keyring's other *.pub files. Each file atomically, in that order, so a cut leaves
 * the old keys, the new ones, or both. Returns 0, TERN_E_INVAL (id), TERN_E_KEY (no key),
 * TERN_E_MALFORMED (configuration, with "FILE:LINE: reason") or TERN_E_IO, with one
 * line in @err; nothing is written when the request is refused.
 */
int tern_linux_provision_write(const struct tern_linux_config *cfg,
			       const struct tern_linux_provisioning *p,
			       struct tern_linux_config *out, char *err, size_t err_size);

/*
 * Why @url is not a broker URL ternd can use - the scheme mqtt:// or mqtts:// (or paho's
 * tcp://, ssl://), a host (a name, an IPv4 address or [IPv6]), an optional port from 1
 * to 65535, nothing after it - or NULL when it is one. The reason is a constant or
 * written into @why (@why_size bytes).
 */
const char *tern_linux_mqtt_url_why(const char *url, char *why, size_t why_size);

/*
 * What `ternd check` adds to the file's own checks: the files [mqtt] names can be read
 * (password_file; ca, cert and key, which need an mqtts:// url; cert and key together).
 * Returns 0, or TERN_E_NOT_FOUND / TERN_E_MALFORMED with "FILE:LINE: reason" in @err.
 */
int tern_linux_config_check_files(const struct tern_linux_config *cfg, char *err, size_t err_size);

/* --- the bootloader's variables, seen the same way for every backend --- */

#define TERN_BOOT_LEFT_MAX 9 /* GRUB's snippet counts down from at most 9 */

/* BOOT_ORDER's first slot, and BOOT_x_LEFT per firmware slot (0: the slot is bad). */
struct tern_bootvars {
	uint8_t primary; /* 0 (A), 1 (B), or TERN_SLOT_NONE when unset */
	unsigned left[2];
};

/* A bootloader backend. Owned by struct tern_linux. */
struct tern_bootloader_ctx {
	const struct tern_linux_config *cfg;
	struct tern_uboot_loc uboot;
	struct tern_envvars vars; /* as last read (uboot, grub) */
};

/* Prepares the backend named by @cfg (parses fw_env.config for U-Boot). @err as above. */
int tern_bootloader_open(struct tern_bootloader_ctx *bl, const struct tern_linux_config *cfg,
			 char *err, size_t err_size);
void tern_bootloader_close(struct tern_bootloader_ctx *bl);

/* Reads BOOT_ORDER / BOOT_x_LEFT (or asks the script). Missing variables read as
 * primary NONE and 0 left. */
int tern_bootloader_read(struct tern_bootloader_ctx *bl, struct tern_bootvars *v);

/* Writes @want when it differs from @cur (cur may be NULL: read first). Every other
 * variable is kept. */
int tern_bootloader_write(struct tern_bootloader_ctx *bl, const struct tern_bootvars *want,
			  const struct tern_bootvars *cur);

/* --- the board --- */

/* Why the last boot is what it is, for `status` and the run log. */
struct tern_linux_boot_note {
	bool new_boot;	    /* this process reconciled the boot */
	bool reboot_needed; /* the running slot must not stay running */
	bool fell_back;	    /* the bootloader fell back this boot */
	bool rearmed;	    /* an interrupted activation was completed in the environment */
	char text[256];
};

/* A small journal write (a chunk marker) waiting for its slot's fdatasync (board.c). */
struct tern_linux_pending {
	uint64_t off;
	uint8_t len;
	uint8_t data[TERN_WRITE_ALIGN_MAX];
};

#define TERN_LINUX_PENDING_MAX 256  /* markers per fdatasync of a slot, at most */
#define TERN_LINUX_PENDING_MS  2000 /* and no older than this */

/* Which transport has an install in flight (offer accepted, not yet rebooted into it,
 * finished or failed) when several serve the agent at once. */
enum tern_linux_owner {
	TERN_OWNER_NONE = 0,
	TERN_OWNER_MQTT = 1,
	TERN_OWNER_USB = 2,
};

/* A USB install that saw no request for this long no longer holds the agent (a host
 * that went away for good): MQTT may then replace it. */
#define TERN_LINUX_USB_IDLE_MS (10u * 60u * 1000u)

/*
 * What the transports of one `ternd run` share when MQTT and USB serve at once
 * (boards/linux/mqtt.c owns it). Every agent call of either transport is made with
 * @lock held, so the agent, the slots and the bootloader are touched by one thread at a
 * time; an install request of the transport that is not @owner is answered busy.
 */
struct tern_linux_share {
	pthread_mutex_t lock;
	enum tern_linux_owner owner;
	uint64_t usb_last_ms; /* monotonic time of the last USB request that changed the agent */
	bool usb_changed;     /* a USB request changed the agent since MQTT last reported */
	int wake_fd;	      /* eventfd the MQTT loop polls; written after such a request */
};

struct tern_linux {
	struct tern_linux_config cfg;
	struct tern_board board;
	struct tern_bootloader_ctx bl;
	struct tern_keyring keyring;
	struct tern_agent agent;
	struct tern_boot_result boot;
	struct tern_linux_boot_note note;
	int fd[TERN_AREA__COUNT];
	int lock_fd; /* STATE/lock, flock()ed while open */
	struct tern_area_info info[TERN_AREA__COUNT];
	bool disarmed[2]; /* firmware slot made unbootable before this process wrote it */
	bool mount_checked[TERN_N_SLOTS]; /* slot found not mounted before the first write */
	bool unsynced[TERN_N_SLOTS];	  /* written since its last fdatasync */
	struct tern_linux_pending pending[TERN_LINUX_PENDING_MAX];
	unsigned n_pending;
	int64_t pending_since_ms;
	struct tern_linux_share *share; /* borrowed; NULL: one transport, no locking */
	uint8_t scratch[TERN_BOOTCTL_REC_SIZE];
};

/* tern_linux_open() flags: the caller only reads (status), so it may go on without the
 * device's lock while another ternd holds it, once this boot has been reconciled. */
#define TERN_LINUX_READ_ONLY 1u

/*
 * Opens the device described by @cfg (copied): slots, state files (created on first
 * use), keyring, bootloader. Takes the device's lock (STATE/lock; TERN_E_BUSY when
 * another ternd holds it, unless TERN_LINUX_READ_ONLY). Finds the running slot
 * (cmdline marker and root=, cross-checked), and once per boot (boot id) reconciles the
 * boot control record with what the bootloader did; then starts the agent. A device
 * with no record yet is provisioned: the running slot good, with the factory version.
 * @err gets one line. The caller frees with tern_linux_close() (also after a failure).
 */
int tern_linux_open(struct tern_linux *lx, const struct tern_linux_config *cfg, unsigned flags,
		    char *err, size_t err_size);
void tern_linux_close(struct tern_linux *lx);

/*
 * Makes the bootloader's variables follow the boot control record: the slot to boot
 * first, a trial's attempts when it is armed, BOOT_x_LEFT of the running good slot back
 * to its full count, 0 for a slot that is not good. Called after every record change.
 */
int tern_linux_sync_bootloader(struct tern_linux *lx);

/* Before an offer: the slots a release would write must not be mounted (TERN_E_MOUNTED),
 * so a mounted target refuses the release before the offer changes anything. */
int tern_linux_check_targets(struct tern_linux *lx);

/*
 * Ends the trial: @healthy or not. Pass: the bootloader keeps the trial slot (its
 * attempts back to full) before the record confirms it, so a cut in between means one
 * more trial boot, never a confirmed slot the bootloader gave up on. Fail: the record
 * first, then the bootloader; a cut in between boots the bad slot once more and ternd
 * reboots out of it.
 */
int tern_linux_end_trial(struct tern_linux *lx, bool healthy);

/* Installs a whole release file: offer (a revert when @revert, see
 * tern_agent_offer_revert()), indexes, payloads, finish (STAGED). Nothing is fed when
 * the inactive slots hold the release already. */
int tern_linux_install_file(struct tern_linux *lx, const char *path, bool revert);

/* Result of a health check: passed, and the command's last output lines. */
struct tern_health_result {
	bool passed;
	bool timed_out;
	int exit_code; /* -1 when killed or not started */
	char output[1024];
};

/*
 * Runs @cmd with /bin/sh -c in @dir, kills it (and its process group) after @timeout_s
 * seconds, and keeps its last output lines (stdout and stderr) in @res. 0, or TERN_E_IO
 * when it cannot be started.
 */
int tern_linux_run_command(const char *cmd, const char *dir, unsigned timeout_s,
			   struct tern_health_result *res);

#endif
