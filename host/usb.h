/*
 * tern devices on USB, through libusb-1.0: finding them (vendor interface, endpoints
 * read from the descriptors), and the transfer engine every `tern usb` command uses.
 *
 * The engine keeps several requests in flight: each request is one frame in its own bulk
 * OUT transfer, kept until its reply arrives (and sent again when the device reports a
 * damaged frame); bulk IN transfers stay queued and feed a frame reassembler that matches
 * replies to requests by sequence number. Everything runs on the caller's thread inside
 * libusb's event handling; nothing here is global.
 */
#ifndef TERN_HOST_USB_H
#define TERN_HOST_USB_H

#include "tern/tern_frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct libusb_context;
struct libusb_device;
struct libusb_device_handle;

#define USB_DEFAULT_VID 0x1209 /* pid.codes */
#define USB_DEFAULT_PID 0x0001 /* a pid.codes test PID; set --pid for production devices */
#define USB_WINDOW	8      /* requests in flight */
#define USB_IN_XFERS	2      /* bulk IN transfers kept queued */
#define USB_IN_SIZE	4096   /* bytes per IN transfer */
#define USB_TIMEOUT_MS	5000   /* a reply must come within this */
#define USB_RETRIES	3      /* resends of a request the device saw damaged */

/* Which devices count as tern devices. */
struct usb_match {
	uint16_t vid, pid;
	const char *serial; /* NULL: any */
};

/* A device found on the bus. @dev holds a libusb reference until usb_found_free(). */
struct usb_found {
	struct libusb_device *dev;
	uint8_t bus, address;
	char port[32]; /* "1-1.4" as the kernel names it */
	char serial[TERN_FRAME_SERIAL_MAX + 1];
	int iface;
	uint8_t ep_out, ep_in;
	int open_rc; /* 0, or why it could not be opened (TERN_E_NO_ACCESS, TERN_E_BUSY, ...) */
};

/*
 * Fills @out (up to @max entries) with every device matching @m's VID/PID that has a
 * vendor interface with one bulk OUT and one bulk IN endpoint, sorted by port, each
 * opened briefly to read its serial number; with @m->serial set, only that serial.
 * Sets @n. Returns 0 or TERN_E_USB.
 */
int usb_scan(struct libusb_context *ctx, const struct usb_match *m, struct usb_found *out,
	     size_t max, size_t *n);

void usb_found_free(struct usb_found *f, size_t n);

/*
 * Waits up to @wait_ms milliseconds for the device with serial @m->serial to come back after it
 * left the bus (a reboot): it is back once no device was seen at its old bus and address
 * (@old_bus, @old_addr) and it answers again, or once it answers at another address.
 * Every look is a fresh libusb context scanning sysfs: without udevd libusb gets no
 * hotplug events, and a context kept open would list the device where it was forever.
 * On 0, *@ctx is the context @f was found in: the caller frees @f with usb_found_free(),
 * then calls libusb_exit(*@ctx). Returns 0, TERN_E_TIMEOUT or TERN_E_USB (libusb cannot
 * start).
 */
int usb_wait_back(const struct usb_match *m, uint8_t old_bus, uint8_t old_addr, uint64_t wait_ms,
		  struct libusb_context **ctx, struct usb_found *f);

/* Reads the VID and PID from --vid/--pid values or TERN_USB_VID/TERN_USB_PID (hex). */
int usb_match_init(struct usb_match *m, const char *vid, const char *pid, const char *serial);

/* One request in flight. */
struct usb_req;

/* Called once per request with 0 and the reply (borrowed for the call), or an error. */
typedef void (*usb_reply_fn)(void *ud, int rc, const struct tern_frame *reply);

/* An open device and its transfer engine. */
struct usb_link {
	struct libusb_context *ctx;
	struct libusb_device_handle *h;
	int iface;
	uint8_t ep_out, ep_in;
	uint32_t next_seq;
	int error;     /* first fatal error (device gone, transfer failed): the link is dead */
	size_t n_busy; /* requests in flight */
	size_t n_in_busy;
	struct usb_req *reqs; /* USB_WINDOW slots */
	struct libusb_transfer *in[USB_IN_XFERS];
	uint8_t *in_buf[USB_IN_XFERS];
	struct tern_frame_rx rx;
	uint8_t *rx_buf;
	uint64_t bytes_out; /* frame bytes sent, for efficiency figures */
	uint64_t resends;
};

/* Opens @f, claims its interface and queues the IN transfers. Returns 0, TERN_E_NO_ACCESS,
 * TERN_E_BUSY (another program has it), TERN_E_NOMEM or TERN_E_USB. */
int usb_link_open(struct usb_link *l, struct libusb_context *ctx, const struct usb_found *f);

/* Cancels what is in flight, releases the interface and closes. */
void usb_link_close(struct usb_link *l);

/*
 * Sends one request (frame type @type, body of @len bytes, copied) and returns at once
 * unless USB_WINDOW requests are in flight: then it first handles events until one is
 * answered. @cb runs from inside usb_link_* calls when the reply (or an error) arrives.
 * Returns 0 or the link's error.
 */
int usb_link_send(struct usb_link *l, uint8_t type, const uint8_t *body, size_t len,
		  usb_reply_fn cb, void *ud);

/* Handles events until every request is answered. Returns 0 or the link's error. */
int usb_link_drain(struct usb_link *l);

/*
 * One request and its reply: sends, waits, and copies the reply body into @reply (at most
 * @size bytes; @reply_len set). An ERROR reply becomes its mapped TERN_E* code (the
 * status in @status when not NULL). Returns 0 when the reply has type @want.
 */
int usb_link_call(struct usb_link *l, uint8_t type, const uint8_t *body, size_t len, uint8_t want,
		  uint8_t *reply, size_t size, size_t *reply_len, uint32_t *status);

/* HELLO -> INFO. */
int usb_link_hello(struct usb_link *l, struct tern_msg_info *info);

#endif
