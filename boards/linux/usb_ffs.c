/*
 * The USB transport of the Linux board: a FunctionFS gadget function (docs/usb.md,
 * "The Linux board's gadget"). ep0 carries the descriptors and the gadget's events;
 * ep1 (bulk OUT) and ep2 (bulk IN) carry the frames, through device/usbdev.c with the
 * board's agent behind it (usb.c).
 *
 * Threads: this one reads ep0 events; while the host has the function enabled, one
 * thread reads bulk OUT a packet at a time (a read of more than the host sends in one
 * transfer would wait for a short packet that a transfer ending on a packet boundary
 * never sends, and the host waits for the reply: a deadlock), and one writes bulk IN.
 * One mutex guards the struct tern_usbdev; the agent runs under it.
 */
#include "tern/tern_linux_usb.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define FS_BULK_MPS		 64
#define HS_BULK_MPS		 512
#define TX_CHUNK		 16384
#define TERN_FFS_REBOOT_GRACE_MS 300 /* on the bus after a REBOOT's ACK was read */

/* ---- descriptors */

static uint8_t *put_le16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v & 0xff);
	p[1] = (uint8_t)(v >> 8);
	return p + 2;
}

static uint8_t *put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 4;
}

/* One speed's descriptors: the vendor interface, bulk OUT 1, bulk IN 2 (FunctionFS
 * addresses: the controller chooses the real ones). */
static uint8_t *put_speed(uint8_t *p, unsigned mps)
{
	const uint8_t intf[9] = {
	    USB_DT_INTERFACE_SIZE, USB_DT_INTERFACE, 0, 0, 2, USB_CLASS_VENDOR_SPEC, 0, 0, 1};
	memcpy(p, intf, sizeof(intf));
	p += sizeof(intf);
	const uint8_t addr[2] = {1 | USB_DIR_OUT, 2 | USB_DIR_IN};
	for (int i = 0; i < 2; i++) {
		*p++ = USB_DT_ENDPOINT_SIZE;
		*p++ = USB_DT_ENDPOINT;
		*p++ = addr[i];
		*p++ = USB_ENDPOINT_XFER_BULK;
		p = put_le16(p, mps);
		*p++ = 0; /* bInterval */
	}
	return p;
}

#define SPEED_DESCS_LEN (USB_DT_INTERFACE_SIZE + 2 * USB_DT_ENDPOINT_SIZE)
_Static_assert(12 + 8 + 2 * SPEED_DESCS_LEN <= TERN_FFS_DESCS_SIZE, "descriptor buffer");

size_t tern_ffs_descriptors(uint8_t *buf, size_t size)
{
	size_t len = 12 + 8 + 2 * SPEED_DESCS_LEN;
	if (size < len)
		return 0;
	uint8_t *p = put_le32(buf, FUNCTIONFS_DESCRIPTORS_MAGIC_V2);
	p = put_le32(p, (uint32_t)len);
	p = put_le32(p, FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC);
	p = put_le32(p, 3); /* fs_count */
	p = put_le32(p, 3); /* hs_count */
	p = put_speed(p, FS_BULK_MPS);
	put_speed(p, HS_BULK_MPS);
	return len;
}

size_t tern_ffs_strings(const char *serial, uint8_t *buf, size_t size)
{
	char text[80];
	int n = snprintf(text, sizeof(text), "tern %s", serial);
	if (n < 0 || (size_t)n >= sizeof(text))
		return 0;
	size_t len = 16 + 2 + (size_t)n + 1;
	if (size < len)
		return 0;
	uint8_t *p = put_le32(buf, FUNCTIONFS_STRINGS_MAGIC);
	p = put_le32(p, (uint32_t)len);
	p = put_le32(p, 1); /* str_count */
	p = put_le32(p, 1); /* lang_count */
	p = put_le16(p, 0x0409);
	memcpy(p, text, (size_t)n + 1);
	return len;
}

/* ---- one connection: from ENABLE to DISABLE */

struct ffs_conn {
	struct tern_usbdev dev;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t main, rx, tx;
	int ep_out, ep_in;
	size_t mps_out, mps_in;
	bool running; /* rx and tx were started */
	bool closing; /* they are asked to stop */
	bool rx_done, tx_done;
	bool reboot_seen;  /* a REBOOT was answered; its ACK is in the IN queue */
	bool reboot_acked; /* ... and the host has read it */
	uint8_t rxbuf[HS_BULK_MPS];
	uint8_t txbuf[TX_CHUNK];
};

static void on_wake(int sig)
{
	(void)sig; /* only interrupts a blocking read or write */
}

/* SIGTERM and SIGINT go to the thread that reads ep0, so that its read is interrupted
 * and ternd stops at once. */
static void block_stop_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *rx_main(void *arg)
{
	struct ffs_conn *c = arg;
	block_stop_signals();
	pthread_mutex_lock(&c->mu);
	while (!c->closing) {
		pthread_mutex_unlock(&c->mu);
		ssize_t n = read(c->ep_out, c->rxbuf, c->mps_out);
		int err = errno;
		pthread_mutex_lock(&c->mu);
		if (n < 0 && err == EINTR)
			continue;
		if (n < 0)
			break; /* disabled or unbound: ep0's event follows */
		while (!c->closing && tern_usbdev_out_room(&c->dev) < (size_t)n)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->closing)
			break;
		tern_usbdev_out(&c->dev, c->rxbuf, (size_t)n);
		if (tern_usbdev_take_reboot(&c->dev))
			c->reboot_seen = true;
		pthread_cond_broadcast(&c->cv);
	}
	c->rx_done = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void *tx_main(void *arg)
{
	struct ffs_conn *c = arg;
	block_stop_signals();
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->closing && tern_usbdev_in_pending(&c->dev) == 0)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->closing)
			break;
		/* Never end a write on a packet boundary: the host's read ends at the short
		 * packet, so every reply reaches it now (FunctionFS sends no zero-length
		 * packet). The byte held back goes with the next write. */
		size_t n = tern_usbdev_in_pending(&c->dev);
		if (n > sizeof(c->txbuf))
			n = sizeof(c->txbuf);
		if (n % c->mps_in == 0)
			n--;
		n = tern_usbdev_in(&c->dev, c->txbuf, n);
		if (tern_usbdev_take_reboot(&c->dev))
			c->reboot_seen = true;
		pthread_cond_broadcast(&c->cv); /* room for OUT again */
		pthread_mutex_unlock(&c->mu);
		size_t off = 0;
		bool failed = false;
		while (off < n && !failed) {
			ssize_t w = write(c->ep_in, c->txbuf + off, n - off);
			if (w > 0)
				off += (size_t)w;
			else
				failed = true; /* disabled, unbound, or asked to stop */
		}
		pthread_mutex_lock(&c->mu);
		if (failed)
			break;
		if (c->reboot_seen && tern_usbdev_in_pending(&c->dev) == 0) {
			c->reboot_acked = true;
			pthread_kill(c->main, SIGUSR1); /* wake ep0's reader */
			break;
		}
	}
	c->tx_done = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* The endpoint's packet size at the speed the host chose (64 when unknown: every packet
 * size is a multiple of it, so the rules above still hold). */
static size_t packet_size(int fd)
{
	struct usb_endpoint_descriptor d;
	memset(&d, 0, sizeof(d));
	if (ioctl(fd, FUNCTIONFS_ENDPOINT_DESC, &d) != 0)
		return FS_BULK_MPS;
	unsigned mps = (unsigned)(((const uint8_t *)&d.wMaxPacketSize)[0] |
				  ((const uint8_t *)&d.wMaxPacketSize)[1] << 8) &
		       0x7ffu;
	return mps >= 8 && mps <= HS_BULK_MPS ? mps : FS_BULK_MPS;
}

static void conn_stop(struct ffs_conn *c)
{
	if (!c->running)
		return;
	pthread_mutex_lock(&c->mu);
	c->closing = true;
	pthread_cond_broadcast(&c->cv);
	while (!c->rx_done || !c->tx_done) {
		if (!c->rx_done)
			pthread_kill(c->rx, SIGUSR1);
		if (!c->tx_done)
			pthread_kill(c->tx, SIGUSR1);
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 20 * 1000 * 1000;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &t);
	}
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->rx, NULL);
	pthread_join(c->tx, NULL);
	c->running = false;
}

static int conn_start(struct ffs_conn *c, struct tern_linux *lx)
{
	conn_stop(c);
	tern_usbdev_init(&c->dev, &tern_linux_usb_ops, lx);
	c->mps_out = packet_size(c->ep_out);
	c->mps_in = packet_size(c->ep_in);
	c->closing = c->rx_done = c->tx_done = false;
	c->reboot_seen = c->reboot_acked = false;
	if (pthread_create(&c->rx, NULL, rx_main, c) != 0)
		return TERN_E_NOMEM;
	if (pthread_create(&c->tx, NULL, tx_main, c) != 0) {
		pthread_mutex_lock(&c->mu);
		c->closing = true;
		c->tx_done = true;
		pthread_mutex_unlock(&c->mu);
		c->running = true;
		conn_stop(c);
		return TERN_E_NOMEM;
	}
	c->running = true;
	return 0;
}

/* ---- ep0 */

static int open_in(const char *dir, const char *name, int flags, int *fd, char *err,
		   size_t err_size)
{
	char path[TERN_LINUX_PATH_MAX + 8];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, err_size, "%s: path too long", dir);
		return TERN_E_TOO_LARGE;
	}
	*fd = open(path, flags | O_CLOEXEC);
	if (*fd < 0) {
		snprintf(err, err_size, "%s: %s%s", path, strerror(errno),
			 errno == ENOENT ? " (is FunctionFS mounted there? "
					   "boards/linux/usb-gadget-setup)"
					 : "");
		return TERN_E_IO;
	}
	return 0;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t w = write(fd, buf, len);
	return w == (ssize_t)len ? 0 : TERN_E_IO;
}

/* Answers a control request to our interface: tern uses none, so stall it. */
static void stall(int ep0, const struct usb_ctrlrequest *setup)
{
	uint8_t none = 0;
	ssize_t r;
	if (setup->bRequestType & USB_DIR_IN)
		r = read(ep0, &none, 0);
	else
		r = write(ep0, &none, 0);
	(void)r; /* EL2HLT: stalled, as asked */
}

int tern_ffs_serve(struct tern_linux *lx, const char *dir, volatile sig_atomic_t *stop,
		   enum tern_ffs_end *end, char *err, size_t err_size)
{
	uint8_t descs[TERN_FFS_DESCS_SIZE], strs[TERN_FFS_STRINGS_SIZE];
	struct sigaction sa, old_sa;
	int rc = 0, ep0 = -1;
	*end = TERN_FFS_STOPPED;
	struct ffs_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, err_size, "%s", tern_strerror(TERN_E_NOMEM));
		return TERN_E_NOMEM;
	}
	c->ep_out = c->ep_in = -1;
	c->main = pthread_self();
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake; /* no SA_RESTART: a blocking read returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old_sa);

	size_t dlen = tern_ffs_descriptors(descs, sizeof(descs));
	size_t slen = tern_ffs_strings(lx->cfg.usb_serial, strs, sizeof(strs));
	if ((rc = open_in(dir, "ep0", O_RDWR, &ep0, err, err_size)))
		goto out;
	if (slen == 0 || write_all(ep0, descs, dlen) || write_all(ep0, strs, slen)) {
		snprintf(err, err_size, "%s/ep0: the descriptors were refused: %s", dir,
			 strerror(errno));
		rc = TERN_E_USB;
		goto out_close;
	}
	/* The endpoint files exist once the descriptors are in. */
	if ((rc = open_in(dir, "ep1", O_RDWR, &c->ep_out, err, err_size)) ||
	    (rc = open_in(dir, "ep2", O_RDWR, &c->ep_in, err, err_size)))
		goto out_close;
	printf("ternd: USB function ready at %s (serial %s); bind the gadget to a controller\n",
	       dir, lx->cfg.usb_serial);
	fflush(stdout);

	while (!*stop) {
		struct usb_functionfs_event ev[4];
		pthread_mutex_lock(&c->mu);
		bool acked = c->reboot_acked;
		pthread_mutex_unlock(&c->mu);
		if (acked) {
			/* The host has the ACK's bytes, but its libusb may not have reaped them
			 * yet; leaving the bus at once can fail its request first (seen once
			 * in 11 QEMU runs). A board's reboot takes longer than this anyway. */
			struct timespec grace = {0, TERN_FFS_REBOOT_GRACE_MS * 1000000L};
			nanosleep(&grace, NULL);
			*end = TERN_FFS_REBOOT;
			break;
		}
		ssize_t n = read(ep0, ev, sizeof(ev));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, err_size, "%s/ep0: %s", dir, strerror(errno));
			rc = TERN_E_USB;
			break;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(ev[0]); i++) {
			switch (ev[i].type) {
			case FUNCTIONFS_ENABLE:
				if ((rc = conn_start(c, lx))) {
					snprintf(err, err_size, "cannot start the USB threads");
					goto out_close;
				}
				break;
			case FUNCTIONFS_DISABLE:
			case FUNCTIONFS_UNBIND:
				conn_stop(c);
				break;
			case FUNCTIONFS_SETUP:
				stall(ep0, &ev[i].u.setup);
				break;
			default: /* BIND, SUSPEND, RESUME */
				break;
			}
		}
	}
out_close:
	conn_stop(c);
	if (c->ep_out >= 0)
		close(c->ep_out);
	if (c->ep_in >= 0)
		close(c->ep_in);
	close(ep0);
out:
	sigaction(SIGUSR1, &old_sa, NULL);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return rc;
}
