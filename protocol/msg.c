/* MQTT messages: desired state (signed), device state and events. No heap. */
#include "tern/tern_msg.h"

#include "tern/tern_cbor.h"
#include "tern/tern_err.h"

#include <string.h>

#define MAP_MAX_ENTRIES 32

/* ---- Wire status */

struct status_map {
	int err;
	const char *name;
};

/* Indexed by enum tern_wire_status. */
static const struct status_map statuses[TERN_ST__COUNT] = {
    [TERN_ST_OK] = {0, "ok"},
    [TERN_ST_ERROR] = {TERN_E_INVAL, "error"},
    [TERN_ST_NOMEM] = {TERN_E_NOMEM, "no-memory"},
    [TERN_ST_IO] = {TERN_E_IO, "io"},
    [TERN_ST_TRUNCATED] = {TERN_E_TRUNCATED, "truncated"},
    [TERN_ST_MALFORMED] = {TERN_E_MALFORMED, "malformed"},
    [TERN_ST_TOO_LARGE] = {TERN_E_TOO_LARGE, "too-large"},
    [TERN_ST_UNSUPPORTED_ALG] = {TERN_E_UNSUPPORTED_ALG, "unsupported-algorithm"},
    [TERN_ST_BAD_SIGNATURE] = {TERN_E_BAD_SIGNATURE, "bad-signature"},
    [TERN_ST_UNKNOWN_KEY] = {TERN_E_UNKNOWN_KEY, "unknown-key"},
    [TERN_ST_DIGEST] = {TERN_E_DIGEST, "digest-mismatch"},
    [TERN_ST_CRITICAL] = {TERN_E_CRITICAL, "unknown-critical"},
    [TERN_ST_FORMAT_VERSION] = {TERN_E_FORMAT_VERSION, "format-version"},
    [TERN_ST_WRONG_BOARD] = {TERN_E_WRONG_BOARD, "wrong-board"},
    [TERN_ST_OLD_SEQUENCE] = {TERN_E_OLD_SEQUENCE, "not-newer"},
    [TERN_ST_BELOW_FLOOR] = {TERN_E_BELOW_FLOOR, "below-floor"},
    [TERN_ST_SLOT_TOO_SMALL] = {TERN_E_SLOT_TOO_SMALL, "slot-too-small"},
    [TERN_ST_BUSY] = {TERN_E_BUSY, "busy"},
    [TERN_ST_STATE] = {TERN_E_STATE, "bad-state"},
    [TERN_ST_NOT_FOUND] = {TERN_E_NOT_FOUND, "not-found"},
    [TERN_ST_FLASH] = {TERN_E_FLASH, "flash"},
    [TERN_ST_POWER_CUT] = {TERN_E_POWER_CUT, "power-cut"},
    [TERN_ST_WRONG_DEVICE] = {TERN_E_WRONG_DEVICE, "wrong-device"},
    [TERN_ST_OLD_GENERATION] = {TERN_E_OLD_GENERATION, "old-generation"},
    [TERN_ST_BROKER] = {TERN_E_BROKER, "broker"},
    [TERN_ST_CRC] = {TERN_E_CRC, "crc"},
    [TERN_ST_UNKNOWN_TYPE] = {TERN_E_DEVICE, "unknown-type"},
    [TERN_ST_PROVISIONED] = {TERN_E_EXISTS, "provisioned"},
    [TERN_ST_OFFSET] = {TERN_E_OFFSET, "bad-offset"},
    [TERN_ST_GEOMETRY] = {TERN_E_GEOMETRY, "chunk-geometry"},
    [TERN_ST_HEALTH] = {TERN_E_HEALTH, "health-check-failed"},
    [TERN_ST_TRIAL_BOOT] = {TERN_E_TRIAL_BOOT, "trial-boot-failed"},
    [TERN_ST_CANCELED] = {TERN_E_CANCELED, "canceled"},
    [TERN_ST_NO_BOOTCTL] = {TERN_E_NO_BOOTCTL, "no-boot-control"},
    [TERN_ST_NO_IMAGE] = {TERN_E_NO_IMAGE, "no-image"},
};

uint16_t tern_status_from_err(int rc)
{
	if (rc == 0)
		return TERN_ST_OK;
	for (uint16_t i = 2; i < TERN_ST__COUNT; i++)
		if (statuses[i].err == rc)
			return i;
	return TERN_ST_ERROR;
}

int tern_status_to_err(uint64_t status)
{
	return status < TERN_ST__COUNT ? statuses[status].err : TERN_E_MALFORMED;
}

const char *tern_status_name(uint64_t status)
{
	return status < TERN_ST__COUNT ? statuses[status].name : "unknown";
}

static const char *const action_names[TERN_ACTION__COUNT] = {"install", "activate", "revert"};
static const char *const activate_names[TERN_ACTIVATE__COUNT] = {"now", "later"};
static const char *const state_names[TERN_STATE__COUNT] = {
    "idle", "downloading", "verifying", "staged", "trial", "confirmed", "rolled-back", "failed"};
static const char *const event_names[TERN_EV__COUNT] = {"transition", "refused", "error"};

const char *tern_action_name(enum tern_action a)
{
	return (unsigned)a < TERN_ACTION__COUNT ? action_names[a] : "unknown";
}

const char *tern_activate_name(enum tern_activate_mode m)
{
	return (unsigned)m < TERN_ACTIVATE__COUNT ? activate_names[m] : "unknown";
}

const char *tern_dev_state_name(uint64_t state)
{
	return state < TERN_STATE__COUNT ? state_names[state] : "unknown";
}

const char *tern_event_kind_name(uint64_t kind)
{
	return kind < TERN_EV__COUNT ? event_names[kind] : "unknown";
}

/* ---- Decoding helpers */

static int read_enum(struct tern_cbor_reader *r, uint64_t count, uint64_t *v)
{
	int rc = tern_cbor_read_uint(r, v);
	if (!rc && *v >= count)
		rc = TERN_E_MALFORMED;
	return rc;
}

static int read_u32(struct tern_cbor_reader *r, uint32_t *v)
{
	uint64_t u;
	int rc = tern_cbor_read_uint(r, &u);
	if (!rc && u > UINT32_MAX)
		rc = TERN_E_TOO_LARGE;
	if (!rc)
		*v = (uint32_t)u;
	return rc;
}

/* Reads an id field: text of [A-Za-z0-9._-], at most @size - 1 bytes. */
static int read_id(struct tern_cbor_reader *r, char *out, size_t size)
{
	int rc = tern_cbor_read_text_into(r, out, size);
	if (!rc && !tern_topic_id_valid(out, size - 1))
		rc = TERN_E_MALFORMED;
	return rc;
}

static bool has_all(uint64_t seen, uint64_t required)
{
	return (seen & required) == required;
}

#define BIT(k) ((uint64_t)1 << (k))

/* ---- Desired state */

int tern_desired_check(const struct tern_desired *d)
{
	if (!tern_topic_id_valid(d->device_id, TERN_DEVICE_ID_MAX) ||
	    !tern_topic_id_valid(d->release_id, TERN_RELEASE_ID_MAX) || d->generation == 0 ||
	    (unsigned)d->action >= TERN_ACTION__COUNT ||
	    (unsigned)d->activate >= TERN_ACTIVATE__COUNT)
		return TERN_E_MALFORMED;
	return 0;
}

size_t tern_desired_encode(const struct tern_desired *d, uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	if (tern_desired_check(d))
		return 0;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, 7);
	tern_cbor_put_uint(&w, TERN_DK_DEVICE);
	tern_cbor_put_cstr(&w, d->device_id);
	tern_cbor_put_uint(&w, TERN_DK_GENERATION);
	tern_cbor_put_uint(&w, d->generation);
	tern_cbor_put_uint(&w, TERN_DK_RELEASE);
	tern_cbor_put_cstr(&w, d->release_id);
	tern_cbor_put_uint(&w, TERN_DK_SEQUENCE);
	tern_cbor_put_uint(&w, d->sequence);
	tern_cbor_put_uint(&w, TERN_DK_ACTION);
	tern_cbor_put_uint(&w, (uint64_t)d->action);
	tern_cbor_put_uint(&w, TERN_DK_ACTIVATE);
	tern_cbor_put_uint(&w, (uint64_t)d->activate);
	tern_cbor_put_uint(&w, TERN_DK_ISSUED);
	tern_cbor_put_uint(&w, d->issued);
	size_t n = tern_cbor_writer_len(&w);
	return n > TERN_DESIRED_MAX ? 0 : n;
}

int tern_desired_decode(struct tern_desired *d, const uint8_t *buf, size_t len)
{
	struct tern_cbor_reader r;
	uint64_t n, key, seen = 0, v;
	int rc;

	memset(d, 0, sizeof(*d));
	if (len > TERN_DESIRED_MAX)
		return TERN_E_TOO_LARGE;
	tern_cbor_reader_init(&r, buf, len);
	if ((rc = tern_cbor_read_map_max(&r, &n, MAP_MAX_ENTRIES)))
		return rc;
	for (uint64_t i = 0; i < n && !rc; i++) {
		if ((rc = tern_cbor_read_map_key(&r, &key, &seen)))
			break;
		switch (key) {
		case UINT64_MAX:
			break;
		case TERN_DK_DEVICE:
			rc = read_id(&r, d->device_id, sizeof(d->device_id));
			break;
		case TERN_DK_GENERATION:
			rc = tern_cbor_read_uint(&r, &d->generation);
			break;
		case TERN_DK_RELEASE:
			rc = read_id(&r, d->release_id, sizeof(d->release_id));
			break;
		case TERN_DK_SEQUENCE:
			rc = tern_cbor_read_uint(&r, &d->sequence);
			break;
		case TERN_DK_ACTION:
			rc = read_enum(&r, TERN_ACTION__COUNT, &v);
			d->action = (enum tern_action)v;
			break;
		case TERN_DK_ACTIVATE:
			rc = read_enum(&r, TERN_ACTIVATE__COUNT, &v);
			d->activate = (enum tern_activate_mode)v;
			break;
		case TERN_DK_ISSUED:
			rc = tern_cbor_read_uint(&r, &d->issued);
			break;
		default:
			rc = tern_cbor_skip(&r);
		}
	}
	if (rc)
		return rc;
	if (tern_cbor_remaining(&r))
		return TERN_E_MALFORMED;
	const uint64_t required = BIT(TERN_DK_DEVICE) | BIT(TERN_DK_GENERATION) |
				  BIT(TERN_DK_RELEASE) | BIT(TERN_DK_SEQUENCE) |
				  BIT(TERN_DK_ACTION) | BIT(TERN_DK_ACTIVATE) | BIT(TERN_DK_ISSUED);
	if (!has_all(seen, required))
		return TERN_E_MALFORMED;
	return tern_desired_check(d);
}

int tern_desired_open(struct tern_desired *d, const uint8_t *buf, size_t len,
		      const struct tern_keyring *kr, const char *device_id,
		      uint64_t last_generation)
{
	struct tern_sign1 s;
	memset(d, 0, sizeof(*d));
	if (len > TERN_SIGNED_DESIRED_MAX)
		return TERN_E_TOO_LARGE;
	int rc = tern_cose_sign1_parse(&s, buf, len);
	if (rc)
		return rc;
	if (s.total_len != len)
		return TERN_E_TRAILING;
	const struct tern_pubkey *pk = tern_keyring_find(kr, s.kid, s.kid_len);
	if (!pk)
		return TERN_E_UNKNOWN_KEY;
	rc = tern_cose_sign1_verify(&s, pk, (const uint8_t *)TERN_DESIRED_AAD,
				    sizeof(TERN_DESIRED_AAD) - 1);
	if (rc)
		return rc;
	if ((rc = tern_desired_decode(d, s.payload, s.payload_len)))
		return rc;
	if (strcmp(d->device_id, device_id) != 0)
		return TERN_E_WRONG_DEVICE;
	if (d->generation <= last_generation)
		return TERN_E_OLD_GENERATION;
	return 0;
}

/* ---- Device state */

static bool slot_empty(const struct tern_slot_info *sl)
{
	return sl->release_id[0] == '\0';
}

static void put_slot(struct tern_cbor_writer *w, const struct tern_slot_info *sl)
{
	if (slot_empty(sl)) {
		tern_cbor_put_map(w, 0);
		return;
	}
	tern_cbor_put_map(w, 4);
	tern_cbor_put_uint(w, TERN_SLK_RELEASE);
	tern_cbor_put_cstr(w, sl->release_id);
	tern_cbor_put_uint(w, TERN_SLK_VERSION);
	tern_cbor_put_cstr(w, sl->version);
	tern_cbor_put_uint(w, TERN_SLK_SEQUENCE);
	tern_cbor_put_uint(w, sl->sequence);
	tern_cbor_put_uint(w, TERN_SLK_GOOD);
	tern_cbor_put_bool(w, sl->good);
}

static int state_check(const struct tern_state_msg *s)
{
	if (!tern_topic_id_valid(s->device_id, TERN_DEVICE_ID_MAX) ||
	    !tern_topic_id_valid(s->board, TERN_NAME_MAX) ||
	    (unsigned)s->state >= TERN_STATE__COUNT || s->active_slot >= TERN_SLOTS ||
	    s->last_status >= TERN_ST__COUNT)
		return TERN_E_MALFORMED;
	if (s->target[0] && !tern_topic_id_valid(s->target, TERN_RELEASE_ID_MAX))
		return TERN_E_MALFORMED;
	for (size_t i = 0; i < TERN_SLOTS; i++) {
		const struct tern_slot_info *sl = &s->slots[i];
		if (slot_empty(sl))
			continue;
		if (!tern_topic_id_valid(sl->release_id, TERN_RELEASE_ID_MAX) ||
		    strnlen(sl->version, TERN_VERSION_MAX + 1) == 0 ||
		    strnlen(sl->version, TERN_VERSION_MAX + 1) > TERN_VERSION_MAX)
			return TERN_E_MALFORMED;
	}
	if (s->last_event_len) { /* an event of this device, whole */
		struct tern_event_msg e;
		if (s->last_event_len > sizeof(s->last_event) ||
		    tern_event_decode(&e, s->last_event, s->last_event_len) ||
		    strcmp(e.device_id, s->device_id))
			return TERN_E_MALFORMED;
	}
	return 0;
}

size_t tern_state_encode(const struct tern_state_msg *s, uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	if (state_check(s))
		return 0;
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, 11u + (s->target[0] ? 1u : 0u) + (s->last_event_len ? 1u : 0u));
	tern_cbor_put_uint(&w, TERN_SK_DEVICE);
	tern_cbor_put_cstr(&w, s->device_id);
	tern_cbor_put_uint(&w, TERN_SK_BOARD);
	tern_cbor_put_cstr(&w, s->board);
	tern_cbor_put_uint(&w, TERN_SK_STATE);
	tern_cbor_put_uint(&w, (uint64_t)s->state);
	tern_cbor_put_uint(&w, TERN_SK_ACTIVE_SLOT);
	tern_cbor_put_uint(&w, s->active_slot);
	tern_cbor_put_uint(&w, TERN_SK_SLOTS);
	tern_cbor_put_array(&w, TERN_SLOTS);
	for (size_t i = 0; i < TERN_SLOTS; i++)
		put_slot(&w, &s->slots[i]);
	if (s->target[0]) {
		tern_cbor_put_uint(&w, TERN_SK_TARGET);
		tern_cbor_put_cstr(&w, s->target);
	}
	tern_cbor_put_uint(&w, TERN_SK_DONE);
	tern_cbor_put_uint(&w, s->done);
	tern_cbor_put_uint(&w, TERN_SK_TOTAL);
	tern_cbor_put_uint(&w, s->total);
	tern_cbor_put_uint(&w, TERN_SK_LAST_STATUS);
	tern_cbor_put_uint(&w, s->last_status);
	tern_cbor_put_uint(&w, TERN_SK_GENERATION);
	tern_cbor_put_uint(&w, s->generation);
	tern_cbor_put_uint(&w, TERN_SK_TIME);
	tern_cbor_put_uint(&w, s->time);
	tern_cbor_put_uint(&w, TERN_SK_FLOOR);
	tern_cbor_put_uint(&w, s->floor);
	if (s->last_event_len) {
		tern_cbor_put_uint(&w, TERN_SK_LAST_EVENT);
		tern_cbor_put_bytes(&w, s->last_event, s->last_event_len);
	}
	size_t n = tern_cbor_writer_len(&w);
	return n > TERN_STATE_MAX ? 0 : n;
}

static int read_slot(struct tern_cbor_reader *r, struct tern_slot_info *sl)
{
	uint64_t n, key, seen = 0;
	int rc = tern_cbor_read_map_max(r, &n, MAP_MAX_ENTRIES);
	for (uint64_t i = 0; i < n && !rc; i++) {
		if ((rc = tern_cbor_read_map_key(r, &key, &seen)))
			break;
		switch (key) {
		case UINT64_MAX:
			break;
		case TERN_SLK_RELEASE:
			rc = read_id(r, sl->release_id, sizeof(sl->release_id));
			break;
		case TERN_SLK_VERSION:
			rc = tern_cbor_read_text_into(r, sl->version, sizeof(sl->version));
			break;
		case TERN_SLK_SEQUENCE:
			rc = tern_cbor_read_uint(r, &sl->sequence);
			break;
		case TERN_SLK_GOOD:
			rc = tern_cbor_read_bool(r, &sl->good);
			break;
		default:
			rc = tern_cbor_skip(r);
		}
	}
	if (rc)
		return rc;
	/* An empty slot has no release; a filled one has at least release and version. */
	bool has_release = seen & BIT(TERN_SLK_RELEASE);
	if (has_release != (bool)(seen & BIT(TERN_SLK_VERSION)))
		return TERN_E_MALFORMED;
	return 0;
}

static int read_slots(struct tern_cbor_reader *r, struct tern_state_msg *s)
{
	uint64_t n;
	int rc = tern_cbor_read_array(r, &n);
	if (rc)
		return rc;
	if (n != TERN_SLOTS)
		return TERN_E_MALFORMED;
	for (size_t i = 0; i < TERN_SLOTS; i++)
		if ((rc = read_slot(r, &s->slots[i])))
			return rc;
	return 0;
}

int tern_state_decode(struct tern_state_msg *s, const uint8_t *buf, size_t len)
{
	struct tern_cbor_reader r;
	uint64_t n, key, seen = 0, v;
	int rc;

	memset(s, 0, sizeof(*s));
	if (len > TERN_STATE_MAX)
		return TERN_E_TOO_LARGE;
	tern_cbor_reader_init(&r, buf, len);
	if ((rc = tern_cbor_read_map_max(&r, &n, MAP_MAX_ENTRIES)))
		return rc;
	for (uint64_t i = 0; i < n && !rc; i++) {
		if ((rc = tern_cbor_read_map_key(&r, &key, &seen)))
			break;
		switch (key) {
		case UINT64_MAX:
			break;
		case TERN_SK_DEVICE:
			rc = read_id(&r, s->device_id, sizeof(s->device_id));
			break;
		case TERN_SK_BOARD:
			rc = read_id(&r, s->board, sizeof(s->board));
			break;
		case TERN_SK_STATE:
			rc = read_enum(&r, TERN_STATE__COUNT, &v);
			s->state = (enum tern_dev_state)v;
			break;
		case TERN_SK_ACTIVE_SLOT:
			rc = read_enum(&r, TERN_SLOTS, &v);
			s->active_slot = (uint32_t)v;
			break;
		case TERN_SK_SLOTS:
			rc = read_slots(&r, s);
			break;
		case TERN_SK_TARGET:
			rc = read_id(&r, s->target, sizeof(s->target));
			break;
		case TERN_SK_DONE:
			rc = tern_cbor_read_uint(&r, &s->done);
			break;
		case TERN_SK_TOTAL:
			rc = tern_cbor_read_uint(&r, &s->total);
			break;
		case TERN_SK_LAST_STATUS:
			/* A newer peer may send a status this one does not know: keep it as ERROR. */
			rc = tern_cbor_read_uint(&r, &v);
			s->last_status = (uint16_t)(v < TERN_ST__COUNT ? v : TERN_ST_ERROR);
			break;
		case TERN_SK_GENERATION:
			rc = tern_cbor_read_uint(&r, &s->generation);
			break;
		case TERN_SK_TIME:
			rc = tern_cbor_read_uint(&r, &s->time);
			break;
		case TERN_SK_FLOOR:
			rc = read_u32(&r, &s->floor);
			break;
		case TERN_SK_LAST_EVENT: {
			const uint8_t *p;
			size_t n_ev;
			if (!(rc = tern_cbor_read_bytes(&r, &p, &n_ev))) {
				if (n_ev == 0 || n_ev > sizeof(s->last_event))
					rc = TERN_E_MALFORMED;
				else
					memcpy(s->last_event, p, s->last_event_len = n_ev);
			}
			break;
		}
		default:
			rc = tern_cbor_skip(&r);
		}
	}
	if (rc)
		return rc;
	if (tern_cbor_remaining(&r))
		return TERN_E_MALFORMED;
	const uint64_t required = BIT(TERN_SK_DEVICE) | BIT(TERN_SK_BOARD) | BIT(TERN_SK_STATE) |
				  BIT(TERN_SK_ACTIVE_SLOT) | BIT(TERN_SK_SLOTS);
	if (!has_all(seen, required))
		return TERN_E_MALFORMED;
	return state_check(s);
}

/* ---- Events */

static int event_check(const struct tern_event_msg *e)
{
	if (!tern_topic_id_valid(e->device_id, TERN_DEVICE_ID_MAX) ||
	    (unsigned)e->kind >= TERN_EV__COUNT || (unsigned)e->from >= TERN_STATE__COUNT ||
	    (unsigned)e->to >= TERN_STATE__COUNT || e->status >= TERN_ST__COUNT)
		return TERN_E_MALFORMED;
	if (e->release_id[0] && !tern_topic_id_valid(e->release_id, TERN_RELEASE_ID_MAX))
		return TERN_E_MALFORMED;
	if (strnlen(e->detail, TERN_EVENT_DETAIL_MAX + 1) > TERN_EVENT_DETAIL_MAX)
		return TERN_E_TOO_LARGE;
	return 0;
}

size_t tern_event_encode(const struct tern_event_msg *e, uint8_t *buf, size_t size)
{
	struct tern_cbor_writer w;
	if (event_check(e))
		return 0;
	size_t n_keys = 7u + (e->release_id[0] ? 1u : 0u) + (e->detail[0] ? 1u : 0u) +
			(e->generation ? 1u : 0u);
	tern_cbor_writer_init(&w, buf, size);
	tern_cbor_put_map(&w, n_keys);
	tern_cbor_put_uint(&w, TERN_EVK_DEVICE);
	tern_cbor_put_cstr(&w, e->device_id);
	tern_cbor_put_uint(&w, TERN_EVK_SEQ);
	tern_cbor_put_uint(&w, e->seq);
	tern_cbor_put_uint(&w, TERN_EVK_TIME);
	tern_cbor_put_uint(&w, e->time);
	tern_cbor_put_uint(&w, TERN_EVK_KIND);
	tern_cbor_put_uint(&w, (uint64_t)e->kind);
	tern_cbor_put_uint(&w, TERN_EVK_FROM);
	tern_cbor_put_uint(&w, (uint64_t)e->from);
	tern_cbor_put_uint(&w, TERN_EVK_TO);
	tern_cbor_put_uint(&w, (uint64_t)e->to);
	if (e->release_id[0]) {
		tern_cbor_put_uint(&w, TERN_EVK_RELEASE);
		tern_cbor_put_cstr(&w, e->release_id);
	}
	tern_cbor_put_uint(&w, TERN_EVK_STATUS);
	tern_cbor_put_uint(&w, e->status);
	if (e->detail[0]) {
		tern_cbor_put_uint(&w, TERN_EVK_DETAIL);
		tern_cbor_put_cstr(&w, e->detail);
	}
	if (e->generation) {
		tern_cbor_put_uint(&w, TERN_EVK_GENERATION);
		tern_cbor_put_uint(&w, e->generation);
	}
	size_t n = tern_cbor_writer_len(&w);
	return n > TERN_EVENT_MAX ? 0 : n;
}

int tern_event_decode(struct tern_event_msg *e, const uint8_t *buf, size_t len)
{
	struct tern_cbor_reader r;
	uint64_t n, key, seen = 0, v;
	int rc;

	memset(e, 0, sizeof(*e));
	if (len > TERN_EVENT_MAX)
		return TERN_E_TOO_LARGE;
	tern_cbor_reader_init(&r, buf, len);
	if ((rc = tern_cbor_read_map_max(&r, &n, MAP_MAX_ENTRIES)))
		return rc;
	for (uint64_t i = 0; i < n && !rc; i++) {
		if ((rc = tern_cbor_read_map_key(&r, &key, &seen)))
			break;
		switch (key) {
		case UINT64_MAX:
			break;
		case TERN_EVK_DEVICE:
			rc = read_id(&r, e->device_id, sizeof(e->device_id));
			break;
		case TERN_EVK_SEQ:
			rc = tern_cbor_read_uint(&r, &e->seq);
			break;
		case TERN_EVK_TIME:
			rc = tern_cbor_read_uint(&r, &e->time);
			break;
		case TERN_EVK_KIND:
			rc = read_enum(&r, TERN_EV__COUNT, &v);
			e->kind = (enum tern_event_kind)v;
			break;
		case TERN_EVK_FROM:
			rc = read_enum(&r, TERN_STATE__COUNT, &v);
			e->from = (enum tern_dev_state)v;
			break;
		case TERN_EVK_TO:
			rc = read_enum(&r, TERN_STATE__COUNT, &v);
			e->to = (enum tern_dev_state)v;
			break;
		case TERN_EVK_RELEASE:
			rc = read_id(&r, e->release_id, sizeof(e->release_id));
			break;
		case TERN_EVK_STATUS:
			rc = tern_cbor_read_uint(&r, &v);
			e->status = (uint16_t)(v < TERN_ST__COUNT ? v : TERN_ST_ERROR);
			break;
		case TERN_EVK_DETAIL:
			rc = tern_cbor_read_text_into(&r, e->detail, sizeof(e->detail));
			break;
		case TERN_EVK_GENERATION:
			rc = tern_cbor_read_uint(&r, &e->generation);
			break;
		default:
			rc = tern_cbor_skip(&r);
		}
	}
	if (rc)
		return rc;
	if (tern_cbor_remaining(&r))
		return TERN_E_MALFORMED;
	const uint64_t required = BIT(TERN_EVK_DEVICE) | BIT(TERN_EVK_SEQ) | BIT(TERN_EVK_TIME) |
				  BIT(TERN_EVK_KIND) | BIT(TERN_EVK_FROM) | BIT(TERN_EVK_TO) |
				  BIT(TERN_EVK_STATUS);
	if (!has_all(seen, required))
		return TERN_E_MALFORMED;
	return event_check(e);
}
