/*
 * Small text records of "key=value" lines (a sim device's device.conf, the MQTT
 * transport's resume record). Pure C, no allocation; the caller owns every buffer.
 */
#ifndef TERN_KVTEXT_H
#define TERN_KVTEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Finds the first line "@key=value" in the NUL-terminated @text and copies the value
 * (up to the end of the line, without the newline) into @out, NUL-terminated. Returns
 * false when the key is absent or the value does not fit in @size bytes.
 */
bool tern_kv_get(const char *text, const char *key, char *out, size_t size);

#endif
