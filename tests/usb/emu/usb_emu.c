/*
 * tern-usb-emu: runs a command against N emulated tern USB devices (docs/usb.md).
 *
 *   tern-usb-emu [--devices N] [--dir DIR] [--keyring FILE] [--vid V] [--pid P]
 *                [--boot-ms MS] [--claimed SERIAL] [--no-uevents] [--verbose] -- COMMAND [ARGS...]
 *
 * Devices are EMU00001..EMU0000N on ports 1-1..1-N; their state is kept in DIR/<serial>/.
 * --claimed SERIAL makes that device's interface held by "another program" (tests the
 * busy error); --boot-ms is how long a rebooting device stays off the bus;
 * --corrupt-out N / --corrupt-in N flip a bit in each device's Nth bulk OUT / IN transfer
 * (tests that damaged frames are detected and sent again); --unplug-after N pulls the
 * plug of each device at its Nth bulk OUT transfer and plugs it back in after --boot-ms
 * (power lost: the device boots again), once. --no-uevents announces no device coming
 * or going (a system without udevd: libusb gets no hotplug events, and only a fresh scan
 * of sysfs sees a device that re-enumerated).
 *
 * A umockdev testbed holds a root hub and the devices (sysfs attributes and the binary
 * descriptors exactly as the kernel exposes them); an ioctl handler on each device node
 * acts as usbfs, so the unmodified COMMAND (run as a child with libumockdev-preload and
 * UMOCKDEV_DIR) talks to them through plain libusb. Behind the bus each device is the
 * portable USB transport (struct tern_usbdev, device/usbdev.c) over a backend
 * (emu_backend.h): the agent core on the sim board (--keyring, or --backend sim; kept in
 * DIR/<serial>/ as `ternd sim` keeps it), or identity only (--backend file).
 *
 * Threads: umockdev answers ioctls on its worker thread; the main thread starts the
 * child, waits for it and re-enumerates rebooting devices. One mutex guards every
 * device; testbed calls are made without it.
 */
#define _XOPEN_SOURCE 700 /* nftw() */
#include "emu_backend.h"

#include "tern/tern_err.h"
#include "tern/tern_usbdev.h"

#include <errno.h>
#include <ftw.h>
#include <glib.h>
#include <linux/usbdevice_fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <umockdev.h>
#include <unistd.h>

#define MAX_DEVICES   16
#define EP_OUT	      0x02
#define EP_IN	      0x81
#define PRELOAD_LIB   "libumockdev-preload.so.0"
#define DEFAULT_VID   0x1209
#define DEFAULT_PID   0x0001 /* a pid.codes test PID */
#define CTRL_SETUP_SZ 8

struct emu;

/* One submitted URB, from SUBMITURB to REAPURB. */
struct emu_urb {
	UMockdevIoctlData *data;     /* the client's struct usbdevfs_urb (a ref) */
	UMockdevIoctlClient *client; /* who submitted it (borrowed; compared only) */
	struct usbdevfs_urb *urb;    /* points into data->data */
	uint8_t *buf;		     /* local copy of the URB's buffer, or NULL */
	size_t len;
};

struct emu_dev {
	struct emu *emu;
	unsigned index; /* port 1..N on the root hub */
	unsigned devnum;
	unsigned generation; /* bumped by every re-enumeration */
	char serial[TERN_FRAME_SERIAL_MAX + 1];
	char syspath[64]; /* /sys/devices/usb1/1-N */
	char devnode[64]; /* /dev/bus/usb/001/NNN */
	bool present;
	bool reboot_pending;  /* REBOOT acknowledged and sent: main thread re-enumerates */
	unsigned n_out, n_in; /* bulk transfers carried, for --corrupt-out/--corrupt-in */
	bool held_elsewhere;  /* --claimed: another program has the interface (tests "busy") */
	UMockdevIoctlClient *claimed_by;
	GPtrArray *handlers; /* every UMockdevIoctlBase this device ever had */
	GQueue parked_in, parked_out, done;
	const struct emu_kind *kind;
	void *be; /* the kind's context */
	unsigned n_plugs;
	struct tern_usbdev usb;
};

/* The handler's user data: a device in one of its incarnations. */
struct emu_conn {
	struct emu_dev *dev;
	unsigned generation;
};

struct emu {
	UMockdevTestbed *testbed;
	pthread_mutex_t lock;
	unsigned vid, pid;
	unsigned n_devices;
	unsigned next_devnum;
	unsigned boot_ms;
	unsigned corrupt_out, corrupt_in; /* damage the Nth bulk OUT / IN transfer (0: none) */
	unsigned unplug_after;		  /* pull the plug after the Nth bulk OUT (0: never) */
	bool verbose;
	bool no_uevents; /* --no-uevents: as without udevd, no hotplug events reach libusb */
	const char *dir;
	const char *keyring;
	const struct emu_kind *kind;
	struct emu_dev *devs[MAX_DEVICES];
	GPtrArray *conns;
};

static volatile sig_atomic_t got_signal;

static void vlog(struct emu *e, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void vlog(struct emu *e, const char *fmt, ...)
{
	if (!e->verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("tern-usb-emu: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- Descriptors, as the kernel's sysfs "descriptors" attribute shows them. */

static size_t device_descriptor(const struct emu *e, uint8_t *d)
{
	static const uint8_t tmpl[18] = {18, 1, 0x00, 0x02, 0,	  0, 0, 64, 0,
					 0,  0, 0,    0x00, 0x01, 1, 2, 3,  1};
	memcpy(d, tmpl, sizeof(tmpl));
	d[8] = (uint8_t)e->vid;
	d[9] = (uint8_t)(e->vid >> 8);
	d[10] = (uint8_t)e->pid;
	d[11] = (uint8_t)(e->pid >> 8);
	return sizeof(tmpl);
}

/* Configuration 1: one vendor interface (class 0xff), bulk OUT and bulk IN, 512 bytes. */
static const uint8_t config_descriptor[32] = {
    9, 2, 32,	  0, 1,	   1,	 0, 0x80, 50, /* configuration */
    9, 4, 0,	  0, 2,	   0xff, 0, 0,	  0,  /* interface 0: vendor, 2 endpoints */
    7, 5, EP_OUT, 2, 0x00, 0x02, 0,	      /* bulk OUT */
    7, 5, EP_IN,  2, 0x00, 0x02, 0,	      /* bulk IN */
};

/* String descriptor @index in UTF-16LE; 0 = the language list. Returns its length. */
static size_t string_descriptor(const struct emu_dev *d, unsigned index, uint8_t *out, size_t size)
{
	const char *s;
	if (index == 0) {
		static const uint8_t langs[4] = {4, 3, 0x09, 0x04};
		memcpy(out, langs, sizeof(langs) < size ? sizeof(langs) : size);
		return sizeof(langs) < size ? sizeof(langs) : size;
	}
	if (index == 1)
		s = "tern";
	else if (index == 2)
		s = "tern device (emulated)";
	else if (index == 3)
		s = d->serial;
	else
		return 0;
	size_t n = strlen(s), len = 2 + 2 * n;
	if (len > 255)
		len = 255;
	uint8_t tmp[256];
	tmp[0] = (uint8_t)len;
	tmp[1] = 3;
	for (size_t i = 0; i < n && 2 + 2 * i + 1 < len; i++) {
		tmp[2 + 2 * i] = (uint8_t)s[i];
		tmp[3 + 2 * i] = 0;
	}
	if (len > size)
		len = size;
	memcpy(out, tmp, len);
	return len;
}

/* ---- URBs. */

static void urb_free(struct emu_urb *u)
{
	if (u->data)
		g_object_unref(u->data);
	g_free(u);
}

static void free_queue(GQueue *q)
{
	struct emu_urb *u;
	while ((u = g_queue_pop_head(q)))
		urb_free(u);
}

static void urb_finish(struct emu_dev *d, struct emu_urb *u, int status, size_t actual)
{
	u->urb->status = status;
	u->urb->actual_length = (int)actual;
	g_queue_push_tail(&d->done, u);
}

/* Fails every parked URB (the device went away). Lock held. */
static void fail_parked(struct emu_dev *d, int status)
{
	struct emu_urb *u;
	while ((u = g_queue_pop_head(&d->parked_in)))
		urb_finish(d, u, status, 0);
	while ((u = g_queue_pop_head(&d->parked_out)))
		urb_finish(d, u, status, 0);
}

/* Moves reply bytes into parked IN URBs, and parked OUT bytes into the device, while
 * either makes progress. Called with the lock held. */
static void pump(struct emu_dev *d)
{
	bool progress = true;
	while (progress) {
		progress = false;
		while (!g_queue_is_empty(&d->parked_in) && tern_usbdev_in_pending(&d->usb)) {
			struct emu_urb *u = g_queue_pop_head(&d->parked_in);
			size_t n = u->buf ? tern_usbdev_in(&d->usb, u->buf, u->len) : 0;
			if (++d->n_in == d->emu->corrupt_in && n > TERN_FRAME_HDR_LEN)
				u->buf[n - 1] ^= 0x01; /* a damaged reply: the host must notice */
			urb_finish(d, u, 0, n);
			progress = true;
		}
		while (!g_queue_is_empty(&d->parked_out)) {
			struct emu_urb *u = g_queue_peek_head(&d->parked_out);
			if (u->len > tern_usbdev_out_room(&d->usb))
				break;
			g_queue_pop_head(&d->parked_out);
			++d->n_out;
			if (d->n_out == d->emu->unplug_after) {
				/* Unplugged mid-transfer: this URB and what follows never arrive. */
				urb_finish(d, u, -EPROTO, 0);
				d->reboot_pending = true;
				d->present = false;
				fail_parked(d, -ENODEV);
				return;
			}
			if (d->n_out == d->emu->corrupt_out && u->len > TERN_FRAME_HDR_LEN) {
				/* Damage what the device sees, not the host's buffer. */
				uint8_t *copy = g_memdup2(u->buf, u->len);
				copy[u->len - 1] ^= 0x01;
				tern_usbdev_out(&d->usb, copy, u->len);
				g_free(copy);
			} else if (u->len) {
				tern_usbdev_out(&d->usb, u->buf, u->len);
			}
			urb_finish(d, u, 0, u->len);
			progress = true;
		}
	}
	if (d->usb.reboot_requested && tern_usbdev_in_pending(&d->usb) == 0) {
		tern_usbdev_take_reboot(&d->usb);
		d->reboot_pending = true;
	}
}

/* A control transfer: the standard requests libusb makes; anything else stalls. */
static void control(struct emu_dev *d, struct emu_urb *u)
{
	if (!u->buf || u->len < CTRL_SETUP_SZ) {
		urb_finish(d, u, -EPIPE, 0);
		return;
	}
	const uint8_t *s = u->buf;
	unsigned type = s[0], req = s[1], value = s[2] | (unsigned)s[3] << 8;
	size_t want = (size_t)(s[6] | (unsigned)s[7] << 8);
	uint8_t *out = u->buf + CTRL_SETUP_SZ;
	size_t room = u->len - CTRL_SETUP_SZ;
	if (want > room)
		want = room;
	uint8_t tmp[256];
	size_t n = 0;
	if (type == 0x80 && req == 6) { /* GET_DESCRIPTOR */
		unsigned dtype = value >> 8, index = value & 0xff;
		if (dtype == 1)
			n = device_descriptor(d->emu, tmp);
		else if (dtype == 2) {
			n = sizeof(config_descriptor);
			memcpy(tmp, config_descriptor, n);
		} else if (dtype == 3)
			n = string_descriptor(d, index, tmp, sizeof(tmp));
		if (n == 0) {
			urb_finish(d, u, -EPIPE, 0);
			return;
		}
	} else if (type == 0x80 && req == 0) { /* GET_STATUS */
		tmp[0] = tmp[1] = 0;
		n = 2;
	} else if (type == 0x80 && req == 8) { /* GET_CONFIGURATION */
		tmp[0] = 1;
		n = 1;
	} else if ((type & 0x80) == 0 && (type & 0x60) == 0) { /* standard OUT requests */
		n = 0;
	} else {
		urb_finish(d, u, -EPIPE, 0);
		return;
	}
	if (n > want)
		n = want;
	memcpy(out, tmp, n);
	urb_finish(d, u, 0, n);
}

static void submit(struct emu_dev *d, UMockdevIoctlClient *client)
{
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
	GError *err = NULL;
	UMockdevIoctlData *data =
	    umockdev_ioctl_data_resolve(arg, 0, sizeof(struct usbdevfs_urb), &err);
	if (!data) {
		g_clear_error(&err);
		umockdev_ioctl_client_complete(client, -1, EFAULT);
		return;
	}
	struct emu_urb *u = g_new0(struct emu_urb, 1);
	u->data = g_object_ref(data);
	u->client = client;
	u->urb = (struct usbdevfs_urb *)data->data;
	u->len = u->urb->buffer_length > 0 ? (size_t)u->urb->buffer_length : 0;
	if (u->len) {
		UMockdevIoctlData *b = umockdev_ioctl_data_resolve(
		    data, G_STRUCT_OFFSET(struct usbdevfs_urb, buffer), u->len, &err);
		if (!b) {
			g_clear_error(&err);
			urb_free(u);
			umockdev_ioctl_client_complete(client, -1, EFAULT);
			return;
		}
		u->buf = b->data;
	}
	umockdev_ioctl_client_complete(client, 0, 0);

	switch (u->urb->type) {
	case USBDEVFS_URB_TYPE_CONTROL:
		control(d, u);
		break;
	case USBDEVFS_URB_TYPE_BULK:
		if (u->urb->endpoint == EP_IN)
			g_queue_push_tail(&d->parked_in, u);
		else if (u->urb->endpoint == EP_OUT)
			g_queue_push_tail(&d->parked_out, u);
		else
			urb_finish(d, u, -EPIPE, 0);
		break;
	default:
		urb_finish(d, u, -EINVAL, 0);
	}
	pump(d);
}

static int find_client(gconstpointer a, gconstpointer b)
{
	return ((const struct emu_urb *)a)->client == b ? 0 : 1;
}

static void reap(struct emu_dev *d, UMockdevIoctlClient *client, bool gone)
{
	GList *l = g_queue_find_custom(&d->done, client, find_client);
	if (!l) {
		umockdev_ioctl_client_complete(client, -1, gone ? ENODEV : EAGAIN);
		return;
	}
	struct emu_urb *u = l->data;
	g_queue_delete_link(&d->done, l);
	GError *err = NULL;
	UMockdevIoctlData *ptr = umockdev_ioctl_data_resolve(umockdev_ioctl_client_get_arg(client),
							     0, sizeof(gpointer), &err);
	if (!ptr) {
		g_clear_error(&err);
		urb_free(u);
		umockdev_ioctl_client_complete(client, -1, EFAULT);
		return;
	}
	umockdev_ioctl_data_set_ptr(ptr, 0, u->data);
	umockdev_ioctl_client_complete(client, 0, 0);
	urb_free(u);
}

static bool discard_from(GQueue *q, struct emu_dev *d, UMockdevIoctlClient *client, gulong addr)
{
	for (GList *l = q->head; l; l = l->next) {
		struct emu_urb *u = l->data;
		if (u->client == client && u->data->client_addr == addr) {
			g_queue_delete_link(q, l);
			urb_finish(d, u, -ENOENT, 0);
			return true;
		}
	}
	return false;
}

static void discard(struct emu_dev *d, UMockdevIoctlClient *client)
{
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
	gulong addr = *(gulong *)arg->data;
	if (discard_from(&d->parked_in, d, client, addr) ||
	    discard_from(&d->parked_out, d, client, addr))
		umockdev_ioctl_client_complete(client, 0, 0);
	else
		umockdev_ioctl_client_complete(client, -1, EINVAL);
}

static gboolean on_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer ud)
{
	struct emu_conn *c = ud;
	struct emu_dev *d = c->dev;
	struct emu *e = d->emu;
	(void)handler;
	gulong request = umockdev_ioctl_client_get_request(client);
	gboolean handled = TRUE;

	pthread_mutex_lock(&e->lock);
	bool gone = !d->present || c->generation != d->generation;
	switch (request) {
	case USBDEVFS_GET_CAPABILITIES: {
		GError *err = NULL;
		UMockdevIoctlData *caps = umockdev_ioctl_data_resolve(
		    umockdev_ioctl_client_get_arg(client), 0, sizeof(guint32), &err);
		if (!caps) {
			g_clear_error(&err);
			umockdev_ioctl_client_complete(client, -1, EFAULT);
			break;
		}
		*(guint32 *)caps->data =
		    USBDEVFS_CAP_BULK_SCATTER_GATHER | USBDEVFS_CAP_BULK_CONTINUATION |
		    USBDEVFS_CAP_NO_PACKET_SIZE_LIM | USBDEVFS_CAP_ZERO_PACKET |
		    USBDEVFS_CAP_REAP_AFTER_DISCONNECT;
		umockdev_ioctl_client_complete(client, 0, 0);
		break;
	}
	case USBDEVFS_SUBMITURB:
		if (gone)
			umockdev_ioctl_client_complete(client, -1, ENODEV);
		else
			submit(d, client);
		break;
	case USBDEVFS_REAPURB:
	case USBDEVFS_REAPURBNDELAY:
		reap(d, client, gone);
		break;
	case USBDEVFS_DISCARDURB:
		discard(d, client);
		break;
	case USBDEVFS_CLAIMINTERFACE:
		if (gone) {
			umockdev_ioctl_client_complete(client, -1, ENODEV);
		} else if (d->held_elsewhere || (d->claimed_by && d->claimed_by != client)) {
			umockdev_ioctl_client_complete(client, -1, EBUSY);
		} else {
			d->claimed_by = client;
			umockdev_ioctl_client_complete(client, 0, 0);
		}
		break;
	case USBDEVFS_RELEASEINTERFACE:
		if (d->claimed_by == client)
			d->claimed_by = NULL;
		umockdev_ioctl_client_complete(client, gone ? -1 : 0, gone ? ENODEV : 0);
		break;
	case USBDEVFS_CLEAR_HALT:
	case USBDEVFS_RESETEP:
	case USBDEVFS_SETINTERFACE:
	case USBDEVFS_SETCONFIGURATION:
	case USBDEVFS_DISCONNECT_CLAIM:
		umockdev_ioctl_client_complete(client, gone ? -1 : 0, gone ? ENODEV : 0);
		break;
	case USBDEVFS_RESET:
		if (!gone) {
			fail_parked(d, -ENODEV);
			tern_usbdev_init(&d->usb, d->kind->ops, d->be);
		}
		umockdev_ioctl_client_complete(client, gone ? -1 : 0, gone ? ENODEV : 0);
		break;
	case USBDEVFS_GETDRIVER:
	case USBDEVFS_IOCTL:
		/* No kernel driver is bound to a vendor interface. */
		umockdev_ioctl_client_complete(client, -1, gone ? ENODEV : ENODATA);
		break;
	default:
		vlog(e, "%s: unhandled ioctl 0x%lx", d->serial, request);
		handled = FALSE;
	}
	pthread_mutex_unlock(&e->lock);
	return handled;
}

/* Drops URBs of a client that closed the device without reaping them. */
static void on_vanished(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer ud)
{
	struct emu_conn *c = ud;
	struct emu_dev *d = c->dev;
	(void)handler;
	pthread_mutex_lock(&d->emu->lock);
	if (d->claimed_by == client)
		d->claimed_by = NULL;
	GQueue *queues[3] = {&d->parked_in, &d->parked_out, &d->done};
	for (int i = 0; i < 3; i++) {
		GList *l = queues[i]->head;
		while (l) {
			GList *next = l->next;
			struct emu_urb *u = l->data;
			if (u->client == client) {
				g_queue_delete_link(queues[i], l);
				urb_free(u);
			}
			l = next;
		}
	}
	pthread_mutex_unlock(&d->emu->lock);
}

/* ---- Devices on the testbed. */

static void hexify(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool add_root_hub(struct emu *e)
{
	static const char hub[] =
	    "P: /devices/usb1\n"
	    "N: bus/usb/001/001\n"
	    "E: SUBSYSTEM=usb\n"
	    "E: DEVTYPE=usb_device\n"
	    "E: DRIVER=usb\n"
	    "E: BUSNUM=001\n"
	    "E: DEVNUM=001\n"
	    "E: DEVNAME=/dev/bus/usb/001/001\n"
	    "A: busnum=1\\n\n"
	    "A: devnum=1\\n\n"
	    "A: speed=480\\n\n"
	    "A: bConfigurationValue=1\\n\n"
	    "H: descriptors=12010002090001406b1d020006010302010109021900010100e0000904000001090000"
	    "000705810304000c\n";
	GError *err = NULL;
	if (!umockdev_testbed_add_from_string(e->testbed, hub, &err)) {
		fprintf(stderr, "tern-usb-emu: root hub: %s\n", err->message);
		g_clear_error(&err);
		return false;
	}
	return true;
}

/* Attaches a fresh ioctl handler to the device's node, then adds the device (in this
 * order: umockdev races otherwise), then announces it. */
static bool plug(struct emu_dev *d)
{
	struct emu *e = d->emu;
	GError *err = NULL;
	pthread_mutex_lock(&e->lock);
	d->devnum = e->next_devnum++;
	d->generation++;
	snprintf(d->syspath, sizeof(d->syspath), "/sys/devices/usb1/1-%u", d->index);
	snprintf(d->devnode, sizeof(d->devnode), "/dev/bus/usb/001/%03u", d->devnum);
	tern_usbdev_init(&d->usb, d->kind->ops, d->be);
	int brc = d->kind->boot(d->be, d->n_plugs++ == 0);
	if (brc) {
		/* A device whose boot fails never shows up on the bus. */
		pthread_mutex_unlock(&e->lock);
		fprintf(stderr, "tern-usb-emu: %s: boot failed: %s\n", d->serial,
			tern_strerror(brc));
		return false;
	}
	struct emu_conn *c = g_new0(struct emu_conn, 1);
	c->dev = d;
	c->generation = d->generation;
	g_ptr_array_add(e->conns, c);
	pthread_mutex_unlock(&e->lock);

	UMockdevIoctlBase *h = umockdev_ioctl_base_new();
	g_signal_connect(h, "handle-ioctl", G_CALLBACK(on_ioctl), c);
	g_signal_connect(h, "client-vanished", G_CALLBACK(on_vanished), c);
	g_ptr_array_add(d->handlers, h);
	/* A socket anyone may connect to: a COMMAND run as another user is then refused by
	 * the node's own mode (0644, as root's usbfs nodes), as on a real machine. */
	mode_t old_mask = umask(0);
	bool attached = umockdev_testbed_attach_ioctl(e->testbed, d->devnode, h, &err);
	umask(old_mask);
	if (!attached) {
		fprintf(stderr, "tern-usb-emu: %s: %s\n", d->devnode, err->message);
		g_clear_error(&err);
		return false;
	}

	uint8_t desc[18 + sizeof(config_descriptor)];
	size_t n = device_descriptor(e, desc);
	memcpy(desc + n, config_descriptor, sizeof(config_descriptor));
	n += sizeof(config_descriptor);
	char hex[2 * sizeof(desc) + 1];
	hexify(desc, n, hex);
	gchar *rec = g_strdup_printf("P: /devices/usb1/1-%u\n"
				     "N: bus/usb/001/%03u\n"
				     "E: SUBSYSTEM=usb\n"
				     "E: DEVTYPE=usb_device\n"
				     "E: DRIVER=usb\n"
				     "E: PRODUCT=%x/%x/100\n"
				     "E: BUSNUM=001\n"
				     "E: DEVNUM=%03u\n"
				     "E: DEVNAME=/dev/bus/usb/001/%03u\n"
				     "A: busnum=1\\n\n"
				     "A: devnum=%u\\n\n"
				     "A: devpath=%u\\n\n"
				     "A: speed=480\\n\n"
				     "A: bConfigurationValue=1\\n\n"
				     "A: idVendor=%04x\\n\n"
				     "A: idProduct=%04x\\n\n"
				     "A: serial=%s\\n\n"
				     "A: manufacturer=tern\\n\n"
				     "A: product=tern device (emulated)\\n\n"
				     "H: descriptors=%s\n",
				     d->index, d->devnum, e->vid, e->pid, d->devnum, d->devnum,
				     d->devnum, d->index, e->vid, e->pid, d->serial, hex);
	bool ok = umockdev_testbed_add_from_string(e->testbed, rec, &err);
	g_free(rec);
	if (!ok) {
		fprintf(stderr, "tern-usb-emu: %s: %s\n", d->serial, err->message);
		g_clear_error(&err);
		return false;
	}
	pthread_mutex_lock(&e->lock);
	d->present = true;
	pthread_mutex_unlock(&e->lock);
	if (!e->no_uevents)
		umockdev_testbed_uevent(e->testbed, d->syspath, "add");
	vlog(e, "%s plugged in at %s", d->serial, d->devnode);
	return true;
}

/* The device goes away: pending URBs fail with ENODEV, "remove" is announced. */
static void unplug(struct emu_dev *d)
{
	struct emu *e = d->emu;
	pthread_mutex_lock(&e->lock);
	d->present = false;
	fail_parked(d, -ENODEV);
	pthread_mutex_unlock(&e->lock);
	if (!e->no_uevents)
		umockdev_testbed_uevent(e->testbed, d->syspath, "remove");
	umockdev_testbed_remove_device(e->testbed, d->syspath);
	vlog(e, "%s unplugged from %s", d->serial, d->devnode);
}

/* ---- The runner. */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void dev_log(void *arg, const char *line)
{
	struct emu_dev *d = arg;
	vlog(d->emu, "%s: %s", d->serial, line);
}

static void on_signal(int sig)
{
	got_signal = sig;
}

static int usage_to(FILE *f, int status)
{
	fprintf(f,
		"usage: tern-usb-emu [--devices N] [--dir DIR] [--keyring FILE] [--vid HEX] "
		"[--pid HEX] [--boot-ms MS] [--backend sim|file] [--claimed SERIAL] [--corrupt-out "
		"N] [--corrupt-in N] "
		"[--unplug-after N] [--no-uevents] [--verbose] -- COMMAND "
		"[ARGS...]\n");
	if (f == stdout)
		fprintf(
		    f,
		    "Runs COMMAND against N (default 1) emulated tern USB devices (docs/usb.md).\n"
		    "  --keyring FILE  each device is the sim agent trusting FILE (else identity "
		    "only)\n"
		    "  --dir DIR       device state in DIR/SERIAL (default: a temporary folder)\n"
		    "  --boot-ms MS    how long a reboot keeps a device off the bus (default 100)\n"
		    "  --claimed S     device S is busy (claimed by another program)\n"
		    "  --corrupt-out N, --corrupt-in N   damage the Nth bulk OUT / IN transfer\n"
		    "  --unplug-after N  pull the plug after the Nth bulk OUT\n"
		    "  --no-uevents    no hotplug events reach libusb (as without udevd)\n");
	return status;
}

static int usage(void)
{
	return usage_to(stderr, 2);
}

static bool parse_uint(const char *s, int base, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (errno || end == s || *end || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

/* Re-executes this program under libumockdev-preload unless it already runs there:
 * uevents reach libusb only from a preloaded sender (umockdev sends them only there, for
 * every device added or removed). With @reexec false (--no-uevents) only the COMMAND,
 * which inherits LD_PRELOAD, runs under it, and no uevent is ever sent. */
static void ensure_preload(char **argv, bool reexec)
{
	const char *pre = getenv("LD_PRELOAD");
	if (pre && strstr(pre, "libumockdev-preload"))
		return;
	gchar *v = pre && *pre ? g_strdup_printf("%s:%s", PRELOAD_LIB, pre) : g_strdup(PRELOAD_LIB);
	setenv("LD_PRELOAD", v, 1);
	g_free(v);
	if (!reexec)
		return;
	execv("/proc/self/exe", argv);
	fprintf(stderr, "tern-usb-emu: cannot re-execute under %s: %s\n", PRELOAD_LIB,
		strerror(errno));
	exit(1);
}

int main(int argc, char **argv)
{
	struct emu e;
	memset(&e, 0, sizeof(e));
	e.vid = DEFAULT_VID;
	e.pid = DEFAULT_PID;
	e.n_devices = 1;
	e.boot_ms = 100;
	e.next_devnum = 2;
	const char *claimed = NULL, *backend = NULL;
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--")) {
			i++;
			break;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			return usage_to(stdout, 0);
		} else if (!strcmp(a, "--verbose")) {
			e.verbose = true;
		} else if (!strcmp(a, "--no-uevents")) {
			e.no_uevents = true;
		} else if (!v) {
			return usage();
		} else if (!strcmp(a, "--devices")) {
			if (!parse_uint(v, 10, MAX_DEVICES, &e.n_devices))
				return usage();
			i++;
		} else if (!strcmp(a, "--dir")) {
			e.dir = v;
			i++;
		} else if (!strcmp(a, "--corrupt-out")) {
			if (!parse_uint(v, 10, 1000000, &e.corrupt_out))
				return usage();
			i++;
		} else if (!strcmp(a, "--corrupt-in")) {
			if (!parse_uint(v, 10, 1000000, &e.corrupt_in))
				return usage();
			i++;
		} else if (!strcmp(a, "--unplug-after")) {
			if (!parse_uint(v, 10, 1000000, &e.unplug_after))
				return usage();
			i++;
		} else if (!strcmp(a, "--claimed")) {
			claimed = v;
			i++;
		} else if (!strcmp(a, "--keyring")) {
			e.keyring = v;
			i++;
		} else if (!strcmp(a, "--backend")) {
			backend = v;
			i++;
		} else if (!strcmp(a, "--vid")) {
			if (!parse_uint(v, 16, 0xffff, &e.vid))
				return usage();
			i++;
		} else if (!strcmp(a, "--pid")) {
			if (!parse_uint(v, 16, 0xffff, &e.pid))
				return usage();
			i++;
		} else if (!strcmp(a, "--boot-ms")) {
			if (!parse_uint(v, 10, 60000, &e.boot_ms))
				return usage();
			i++;
		} else {
			return usage();
		}
	}
	if (i >= argc)
		return usage();
	char **cmd = argv + i;
	/* The agent on the sim board when there are keys to trust; else identity only. */
	if (backend ? !strcmp(backend, "sim") : e.keyring != NULL)
		e.kind = &emu_kind_sim;
	else if (!backend || !strcmp(backend, "file"))
		e.kind = &emu_kind_file;
	else
		return usage();

	ensure_preload(argv, !e.no_uevents);

	/* The testbed's folder goes where scripts/usb-emu can remove it even after a crash. */
	const char *orig_tmp = getenv("TMPDIR");
	gchar *saved_tmp = orig_tmp ? g_strdup(orig_tmp) : NULL;
	const char *emu_tmp = getenv("TERN_USB_EMU_TMPDIR");
	if (emu_tmp && *emu_tmp)
		setenv("TMPDIR", emu_tmp, 1);

	gchar *own_dir = NULL;
	if (!e.dir) {
		own_dir = g_dir_make_tmp("tern-usb-devices.XXXXXX", NULL);
		if (!own_dir) {
			fprintf(stderr, "tern-usb-emu: cannot create a device folder\n");
			return 1;
		}
		e.dir = own_dir;
	} else if (mkdir(e.dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "tern-usb-emu: %s: %s\n", e.dir, strerror(errno));
		return 1;
	}

	pthread_mutex_init(&e.lock, NULL);
	e.conns = g_ptr_array_new_with_free_func(g_free);
	e.testbed = umockdev_testbed_new();
	int status = 1;
	if (!e.testbed || !add_root_hub(&e))
		goto out;
	/* Let a COMMAND that drops root see the bus (and be refused its devices' nodes). */
	gchar *root = umockdev_testbed_get_root_dir(e.testbed);
	if (chmod(root, 01777))
		vlog(&e, "cannot open %s to other users", root);
	g_free(root);
	for (unsigned k = 0; k < e.n_devices; k++) {
		struct emu_dev *d = g_new0(struct emu_dev, 1);
		e.devs[k] = d;
		d->emu = &e;
		d->index = k + 1;
		snprintf(d->serial, sizeof(d->serial), "EMU%05u", k + 1);
		d->held_elsewhere = claimed && !strcmp(claimed, d->serial);
		d->handlers = g_ptr_array_new_with_free_func(g_object_unref);
		g_queue_init(&d->parked_in);
		g_queue_init(&d->parked_out);
		g_queue_init(&d->done);
		d->kind = e.kind;
		d->be = g_malloc0(e.kind->size);
		int rc = e.kind->open(d->be, e.dir, d->serial, e.keyring);
		if (!rc && e.verbose && e.kind->set_log)
			e.kind->set_log(d->be, dev_log, d);
		if (rc == TERN_E_KEY && !e.keyring) {
			fprintf(stderr, "tern-usb-emu: %s/%s: a new sim device needs --keyring\n",
				e.dir, d->serial);
			goto out;
		}
		if (rc) {
			fprintf(stderr, "tern-usb-emu: %s/%s: %s\n", e.dir, d->serial,
				tern_strerror(rc));
			goto out;
		}
		if (!plug(d))
			goto out;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "tern-usb-emu: fork: %s\n", strerror(errno));
		goto out;
	}
	if (child == 0) {
		if (saved_tmp)
			setenv("TMPDIR", saved_tmp, 1);
		else
			unsetenv("TMPDIR");
		unsetenv("TERN_USB_EMU_TMPDIR");
		execvp(cmd[0], cmd);
		fprintf(stderr, "tern-usb-emu: %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}

	/* Wait for the child; re-enumerate devices that reboot meanwhile. */
	int wstatus = 0;
	bool forwarded = false;
	for (;;) {
		pid_t w = waitpid(child, &wstatus, WNOHANG);
		if (w == child)
			break;
		if (w < 0 && errno != EINTR)
			break;
		if (got_signal && !forwarded) {
			kill(child, got_signal);
			forwarded = true;
		}
		for (unsigned k = 0; k < e.n_devices; k++) {
			struct emu_dev *d = e.devs[k];
			pthread_mutex_lock(&e.lock);
			bool reboot = d->reboot_pending;
			d->reboot_pending = false;
			pthread_mutex_unlock(&e.lock);
			if (!reboot)
				continue;
			unplug(d);
			g_usleep((gulong)e.boot_ms * 1000);
			if (!plug(d))
				fprintf(stderr, "tern-usb-emu: %s did not come back\n", d->serial);
		}
		g_usleep(2000);
	}
	if (WIFEXITED(wstatus))
		status = WEXITSTATUS(wstatus);
	else if (WIFSIGNALED(wstatus))
		status = 128 + WTERMSIG(wstatus);
	for (unsigned k = 0; k < e.n_devices; k++)
		if (e.devs[k])
			vlog(&e, "%s: %llu frames, %llu damaged", e.devs[k]->serial,
			     (unsigned long long)e.devs[k]->usb.stats.frames,
			     (unsigned long long)e.devs[k]->usb.stats.crc_errors);
out:
	if (e.testbed)
		g_object_unref(e.testbed);
	for (unsigned k = 0; k < e.n_devices; k++) {
		struct emu_dev *d = e.devs[k];
		if (!d)
			continue;
		free_queue(&d->parked_in);
		free_queue(&d->parked_out);
		free_queue(&d->done);
		g_ptr_array_unref(d->handlers);
		if (d->be) {
			d->kind->close(d->be);
			g_free(d->be);
		}
		g_free(d);
	}
	g_ptr_array_unref(e.conns);
	if (own_dir) {
		nftw(own_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		g_free(own_dir);
	}
	g_free(saved_tmp);
	pthread_mutex_destroy(&e.lock);
	return status;
}
