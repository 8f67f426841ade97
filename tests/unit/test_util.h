/*
 * Small helpers shared by the unit tests: exact-size heap copies (so that ASan sees any
 * read past the end of an input), hex conversion, and running the Debian Python for
 * the cross-checks against independent implementations.
 */
#ifndef TERN_TEST_UTIL_H
#define TERN_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Python with cbor2 and cryptography (the first python3 on PATH may be another). */
#define TEST_PYTHON "/usr/bin/python3"

/* A heap copy of exactly @len bytes (at least one byte is allocated so that a zero
 * length still gives a distinct pointer). Aborts when out of memory. */
static inline uint8_t *test_dup(const void *p, size_t len)
{
	uint8_t *d = malloc(len ? len : 1);
	if (!d)
		abort();
	if (len)
		memcpy(d, p, len);
	return d;
}

static inline int test_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes @hex into @out; returns the byte count, or (size_t)-1 on bad input. */
static inline size_t test_unhex(const char *hex, uint8_t *out, size_t size)
{
	size_t n = strlen(hex);
	if (n % 2 || n / 2 > size)
		return (size_t)-1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = test_hexval(hex[2 * i]), lo = test_hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return (size_t)-1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return n / 2;
}

/* Writes @len bytes as lowercase hex into @out (2 * len + 1 bytes). */
static inline void test_hex(const uint8_t *p, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}

/* Writes @len bytes to a fresh file at @path; returns 0 or -1. */
static inline int test_write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = len ? fwrite(p, 1, len, f) : 0;
	int rc = fclose(f);
	return n == len && rc == 0 ? 0 : -1;
}

/* Reads a whole file into an exact-size heap buffer; NULL on error. */
static inline uint8_t *test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0;
	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		long end = ftell(f);
		if (end >= 0 && fseek(f, 0, SEEK_SET) == 0) {
			n = (size_t)end;
			buf = malloc(n ? n : 1);
			if (buf && n && fread(buf, 1, n, f) != n) {
				free(buf);
				buf = NULL;
			}
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

#endif
