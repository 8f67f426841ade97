/*
 * libFuzzer target: the frame decoder, the stream reassembler and every message body
 * decoder, on arbitrary bytes. `make fuzz` runs it (tests/fuzz/module.mk).
 */
#include "tern/tern_frame.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t rxbuf[TERN_FRAME_MAX];

static void bodies(const uint8_t *b, size_t n)
{
	uint32_t proto;
	struct tern_msg_info info;
	struct tern_msg_state st;
	const uint8_t *m;
	size_t ml;
	struct tern_msg_data d;
	struct tern_msg_error e;
	struct tern_msg_ack a;
	struct tern_msg_provision p;
	(void)tern_msg_hello_decode(b, n, &proto);
	(void)tern_msg_info_decode(b, n, &info);
	(void)tern_msg_state_decode(b, n, &st);
	(void)tern_msg_offer_decode(b, n, &m, &ml, NULL);
	(void)tern_msg_data_decode(b, n, &d);
	(void)tern_msg_error_decode(b, n, &e);
	(void)tern_msg_ack_decode(b, n, &a);
	(void)tern_msg_provision_decode(b, n, &p);
	(void)tern_msg_empty_decode(b, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tern_frame f;
	size_t used;
	if (tern_frame_decode(data, size, &f, &used) == 0)
		bodies(f.body, f.body_len);
	bodies(data, size);
	/* The same bytes as a stream, pushed in pieces of a size taken from the input. */
	struct tern_frame_rx rx;
	tern_frame_rx_init(&rx, rxbuf, sizeof(rxbuf));
	size_t step = size ? (size_t)data[0] % 64 + 1 : 1;
	for (size_t off = 0; off < size; off += step) {
		size_t k = size - off < step ? size - off : step;
		if (tern_frame_rx_push(&rx, data + off, k))
			break;
		while (tern_frame_rx_next(&rx, &f) != 0)
			;
	}
	return 0;
}
