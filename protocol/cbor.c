/* Bounded CBOR pull reader over libcbor's streaming decoder, and a buffer writer. */
#include "tern/tern_cbor.h"

#include "tern/tern_err.h"

#include <cbor.h>
#include <string.h>

/* What the libcbor callbacks report back for one decoded head. */
struct decode_ctx {
	struct tern_cbor_item *it;
	bool got;
	bool indefinite;
};

static void got(struct decode_ctx *c, enum tern_cbor_type type, uint64_t val)
{
	c->it->type = type;
	c->it->val = val;
	c->it->ptr = NULL;
	c->got = true;
}

static void cb_u8(void *c, uint8_t v)
{
	got(c, TERN_CBOR_UINT, v);
}
static void cb_u16(void *c, uint16_t v)
{
	got(c, TERN_CBOR_UINT, v);
}
static void cb_u32(void *c, uint32_t v)
{
	got(c, TERN_CBOR_UINT, v);
}
static void cb_u64(void *c, uint64_t v)
{
	got(c, TERN_CBOR_UINT, v);
}
static void cb_n8(void *c, uint8_t v)
{
	got(c, TERN_CBOR_NEGINT, v);
}
static void cb_n16(void *c, uint16_t v)
{
	got(c, TERN_CBOR_NEGINT, v);
}
static void cb_n32(void *c, uint32_t v)
{
	got(c, TERN_CBOR_NEGINT, v);
}
static void cb_n64(void *c, uint64_t v)
{
	got(c, TERN_CBOR_NEGINT, v);
}

/* libcbor 0.8's header comments for these two are swapped: this one is definite. */
static void cb_bytes(void *c, cbor_data p, size_t len)
{
	got(c, TERN_CBOR_BYTES, len);
	((struct decode_ctx *)c)->it->ptr = p;
}

static void cb_text(void *c, cbor_data p, size_t len)
{
	got(c, TERN_CBOR_TEXT, len);
	((struct decode_ctx *)c)->it->ptr = p;
}

static void cb_indef(void *c)
{
	((struct decode_ctx *)c)->indefinite = true;
	((struct decode_ctx *)c)->got = true;
}

static void cb_array(void *c, size_t n)
{
	got(c, TERN_CBOR_ARRAY, n);
}
static void cb_map(void *c, size_t n)
{
	got(c, TERN_CBOR_MAP, n);
}
static void cb_tag(void *c, uint64_t v)
{
	got(c, TERN_CBOR_TAG, v);
}
static void cb_float(void *c, float v)
{
	(void)v;
	got(c, TERN_CBOR_FLOAT, 0);
}
static void cb_double(void *c, double v)
{
	(void)v;
	got(c, TERN_CBOR_FLOAT, 0);
}
static void cb_undef(void *c)
{
	got(c, TERN_CBOR_SIMPLE, 23);
}
static void cb_null(void *c)
{
	got(c, TERN_CBOR_SIMPLE, 22);
}
static void cb_bool(void *c, bool v)
{
	got(c, TERN_CBOR_SIMPLE, v ? 21u : 20u);
}

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8,
    .uint16 = cb_u16,
    .uint32 = cb_u32,
    .uint64 = cb_u64,
    .negint8 = cb_n8,
    .negint16 = cb_n16,
    .negint32 = cb_n32,
    .negint64 = cb_n64,
    .byte_string = cb_bytes,
    .byte_string_start = cb_indef,
    .string = cb_text,
    .string_start = cb_indef,
    .indef_array_start = cb_indef,
    .array_start = cb_array,
    .indef_map_start = cb_indef,
    .map_start = cb_map,
    .tag = cb_tag,
    .float2 = cb_float,
    .float4 = cb_float,
    .float8 = cb_double,
    .undefined = cb_undef,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_indef,
};

void tern_cbor_reader_init(struct tern_cbor_reader *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->pos = 0;
}

size_t tern_cbor_remaining(const struct tern_cbor_reader *r)
{
	return r->len - r->pos;
}

/*
 * Reads the head at @p ourselves: its size and the argument. Used to check lengths
 * before libcbor sees them and for the one-byte tags libcbor 0.8 cannot decode.
 */
static int parse_head(const uint8_t *p, size_t len, size_t *head_len, uint64_t *arg)
{
	if (len < 1)
		return TERN_E_TRUNCATED;
	uint8_t ai = p[0] & 0x1f;
	size_t n;
	if (ai < 24)
		n = 0;
	else if (ai <= 27)
		n = (size_t)1 << (ai - 24);
	else if (ai == 31)
		n = 0; /* indefinite or break; the caller refuses it */
	else
		return TERN_E_NOT_CBOR; /* 28..30 are reserved */
	if (len < 1 + n)
		return TERN_E_TRUNCATED;
	uint64_t v = ai < 24 ? ai : 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[1 + i];
	*head_len = 1 + n;
	*arg = v;
	return 0;
}

int tern_cbor_bstr_head(const uint8_t *buf, size_t len, size_t *head_len, uint64_t *body_len)
{
	if (len >= 1 && (buf[0] >> 5) != 2)
		return TERN_E_MALFORMED;
	if (len >= 1 && (buf[0] & 0x1f) == 31)
		return TERN_E_MALFORMED;
	return parse_head(buf, len, head_len, body_len);
}

int tern_cbor_peek(const struct tern_cbor_reader *r, struct tern_cbor_item *it)
{
	/* An empty reader may have a NULL buffer: no pointer arithmetic on it. */
	if (r->pos >= r->len)
		return TERN_E_TRUNCATED;
	const uint8_t *p = r->buf + r->pos;
	size_t left = r->len - r->pos;
	size_t head_len;
	uint64_t arg;
	int rc = parse_head(p, left, &head_len, &arg);
	if (rc)
		return rc;
	uint8_t major = (uint8_t)(p[0] >> 5);
	if ((p[0] & 0x1f) == 31) {
		/* Strings, arrays and maps of indefinite length are CBOR that tern refuses;
		 * additional information 31 on integers and tags, or a lone break, is not
		 * well-formed CBOR at all. */
		return major >= 2 && major <= 5 ? TERN_E_MALFORMED : TERN_E_NOT_CBOR;
	}
	if (major == 2 || major == 3) {
		if (arg > left - head_len)
			return TERN_E_TRUNCATED;
	}
	if (major == 6) {
		/* libcbor 0.8 fails on tags 6..20 in their one-byte form (e.g. 0xD2, COSE_Sign1). */
		it->type = TERN_CBOR_TAG;
		it->val = arg;
		it->ptr = NULL;
		return 0;
	}
	struct decode_ctx c = {.it = it};
	struct cbor_decoder_result res = cbor_stream_decode(p, left, &callbacks, &c);
	if (res.status == CBOR_DECODER_NEDATA)
		return TERN_E_TRUNCATED;
	if (res.status != CBOR_DECODER_FINISHED || !c.got)
		return TERN_E_NOT_CBOR;
	if (c.indefinite)
		return TERN_E_MALFORMED;
	return 0;
}

/* Size of the item's head plus, for strings, its body. */
static size_t item_size(const struct tern_cbor_reader *r, const struct tern_cbor_item *it)
{
	size_t head_len;
	uint64_t arg;
	(void)parse_head(r->buf + r->pos, r->len - r->pos, &head_len, &arg);
	if (it->type == TERN_CBOR_BYTES || it->type == TERN_CBOR_TEXT)
		return head_len + (size_t)it->val;
	return head_len;
}

int tern_cbor_next(struct tern_cbor_reader *r, struct tern_cbor_item *it)
{
	int rc = tern_cbor_peek(r, it);
	if (rc)
		return rc;
	r->pos += item_size(r, it);
	return 0;
}

int tern_cbor_skip(struct tern_cbor_reader *r)
{
	/* Items still to read at each open nesting level. */
	uint64_t pending[TERN_CBOR_MAX_DEPTH + 1];
	int depth = 0;
	pending[0] = 1;
	while (depth >= 0) {
		if (pending[depth] == 0) {
			depth--;
			continue;
		}
		pending[depth]--;
		struct tern_cbor_item it;
		int rc = tern_cbor_next(r, &it);
		if (rc)
			return rc;
		uint64_t n = 0;
		if (it.type == TERN_CBOR_ARRAY || it.type == TERN_CBOR_TAG)
			n = it.type == TERN_CBOR_TAG ? 1 : it.val;
		else if (it.type == TERN_CBOR_MAP)
			n = it.val > UINT64_MAX / 2 ? UINT64_MAX : it.val * 2;
		if (n == 0)
			continue;
		/* Every item takes at least one byte: a count above what is left is a lie. */
		if (n > tern_cbor_remaining(r))
			return TERN_E_TRUNCATED;
		if (depth == TERN_CBOR_MAX_DEPTH)
			return TERN_E_TOO_LARGE;
		pending[++depth] = n;
	}
	return 0;
}

static int read_type(struct tern_cbor_reader *r, enum tern_cbor_type type,
		     struct tern_cbor_item *it)
{
	int rc = tern_cbor_peek(r, it);
	if (rc)
		return rc;
	if (it->type != type)
		return TERN_E_MALFORMED;
	return tern_cbor_next(r, it);
}

int tern_cbor_read_uint(struct tern_cbor_reader *r, uint64_t *v)
{
	struct tern_cbor_item it;
	int rc = read_type(r, TERN_CBOR_UINT, &it);
	if (!rc)
		*v = it.val;
	return rc;
}

int tern_cbor_read_bool(struct tern_cbor_reader *r, bool *v)
{
	struct tern_cbor_item it;
	int rc = tern_cbor_peek(r, &it);
	if (rc)
		return rc;
	if (it.type != TERN_CBOR_SIMPLE || (it.val != 20 && it.val != 21))
		return TERN_E_MALFORMED; /* null and undefined too: nothing consumed */
	*v = it.val == 21;
	return tern_cbor_next(r, &it);
}

int tern_cbor_read_int(struct tern_cbor_reader *r, int64_t *v)
{
	struct tern_cbor_item it;
	int rc = tern_cbor_peek(r, &it);
	if (rc)
		return rc;
	if ((it.type != TERN_CBOR_UINT && it.type != TERN_CBOR_NEGINT) || it.val > INT64_MAX)
		return TERN_E_MALFORMED;
	*v = it.type == TERN_CBOR_UINT ? (int64_t)it.val : -1 - (int64_t)it.val;
	return tern_cbor_next(r, &it);
}

int tern_cbor_read_bytes(struct tern_cbor_reader *r, const uint8_t **p, size_t *len)
{
	struct tern_cbor_item it;
	int rc = read_type(r, TERN_CBOR_BYTES, &it);
	if (!rc) {
		*p = it.ptr;
		*len = (size_t)it.val;
	}
	return rc;
}

int tern_cbor_read_text(struct tern_cbor_reader *r, const char **p, size_t *len)
{
	struct tern_cbor_item it;
	int rc = read_type(r, TERN_CBOR_TEXT, &it);
	if (!rc) {
		*p = (const char *)it.ptr;
		*len = (size_t)it.val;
	}
	return rc;
}

int tern_cbor_read_text_into(struct tern_cbor_reader *r, char *out, size_t size)
{
	const char *p;
	size_t len;
	int rc = tern_cbor_read_text(r, &p, &len);
	if (rc)
		return rc;
	if (len + 1 > size)
		return TERN_E_TOO_LARGE;
	if (len == 0 || memchr(p, 0, len))
		return TERN_E_MALFORMED;
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

int tern_cbor_read_array(struct tern_cbor_reader *r, uint64_t *n)
{
	struct tern_cbor_item it;
	int rc = read_type(r, TERN_CBOR_ARRAY, &it);
	if (!rc)
		*n = it.val;
	return rc;
}

int tern_cbor_read_map(struct tern_cbor_reader *r, uint64_t *n)
{
	struct tern_cbor_item it;
	int rc = read_type(r, TERN_CBOR_MAP, &it);
	if (!rc)
		*n = it.val;
	return rc;
}

int tern_cbor_read_map_max(struct tern_cbor_reader *r, uint64_t *n, uint64_t max)
{
	int rc = tern_cbor_read_map(r, n);
	if (!rc && *n > max)
		rc = TERN_E_TOO_LARGE;
	return rc;
}

int tern_cbor_read_map_key(struct tern_cbor_reader *r, uint64_t *key, uint64_t *seen)
{
	struct tern_cbor_item it;
	int rc = tern_cbor_peek(r, &it);
	if (rc)
		return rc;
	if (it.type != TERN_CBOR_UINT) {
		*key = UINT64_MAX;
		if ((rc = tern_cbor_skip(r)))
			return rc;
		return tern_cbor_skip(r);
	}
	(void)tern_cbor_next(r, &it);
	*key = it.val;
	if (it.val < 64) {
		if (*seen & ((uint64_t)1 << it.val))
			return TERN_E_MALFORMED;
		*seen |= (uint64_t)1 << it.val;
	}
	return 0;
}

void tern_cbor_writer_init(struct tern_cbor_writer *w, uint8_t *buf, size_t size)
{
	w->buf = buf;
	w->size = size;
	w->pos = 0;
	w->overflow = false;
}

/* Records @n bytes written by a libcbor encoder (0 means it did not fit). */
static void advance(struct tern_cbor_writer *w, size_t n)
{
	if (n == 0)
		w->overflow = true;
	else
		w->pos += n;
}

static uint8_t *dst(struct tern_cbor_writer *w)
{
	return w->buf + w->pos;
}

static size_t room(const struct tern_cbor_writer *w)
{
	return w->overflow ? 0 : w->size - w->pos;
}

void tern_cbor_put_uint(struct tern_cbor_writer *w, uint64_t v)
{
	if (!w->overflow)
		advance(w, cbor_encode_uint(v, dst(w), room(w)));
}

void tern_cbor_put_int(struct tern_cbor_writer *w, int64_t v)
{
	if (v >= 0)
		tern_cbor_put_uint(w, (uint64_t)v);
	else if (!w->overflow)
		advance(w, cbor_encode_negint((uint64_t)(-1 - v), dst(w), room(w)));
}

void tern_cbor_put_bytes_head(struct tern_cbor_writer *w, uint64_t len)
{
	if (!w->overflow)
		advance(w, cbor_encode_bytestring_start((size_t)len, dst(w), room(w)));
}

/* Appends raw bytes after a string head. */
static void put_raw(struct tern_cbor_writer *w, const void *p, size_t len)
{
	if (w->overflow)
		return;
	if (len > room(w)) {
		w->overflow = true;
		return;
	}
	if (len)
		memcpy(dst(w), p, len);
	w->pos += len;
}

void tern_cbor_put_bytes(struct tern_cbor_writer *w, const void *p, size_t len)
{
	tern_cbor_put_bytes_head(w, len);
	put_raw(w, p, len);
}

void tern_cbor_put_text(struct tern_cbor_writer *w, const char *p, size_t len)
{
	if (!w->overflow)
		advance(w, cbor_encode_string_start(len, dst(w), room(w)));
	put_raw(w, p, len);
}

void tern_cbor_put_cstr(struct tern_cbor_writer *w, const char *s)
{
	tern_cbor_put_text(w, s, strlen(s));
}

void tern_cbor_put_array(struct tern_cbor_writer *w, size_t n)
{
	if (!w->overflow)
		advance(w, cbor_encode_array_start(n, dst(w), room(w)));
}

void tern_cbor_put_map(struct tern_cbor_writer *w, size_t n)
{
	if (!w->overflow)
		advance(w, cbor_encode_map_start(n, dst(w), room(w)));
}

void tern_cbor_put_tag(struct tern_cbor_writer *w, uint64_t tag)
{
	if (!w->overflow)
		advance(w, cbor_encode_tag(tag, dst(w), room(w)));
}

void tern_cbor_put_bool(struct tern_cbor_writer *w, bool v)
{
	if (!w->overflow)
		advance(w, cbor_encode_bool(v, dst(w), room(w)));
}

size_t tern_cbor_writer_len(const struct tern_cbor_writer *w)
{
	return w->overflow ? 0 : w->pos;
}
