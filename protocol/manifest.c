/* Manifest encode, decode and checks; chunk arithmetic. */
#include "tern/tern_manifest.h"

#include "tern/tern_cbor.h"
#include "tern/tern_err.h"

#include <string.h>

#define MAP_MAX_ENTRIES 64 /* a manifest map with more entries is refused */

static bool is_id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/*
 * Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. CBOR text strings must be UTF-8; strict decoders refuse anything else.
 */
static bool is_utf8(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		size_t n;     /* continuation bytes */
		uint32_t cp;  /* the code point */
		uint32_t min; /* smallest code point of this length (no overlongs) */
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1fu;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0fu;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07u;
			min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* An identifier: non-empty, at most @max bytes, only [A-Za-z0-9._-]. */
static int check_id(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0)
		return TERN_E_MALFORMED;
	if (n > max)
		return TERN_E_TOO_LARGE;
	for (size_t i = 0; i < n; i++)
		if (!is_id_char(s[i]))
			return TERN_E_MALFORMED;
	return 0;
}

int tern_manifest_check(const struct tern_manifest *m)
{
	int rc;
	if (m->format_version != TERN_FORMAT_VERSION)
		return TERN_E_FORMAT_VERSION;
	if ((rc = check_id(m->release_id, TERN_RELEASE_ID_MAX)))
		return rc;
	size_t vlen = strnlen(m->version, TERN_VERSION_MAX + 1);
	if (vlen == 0)
		return TERN_E_MALFORMED;
	if (vlen > TERN_VERSION_MAX)
		return TERN_E_TOO_LARGE;
	if (!is_utf8((const uint8_t *)m->version, vlen))
		return TERN_E_MALFORMED;
	if (m->n_boards == 0 || m->n_components == 0)
		return TERN_E_MALFORMED;
	if (m->n_boards > TERN_MAX_BOARDS || m->n_components > TERN_MAX_COMPONENTS)
		return TERN_E_TOO_LARGE;
	for (size_t i = 0; i < m->n_boards; i++)
		if ((rc = check_id(m->boards[i], TERN_NAME_MAX)))
			return rc;
	if (m->chunk_size < TERN_CHUNK_MIN || m->chunk_size > TERN_CHUNK_MAX ||
	    (m->chunk_size & (m->chunk_size - 1)))
		return TERN_E_MALFORMED;
	for (size_t i = 0; i < m->n_components; i++) {
		const struct tern_component *c = &m->components[i];
		if ((rc = check_id(c->name, TERN_NAME_MAX)) ||
		    (rc = check_id(c->slot_group, TERN_NAME_MAX)))
			return rc;
		if (c->kind != TERN_KIND_FIRMWARE && c->kind != TERN_KIND_CONFIG)
			return TERN_E_CRITICAL;
		if (c->size == 0)
			return TERN_E_MALFORMED;
		if (c->size > TERN_COMPONENT_MAX)
			return TERN_E_TOO_LARGE;
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->components[j].name, c->name) == 0)
				return TERN_E_MALFORMED;
	}
	if (m->notes_len > TERN_NOTES_MAX)
		return TERN_E_TOO_LARGE;
	if (m->notes_len && (!m->notes || memchr(m->notes, 0, m->notes_len) ||
			     !is_utf8((const uint8_t *)m->notes, m->notes_len)))
		return TERN_E_MALFORMED;
	return 0;
}

static void put_component(struct tern_cbor_writer *w, const struct tern_component *c)
{
	tern_cbor_put_map(w, 5);
	tern_cbor_put_uint(w, TERN_CK_NAME);
	tern_cbor_put_cstr(w, c->name);
	tern_cbor_put_uint(w, TERN_CK_KIND);
	tern_cbor_put_uint(w, (uint64_t)c->kind);
	tern_cbor_put_uint(w, TERN_CK_SLOT_GROUP);
	tern_cbor_put_cstr(w, c->slot_group);
	tern_cbor_put_uint(w, TERN_CK_SIZE);
	tern_cbor_put_uint(w, c->size);
	tern_cbor_put_uint(w, TERN_CK_INDEX_DIGEST);
	tern_cbor_put_bytes(w, c->index_digest, TERN_SHA256_LEN);
}

size_t tern_manifest_encode(const struct tern_manifest *m, uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	if (tern_manifest_check(m))
		return 0;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, m->notes_len ? 11 : 10);
	tern_cbor_put_uint(&w, TERN_MK_FORMAT);
	tern_cbor_put_uint(&w, m->format_version);
	tern_cbor_put_uint(&w, TERN_MK_RELEASE_ID);
	tern_cbor_put_cstr(&w, m->release_id);
	tern_cbor_put_uint(&w, TERN_MK_VERSION);
	tern_cbor_put_cstr(&w, m->version);
	tern_cbor_put_uint(&w, TERN_MK_SEQUENCE);
	tern_cbor_put_uint(&w, m->sequence);
	tern_cbor_put_uint(&w, TERN_MK_SECURITY_COUNTER);
	tern_cbor_put_uint(&w, m->security_counter);
	tern_cbor_put_uint(&w, TERN_MK_BOARDS);
	tern_cbor_put_array(&w, m->n_boards);
	for (size_t i = 0; i < m->n_boards; i++)
		tern_cbor_put_cstr(&w, m->boards[i]);
	tern_cbor_put_uint(&w, TERN_MK_CHUNK_SIZE);
	tern_cbor_put_uint(&w, m->chunk_size);
	tern_cbor_put_uint(&w, TERN_MK_COMPONENTS);
	tern_cbor_put_array(&w, m->n_components);
	for (size_t i = 0; i < m->n_components; i++)
		put_component(&w, &m->components[i]);
	if (m->notes_len) {
		tern_cbor_put_uint(&w, TERN_MK_NOTES);
		tern_cbor_put_text(&w, m->notes, m->notes_len);
	}
	tern_cbor_put_uint(&w, TERN_MK_CREATED);
	tern_cbor_put_uint(&w, m->created);
	tern_cbor_put_uint(&w, TERN_MK_EARLY_LIFE);
	tern_cbor_put_map(&w, 3);
	tern_cbor_put_uint(&w, TERN_EK_TRIAL_ATTEMPTS);
	tern_cbor_put_uint(&w, m->early_life.trial_attempts);
	tern_cbor_put_uint(&w, TERN_EK_HEALTH_TIMEOUT);
	tern_cbor_put_uint(&w, m->early_life.health_timeout_s);
	tern_cbor_put_uint(&w, TERN_EK_SETTLE);
	tern_cbor_put_uint(&w, m->early_life.settle_s);
	size_t n = tern_cbor_writer_len(&w);
	return n > TERN_MANIFEST_MAX ? 0 : n;
}

/* Reads an unsigned integer no larger than @max. */
static int read_u64_max(struct tern_cbor_reader *r, uint64_t *v, uint64_t max)
{
	int rc = tern_cbor_read_uint(r, v);
	if (!rc && *v > max)
		rc = TERN_E_TOO_LARGE;
	return rc;
}

static int read_u32(struct tern_cbor_reader *r, uint32_t *v)
{
	uint64_t u;
	int rc = read_u64_max(r, &u, UINT32_MAX);
	if (!rc)
		*v = (uint32_t)u;
	return rc;
}

static int read_component(struct tern_cbor_reader *r, struct tern_component *c)
{
	uint64_t n, key, seen = 0, kind;
	const uint8_t *digest;
	size_t digest_len;
	int rc = tern_cbor_read_map_max(r, &n, MAP_MAX_ENTRIES);
	for (uint64_t i = 0; !rc && i < n; i++) {
		if ((rc = tern_cbor_read_map_key(r, &key, &seen)))
			break;
		switch (key) {
		case UINT64_MAX: /* a non-integer key, skipped with its value */
			break;
		case TERN_CK_NAME:
			rc = tern_cbor_read_text_into(r, c->name, sizeof(c->name));
			break;
		case TERN_CK_KIND:
			rc = read_u64_max(r, &kind, 255);
			c->kind = (enum tern_component_kind)kind;
			break;
		case TERN_CK_SLOT_GROUP:
			rc = tern_cbor_read_text_into(r, c->slot_group, sizeof(c->slot_group));
			break;
		case TERN_CK_SIZE:
			rc = tern_cbor_read_uint(r, &c->size);
			break;
		case TERN_CK_INDEX_DIGEST:
			rc = tern_cbor_read_bytes(r, &digest, &digest_len);
			if (!rc && digest_len != TERN_SHA256_LEN)
				rc = TERN_E_MALFORMED;
			if (!rc)
				memcpy(c->index_digest, digest, TERN_SHA256_LEN);
			break;
		default:
			rc = tern_cbor_skip(r);
		}
	}
	if (rc)
		return rc;
	const uint64_t required = (1u << TERN_CK_NAME) | (1u << TERN_CK_KIND) |
				  (1u << TERN_CK_SLOT_GROUP) | (1u << TERN_CK_SIZE) |
				  (1u << TERN_CK_INDEX_DIGEST);
	return (seen & required) == required ? 0 : TERN_E_MALFORMED;
}

static int read_components(struct tern_cbor_reader *r, struct tern_manifest *m)
{
	uint64_t n;
	int rc = tern_cbor_read_array(r, &n);
	if (rc)
		return rc;
	if (n > TERN_MAX_COMPONENTS)
		return TERN_E_TOO_LARGE;
	for (uint64_t i = 0; i < n; i++)
		if ((rc = read_component(r, &m->components[i])))
			return rc;
	m->n_components = (size_t)n;
	return 0;
}

static int read_boards(struct tern_cbor_reader *r, struct tern_manifest *m)
{
	uint64_t n;
	int rc = tern_cbor_read_array(r, &n);
	if (rc)
		return rc;
	if (n > TERN_MAX_BOARDS)
		return TERN_E_TOO_LARGE;
	for (uint64_t i = 0; i < n; i++)
		if ((rc = tern_cbor_read_text_into(r, m->boards[i], sizeof(m->boards[i]))))
			return rc;
	m->n_boards = (size_t)n;
	return 0;
}

static int read_early_life(struct tern_cbor_reader *r, struct tern_early_life *el)
{
	uint64_t n, key, seen = 0;
	int rc = tern_cbor_read_map_max(r, &n, MAP_MAX_ENTRIES);
	for (uint64_t i = 0; !rc && i < n; i++) {
		if ((rc = tern_cbor_read_map_key(r, &key, &seen)))
			break;
		if (key == UINT64_MAX)
			continue; /* a non-integer key, skipped with its value */
		if (key == TERN_EK_TRIAL_ATTEMPTS)
			rc = read_u32(r, &el->trial_attempts);
		else if (key == TERN_EK_HEALTH_TIMEOUT)
			rc = read_u32(r, &el->health_timeout_s);
		else if (key == TERN_EK_SETTLE)
			rc = read_u32(r, &el->settle_s);
		else
			rc = tern_cbor_skip(r);
	}
	return rc;
}

/* Key 0 lists the keys a reader must understand to use this manifest. */
static int read_critical(struct tern_cbor_reader *r)
{
	uint64_t n, key;
	int rc = tern_cbor_read_array(r, &n);
	if (rc)
		return rc;
	if (n > MAP_MAX_ENTRIES)
		return TERN_E_TOO_LARGE;
	for (uint64_t i = 0; i < n; i++) {
		struct tern_cbor_item it;
		if ((rc = tern_cbor_peek(r, &it)))
			return rc;
		if (it.type != TERN_CBOR_UINT)
			return TERN_E_CRITICAL;
		if ((rc = tern_cbor_read_uint(r, &key)))
			return rc;
		if (key >= TERN_MK__COUNT)
			return TERN_E_CRITICAL;
	}
	return 0;
}

static int read_entry(struct tern_cbor_reader *r, uint64_t key, struct tern_manifest *m)
{
	uint64_t v;
	int rc;
	switch (key) {
	case TERN_MK_CRITICAL:
		return read_critical(r);
	case TERN_MK_FORMAT:
		rc = read_u32(r, &m->format_version);
		if (!rc && m->format_version != TERN_FORMAT_VERSION)
			rc = TERN_E_FORMAT_VERSION;
		return rc;
	case TERN_MK_RELEASE_ID:
		return tern_cbor_read_text_into(r, m->release_id, sizeof(m->release_id));
	case TERN_MK_VERSION:
		return tern_cbor_read_text_into(r, m->version, sizeof(m->version));
	case TERN_MK_SEQUENCE:
		return tern_cbor_read_uint(r, &m->sequence);
	case TERN_MK_SECURITY_COUNTER:
		return read_u32(r, &m->security_counter);
	case TERN_MK_BOARDS:
		return read_boards(r, m);
	case TERN_MK_CHUNK_SIZE:
		rc = read_u64_max(r, &v, TERN_CHUNK_MAX);
		m->chunk_size = (uint32_t)v;
		return rc;
	case TERN_MK_COMPONENTS:
		return read_components(r, m);
	case TERN_MK_NOTES:
		rc = tern_cbor_read_text(r, &m->notes, &m->notes_len);
		if (!rc && m->notes_len > TERN_NOTES_MAX)
			rc = TERN_E_TOO_LARGE;
		return rc;
	case TERN_MK_CREATED:
		return tern_cbor_read_uint(r, &m->created);
	case TERN_MK_EARLY_LIFE:
		return read_early_life(r, &m->early_life);
	default:
		return tern_cbor_skip(r);
	}
}

int tern_manifest_decode(struct tern_manifest *m, const uint8_t *buf, size_t len)
{
	static const struct tern_early_life el_default = TERN_EARLY_LIFE_DEFAULT;
	struct tern_cbor_reader r;
	uint64_t n, key, seen = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	m->early_life = el_default;
	if (len > TERN_MANIFEST_MAX)
		return TERN_E_TOO_LARGE;
	tern_cbor_reader_init(&r, buf, len);
	if ((rc = tern_cbor_read_map_max(&r, &n, MAP_MAX_ENTRIES)))
		return rc;
	for (uint64_t i = 0; i < n; i++) {
		if ((rc = tern_cbor_read_map_key(&r, &key, &seen)))
			return rc;
		if (key != UINT64_MAX) /* else skipped with its value */
			rc = read_entry(&r, key, m);
		if (rc)
			return rc;
	}
	if (tern_cbor_remaining(&r))
		return TERN_E_MALFORMED;
	const uint64_t required =
	    (1u << TERN_MK_FORMAT) | (1u << TERN_MK_RELEASE_ID) | (1u << TERN_MK_VERSION) |
	    (1u << TERN_MK_SEQUENCE) | (1u << TERN_MK_SECURITY_COUNTER) | (1u << TERN_MK_BOARDS) |
	    (1u << TERN_MK_CHUNK_SIZE) | (1u << TERN_MK_COMPONENTS) | (1u << TERN_MK_CREATED);
	if ((seen & required) != required)
		return TERN_E_MALFORMED;
	return tern_manifest_check(m);
}

bool tern_manifest_has_board(const struct tern_manifest *m, const char *board)
{
	for (size_t i = 0; i < m->n_boards; i++)
		if (strcmp(m->boards[i], board) == 0)
			return true;
	return false;
}

uint64_t tern_chunk_count(uint64_t size, uint32_t chunk_size)
{
	return chunk_size ? size / chunk_size + (size % chunk_size != 0) : 0;
}

uint32_t tern_chunk_len(uint64_t size, uint32_t chunk_size, uint64_t i)
{
	/* Compare indices, not offsets: i * chunk_size wraps for indices far past the end. */
	if (i >= tern_chunk_count(size, chunk_size))
		return 0;
	uint64_t left = size - i * chunk_size;
	return left < chunk_size ? (uint32_t)left : chunk_size;
}

uint64_t tern_index_size(uint64_t size, uint32_t chunk_size)
{
	uint64_t n = tern_chunk_count(size, chunk_size);
	return n > UINT64_MAX / TERN_SHA256_LEN ? UINT64_MAX : n * TERN_SHA256_LEN;
}
