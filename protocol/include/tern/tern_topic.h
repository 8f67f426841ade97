/*
 * MQTT topic names (docs/mqtt.md), built into caller buffers and parsed back without
 * heap. Every topic lives under a prefix (default "tern"), one or more segments of
 * [A-Za-z0-9._-] separated by '/':
 *
 *   PREFIX/rel/RELEASE/manifest              signed manifest (retained)
 *   PREFIX/rel/RELEASE/COMPONENT/index       chunk index (retained)
 *   PREFIX/rel/RELEASE/COMPONENT/W/N         chunk N (0-based, whole component), in
 *                                            window W = N / TERN_WINDOW_CHUNKS (retained)
 *   PREFIX/dev/ID/desired|state|events|online
 *
 * Release ids, component names and device ids are validated as 1..max bytes of
 * [A-Za-z0-9._-], so no id can smuggle a '/', '+' or '#' into a topic or an ACL pattern.
 */
#ifndef TERN_TOPIC_H
#define TERN_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_TOPIC_PREFIX_DEFAULT "tern"
#define TERN_TOPIC_PREFIX_MAX	  64
#define TERN_DEVICE_ID_MAX	  64
#define TERN_TOPIC_MAX		  256 /* longest topic built here, NUL included */
#define TERN_WINDOW_CHUNKS	  64  /* chunks per window: one subscription each */

/* Payloads of the retained dev/ID/online topic (the last will sets "offline"). */
#define TERN_ONLINE_PAYLOAD  "online"
#define TERN_OFFLINE_PAYLOAD "offline"

enum tern_dev_topic {
	TERN_DEV_DESIRED = 0, /* host -> device, retained, signed (tern_msg.h) */
	TERN_DEV_STATE = 1,   /* device -> host, retained */
	TERN_DEV_EVENTS = 2,  /* device -> host */
	TERN_DEV_ONLINE = 3,  /* device -> host, retained, last will */
	TERN_DEV__COUNT
};

/* True when @s is 1..@max bytes of [A-Za-z0-9._-]. */
bool tern_topic_id_valid(const char *s, size_t max);

/* True when @prefix is 1..TERN_TOPIC_PREFIX_MAX bytes of '/'-separated valid ids. */
bool tern_topic_prefix_valid(const char *prefix);

/* The last segment name of a device topic ("desired", ...), or NULL. */
const char *tern_dev_topic_name(enum tern_dev_topic kind);

/*
 * Builders. Each writes a NUL-terminated topic into @out and returns its length without
 * the NUL, or 0 when an id or the prefix is invalid or @size is too small (@out then
 * holds an empty string when @size > 0).
 */
size_t tern_topic_manifest(const char *prefix, const char *release, char *out, size_t size);
size_t tern_topic_index(const char *prefix, const char *release, const char *component, char *out,
			size_t size);
size_t tern_topic_chunk(const char *prefix, const char *release, const char *component,
			uint64_t chunk, char *out, size_t size);
/* PREFIX/rel/RELEASE/+/index : the index of every component of @release. */
size_t tern_topic_index_filter(const char *prefix, const char *release, char *out, size_t size);
/* PREFIX/rel/RELEASE/COMPONENT/W/+ : every chunk of window @window. */
size_t tern_topic_window_filter(const char *prefix, const char *release, const char *component,
				uint64_t window, char *out, size_t size);
size_t tern_topic_dev(const char *prefix, const char *device_id, enum tern_dev_topic kind,
		      char *out, size_t size);
/* PREFIX/dev/+/KIND : that topic of every device (the host's subscriptions). */
size_t tern_topic_dev_filter(const char *prefix, enum tern_dev_topic kind, char *out, size_t size);

/*
 * Parses a device topic under @prefix: copies the device id into @id (NUL-terminated,
 * @id_size >= 2) and sets @kind. @topic is @len bytes, not necessarily NUL-terminated.
 * Returns 0, TERN_E_NOT_FOUND (not a device topic under @prefix) or TERN_E_TOO_LARGE
 * (the id does not fit @id_size).
 */
int tern_topic_parse_dev(const char *prefix, const char *topic, size_t len, char *id,
			 size_t id_size, enum tern_dev_topic *kind);

/*
 * Parses a chunk topic of @release / @component under @prefix and sets @chunk. Refuses
 * (TERN_E_NOT_FOUND) another release or component, numbers with leading zeros or out of
 * range, and a window that does not hold the chunk.
 */
int tern_topic_parse_chunk(const char *prefix, const char *release, const char *component,
			   const char *topic, size_t len, uint64_t *chunk);

#endif
