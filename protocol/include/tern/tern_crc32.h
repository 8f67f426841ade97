/* CRC-32 (IEEE 802.3, as zlib computes it): frames on the wire and records on flash. */
#ifndef TERN_CRC32_H
#define TERN_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues the CRC-32 @crc (0 to start) over @len bytes at @data. No table in RAM. */
uint32_t tern_crc32(uint32_t crc, const void *data, size_t len);

#endif
