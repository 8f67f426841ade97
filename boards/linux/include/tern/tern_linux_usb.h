/*
 * The Linux board behind USB (docs/usb.md): the agent's requests as struct
 * tern_usbdev_ops over a struct tern_linux (usb.c), and the FunctionFS gadget function
 * that carries the frames (usb_ffs.c): a vendor interface with one bulk OUT and one bulk
 * IN endpoint, its descriptors written to ep0 of a FunctionFS mount. The gadget itself
 * (VID, PID, serial, the ffs function, binding to a UDC) is made in configfs by
 * boards/linux/usb-gadget-setup.
 */
#ifndef TERN_LINUX_USB_H
#define TERN_LINUX_USB_H

#include "tern/tern_linux.h"
#include "tern/tern_usbdev.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* info, state, offer, data, done, activate, confirm, provision over a struct tern_linux (the @be
 * pointer); reboot is the transport's business (ternd runs [system] reboot). */
extern const struct tern_usbdev_ops tern_linux_usb_ops;

/* Length of the FunctionFS descriptors and strings blobs (usb_ffs.c). */
#define TERN_FFS_DESCS_SIZE   128
#define TERN_FFS_STRINGS_SIZE (16 + 2 + 80)

/*
 * Writes the FunctionFS v2 descriptors blob (full and high speed: one vendor interface,
 * bulk OUT then bulk IN, so ep1 is OUT and ep2 is IN) into @buf. Returns its length, or
 * 0 when @size is too small.
 */
size_t tern_ffs_descriptors(uint8_t *buf, size_t size);

/* Writes the FunctionFS strings blob (en-US: the interface string "tern @serial"). Returns
 * its length, or 0 when @size is too small. */
size_t tern_ffs_strings(const char *serial, uint8_t *buf, size_t size);

/* Why tern_ffs_serve() returned. */
enum tern_ffs_end {
	TERN_FFS_STOPPED = 0, /* *@stop was set (a signal) */
	TERN_FFS_REBOOT = 1,  /* the host asked for a reboot and has read the ACK */
};

/*
 * Serves the agent of @lx over the FunctionFS mount @dir (its ep0, ep1, ep2) until the
 * host asks for a reboot or *@stop becomes non-zero (set it from a SIGTERM/SIGINT
 * handler installed without SA_RESTART). Sets *@end. Reads on bulk OUT are kept queued
 * one packet at a time, so a request that ends on a packet boundary is never held back;
 * writes on bulk IN never end on a packet boundary (the host sees every reply at once).
 * Every disconnect starts a fresh connection. @lx is borrowed. Returns 0, or TERN_E_IO
 * / TERN_E_USB with one line in @err (e.g. @dir is not a FunctionFS mount).
 */
int tern_ffs_serve(struct tern_linux *lx, const char *dir, volatile sig_atomic_t *stop,
		   enum tern_ffs_end *end, char *err, size_t err_size);

#endif
