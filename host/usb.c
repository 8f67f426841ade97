/* tern devices on USB: discovery and the asynchronous transfer engine (libusb-1.0). */
#include "usb.h"

#include "tern/tern_err.h"
#include "tern/tern_msg.h"

#include <libusb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct usb_req {
	struct usb_link *l;
	struct libusb_transfer *xfer;
	uint8_t *buf; /* the whole frame, kept until answered (resends) */
	size_t len;
	uint32_t seq;
	bool busy;     /* slot taken */
	bool out_busy; /* the OUT transfer is with libusb */
	bool answered; /* the callback ran */
	bool resend;   /* send again when the OUT transfer is back */
	unsigned retries;
	uint64_t deadline_ms;
	usb_reply_fn cb;
	void *ud;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int map_libusb(int rc)
{
	switch (rc) {
	case LIBUSB_ERROR_ACCESS:
		return TERN_E_NO_ACCESS;
	case LIBUSB_ERROR_BUSY:
		return TERN_E_BUSY;
	case LIBUSB_ERROR_NO_MEM:
		return TERN_E_NOMEM;
	case LIBUSB_ERROR_TIMEOUT:
		return TERN_E_TIMEOUT;
	case LIBUSB_ERROR_NO_DEVICE:
	case LIBUSB_ERROR_NOT_FOUND:
		return TERN_E_USB;
	default:
		return TERN_E_USB;
	}
}

/* ---- Discovery. */

static int parse_hex16(const char *s, uint16_t *out)
{
	unsigned v = 0;
	if (!s || !*s || strlen(s) > 6)
		return TERN_E_USAGE;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (!*s)
		return TERN_E_USAGE;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (*s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return TERN_E_USAGE;
		v = v * 16 + d;
		if (v > 0xffff)
			return TERN_E_USAGE;
	}
	*out = (uint16_t)v;
	return 0;
}

int usb_match_init(struct usb_match *m, const char *vid, const char *pid, const char *serial)
{
	m->vid = USB_DEFAULT_VID;
	m->pid = USB_DEFAULT_PID;
	m->serial = serial;
	if (!vid)
		vid = getenv("TERN_USB_VID");
	if (!pid)
		pid = getenv("TERN_USB_PID");
	if (vid && parse_hex16(vid, &m->vid))
		return TERN_E_USAGE;
	if (pid && parse_hex16(pid, &m->pid))
		return TERN_E_USAGE;
	return 0;
}

/* Finds the vendor interface with one bulk OUT and one bulk IN endpoint. */
static bool find_interface(const struct libusb_config_descriptor *cfg, struct usb_found *f)
{
	for (int i = 0; i < cfg->bNumInterfaces; i++) {
		const struct libusb_interface *itf = &cfg->interface[i];
		if (itf->num_altsetting < 1)
			continue;
		const struct libusb_interface_descriptor *alt = &itf->altsetting[0];
		if (alt->bInterfaceClass != LIBUSB_CLASS_VENDOR_SPEC)
			continue;
		int out = -1, in = -1;
		for (int e = 0; e < alt->bNumEndpoints; e++) {
			const struct libusb_endpoint_descriptor *ep = &alt->endpoint[e];
			if ((ep->bmAttributes & 3) != LIBUSB_TRANSFER_TYPE_BULK)
				continue;
			if (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN)
				in = ep->bEndpointAddress;
			else
				out = ep->bEndpointAddress;
		}
		if (out < 0 || in < 0)
			continue;
		f->iface = alt->bInterfaceNumber;
		f->ep_out = (uint8_t)out;
		f->ep_in = (uint8_t)in;
		return true;
	}
	return false;
}

static void port_name(libusb_device *dev, char *out, size_t size)
{
	uint8_t ports[8];
	int n = libusb_get_port_numbers(dev, ports, (int)sizeof(ports));
	int k = snprintf(out, size, "%u", libusb_get_bus_number(dev));
	for (int i = 0; i < n && k > 0 && (size_t)k < size; i++)
		k += snprintf(out + k, size - (size_t)k, "%c%u", i == 0 ? '-' : '.', ports[i]);
}

static int cmp_found(const void *a, const void *b)
{
	const struct usb_found *x = a, *y = b;
	if (x->bus != y->bus)
		return x->bus < y->bus ? -1 : 1;
	size_t lx = strlen(x->port), ly = strlen(y->port);
	if (lx != ly) /* "1-2" before "1-10" */
		return lx < ly ? -1 : 1;
	return strcmp(x->port, y->port);
}

int usb_scan(struct libusb_context *ctx, const struct usb_match *m, struct usb_found *out,
	     size_t max, size_t *n)
{
	libusb_device **list;
	ssize_t cnt = libusb_get_device_list(ctx, &list);
	*n = 0;
	if (cnt < 0)
		return map_libusb((int)cnt);
	for (ssize_t i = 0; i < cnt && *n < max; i++) {
		libusb_device *dev = list[i];
		struct libusb_device_descriptor dd;
		struct libusb_config_descriptor *cfg = NULL;
		struct usb_found f;
		memset(&f, 0, sizeof(f));
		if (libusb_get_device_descriptor(dev, &dd) || dd.idVendor != m->vid ||
		    dd.idProduct != m->pid)
			continue;
		if (libusb_get_active_config_descriptor(dev, &cfg) &&
		    libusb_get_config_descriptor(dev, 0, &cfg))
			continue;
		bool ok = find_interface(cfg, &f);
		libusb_free_config_descriptor(cfg);
		if (!ok)
			continue;
		f.bus = libusb_get_bus_number(dev);
		f.address = libusb_get_device_address(dev);
		port_name(dev, f.port, sizeof(f.port));
		libusb_device_handle *h;
		int rc = libusb_open(dev, &h);
		if (rc) {
			f.open_rc = map_libusb(rc);
		} else {
			if (dd.iSerialNumber && libusb_get_string_descriptor_ascii(
						    h, dd.iSerialNumber, (unsigned char *)f.serial,
						    (int)sizeof(f.serial)) < 0)
				f.serial[0] = '\0';
			libusb_close(h);
		}
		if (m->serial && (f.open_rc || strcmp(m->serial, f.serial)))
			continue;
		f.dev = libusb_ref_device(dev);
		out[(*n)++] = f;
	}
	libusb_free_device_list(list, 1);
	qsort(out, *n, sizeof(out[0]), cmp_found);
	return 0;
}

void usb_found_free(struct usb_found *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (f[i].dev)
			libusb_unref_device(f[i].dev);
		f[i].dev = NULL;
	}
}

#define WAIT_BACK_POLL_MS 100 /* between two looks for a rebooting device */
#define WAIT_BACK_MAX	  16  /* devices of the tern VID/PID looked at per scan */

int usb_wait_back(const struct usb_match *m, uint8_t old_bus, uint8_t old_addr, uint64_t wait_ms,
		  struct libusb_context **ctx, struct usb_found *f)
{
	struct usb_match any = *m;
	uint64_t until = now_ms() + wait_ms;
	bool seen_gone = false;
	any.serial = NULL;
	for (;;) {
		struct libusb_context *c;
		struct usb_found got[WAIT_BACK_MAX];
		size_t n = 0;
		if (libusb_init(&c))
			return TERN_E_USB;
		if (usb_scan(c, &any, got, WAIT_BACK_MAX, &n) == 0) {
			const struct usb_found *back = NULL;
			bool at_old = false;
			for (size_t i = 0; i < n; i++) {
				bool old = got[i].bus == old_bus && got[i].address == old_addr;
				at_old = at_old || old;
				if (!back && !got[i].open_rc && !strcmp(got[i].serial, m->serial) &&
				    (!old || seen_gone))
					back = &got[i];
			}
			seen_gone = seen_gone || !at_old;
			if (back) {
				*f = *back;
				f->dev = libusb_ref_device(back->dev);
				usb_found_free(got, n);
				*ctx = c;
				return 0;
			}
			usb_found_free(got, n);
		}
		libusb_exit(c);
		if (now_ms() >= until)
			return TERN_E_TIMEOUT;
		struct timespec nap = {0, WAIT_BACK_POLL_MS * 1000 * 1000};
		nanosleep(&nap, NULL);
	}
}

/* ---- The transfer engine. */

/* The link fails: every request still waiting gets @rc. */
static void link_fail(struct usb_link *l, int rc)
{
	if (!l->error)
		l->error = rc;
	for (size_t i = 0; i < USB_WINDOW; i++) {
		struct usb_req *r = &l->reqs[i];
		if (!r->busy || r->answered)
			continue;
		r->answered = true;
		r->resend = false;
		if (r->cb)
			r->cb(r->ud, l->error, NULL);
		if (!r->out_busy) {
			r->busy = false;
			l->n_busy--;
		}
	}
}

static void req_release_if_done(struct usb_req *r)
{
	if (r->busy && r->answered && !r->out_busy) {
		r->busy = false;
		r->l->n_busy--;
	}
}

static void LIBUSB_CALL out_cb(struct libusb_transfer *t);

static int submit_out(struct usb_req *r)
{
	struct usb_link *l = r->l;
	libusb_fill_bulk_transfer(r->xfer, l->h, l->ep_out, r->buf, (int)r->len, out_cb, r,
				  USB_TIMEOUT_MS);
	int rc = libusb_submit_transfer(r->xfer);
	if (rc)
		return map_libusb(rc);
	r->out_busy = true;
	r->deadline_ms = now_ms() + USB_TIMEOUT_MS;
	l->bytes_out += r->len;
	return 0;
}

static void LIBUSB_CALL out_cb(struct libusb_transfer *t)
{
	struct usb_req *r = t->user_data;
	struct usb_link *l = r->l;
	r->out_busy = false;
	if (t->status != LIBUSB_TRANSFER_COMPLETED) {
		if (t->status != LIBUSB_TRANSFER_CANCELLED)
			link_fail(l, t->status == LIBUSB_TRANSFER_TIMED_OUT ? TERN_E_TIMEOUT
									    : TERN_E_USB);
		req_release_if_done(r);
		return;
	}
	if (r->resend && !r->answered && !l->error) {
		r->resend = false;
		int rc = submit_out(r);
		if (rc)
			link_fail(l, rc);
	}
	req_release_if_done(r);
}

static struct usb_req *find_req(struct usb_link *l, uint32_t seq)
{
	for (size_t i = 0; i < USB_WINDOW; i++)
		if (l->reqs[i].busy && !l->reqs[i].answered && l->reqs[i].seq == seq)
			return &l->reqs[i];
	return NULL;
}

/* The device saw request @r damaged, or its reply came damaged: send it again. */
static void resend(struct usb_req *r)
{
	struct usb_link *l = r->l;
	if (r->retries >= USB_RETRIES) {
		r->answered = true;
		if (r->cb)
			r->cb(r->ud, TERN_E_CRC, NULL);
		req_release_if_done(r);
		return;
	}
	r->retries++;
	l->resends++;
	if (r->out_busy) {
		r->resend = true;
		return;
	}
	int rc = submit_out(r);
	if (rc)
		link_fail(l, rc);
}

static void on_frame(struct usb_link *l, int rc, const struct tern_frame *f)
{
	if (rc == TERN_E_CRC) {
		struct usb_req *r = find_req(l, f->seq); /* the seq is unverified: a guess */
		if (r)
			resend(r);
		return;
	}
	if (rc != 1 || !(f->flags & TERN_FRAME_F_REPLY))
		return;
	struct usb_req *r = find_req(l, f->seq);
	if (!r)
		return; /* a late reply to a request already given up */
	if (f->type == TERN_MSG_ERROR) {
		struct tern_msg_error e;
		if (!tern_msg_error_decode(f->body, f->body_len, &e) && e.status == TERN_ST_CRC) {
			resend(r);
			return;
		}
	}
	r->answered = true;
	if (r->cb)
		r->cb(r->ud, 0, f);
	req_release_if_done(r);
}

static void LIBUSB_CALL in_cb(struct libusb_transfer *t)
{
	struct usb_link *l = t->user_data;
	if (t->status != LIBUSB_TRANSFER_COMPLETED) {
		l->n_in_busy--;
		if (t->status != LIBUSB_TRANSFER_CANCELLED)
			link_fail(l, t->status == LIBUSB_TRANSFER_TIMED_OUT ? TERN_E_TIMEOUT
									    : TERN_E_USB);
		return;
	}
	if (t->actual_length > 0 &&
	    tern_frame_rx_push(&l->rx, t->buffer, (size_t)t->actual_length) == 0) {
		struct tern_frame f;
		int rc;
		while ((rc = tern_frame_rx_next(&l->rx, &f)) != 0)
			on_frame(l, rc, &f);
	}
	if (l->error) {
		l->n_in_busy--;
		return;
	}
	if (libusb_submit_transfer(t)) {
		l->n_in_busy--;
		link_fail(l, TERN_E_USB);
	}
}

int usb_link_open(struct usb_link *l, struct libusb_context *ctx, const struct usb_found *f)
{
	int rc;
	memset(l, 0, sizeof(*l));
	l->ctx = ctx;
	l->iface = f->iface;
	l->ep_out = f->ep_out;
	l->ep_in = f->ep_in;
	l->next_seq = 1;
	rc = libusb_open(f->dev, &l->h);
	if (rc) {
		l->h = NULL;
		return map_libusb(rc);
	}
	rc = libusb_claim_interface(l->h, l->iface);
	if (rc) {
		rc = map_libusb(rc);
		goto out_close;
	}
	l->reqs = calloc(USB_WINDOW, sizeof(*l->reqs));
	l->rx_buf = malloc(TERN_FRAME_MAX + USB_IN_SIZE);
	if (!l->reqs || !l->rx_buf) {
		rc = TERN_E_NOMEM;
		goto out_free;
	}
	tern_frame_rx_init(&l->rx, l->rx_buf, TERN_FRAME_MAX + USB_IN_SIZE);
	for (size_t i = 0; i < USB_WINDOW; i++) {
		l->reqs[i].l = l;
		l->reqs[i].xfer = libusb_alloc_transfer(0);
		l->reqs[i].buf = malloc(TERN_FRAME_MAX);
		if (!l->reqs[i].xfer || !l->reqs[i].buf) {
			rc = TERN_E_NOMEM;
			goto out_free;
		}
	}
	for (size_t i = 0; i < USB_IN_XFERS; i++) {
		l->in[i] = libusb_alloc_transfer(0);
		l->in_buf[i] = malloc(USB_IN_SIZE);
		if (!l->in[i] || !l->in_buf[i]) {
			rc = TERN_E_NOMEM;
			goto out_free;
		}
		libusb_fill_bulk_transfer(l->in[i], l->h, l->ep_in, l->in_buf[i], USB_IN_SIZE,
					  in_cb, l, 0);
		rc = libusb_submit_transfer(l->in[i]);
		if (rc) {
			rc = map_libusb(rc);
			goto out_free;
		}
		l->n_in_busy++;
	}
	return 0;
out_free:
	usb_link_close(l);
	return rc;
out_close:
	libusb_close(l->h);
	l->h = NULL;
	return rc;
}

/* Handles libusb events for up to 50 ms and checks the deadlines. */
static void pump(struct usb_link *l)
{
	struct timeval tv = {0, 50000};
	int rc = libusb_handle_events_timeout_completed(l->ctx, &tv, NULL);
	if (rc && rc != LIBUSB_ERROR_INTERRUPTED && !l->error)
		link_fail(l, map_libusb(rc));
	uint64_t now = now_ms();
	for (size_t i = 0; i < USB_WINDOW && !l->error; i++) {
		struct usb_req *r = &l->reqs[i];
		if (r->busy && !r->answered && now > r->deadline_ms)
			link_fail(l, TERN_E_TIMEOUT);
	}
}

void usb_link_close(struct usb_link *l)
{
	if (!l->h)
		return;
	if (!l->error)
		l->error = TERN_E_USB; /* nothing new may start */
	for (size_t i = 0; i < USB_IN_XFERS; i++)
		if (l->in[i])
			libusb_cancel_transfer(l->in[i]);
	for (size_t i = 0; l->reqs && i < USB_WINDOW; i++)
		if (l->reqs[i].out_busy)
			libusb_cancel_transfer(l->reqs[i].xfer);
	/* Wait (bounded) for libusb to hand every transfer back before freeing it. */
	uint64_t until = now_ms() + 2000;
	for (;;) {
		bool busy = l->n_in_busy > 0;
		for (size_t i = 0; l->reqs && i < USB_WINDOW; i++)
			busy = busy || l->reqs[i].out_busy;
		if (!busy || now_ms() > until)
			break;
		struct timeval tv = {0, 20000};
		libusb_handle_events_timeout_completed(l->ctx, &tv, NULL);
	}
	for (size_t i = 0; i < USB_IN_XFERS; i++) {
		libusb_free_transfer(l->in[i]);
		free(l->in_buf[i]);
	}
	for (size_t i = 0; l->reqs && i < USB_WINDOW; i++) {
		libusb_free_transfer(l->reqs[i].xfer);
		free(l->reqs[i].buf);
	}
	free(l->reqs);
	free(l->rx_buf);
	libusb_release_interface(l->h, l->iface);
	libusb_close(l->h);
	l->h = NULL;
	l->reqs = NULL;
	l->rx_buf = NULL;
}

int usb_link_send(struct usb_link *l, uint8_t type, const uint8_t *body, size_t len,
		  usb_reply_fn cb, void *ud)
{
	while (!l->error && l->n_busy >= USB_WINDOW)
		pump(l);
	if (l->error)
		return l->error;
	struct usb_req *r = NULL;
	for (size_t i = 0; i < USB_WINDOW && !r; i++)
		if (!l->reqs[i].busy)
			r = &l->reqs[i];
	if (!r)
		return TERN_E_INVAL;
	r->seq = l->next_seq++;
	r->len = tern_frame_encode(r->buf, TERN_FRAME_MAX, type, 0, r->seq, body, len);
	if (!r->len)
		return TERN_E_TOO_LARGE;
	r->busy = true;
	r->answered = false;
	r->resend = false;
	r->retries = 0;
	r->cb = cb;
	r->ud = ud;
	l->n_busy++;
	int rc = submit_out(r);
	if (rc) {
		r->busy = false;
		l->n_busy--;
		link_fail(l, rc);
		return rc;
	}
	return 0;
}

int usb_link_drain(struct usb_link *l)
{
	while (!l->error && l->n_busy > 0)
		pump(l);
	return l->error;
}

/* What usb_link_call() waits for. */
struct call_ctx {
	bool done;
	int rc;
	uint8_t type;
	uint8_t *reply;
	size_t size;
	size_t len;
	uint32_t status;
};

static void call_cb(void *ud, int rc, const struct tern_frame *f)
{
	struct call_ctx *c = ud;
	c->done = true;
	c->rc = rc;
	if (rc || !f)
		return;
	c->type = f->type;
	if (f->type == TERN_MSG_ERROR) {
		struct tern_msg_error e;
		if (tern_msg_error_decode(f->body, f->body_len, &e)) {
			c->rc = TERN_E_MALFORMED;
			return;
		}
		c->status = e.status;
		c->rc = tern_frame_status_to_err(e.status);
		return;
	}
	if (f->body_len > c->size) {
		c->rc = TERN_E_TOO_LARGE;
		return;
	}
	memcpy(c->reply, f->body, f->body_len);
	c->len = f->body_len;
}

int usb_link_call(struct usb_link *l, uint8_t type, const uint8_t *body, size_t len, uint8_t want,
		  uint8_t *reply, size_t size, size_t *reply_len, uint32_t *status)
{
	struct call_ctx c = {false, 0, 0, reply, size, 0, TERN_ST_OK};
	int rc = usb_link_send(l, type, body, len, call_cb, &c);
	if (rc)
		return rc;
	while (!c.done && !l->error)
		pump(l);
	if (status)
		*status = c.status;
	if (!c.done)
		return l->error;
	if (c.rc)
		return c.rc;
	if (c.type != want)
		return TERN_E_MALFORMED;
	if (reply_len)
		*reply_len = c.len;
	return 0;
}

int usb_link_hello(struct usb_link *l, struct tern_msg_info *info)
{
	uint8_t body[16], reply[512];
	size_t blen = tern_msg_hello_encode(TERN_FRAME_PROTO, body, sizeof(body));
	size_t rlen = 0;
	int rc = usb_link_call(l, TERN_MSG_HELLO, body, blen, TERN_MSG_INFO, reply, sizeof(reply),
			       &rlen, NULL);
	if (rc)
		return rc;
	return tern_msg_info_decode(reply, rlen, info);
}
