/*
 * The USB emulator's interim device backend (docs/usb.md, "Device model"): a small
 * device state kept in DIR/<serial>/state as "key=value" lines, behind the same
 * struct tern_usbdev_ops the sim board's agent backend will implement. It answers
 * HELLO, STATE and REBOOT; installing releases is the agent's job and is refused here
 * (ERROR/unknown-type) until the sim board plugs in.
 */
#ifndef TERN_EMU_BACKEND_H
#define TERN_EMU_BACKEND_H

#include "tern/tern_frame.h"
#include "tern/tern_usbdev.h"

#include <limits.h>
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

extern const struct tern_usbdev_ops emu_backend_ops;

/*
 * Loads DIR/<serial>/state, or creates it for a blank device (board "sim", version
 * 1.0.0 in slot A, idle). Returns 0 or TERN_E_IO / TERN_E_MALFORMED.
 */
int emu_backend_open(struct emu_backend *b, const char *root, const char *serial);

/* A boot: counts it and saves the state. */
int emu_backend_boot(struct emu_backend *b);

#endif
