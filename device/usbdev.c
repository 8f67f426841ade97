/* The device side of the USB transport: frames in, one reply per request out. */
#include "tern/tern_usbdev.h"

#include "tern/tern_err.h"
#include "tern/tern_msg.h"

#include <string.h>

/* ---- Handlers: one per request type, in the table below. */

static void copy_str(char *out, size_t size, const char *s)
{
	size_t n = strlen(s);
	if (n >= size)
		n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

void tern_usbdev_info_from_status(const struct tern_usbdev_ident *id, const struct tern_status *st,
				  unsigned slot, struct tern_msg_info *info)
{
	const struct tern_slot_meta *run = &st->slots[tern_slot_area(TERN_PAIR_FW, slot & 1u)];
	copy_str(info->board, sizeof(info->board), id->board);
	copy_str(info->serial, sizeof(info->serial), id->serial);
	copy_str(info->device_id, sizeof(info->device_id), id->device_id);
	info->provision_gen = id->provision_gen;
	info->slot = slot & 1u;
	copy_str(info->version, sizeof(info->version), run->version);
	info->state = (uint32_t)st->state;
	info->sequence = run->sequence;
	info->max_data = TERN_FRAME_DATA_MAX;
}

void tern_usbdev_state_from_status(const struct tern_status *st, unsigned slot,
				   struct tern_msg_state *m)
{
	m->state = (uint32_t)st->state;
	m->slot = slot & 1u;
	copy_str(m->version, sizeof(m->version),
		 st->slots[tern_slot_area(TERN_PAIR_FW, slot & 1u)].version);
	m->target[0] = '\0';
	if (st->state == TERN_ST_DOWNLOADING || st->state == TERN_ST_VERIFYING ||
	    st->state == TERN_ST_STAGED)
		copy_str(m->target, sizeof(m->target), st->job_version);
	/* Staged and activated, the job is over: the staged firmware slot says what waits. */
	for (unsigned s = 0; s < 2 && st->state == TERN_ST_STAGED && !m->target[0]; s++) {
		const struct tern_slot_meta *sm = &st->slots[tern_slot_area(TERN_PAIR_FW, s)];
		if (sm->state == TERN_SLOT_STAGED)
			copy_str(m->target, sizeof(m->target), sm->version);
	}
	m->done = st->n_verified;
	m->total = st->n_chunks;
	m->last_status = tern_frame_status_from_err(st->reason); /* 0 gives OK */
}

static int on_hello(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		    size_t room)
{
	struct tern_usbdev *d = ctx;
	struct tern_msg_info info;
	uint32_t proto;
	int rc = tern_msg_hello_decode(req->body, req->body_len, &proto);
	if (rc)
		return rc;
	if (!d->ops->info)
		return TERN_E_DEVICE;
	memset(&info, 0, sizeof(info));
	rc = d->ops->info(d->be, &info);
	if (rc)
		return rc;
	info.proto = TERN_FRAME_PROTO;
	if (info.max_data == 0 || info.max_data > TERN_FRAME_DATA_MAX)
		info.max_data = TERN_FRAME_DATA_MAX;
	*reply_type = TERN_MSG_INFO;
	size_t n = tern_msg_info_encode(&info, body, room);
	return n ? (int)n : TERN_E_BUF_SMALL;
}

static int on_state(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		    size_t room)
{
	struct tern_usbdev *d = ctx;
	struct tern_msg_state st;
	int rc = tern_msg_empty_decode(req->body, req->body_len);
	if (rc)
		return rc;
	if (!d->ops->state)
		return TERN_E_DEVICE;
	memset(&st, 0, sizeof(st));
	rc = d->ops->state(d->be, &st);
	if (rc)
		return rc;
	*reply_type = TERN_MSG_STATE;
	size_t n = tern_msg_state_encode(&st, body, room);
	return n ? (int)n : TERN_E_BUF_SMALL;
}

static int ack(const struct tern_msg_ack *next, uint8_t *reply_type, uint8_t *body, size_t room)
{
	*reply_type = TERN_MSG_ACK;
	size_t n = tern_msg_ack_encode(next, body, room);
	return n ? (int)n : TERN_E_BUF_SMALL;
}

static int on_offer(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		    size_t room)
{
	struct tern_usbdev *d = ctx;
	struct tern_msg_ack next = {false, 0, 0, 0};
	const uint8_t *m;
	size_t len;
	bool revert;
	int rc = tern_msg_offer_decode(req->body, req->body_len, &m, &len, &revert);
	if (rc)
		return rc;
	if (!d->ops->offer)
		return TERN_E_DEVICE;
	rc = d->ops->offer(d->be, m, len, revert, &next);
	return rc ? rc : ack(&next, reply_type, body, room);
}

static int on_data(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		   size_t room)
{
	struct tern_usbdev *d = ctx;
	struct tern_msg_ack next = {false, 0, 0, 0};
	struct tern_msg_data m;
	int rc = tern_msg_data_decode(req->body, req->body_len, &m);
	if (rc)
		return rc;
	if (!d->ops->data)
		return TERN_E_DEVICE;
	rc = d->ops->data(d->be, &m, &next);
	return rc ? rc : ack(&next, reply_type, body, room);
}

/* DONE, ACTIVATE, CONFIRM: an empty request, one backend call, an empty ACK. */
static int simple(int (*fn)(void *), void *be, const struct tern_frame *req, uint8_t *reply_type,
		  uint8_t *body, size_t room)
{
	int rc = tern_msg_empty_decode(req->body, req->body_len);
	if (rc)
		return rc;
	if (!fn)
		return TERN_E_DEVICE;
	rc = fn(be);
	return rc ? rc : ack(NULL, reply_type, body, room);
}

static int on_done(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		   size_t room)
{
	struct tern_usbdev *d = ctx;
	return simple(d->ops->done, d->be, req, reply_type, body, room);
}

static int on_activate(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		       size_t room)
{
	struct tern_usbdev *d = ctx;
	return simple(d->ops->activate, d->be, req, reply_type, body, room);
}

static int on_confirm(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		      size_t room)
{
	struct tern_usbdev *d = ctx;
	return simple(d->ops->confirm, d->be, req, reply_type, body, room);
}

static int on_reboot(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
		     size_t room)
{
	struct tern_usbdev *d = ctx;
	int rc = tern_msg_empty_decode(req->body, req->body_len);
	if (rc)
		return rc;
	if (d->ops->reboot) {
		rc = d->ops->reboot(d->be);
		if (rc)
			return rc;
	}
	d->reboot_requested = true;
	return ack(NULL, reply_type, body, room);
}

static int on_provision(void *ctx, const struct tern_frame *req, uint8_t *reply_type, uint8_t *body,
			size_t room)
{
	struct tern_usbdev *d = ctx;
	struct tern_msg_provision p;
	int rc = tern_msg_provision_decode(req->body, req->body_len, &p);
	if (rc)
		return rc;
	if (!d->ops->provision)
		return TERN_E_DEVICE;
	rc = d->ops->provision(d->be, &p);
	return rc ? rc : ack(NULL, reply_type, body, room);
}

static const struct tern_frame_handler handlers[] = {
    {TERN_MSG_HELLO, on_hello},		{TERN_MSG_STATE, on_state},
    {TERN_MSG_OFFER, on_offer},		{TERN_MSG_DATA, on_data},
    {TERN_MSG_DONE, on_done},		{TERN_MSG_ACTIVATE, on_activate},
    {TERN_MSG_CONFIRM, on_confirm},	{TERN_MSG_REBOOT, on_reboot},
    {TERN_MSG_PROVISION, on_provision},
};

/* ---- Byte streams. */

void tern_usbdev_init(struct tern_usbdev *d, const struct tern_usbdev_ops *ops, void *be)
{
	d->ops = ops;
	d->be = be;
	d->reboot_requested = false;
	memset(&d->stats, 0, sizeof(d->stats));
	tern_frame_rx_init(&d->rx, d->rxbuf, sizeof(d->rxbuf));
	d->tx_len = 0;
}

static void queue_reply(struct tern_usbdev *d, size_t n)
{
	if (n == 0 || n > sizeof(d->tx) - d->tx_len)
		return; /* cannot happen: room for a whole reply is checked before */
	memcpy(d->tx + d->tx_len, d->reply, n);
	d->tx_len += n;
}

/* Answers whole frames while the reply queue has room for one more reply. */
static void process(struct tern_usbdev *d)
{
	struct tern_frame f;
	while (sizeof(d->tx) - d->tx_len >= sizeof(d->reply)) {
		size_t before = d->rx.len;
		int rc = tern_frame_rx_next(&d->rx, &f);
		if (rc == 0)
			return;
		if (rc == 1) {
			d->stats.frames++;
			if (f.flags & TERN_FRAME_F_REPLY)
				continue; /* a reply has no business on OUT: ignore */
			queue_reply(d, tern_frame_dispatch(handlers,
							   sizeof(handlers) / sizeof(handlers[0]),
							   d, &f, d->reply, sizeof(d->reply)));
		} else if (rc == TERN_E_CRC) {
			d->stats.crc_errors++;
			queue_reply(d, tern_frame_error_reply(f.seq, TERN_ST_CRC, NULL, d->reply,
							      sizeof(d->reply)));
		} else {
			d->stats.dropped += before - d->rx.len;
		}
	}
}

size_t tern_usbdev_out_room(struct tern_usbdev *d)
{
	return tern_frame_rx_room(&d->rx);
}

int tern_usbdev_out(struct tern_usbdev *d, const uint8_t *buf, size_t len)
{
	int rc = tern_frame_rx_push(&d->rx, buf, len);
	if (rc)
		return rc;
	process(d);
	return 0;
}

size_t tern_usbdev_in_pending(const struct tern_usbdev *d)
{
	return d->tx_len;
}

size_t tern_usbdev_in(struct tern_usbdev *d, uint8_t *buf, size_t size)
{
	size_t n = d->tx_len < size ? d->tx_len : size;
	memcpy(buf, d->tx, n);
	memmove(d->tx, d->tx + n, d->tx_len - n);
	d->tx_len -= n;
	process(d);
	return n;
}

bool tern_usbdev_take_reboot(struct tern_usbdev *d)
{
	bool r = d->reboot_requested;
	d->reboot_requested = false;
	return r;
}
