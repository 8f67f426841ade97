/*
 * libFuzzer target: the device side of the USB transport (device/usbdev.c) fed arbitrary
 * bulk OUT bytes in pieces, over a backend that accepts every request, draining replies
 * as a host would. Replies must always be whole, valid frames. `make fuzz` runs it.
 */
#include "tern/tern_usbdev.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tern_usbdev dev;
static uint8_t rxbuf[TERN_FRAME_MAX];

static int ok_info(void *be, struct tern_msg_info *info)
{
	(void)be;
	memcpy(info->board, "sim", 4);
	memcpy(info->serial, "FUZZ", 5);
	memcpy(info->version, "1", 2);
	return 0;
}

static int ok_state(void *be, struct tern_msg_state *st)
{
	(void)be;
	memcpy(st->version, "1", 2);
	return 0;
}

static int ok_offer(void *be, const uint8_t *m, size_t len, bool revert, struct tern_msg_ack *next)
{
	(void)be;
	(void)m;
	next->has_next = (len & 1) != revert;
	return len % 3 == 0 ? -6 : 0;
}

static int ok_data(void *be, const struct tern_msg_data *d, struct tern_msg_ack *next)
{
	(void)be;
	next->has_next = true;
	next->offset = d->offset + d->len;
	return 0;
}

static int ok_void(void *be)
{
	(void)be;
	return 0;
}

static int ok_provision(void *be, const struct tern_msg_provision *p)
{
	(void)be;
	return p->n_keys > 1 ? -28 : 0;
}

static const struct tern_usbdev_ops ops = {ok_info, ok_state, ok_offer, ok_data,     ok_void,
					   ok_void, ok_void,  NULL,	ok_provision};

/* Takes the replies out and checks each is a whole, valid reply frame. */
static void drain(struct tern_frame_rx *rx)
{
	uint8_t buf[1024];
	size_t n;
	struct tern_frame f;
	while ((n = tern_usbdev_in(&dev, buf, sizeof(buf))) > 0) {
		if (tern_frame_rx_push(rx, buf, n))
			abort();
		int rc;
		while ((rc = tern_frame_rx_next(rx, &f)) != 0)
			if (rc != 1 || !(f.flags & TERN_FRAME_F_REPLY))
				abort();
	}
	(void)tern_usbdev_take_reboot(&dev);
}

/*
 * With the first byte odd, the rest is read as records [type][len lo][len hi][body] and
 * sent as frames with valid CRCs, so the fuzzer reaches the message decoders and handlers
 * instead of stopping at the CRC.
 */
static size_t make_frames(const uint8_t *in, size_t size, uint8_t *out, size_t out_size)
{
	size_t pos = 0, n = 0;
	uint32_t seq = 1;
	while (pos + 3 <= size) {
		uint8_t type = in[pos];
		size_t len = (size_t)in[pos + 1] | (size_t)in[pos + 2] << 8;
		pos += 3;
		if (len > size - pos)
			len = size - pos;
		size_t w = tern_frame_encode(out + n, out_size - n, type, 0, seq++, in + pos, len);
		if (!w)
			break;
		n += w;
		pos += len;
	}
	return n;
}

static uint8_t framed[1 << 18];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tern_frame_rx rx;
	if (size && (data[0] & 1)) {
		size = make_frames(data + 1, size - 1, framed, sizeof(framed));
		data = framed;
	}
	tern_usbdev_init(&dev, &ops, NULL);
	tern_frame_rx_init(&rx, rxbuf, sizeof(rxbuf));
	size_t step = size ? (size_t)data[0] * 37 % 700 + 1 : 1;
	for (size_t off = 0; off < size; off += step) {
		size_t k = size - off < step ? size - off : step;
		while (tern_usbdev_out_room(&dev) < k)
			drain(&rx);
		if (tern_usbdev_out(&dev, data + off, k))
			abort();
		drain(&rx);
	}
	if (rx.len)
		abort(); /* a reply was cut */
	return 0;
}
