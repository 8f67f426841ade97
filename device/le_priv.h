/* Little-endian field cursor for the device's fixed-size flash records. */
#ifndef TERN_LE_PRIV_H
#define TERN_LE_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A cursor over a caller's record buffer; the caller sizes the buffer for its record. */
struct le_cursor {
	uint8_t *p;
	size_t pos;
};

static inline void le_put_u8(struct le_cursor *c, uint8_t v)
{
	c->p[c->pos++] = v;
}

static inline void le_put_u32(struct le_cursor *c, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		le_put_u8(c, (uint8_t)(v >> (8 * i)));
}

static inline void le_put_u64(struct le_cursor *c, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		le_put_u8(c, (uint8_t)(v >> (8 * i)));
}

static inline void le_put_raw(struct le_cursor *c, const void *src, size_t n)
{
	memcpy(c->p + c->pos, src, n);
	c->pos += n;
}

static inline uint8_t le_get_u8(struct le_cursor *c)
{
	return c->p[c->pos++];
}

static inline uint32_t le_get_u32(struct le_cursor *c)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)le_get_u8(c) << (8 * i);
	return v;
}

static inline uint64_t le_get_u64(struct le_cursor *c)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)le_get_u8(c) << (8 * i);
	return v;
}

static inline void le_get_raw(struct le_cursor *c, void *dst, size_t n)
{
	memcpy(dst, c->p + c->pos, n);
	c->pos += n;
}

#endif
