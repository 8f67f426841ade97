/*
 * What sits behind each emulated USB device (docs/usb.md, "Device model"): a kind of
 * backend, chosen per run, each a struct tern_usbdev_ops plus open/boot/close hooks.
 *  - "sim": the real agent core on the sim board (emu_sim.c, boards/sim/usb.c), kept in
 *    DIR/<serial>/ exactly as `ternd sim` keeps a device; used when --keyring is given.
 *  - "file": identity only (this file): DIR/<serial>/state as "key=value" lines; answers
 *    HELLO, STATE and REBOOT and refuses installs (ERROR/unknown-type).
 */
#ifndef TERN_EMU_BACKEND_H
#define TERN_EMU_BACKEND_H

#include "tern/tern_frame.h"
#include "tern/tern_usbdev.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct emu_backend {
	char dir[PATH_MAX]; /* DIR/<serial> */
	char serial[TERN_FRAME_SERIAL_MAX + 1];
	char board[TERN_NAME_MAX + 1];
	char device_id[TERN_FRAME_DEVICE_ID_MAX + 1];
	char version[TERN_VERSION_MAX + 1];
	uint64_t sequence;
	uint32_t slot;
	uint32_t state;
	uint64_t boots;
};

/* A kind of device behind the emulated bus. */
struct emu_kind {
	const char *name;
	size_t size; /* bytes of its context (zeroed before open) */
	/* Opens the device kept in @root/@serial, creating it when new; @keyring may be
	 * NULL. Returns 0 or a TERN_E* code. */
	int (*open)(void *be, const char *root, const char *serial, const char *keyring);
	/* Each time the device appears on the bus: @first at start, else after a reboot. */
	int (*boot)(void *be, bool first);
	void (*close)(void *be);
	/* One line of what the device did, for --verbose (may be NULL). */
	void (*set_log)(void *be, void (*log)(void *arg, const char *line), void *arg);
	const struct tern_usbdev_ops *ops;
};

extern const struct emu_kind emu_kind_file;
extern const struct emu_kind emu_kind_sim;

extern const struct tern_usbdev_ops emu_backend_ops;

/*
 * Loads DIR/<serial>/state, or creates it for a blank device (board "sim", version
 * 1.0.0 in slot A, idle). Returns 0 or TERN_E_IO / TERN_E_MALFORMED.
 */
int emu_backend_open(struct emu_backend *b, const char *root, const char *serial);

/* A boot: counts it and saves the state. */
int emu_backend_boot(struct emu_backend *b);

#endif
