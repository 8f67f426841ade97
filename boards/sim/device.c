/* A simulated device: sim images, factory provisioning, the boot loop, installs. */
#include "tern/tern_sim.h"

#include "tern/tern_err.h"
#include "tern/tern_release.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_FORMAT 1u

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Header: magic u32, format u16, health u8, reserved u8, size u64, version[33], zero pad. */
int tern_sim_image_make(uint8_t *out, uint64_t size, enum tern_sim_health health,
			const char *version)
{
	size_t vlen = strlen(version);
	if (size < TERN_SIM_IMAGE_HDR_LEN || vlen == 0 || vlen > TERN_VERSION_MAX)
		return TERN_E_INVAL;
	memset(out, 0, TERN_SIM_IMAGE_HDR_LEN);
	put_le(out, TERN_SIM_IMAGE_MAGIC, 4);
	put_le(out + 4, HDR_FORMAT, 2);
	out[6] = (uint8_t)health;
	put_le(out + 8, size, 8);
	memcpy(out + 16, version, vlen);
	/* The body: a pattern seeded by the version and health, so images differ. */
	uint32_t x = 2166136261u;
	for (size_t i = 0; i < vlen; i++)
		x = (x ^ (uint8_t)version[i]) * 16777619u;
	x ^= (uint32_t)health * 0x9e3779b9u;
	x |= 1u;
	for (uint64_t i = TERN_SIM_IMAGE_HDR_LEN; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		out[i] = (uint8_t)x;
	}
	return 0;
}

bool tern_sim_image_parse(const uint8_t *buf, size_t len, struct tern_sim_image *img)
{
	if (len < TERN_SIM_IMAGE_HDR_LEN || get_le(buf, 4) != TERN_SIM_IMAGE_MAGIC ||
	    get_le(buf + 4, 2) != HDR_FORMAT || buf[6] > TERN_SIM_CRASH)
		return false;
	img->health = (enum tern_sim_health)buf[6];
	img->size = get_le(buf + 8, 8);
	memcpy(img->version, buf + 16, TERN_VERSION_MAX);
	img->version[TERN_VERSION_MAX] = '\0';
	return img->size >= TERN_SIM_IMAGE_HDR_LEN;
}

const char *tern_sim_health_name(enum tern_sim_health h)
{
	switch (h) {
	case TERN_SIM_HEALTHY:
		return "ok";
	case TERN_SIM_UNHEALTHY:
		return "fail";
	case TERN_SIM_CRASH:
		return "crash";
	}
	return "unknown";
}

static void logf_(struct tern_sim_device *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logf_(struct tern_sim_device *d, const char *fmt, ...)
{
	if (!d->log)
		return;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= 0)
		d->log(d->log_arg, line);
}

void tern_sim_device_init(struct tern_sim_device *d, const struct tern_sim_flash *f,
			  const struct tern_keyring *kr, const char *board_id)
{
	memset(d, 0, sizeof(*d));
	d->flash = *f;
	tern_sim_flash_board(&d->flash, &d->board);
	if (kr)
		d->keyring = *kr;
	snprintf(d->board_id, sizeof(d->board_id), "%s", board_id ? board_id : TERN_SIM_BOARD_ID);
	for (int p = 0; p < TERN_N_PAIRS; p++)
		d->boot.slot[p] = TERN_SLOT_NONE;
}

int tern_sim_provision(struct tern_sim_device *d, const uint8_t *image, uint64_t len,
		       const char *version, uint32_t chunk_size)
{
	const struct tern_board *b = &d->board;
	struct tern_area_info ai;
	int rc = b->ops->area_info(b->ctx, TERN_AREA_FW_A, &ai);
	if (rc)
		return rc;
	if (len == 0 || len > ai.size || chunk_size == 0 || chunk_size % ai.sector_size ||
	    strlen(version) > TERN_VERSION_MAX)
		return TERN_E_INVAL;
	uint64_t span = (len + ai.sector_size - 1) / ai.sector_size * ai.sector_size;
	if ((rc = b->ops->erase(b->ctx, TERN_AREA_FW_A, 0, span)))
		return rc;
	uint64_t whole = len - len % ai.write_align;
	if (whole && (rc = b->ops->write(b->ctx, TERN_AREA_FW_A, 0, image, (size_t)whole)))
		return rc;
	if (whole < len) {
		uint8_t tail[TERN_WRITE_ALIGN_MAX];
		memset(tail, 0xff, sizeof(tail));
		memcpy(tail, image + whole, (size_t)(len - whole));
		if ((rc = b->ops->write(b->ctx, TERN_AREA_FW_A, whole, tail, ai.write_align)))
			return rc;
	}
	struct tern_bootctl bc;
	memset(&bc, 0, sizeof(bc));
	bc.active[TERN_PAIR_FW] = 0;
	bc.active[TERN_PAIR_CFG] = TERN_SLOT_NONE;
	bc.trial_slot[TERN_PAIR_FW] = bc.trial_slot[TERN_PAIR_CFG] = TERN_SLOT_NONE;
	bc.last_event = TERN_EV_PROVISIONED;
	struct tern_slot_meta *m = &bc.slots[TERN_AREA_FW_A];
	m->state = TERN_SLOT_GOOD;
	m->size = len;
	m->chunk_size = chunk_size;
	snprintf(m->version, sizeof(m->version), "%s", version);
	/* The index digest: SHA-256 over the chunks' SHA-256 digests. */
	struct tern_sha256 ih;
	uint8_t dg[TERN_SHA256_LEN];
	tern_sha256_init(&ih);
	for (uint64_t off = 0; off < len; off += chunk_size) {
		uint64_t n = len - off < chunk_size ? len - off : chunk_size;
		tern_sha256(image + off, (size_t)n, dg);
		tern_sha256_update(&ih, dg, sizeof(dg));
	}
	tern_sha256_final(&ih, m->index_digest);
	return tern_bootctl_store(b, &bc, d->scratch);
}

int tern_sim_attach(struct tern_sim_device *d, const struct tern_boot_result *boot)
{
	struct tern_agent_config cfg = {
	    .board = &d->board,
	    .keyring = &d->keyring,
	    .board_id = d->board_id,
	    .verify_on_finish = false,
	};
	tern_agent_init(&d->agent, &cfg);
	d->boot = *boot;
	d->running = true;
	return tern_agent_start(&d->agent, boot);
}

static const char *slot_name(unsigned s)
{
	return s == 0 ? "A" : s == 1 ? "B" : "-";
}

int tern_sim_boot(struct tern_sim_device *d, unsigned max_boots)
{
	d->running = false;
	for (unsigned n = 0; n < max_boots; n++) {
		struct tern_boot_result res;
		int rc = tern_boot_select(&d->board, &res, d->scratch, sizeof(d->scratch));
		if (rc) {
			logf_(d, "boot: bootloader stopped: %s", tern_strerror(rc));
			return rc;
		}
		d->n_boots++;
		struct tern_sim_image img;
		uint8_t hdr[TERN_SIM_IMAGE_HDR_LEN];
		enum tern_area fw = tern_slot_area(TERN_PAIR_FW, res.slot[TERN_PAIR_FW]);
		if ((rc = d->board.ops->read(d->board.ctx, fw, 0, hdr, sizeof(hdr))))
			return rc;
		bool parsed = tern_sim_image_parse(hdr, sizeof(hdr), &img);
		enum tern_sim_health health = parsed ? img.health : TERN_SIM_CRASH;
		if (res.trial && d->force_trial_health)
			health = d->trial_health;
		logf_(d, "boot: slot %s%s, image %s (%s)", slot_name(res.slot[TERN_PAIR_FW]),
		      res.trial ? " on trial" : "", parsed ? img.version : "?",
		      tern_sim_health_name(health));
		if (health == TERN_SIM_CRASH) {
			logf_(d, "boot: image crashed before the agent started; watchdog reset");
			continue;
		}
		if ((rc = tern_sim_attach(d, &res)))
			return rc;
		if (d->agent.state != TERN_ST_TRIAL)
			return 0;
		rc = tern_agent_health(&d->agent, health == TERN_SIM_HEALTHY);
		if (rc)
			return rc;
		if (!tern_agent_reboot_needed(&d->agent)) {
			logf_(d, "agent: health check passed; confirmed");
			return 0;
		}
		logf_(d, "agent: health check failed; rolling back and rebooting");
		d->running = false;
	}
	logf_(d, "boot: no image started its agent after %u boots", max_boots);
	return TERN_E_NO_IMAGE;
}

/*
 * Where release bytes come from: a buffer, or a file mapped through a sliding window of
 * WINDOW bytes, so installing from a file copies nothing and keeps memory bounded.
 */
#define WINDOW (4u * 1024 * 1024)

struct rel_source {
	const uint8_t *mem; /* whole release in memory, or NULL */
	int fd;		    /* else this file */
	uint64_t size;	    /* bytes in the release */
	const uint8_t *win; /* the mapped window of the file, or NULL */
	uint64_t win_off;
	size_t win_len;
};

static void source_unmap(struct rel_source *src)
{
	if (src->win)
		munmap((void *)(uintptr_t)src->win, src->win_len);
	src->win = NULL;
}

/* Points @p at up to @want bytes at @pos (fewer only at the end of the release). */
static int source_get(struct rel_source *src, uint64_t pos, size_t want, const uint8_t **p,
		      size_t *got)
{
	if (pos >= src->size) {
		*got = 0;
		return 0;
	}
	if (want > src->size - pos)
		want = (size_t)(src->size - pos);
	if (src->mem) {
		*p = src->mem + pos;
		*got = want;
		return 0;
	}
	if (!src->win || pos < src->win_off || pos + want > src->win_off + src->win_len) {
		source_unmap(src);
		uint64_t start = pos - pos % WINDOW;
		uint64_t len =
		    src->size - start < 2ull * WINDOW ? src->size - start : 2ull * WINDOW;
		void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, src->fd, (off_t)start);
		if (m == MAP_FAILED)
			return TERN_E_IO;
		src->win = m;
		src->win_off = start;
		src->win_len = (size_t)len;
	}
	*p = src->win + (pos - src->win_off);
	*got = want;
	return 0;
}

/* Feeds one byte string of @len bytes at @pos (head included) in @piece-sized parts. */
static int feed_part(struct tern_sim_device *d, struct rel_source *src, unsigned comp, bool index,
		     uint64_t *pos, uint64_t len, size_t piece)
{
	const uint8_t *p;
	size_t got, head;
	int rc = source_get(src, *pos, 9, &p, &got);
	if (rc || (rc = tern_release_expect_bstr(p, got, len, &head)))
		return rc;
	*pos += head;
	for (uint64_t off = 0; off < len;) {
		size_t want = len - off < piece ? (size_t)(len - off) : piece;
		if ((rc = source_get(src, *pos + off, want, &p, &got)))
			return rc;
		if (got == 0)
			return TERN_E_TRUNCATED;
		rc = index ? tern_agent_feed_index(&d->agent, comp, off, p, got)
			   : tern_agent_feed(&d->agent, comp, off, p, got);
		if (rc)
			return rc;
		off += got;
	}
	*pos += len;
	return 0;
}

static int install_from(struct tern_sim_device *d, struct rel_source *src, size_t piece,
			bool revert)
{
	struct tern_release_head rh;
	const uint8_t *p;
	size_t got;
	int rc = source_get(src, 0, TERN_SIGNED_MANIFEST_MAX, &p, &got);
	if (rc || (rc = tern_release_parse_unverified(&rh, p, got)))
		return rc;
	rc = revert ? tern_agent_offer_revert(&d->agent, p, rh.head_len)
		    : tern_agent_offer(&d->agent, p, rh.head_len);
	if (rc)
		return rc;
	if (d->agent.state == TERN_ST_STAGED)
		return 0; /* this release is staged already */
	uint64_t pos = rh.head_len;
	const struct tern_manifest *m = &rh.manifest; /* its notes are not used */
	for (unsigned i = 0; i < m->n_components && rc == 0; i++) {
		const struct tern_component *c = &m->components[i];
		rc = feed_part(d, src, i, true, &pos, tern_index_size(c->size, m->chunk_size),
			       piece);
		if (rc == 0)
			rc = feed_part(d, src, i, false, &pos, c->size, piece);
	}
	if (rc == 0 && pos != src->size)
		rc = TERN_E_TRAILING;
	if (rc == 0)
		rc = tern_agent_finish(&d->agent);
	if (rc && rc != TERN_E_POWER_CUT && d->agent.state == TERN_ST_DOWNLOADING) {
		int crc = tern_agent_cancel(&d->agent, rc);
		(void)crc; /* the first error is the one to report */
	}
	return rc;
}

int tern_sim_install_buffer(struct tern_sim_device *d, const uint8_t *rel, size_t len, size_t piece,
			    bool revert)
{
	struct rel_source src = {.mem = rel, .fd = -1, .size = len};
	return install_from(d, &src, piece ? piece : 64 * 1024, revert);
}

int tern_sim_install_fd(struct tern_sim_device *d, int fd, size_t piece, bool revert)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return TERN_E_IO;
	if (piece == 0 || piece > WINDOW)
		piece = WINDOW;
	struct rel_source src = {.mem = NULL, .fd = fd, .size = (uint64_t)st.st_size};
	int rc = install_from(d, &src, piece, revert);
	source_unmap(&src);
	return rc;
}
