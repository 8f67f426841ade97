/* USB framing: header, CRC32, stream reassembly, message bodies, dispatch tables. */
#include "tern/tern_frame.h"

#include "tern/tern_crc32.h"

#include "tern/tern_cbor.h"
#include "tern/tern_err.h"
#include "tern/tern_msg.h"

#include <string.h>

/* ---- Message table. */

static const struct tern_frame_msg_desc msg_table[] = {
    {TERN_MSG_HELLO, "hello", TERN_DIR_TO_DEVICE, TERN_MSG_INFO},
    {TERN_MSG_INFO, "info", TERN_DIR_TO_HOST, 0},
    {TERN_MSG_OFFER, "offer", TERN_DIR_TO_DEVICE, TERN_MSG_ACK},
    {TERN_MSG_DATA, "data", TERN_DIR_TO_DEVICE, TERN_MSG_ACK},
    {TERN_MSG_DONE, "done", TERN_DIR_TO_DEVICE, TERN_MSG_ACK},
    {TERN_MSG_ACTIVATE, "activate", TERN_DIR_TO_DEVICE, TERN_MSG_ACK},
    {TERN_MSG_CONFIRM, "confirm", TERN_DIR_TO_DEVICE, TERN_MSG_ACK},
    {TERN_MSG_REBOOT, "reboot", TERN_DIR_TO_DEVICE, TERN_MSG_ACK},
    {TERN_MSG_STATE, "state", TERN_DIR_TO_DEVICE, TERN_MSG_STATE},
    {TERN_MSG_ERROR, "error", TERN_DIR_TO_HOST, 0},
    {TERN_MSG_PROVISION, "provision", TERN_DIR_TO_DEVICE, TERN_MSG_ACK},
    {TERN_MSG_ACK, "ack", TERN_DIR_TO_HOST, 0},
};

const struct tern_frame_msg_desc *tern_frame_msg(uint8_t type)
{
	for (size_t i = 0; i < sizeof(msg_table) / sizeof(msg_table[0]); i++)
		if (msg_table[i].type == type)
			return &msg_table[i];
	return NULL;
}

const char *tern_frame_type_name(uint8_t type)
{
	const struct tern_frame_msg_desc *d = tern_frame_msg(type);
	return d ? d->name : "unknown";
}

/* ---- Wire status: enum tern_status (tern_msg.h), the one shared with MQTT. */

uint16_t tern_frame_status_from_err(int rc)
{
	switch (rc) {
	case TERN_E_NOT_CBOR:
	case TERN_E_NOT_RELEASE:
	case TERN_E_TRAILING:
		return TERN_ST_MALFORMED;
	default:
		return tern_status_from_err(rc);
	}
}

int tern_frame_status_to_err(uint64_t status)
{
	if (status == TERN_ST_ERROR || status >= TERN_ST__COUNT)
		return TERN_E_DEVICE;
	return tern_status_to_err(status);
}

const char *tern_frame_status_name(uint64_t status)
{
	return tern_status_name(status);
}

const char *tern_frame_state_name(uint64_t state)
{
	static const char *names[] = {"idle",  "downloading", "verifying",   "staged",
				      "trial", "confirmed",   "rolled-back", "failed"};
	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "unknown";
}

/* ---- Header. */

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint8_t *tern_frame_body(uint8_t *buf, size_t size, size_t *room)
{
	size_t r = size > TERN_FRAME_HDR_LEN ? size - TERN_FRAME_HDR_LEN : 0;
	*room = r < TERN_FRAME_BODY_MAX ? r : TERN_FRAME_BODY_MAX;
	return buf + TERN_FRAME_HDR_LEN;
}

size_t tern_frame_seal(uint8_t *buf, size_t size, uint8_t type, uint8_t flags, uint32_t seq,
		       size_t body_len)
{
	if (body_len > TERN_FRAME_BODY_MAX || size < TERN_FRAME_HDR_LEN ||
	    size - TERN_FRAME_HDR_LEN < body_len || (flags & ~TERN_FRAME_F_KNOWN))
		return 0;
	struct tern_frame_hdr h;
	h.magic[0] = TERN_FRAME_MAGIC0;
	h.magic[1] = TERN_FRAME_MAGIC1;
	h.type = type;
	h.flags = flags;
	put_le32(h.seq, seq);
	put_le32(h.len, (uint32_t)body_len);
	uint32_t crc = tern_crc32(0, &h, TERN_FRAME_CRC_SPAN);
	crc = tern_crc32(crc, buf + TERN_FRAME_HDR_LEN, body_len);
	put_le32(h.crc, crc);
	memcpy(buf, &h, sizeof(h));
	return TERN_FRAME_HDR_LEN + body_len;
}

size_t tern_frame_encode(uint8_t *buf, size_t size, uint8_t type, uint8_t flags, uint32_t seq,
			 const uint8_t *body, size_t body_len)
{
	if (body_len > TERN_FRAME_BODY_MAX || size < TERN_FRAME_HDR_LEN ||
	    size - TERN_FRAME_HDR_LEN < body_len || (flags & ~TERN_FRAME_F_KNOWN))
		return 0;
	if (body_len)
		memmove(buf + TERN_FRAME_HDR_LEN, body, body_len);
	return tern_frame_seal(buf, size, type, flags, seq, body_len);
}

int tern_frame_decode(const uint8_t *buf, size_t len, struct tern_frame *f, size_t *used)
{
	struct tern_frame_hdr h;
	/* Decide as early as the bytes allow: a wrong magic needs no full header. */
	if (len >= 1 && buf[0] != TERN_FRAME_MAGIC0)
		return TERN_E_MALFORMED;
	if (len >= 2 && buf[1] != TERN_FRAME_MAGIC1)
		return TERN_E_MALFORMED;
	if (len < TERN_FRAME_HDR_LEN)
		return TERN_E_TRUNCATED;
	memcpy(&h, buf, sizeof(h));
	if (h.flags & ~TERN_FRAME_F_KNOWN)
		return TERN_E_MALFORMED;
	uint32_t body_len = get_le32(h.len);
	if (body_len > TERN_FRAME_BODY_MAX)
		return TERN_E_TOO_LARGE;
	if (len - TERN_FRAME_HDR_LEN < body_len)
		return TERN_E_TRUNCATED;
	f->type = h.type;
	f->flags = h.flags;
	f->seq = get_le32(h.seq);
	f->body = buf + TERN_FRAME_HDR_LEN;
	f->body_len = body_len;
	*used = TERN_FRAME_HDR_LEN + (size_t)body_len;
	uint32_t crc = tern_crc32(0, buf, TERN_FRAME_CRC_SPAN);
	crc = tern_crc32(crc, f->body, body_len);
	if (crc != get_le32(h.crc))
		return TERN_E_CRC;
	return 0;
}

/* ---- Stream reassembly. */

void tern_frame_rx_init(struct tern_frame_rx *rx, uint8_t *buf, size_t size)
{
	rx->buf = buf;
	rx->size = size;
	rx->len = 0;
	rx->skip = 0;
}

static void rx_drop(struct tern_frame_rx *rx, size_t n)
{
	if (n > rx->len)
		n = rx->len;
	memmove(rx->buf, rx->buf + n, rx->len - n);
	rx->len -= n;
}

size_t tern_frame_rx_room(struct tern_frame_rx *rx)
{
	rx_drop(rx, rx->skip);
	rx->skip = 0;
	return rx->size - rx->len;
}

int tern_frame_rx_push(struct tern_frame_rx *rx, const uint8_t *data, size_t len)
{
	if (len > tern_frame_rx_room(rx))
		return TERN_E_TOO_LARGE;
	memcpy(rx->buf + rx->len, data, len);
	rx->len += len;
	return 0;
}

/* Drops bytes up to the next possible start of a frame (never the first byte). */
static void rx_resync(struct tern_frame_rx *rx)
{
	size_t i = 1;
	while (i < rx->len && rx->buf[i] != TERN_FRAME_MAGIC0)
		i++;
	rx_drop(rx, i);
}

int tern_frame_rx_next(struct tern_frame_rx *rx, struct tern_frame *f)
{
	size_t used = 0;
	rx_drop(rx, rx->skip);
	rx->skip = 0;
	if (rx->len == 0)
		return 0;
	int rc = tern_frame_decode(rx->buf, rx->len, f, &used);
	switch (rc) {
	case 0:
		rx->skip = used;
		return 1;
	case TERN_E_TRUNCATED:
		if (rx->len >= rx->size) { /* cannot grow: the buffer is too small for it */
			rx_resync(rx);
			return TERN_E_TOO_LARGE;
		}
		return 0;
	case TERN_E_CRC:
		/*
		 * Drop the whole frame as announced: resyncing byte by byte would read its
		 * body as headers. If the length itself was damaged, the next decode meets a
		 * wrong magic and resyncs from there.
		 */
		f->body = NULL;
		f->body_len = 0;
		rx->skip = used;
		return TERN_E_CRC;
	default:
		rx_resync(rx);
		return rc;
	}
}

/* ---- Bodies. */

/* Reads a map head and calls @field for each key; skips values @field leaves unread. */
typedef int (*field_fn)(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen);

static int read_map(const uint8_t *buf, size_t len, void *out, field_fn field)
{
	struct tern_cbor_reader r;
	uint64_t n;
	tern_cbor_reader_init(&r, buf, len);
	int rc = tern_cbor_read_map(&r, &n);
	if (rc)
		return rc;
	if (n > len) /* every pair takes at least two bytes: bound the loop by the input */
		return TERN_E_TRUNCATED;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t key;
		bool seen = false;
		rc = tern_cbor_read_uint(&r, &key);
		if (rc)
			return rc;
		if (field) {
			rc = field(out, key, &r, &seen);
			if (rc)
				return rc;
		}
		if (!seen) {
			rc = tern_cbor_skip(&r);
			if (rc)
				return rc;
		}
	}
	return tern_cbor_remaining(&r) ? TERN_E_TRAILING : 0;
}

static int read_u32(struct tern_cbor_reader *r, uint32_t *v)
{
	uint64_t x;
	int rc = tern_cbor_read_uint(r, &x);
	if (rc)
		return rc;
	if (x > UINT32_MAX)
		return TERN_E_TOO_LARGE;
	*v = (uint32_t)x;
	return 0;
}

/* Reads a text string into @out; the empty string is allowed here. */
static int read_text0(struct tern_cbor_reader *r, char *out, size_t size)
{
	const char *p;
	size_t n;
	int rc = tern_cbor_read_text(r, &p, &n);
	if (rc)
		return rc;
	if (n >= size)
		return TERN_E_TOO_LARGE;
	if (memchr(p, 0, n))
		return TERN_E_MALFORMED;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* Bit @key set in @mask: the key was seen (duplicates are refused). */
static int mark(uint32_t *mask, uint64_t key)
{
	uint32_t bit = 1u << key;
	if (*mask & bit)
		return TERN_E_MALFORMED;
	*mask |= bit;
	return 0;
}

size_t tern_msg_empty_encode(uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, 0);
	return tern_cbor_writer_len(&w);
}

int tern_msg_empty_decode(const uint8_t *buf, size_t len)
{
	return read_map(buf, len, NULL, NULL);
}

/* HELLO */

struct hello_ctx {
	uint32_t proto;
	uint32_t seen;
};

static int hello_field(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen)
{
	struct hello_ctx *c = out;
	if (key != 1)
		return 0;
	*seen = true;
	int rc = mark(&c->seen, key);
	return rc ? rc : read_u32(r, &c->proto);
}

size_t tern_msg_hello_encode(uint32_t proto, uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, 1);
	tern_cbor_put_uint(&w, 1);
	tern_cbor_put_uint(&w, proto);
	return tern_cbor_writer_len(&w);
}

int tern_msg_hello_decode(const uint8_t *buf, size_t len, uint32_t *proto)
{
	struct hello_ctx c = {0, 0};
	int rc = read_map(buf, len, &c, hello_field);
	if (rc)
		return rc;
	if (!c.seen)
		return TERN_E_MALFORMED;
	*proto = c.proto;
	return 0;
}

/* INFO */

struct info_ctx {
	struct tern_msg_info *m;
	uint32_t seen;
};

static int info_field(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen)
{
	struct info_ctx *c = out;
	struct tern_msg_info *m = c->m;
	if (key < TERN_IK_PROTO || key > TERN_IK_PROVISION_GEN)
		return 0;
	*seen = true;
	int rc = mark(&c->seen, key);
	if (rc)
		return rc;
	switch ((enum tern_info_key)key) {
	case TERN_IK_PROTO:
		return read_u32(r, &m->proto);
	case TERN_IK_BOARD:
		return read_text0(r, m->board, sizeof(m->board));
	case TERN_IK_SERIAL:
		return read_text0(r, m->serial, sizeof(m->serial));
	case TERN_IK_DEVICE_ID:
		return read_text0(r, m->device_id, sizeof(m->device_id));
	case TERN_IK_VERSION:
		return read_text0(r, m->version, sizeof(m->version));
	case TERN_IK_SLOT:
		return read_u32(r, &m->slot);
	case TERN_IK_STATE:
		return read_u32(r, &m->state);
	case TERN_IK_MAX_DATA:
		return read_u32(r, &m->max_data);
	case TERN_IK_SEQUENCE:
		return tern_cbor_read_uint(r, &m->sequence);
	case TERN_IK_PROVISION_GEN:
		return tern_cbor_read_uint(r, &m->provision_gen);
	}
	return 0;
}

size_t tern_msg_info_encode(const struct tern_msg_info *m, uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	bool has_id = m->device_id[0] != '\0', has_gen = m->provision_gen != 0;
	tern_cbor_put_map(&w, 8u + (has_id ? 1u : 0u) + (has_gen ? 1u : 0u));
	tern_cbor_put_uint(&w, TERN_IK_PROTO);
	tern_cbor_put_uint(&w, m->proto);
	tern_cbor_put_uint(&w, TERN_IK_BOARD);
	tern_cbor_put_cstr(&w, m->board);
	tern_cbor_put_uint(&w, TERN_IK_SERIAL);
	tern_cbor_put_cstr(&w, m->serial);
	if (has_id) {
		tern_cbor_put_uint(&w, TERN_IK_DEVICE_ID);
		tern_cbor_put_cstr(&w, m->device_id);
	}
	tern_cbor_put_uint(&w, TERN_IK_VERSION);
	tern_cbor_put_cstr(&w, m->version);
	tern_cbor_put_uint(&w, TERN_IK_SLOT);
	tern_cbor_put_uint(&w, m->slot);
	tern_cbor_put_uint(&w, TERN_IK_STATE);
	tern_cbor_put_uint(&w, m->state);
	tern_cbor_put_uint(&w, TERN_IK_MAX_DATA);
	tern_cbor_put_uint(&w, m->max_data);
	tern_cbor_put_uint(&w, TERN_IK_SEQUENCE);
	tern_cbor_put_uint(&w, m->sequence);
	if (has_gen) {
		tern_cbor_put_uint(&w, TERN_IK_PROVISION_GEN);
		tern_cbor_put_uint(&w, m->provision_gen);
	}
	return tern_cbor_writer_len(&w);
}

int tern_msg_info_decode(const uint8_t *buf, size_t len, struct tern_msg_info *m)
{
	memset(m, 0, sizeof(*m));
	struct info_ctx c = {m, 0};
	int rc = read_map(buf, len, &c, info_field);
	if (rc)
		return rc;
	const uint32_t need = 1u << TERN_IK_PROTO | 1u << TERN_IK_BOARD | 1u << TERN_IK_SERIAL |
			      1u << TERN_IK_VERSION | 1u << TERN_IK_SLOT | 1u << TERN_IK_STATE;
	return (c.seen & need) == need ? 0 : TERN_E_MALFORMED;
}

/* STATE */

struct state_ctx {
	struct tern_msg_state *m;
	uint32_t seen;
};

static int state_field(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen)
{
	struct state_ctx *c = out;
	struct tern_msg_state *m = c->m;
	if (key < TERN_FSK_STATE || key > TERN_FSK_LAST_STATUS)
		return 0;
	*seen = true;
	int rc = mark(&c->seen, key);
	if (rc)
		return rc;
	switch ((enum tern_fstate_key)key) {
	case TERN_FSK_STATE:
		return read_u32(r, &m->state);
	case TERN_FSK_SLOT:
		return read_u32(r, &m->slot);
	case TERN_FSK_VERSION:
		return read_text0(r, m->version, sizeof(m->version));
	case TERN_FSK_TARGET:
		return read_text0(r, m->target, sizeof(m->target));
	case TERN_FSK_DONE:
		return tern_cbor_read_uint(r, &m->done);
	case TERN_FSK_TOTAL:
		return tern_cbor_read_uint(r, &m->total);
	case TERN_FSK_LAST_STATUS:
		return read_u32(r, &m->last_status);
	}
	return 0;
}

size_t tern_msg_state_encode(const struct tern_msg_state *m, uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	bool has_target = m->target[0] != '\0';
	tern_cbor_put_map(&w, has_target ? 7 : 6);
	tern_cbor_put_uint(&w, TERN_FSK_STATE);
	tern_cbor_put_uint(&w, m->state);
	tern_cbor_put_uint(&w, TERN_FSK_SLOT);
	tern_cbor_put_uint(&w, m->slot);
	tern_cbor_put_uint(&w, TERN_FSK_VERSION);
	tern_cbor_put_cstr(&w, m->version);
	if (has_target) {
		tern_cbor_put_uint(&w, TERN_FSK_TARGET);
		tern_cbor_put_cstr(&w, m->target);
	}
	tern_cbor_put_uint(&w, TERN_FSK_DONE);
	tern_cbor_put_uint(&w, m->done);
	tern_cbor_put_uint(&w, TERN_FSK_TOTAL);
	tern_cbor_put_uint(&w, m->total);
	tern_cbor_put_uint(&w, TERN_FSK_LAST_STATUS);
	tern_cbor_put_uint(&w, m->last_status);
	return tern_cbor_writer_len(&w);
}

int tern_msg_state_decode(const uint8_t *buf, size_t len, struct tern_msg_state *m)
{
	memset(m, 0, sizeof(*m));
	struct state_ctx c = {m, 0};
	int rc = read_map(buf, len, &c, state_field);
	if (rc)
		return rc;
	const uint32_t need = 1u << TERN_FSK_STATE | 1u << TERN_FSK_SLOT | 1u << TERN_FSK_VERSION;
	return (c.seen & need) == need ? 0 : TERN_E_MALFORMED;
}

/* OFFER */

struct offer_ctx {
	const uint8_t *p;
	size_t len;
	bool revert;
	uint32_t seen;
};

static int offer_field(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen)
{
	struct offer_ctx *c = out;
	if (key != 1 && key != 2)
		return 0;
	*seen = true;
	int rc = mark(&c->seen, key);
	if (rc)
		return rc;
	return key == 1 ? tern_cbor_read_bytes(r, &c->p, &c->len)
			: tern_cbor_read_bool(r, &c->revert);
}

size_t tern_msg_offer_encode(const uint8_t *manifest, size_t len, bool revert, uint8_t *buf,
			     size_t size)
{
	if (len == 0 || len > TERN_SIGNED_MANIFEST_MAX)
		return 0;
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, revert ? 2 : 1);
	tern_cbor_put_uint(&w, 1);
	tern_cbor_put_bytes(&w, manifest, len);
	if (revert) {
		tern_cbor_put_uint(&w, 2);
		tern_cbor_put_bool(&w, true);
	}
	return tern_cbor_writer_len(&w);
}

int tern_msg_offer_decode(const uint8_t *buf, size_t len, const uint8_t **manifest,
			  size_t *manifest_len, bool *revert)
{
	struct offer_ctx c = {NULL, 0, false, 0};
	int rc = read_map(buf, len, &c, offer_field);
	if (rc)
		return rc;
	if (!(c.seen & 2u) || c.len == 0)
		return TERN_E_MALFORMED;
	if (c.len > TERN_SIGNED_MANIFEST_MAX)
		return TERN_E_TOO_LARGE;
	*manifest = c.p;
	*manifest_len = c.len;
	if (revert)
		*revert = c.revert;
	return 0;
}

/* DATA */

struct data_ctx {
	struct tern_msg_data *m;
	uint32_t seen;
};

static int data_field(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen)
{
	struct data_ctx *c = out;
	struct tern_msg_data *m = c->m;
	if (key < 1 || key > 4)
		return 0;
	*seen = true;
	int rc = mark(&c->seen, key);
	if (rc)
		return rc;
	switch (key) {
	case 1:
		return read_u32(r, &m->comp);
	case 2:
		return read_u32(r, &m->kind);
	case 3:
		return tern_cbor_read_uint(r, &m->offset);
	default:
		return tern_cbor_read_bytes(r, &m->bytes, &m->len);
	}
}

size_t tern_msg_data_encode(const struct tern_msg_data *m, uint8_t *buf, size_t size)
{
	if (m->len > TERN_FRAME_DATA_MAX || m->kind > TERN_DATA_INDEX)
		return 0;
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, 4);
	tern_cbor_put_uint(&w, 1);
	tern_cbor_put_uint(&w, m->comp);
	tern_cbor_put_uint(&w, 2);
	tern_cbor_put_uint(&w, m->kind);
	tern_cbor_put_uint(&w, 3);
	tern_cbor_put_uint(&w, m->offset);
	tern_cbor_put_uint(&w, 4);
	tern_cbor_put_bytes(&w, m->bytes, m->len);
	return tern_cbor_writer_len(&w);
}

int tern_msg_data_decode(const uint8_t *buf, size_t len, struct tern_msg_data *m)
{
	memset(m, 0, sizeof(*m));
	struct data_ctx c = {m, 0};
	int rc = read_map(buf, len, &c, data_field);
	if (rc)
		return rc;
	if (c.seen != 0x1e)
		return TERN_E_MALFORMED;
	if (m->kind > TERN_DATA_INDEX || m->comp >= TERN_MAX_COMPONENTS)
		return TERN_E_MALFORMED;
	if (m->len > TERN_FRAME_DATA_MAX)
		return TERN_E_TOO_LARGE;
	if (m->offset > TERN_COMPONENT_MAX || m->len > TERN_COMPONENT_MAX - m->offset)
		return TERN_E_TOO_LARGE;
	return 0;
}

/* ERROR */

struct error_ctx {
	struct tern_msg_error *m;
	uint32_t seen;
};

static int error_field(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen)
{
	struct error_ctx *c = out;
	if (key < 1 || key > 2)
		return 0;
	*seen = true;
	int rc = mark(&c->seen, key);
	if (rc)
		return rc;
	if (key == 1)
		return read_u32(r, &c->m->status);
	rc = tern_cbor_read_text(r, &c->m->text, &c->m->text_len);
	if (rc)
		return rc;
	return c->m->text_len > TERN_FRAME_TEXT_MAX ? TERN_E_TOO_LARGE : 0;
}

size_t tern_msg_error_encode(const struct tern_msg_error *m, uint8_t *buf, size_t size)
{
	size_t tlen = m->text ? m->text_len : 0;
	if (tlen > TERN_FRAME_TEXT_MAX)
		tlen = TERN_FRAME_TEXT_MAX;
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, tlen ? 2 : 1);
	tern_cbor_put_uint(&w, 1);
	tern_cbor_put_uint(&w, m->status);
	if (tlen) {
		tern_cbor_put_uint(&w, 2);
		tern_cbor_put_text(&w, m->text, tlen);
	}
	return tern_cbor_writer_len(&w);
}

int tern_msg_error_decode(const uint8_t *buf, size_t len, struct tern_msg_error *m)
{
	memset(m, 0, sizeof(*m));
	struct error_ctx c = {m, 0};
	int rc = read_map(buf, len, &c, error_field);
	if (rc)
		return rc;
	return (c.seen & 2u) ? 0 : TERN_E_MALFORMED;
}

/* ACK */

struct ack_ctx {
	struct tern_msg_ack *m;
	uint32_t seen;
};

static int ack_field(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen)
{
	struct ack_ctx *c = out;
	if (key < 1 || key > 3)
		return 0;
	*seen = true;
	int rc = mark(&c->seen, key);
	if (rc)
		return rc;
	if (key == 1)
		return read_u32(r, &c->m->comp);
	if (key == 2)
		return read_u32(r, &c->m->kind);
	return tern_cbor_read_uint(r, &c->m->offset);
}

size_t tern_msg_ack_encode(const struct tern_msg_ack *m, uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	if (!m || !m->has_next) {
		tern_cbor_put_map(&w, 0);
		return tern_cbor_writer_len(&w);
	}
	tern_cbor_put_map(&w, 3);
	tern_cbor_put_uint(&w, 1);
	tern_cbor_put_uint(&w, m->comp);
	tern_cbor_put_uint(&w, 2);
	tern_cbor_put_uint(&w, m->kind);
	tern_cbor_put_uint(&w, 3);
	tern_cbor_put_uint(&w, m->offset);
	return tern_cbor_writer_len(&w);
}

int tern_msg_ack_decode(const uint8_t *buf, size_t len, struct tern_msg_ack *m)
{
	memset(m, 0, sizeof(*m));
	struct ack_ctx c = {m, 0};
	int rc = read_map(buf, len, &c, ack_field);
	if (rc)
		return rc;
	if (c.seen == 0)
		return 0;
	if (c.seen != 0xe)
		return TERN_E_MALFORMED;
	m->has_next = true;
	return 0;
}

/* PROVISION */

/* A device id is 1..64 of [A-Za-z0-9._-]: safe in MQTT topics, file names and logs. */
static bool id_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

struct prov_ctx {
	struct tern_msg_provision *m;
	uint32_t seen;
};

static int prov_field(void *out, uint64_t key, struct tern_cbor_reader *r, bool *seen)
{
	struct prov_ctx *c = out;
	struct tern_msg_provision *m = c->m;
	if (key < 1 || key > 5)
		return 0;
	*seen = true;
	int rc = mark(&c->seen, key);
	if (rc)
		return rc;
	if (key == 5)
		return tern_cbor_read_uint(r, &m->generation);
	if (key == 1) {
		rc = read_text0(r, m->device_id, sizeof(m->device_id));
		return rc ? rc : (id_ok(m->device_id) ? 0 : TERN_E_MALFORMED);
	}
	if (key == 4) {
		rc = tern_cbor_read_bytes(r, &m->signed_req, &m->signed_len);
		if (rc)
			return rc;
		return m->signed_len > TERN_FRAME_BODY_MAX ? TERN_E_TOO_LARGE : 0;
	}
	if (key == 3) {
		rc = tern_cbor_read_bytes(r, &m->config, &m->config_len);
		if (rc)
			return rc;
		return m->config_len > TERN_FRAME_CONFIG_MAX ? TERN_E_TOO_LARGE : 0;
	}
	uint64_t n;
	rc = tern_cbor_read_array(r, &n);
	if (rc)
		return rc;
	if (n == 0)
		return TERN_E_MALFORMED;
	if (n > TERN_KEYRING_MAX)
		return TERN_E_TOO_LARGE;
	for (uint64_t i = 0; i < n; i++) {
		size_t klen;
		rc = tern_cbor_read_bytes(r, &m->keys[i], &klen);
		if (rc)
			return rc;
		if (klen != TERN_P256_POINT_LEN)
			return TERN_E_MALFORMED;
	}
	m->n_keys = (size_t)n;
	return 0;
}

size_t tern_msg_provision_encode(const struct tern_msg_provision *m, uint8_t *buf, size_t size)
{
	if (!id_ok(m->device_id) || m->n_keys == 0 || m->n_keys > TERN_KEYRING_MAX ||
	    m->config_len > TERN_FRAME_CONFIG_MAX)
		return 0;
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, 2u + (m->config ? 1u : 0u) + (m->generation ? 1u : 0u));
	tern_cbor_put_uint(&w, 1);
	tern_cbor_put_cstr(&w, m->device_id);
	tern_cbor_put_uint(&w, 2);
	tern_cbor_put_array(&w, m->n_keys);
	for (size_t i = 0; i < m->n_keys; i++)
		tern_cbor_put_bytes(&w, m->keys[i], TERN_P256_POINT_LEN);
	if (m->config) {
		tern_cbor_put_uint(&w, 3);
		tern_cbor_put_bytes(&w, m->config, m->config_len);
	}
	if (m->generation) {
		tern_cbor_put_uint(&w, 5);
		tern_cbor_put_uint(&w, m->generation);
	}
	return tern_cbor_writer_len(&w);
}

int tern_msg_provision_decode(const uint8_t *buf, size_t len, struct tern_msg_provision *m)
{
	memset(m, 0, sizeof(*m));
	struct prov_ctx c = {m, 0};
	int rc = read_map(buf, len, &c, prov_field);
	if (rc)
		return rc;
	if (c.seen & (1u << 4)) /* signed: nothing else beside it (the generation is inside) */
		return c.seen == (1u << 4) ? 0 : TERN_E_MALFORMED;
	return (c.seen & 6u) == 6u ? 0 : TERN_E_MALFORMED;
}

size_t tern_msg_provision_encode_signed(const uint8_t *cose, size_t len, uint8_t *buf, size_t size)
{
	if (len == 0 || len > TERN_FRAME_BODY_MAX - 16)
		return 0;
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, 1);
	tern_cbor_put_uint(&w, 4);
	tern_cbor_put_bytes(&w, cose, len);
	return tern_cbor_writer_len(&w);
}

size_t tern_provision_aad(const char *serial, uint8_t *out, size_t size)
{
	size_t a = sizeof(TERN_PROVISION_AAD) - 1, b = strlen(serial);
	if (a + b > size)
		return 0;
	memcpy(out, TERN_PROVISION_AAD, a);
	memcpy(out + a, serial, b);
	return a + b;
}

int tern_msg_provision_open(const struct tern_msg_provision *m, const struct tern_keyring *kr,
			    const char *serial, struct tern_msg_provision *out)
{
	struct tern_sign1 s;
	uint8_t aad[sizeof(TERN_PROVISION_AAD) + TERN_FRAME_SERIAL_MAX];
	if (!m->signed_req)
		return TERN_E_INVAL;
	size_t aad_len = tern_provision_aad(serial, aad, sizeof(aad));
	if (!aad_len)
		return TERN_E_INVAL;
	int rc = tern_cose_sign1_parse(&s, m->signed_req, m->signed_len);
	if (rc)
		return rc;
	if (s.total_len != m->signed_len)
		return TERN_E_TRAILING;
	const struct tern_pubkey *pk = tern_keyring_find(kr, s.kid, s.kid_len);
	if (!pk)
		return TERN_E_UNKNOWN_KEY;
	rc = tern_cose_sign1_verify(&s, pk, aad, aad_len);
	if (rc)
		return rc;
	rc = tern_msg_provision_decode(s.payload, s.payload_len, out);
	if (rc)
		return rc;
	return out->signed_req ? TERN_E_MALFORMED : 0; /* no signed request inside one */
}

int tern_provision_generation_check(bool is_signed, uint64_t req_gen, uint64_t cur_gen)
{
	if (!is_signed)
		return 0;
	return req_gen > cur_gen ? 0 : TERN_E_OLD_GENERATION;
}

/* ---- Dispatch. */

size_t tern_frame_error_reply(uint32_t seq, uint32_t status, const char *text, uint8_t *out,
			      size_t size)
{
	size_t room;
	uint8_t *body = tern_frame_body(out, size, &room);
	struct tern_msg_error e = {status, text, text ? strlen(text) : 0};
	size_t n = size > TERN_FRAME_HDR_LEN ? tern_msg_error_encode(&e, body, room) : 0;
	if (!n)
		return 0;
	return tern_frame_seal(out, size, TERN_MSG_ERROR, TERN_FRAME_F_REPLY, seq, n);
}

size_t tern_frame_dispatch(const struct tern_frame_handler *table, size_t n, void *ctx,
			   const struct tern_frame *req, uint8_t *out, size_t size)
{
	const struct tern_frame_handler *h = NULL;
	for (size_t i = 0; i < n; i++) {
		if (table[i].type == req->type) {
			h = &table[i];
			break;
		}
	}
	if (!h || !h->fn)
		return tern_frame_error_reply(req->seq, TERN_ST_UNKNOWN_TYPE,
					      tern_frame_type_name(req->type), out, size);
	if (size <= TERN_FRAME_HDR_LEN)
		return 0;
	size_t room;
	uint8_t *body = tern_frame_body(out, size, &room);
	uint8_t reply_type = TERN_MSG_ACK;
	int rc = h->fn(ctx, req, &reply_type, body, room);
	if (rc < 0)
		return tern_frame_error_reply(req->seq, tern_frame_status_from_err(rc),
					      tern_strerror(rc), out, size);
	if ((size_t)rc > room)
		return tern_frame_error_reply(req->seq, TERN_ST_ERROR, NULL, out, size);
	return tern_frame_seal(out, size, reply_type, TERN_FRAME_F_REPLY, req->seq, (size_t)rc);
}
