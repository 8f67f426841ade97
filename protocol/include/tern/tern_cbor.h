/*
 * A bounded pull reader and a caller-buffer writer for the CBOR tern uses, built on
 * libcbor's allocation-free streaming decoder and its buffer encoders.
 *
 * The reader never allocates and never reads past the caller's buffer: every length is
 * checked against what the buffer holds before it is used. Indefinite-length items are
 * refused (tern writes only definite lengths). Tags 6..20 in their one-byte form, which
 * libcbor 0.8 cannot decode, are read here.
 */
#ifndef TERN_CBOR_H
#define TERN_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tern_cbor_type {
	TERN_CBOR_UINT,
	TERN_CBOR_NEGINT, /* value is -1 - val */
	TERN_CBOR_BYTES,
	TERN_CBOR_TEXT,
	TERN_CBOR_ARRAY,
	TERN_CBOR_MAP,
	TERN_CBOR_TAG,
	TERN_CBOR_SIMPLE, /* false, true, null, undefined: val is 20..23 */
	TERN_CBOR_FLOAT
};

/* One decoded head. For strings @ptr points into the reader's buffer (borrowed). */
struct tern_cbor_item {
	enum tern_cbor_type type;
	uint64_t val; /* integer, tag number, element or pair count, string length */
	const uint8_t *ptr;
};

struct tern_cbor_reader {
	const uint8_t *buf;
	size_t len;
	size_t pos;
};

/* Nesting deeper than this is refused by tern_cbor_skip(). */
#define TERN_CBOR_MAX_DEPTH 16

void tern_cbor_reader_init(struct tern_cbor_reader *r, const uint8_t *buf, size_t len);

/* Bytes not yet read. */
size_t tern_cbor_remaining(const struct tern_cbor_reader *r);

/*
 * Reads the next head (and, for strings, checks the body is whole and steps over it).
 * Returns 0, TERN_E_TRUNCATED when the buffer ends inside the item, TERN_E_NOT_CBOR for
 * bytes that are not CBOR, TERN_E_MALFORMED for indefinite lengths.
 */
int tern_cbor_next(struct tern_cbor_reader *r, struct tern_cbor_item *it);

/* Like tern_cbor_next() but leaves the position where it was. */
int tern_cbor_peek(const struct tern_cbor_reader *r, struct tern_cbor_item *it);

/* Steps over one whole item, nested ones included (bounded, not recursive). */
int tern_cbor_skip(struct tern_cbor_reader *r);

/* Typed reads: TERN_E_MALFORMED when the next item has another type. */
int tern_cbor_read_uint(struct tern_cbor_reader *r, uint64_t *v);
int tern_cbor_read_int(struct tern_cbor_reader *r, int64_t *v);
int tern_cbor_read_bool(struct tern_cbor_reader *r, bool *v); /* false or true only */
int tern_cbor_read_bytes(struct tern_cbor_reader *r, const uint8_t **p, size_t *len);
int tern_cbor_read_text(struct tern_cbor_reader *r, const char **p, size_t *len);
int tern_cbor_read_array(struct tern_cbor_reader *r, uint64_t *n);
int tern_cbor_read_map(struct tern_cbor_reader *r, uint64_t *n);
/* Reads a map head announcing at most @max entries (TERN_E_TOO_LARGE above). */
int tern_cbor_read_map_max(struct tern_cbor_reader *r, uint64_t *n, uint64_t max);

/*
 * Reads the key of an entry of a map keyed by small unsigned integers (tern's maps).
 * Sets @key and refuses a key below 64 already in the bit set @seen (TERN_E_MALFORMED;
 * the caller zeroes @seen per map). A key of another type is skipped together with its
 * value and gives @key = UINT64_MAX: the caller then reads nothing for this entry.
 */
int tern_cbor_read_map_key(struct tern_cbor_reader *r, uint64_t *key, uint64_t *seen);

/* Reads a text string into @out (NUL-terminated); TERN_E_TOO_LARGE if it needs more
 * than @size - 1 bytes, TERN_E_MALFORMED if it is empty or has a NUL byte. */
int tern_cbor_read_text_into(struct tern_cbor_reader *r, char *out, size_t size);

/*
 * Parses the head of a definite byte string at @buf: on success sets @head_len to the
 * head's size and @body_len to the announced length (which may exceed @len: the body
 * is streamed by the caller). TERN_E_TRUNCATED if the head itself is incomplete.
 */
int tern_cbor_bstr_head(const uint8_t *buf, size_t len, size_t *head_len, uint64_t *body_len);

/*
 * Writer into a caller-owned buffer. Every put checks space; after the first overflow
 * all further puts are ignored and tern_cbor_writer_len() returns 0.
 */
struct tern_cbor_writer {
	uint8_t *buf;
	size_t size;
	size_t pos;
	bool overflow;
};

void tern_cbor_writer_init(struct tern_cbor_writer *w, uint8_t *buf, size_t size);
void tern_cbor_put_uint(struct tern_cbor_writer *w, uint64_t v);
void tern_cbor_put_int(struct tern_cbor_writer *w, int64_t v);
void tern_cbor_put_bytes(struct tern_cbor_writer *w, const void *p, size_t len);
/* Writes only the head of a byte string of @len bytes; the caller writes the body. */
void tern_cbor_put_bytes_head(struct tern_cbor_writer *w, uint64_t len);
void tern_cbor_put_text(struct tern_cbor_writer *w, const char *p, size_t len);
void tern_cbor_put_cstr(struct tern_cbor_writer *w, const char *s);
void tern_cbor_put_array(struct tern_cbor_writer *w, size_t n);
void tern_cbor_put_map(struct tern_cbor_writer *w, size_t n);
void tern_cbor_put_tag(struct tern_cbor_writer *w, uint64_t tag);
void tern_cbor_put_bool(struct tern_cbor_writer *w, bool v);
/* Bytes written, or 0 after an overflow (the buffer's contents are then undefined). */
size_t tern_cbor_writer_len(const struct tern_cbor_writer *w);

#endif
