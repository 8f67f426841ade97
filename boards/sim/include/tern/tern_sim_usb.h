/*
 * The sim board behind the USB transport (docs/usb.md): struct tern_usbdev_ops over a
 * struct tern_sim_device, so that `tern usb` drives the real agent core through the
 * emulated bus exactly as it would drive a board's FunctionFS gadget.
 */
#ifndef TERN_SIM_USB_H
#define TERN_SIM_USB_H

#include "tern/tern_sim.h"
#include "tern/tern_usbdev.h"

/* The backend context: a running sim device (borrowed) and its USB serial number. */
struct tern_sim_usb {
	struct tern_sim_device *dev;
	char serial[TERN_FRAME_SERIAL_MAX + 1];
	char device_id[TERN_FRAME_DEVICE_ID_MAX + 1]; /* "" until provisioned */
	uint64_t provision_gen; /* last provisioning generation taken (0: none) */
};

/* info, state, offer, data, done, activate, confirm; reboot is left to the transport
 * (it re-enumerates and boots the device with tern_sim_boot()). */
extern const struct tern_usbdev_ops tern_sim_usb_ops;

#endif
