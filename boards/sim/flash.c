/* Simulated flash with real rules and power cuts, in memory or in a file. */
#include "tern/tern_sim.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t round_up(uint64_t v, uint64_t unit)
{
	return (v + unit - 1) / unit * unit;
}

void tern_sim_geometry_default(struct tern_sim_geometry *g, uint64_t slot_size)
{
	memset(g, 0, sizeof(*g));
	g->sector_size = 4096;
	g->write_align = 8;
	g->slot_size = round_up(slot_size, g->sector_size);
	g->cfg_slot_size = 64 * 1024;
}

/* Journal big enough for both slots cut into one chunk per sector. */
static uint64_t journal_default(const struct tern_sim_geometry *g)
{
	uint64_t n = g->slot_size / g->sector_size + g->cfg_slot_size / g->sector_size;
	return 4ull * g->sector_size +
	       round_up(n * g->write_align + 4u * g->write_align, g->sector_size) +
	       round_up((g->slot_size / g->sector_size) * TERN_SHA256_LEN, g->sector_size) +
	       round_up((g->cfg_slot_size / g->sector_size) * TERN_SHA256_LEN, g->sector_size);
}

static int layout(struct tern_sim_flash *f, const struct tern_sim_geometry *g)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->geo = *g;
	struct tern_sim_geometry *geo = &f->geo;
	uint32_t s = geo->sector_size, a = geo->write_align;
	if (s < TERN_BOOTCTL_REC_SIZE || (s & (s - 1)) || a == 0 || a > TERN_WRITE_ALIGN_MAX ||
	    (a & (a - 1)) || geo->slot_size == 0)
		return TERN_E_INVAL;
	geo->slot_size = round_up(geo->slot_size, s);
	geo->cfg_slot_size = round_up(geo->cfg_slot_size ? geo->cfg_slot_size : s, s);
	if (geo->journal_size == 0)
		geo->journal_size = journal_default(geo);
	geo->journal_size = round_up(geo->journal_size, s);
	uint64_t sizes[TERN_AREA__COUNT] = {geo->slot_size,	geo->slot_size, geo->cfg_slot_size,
					    geo->cfg_slot_size, 2ull * s,	geo->journal_size};
	uint64_t off = 0;
	for (int i = 0; i < TERN_AREA__COUNT; i++) {
		f->area_off[i] = off;
		f->area_size[i] = sizes[i];
		off += sizes[i];
	}
	f->total = off;
	return 0;
}

static int raw_fill(struct tern_sim_flash *f, uint64_t off, uint64_t len, bool garbage);
static int raw_read(struct tern_sim_flash *f, uint64_t off, void *buf, size_t len);

/* True when all @n (>= 1) bytes read erased: the first is 0xFF and each equals the next. */
static bool reads_erased(const uint8_t *p, size_t n)
{
	return p[0] == 0xff && memcmp(p, p + 1, n - 1) == 0;
}

uint64_t tern_sim_flash_size(const struct tern_sim_geometry *g)
{
	struct tern_sim_flash f;
	return layout(&f, g) ? 0 : f.total;
}

int tern_sim_flash_open_mem(struct tern_sim_flash *f, const struct tern_sim_geometry *g,
			    uint8_t *mem, bool erase)
{
	int rc = layout(f, g);
	if (rc)
		return rc;
	f->mem = mem;
	if (erase)
		memset(mem, 0xff, f->total);
	return 0;
}

/*
 * Reads the whole flash once and notes, per sector, the offset from which it reads erased
 * (0xFF) to its end: erases of erased sectors and the check before every write then need
 * no read. Without it, the first erase of every sector read it back (a 1000-device fleet
 * read a slot per device that way while downloading).
 */
static int learn_erased(struct tern_sim_flash *f)
{
	uint8_t tmp[16384];
	uint32_t sector = f->geo.sector_size;
	for (uint64_t base = 0; base < f->total; base += sector) {
		uint64_t from = 0; /* in-sector offset after the last byte that is not 0xFF */
		for (uint64_t in = 0; in < sector;) {
			size_t k = sector - in < sizeof(tmp) ? (size_t)(sector - in) : sizeof(tmp);
			int rc = raw_read(f, base + in, tmp, k);
			if (rc)
				return rc;
			if (!reads_erased(tmp, k)) {
				size_t last = k;
				while (last > 0 && tmp[last - 1] == 0xff)
					last--;
				from = in + last;
			}
			in += k;
		}
		f->erased_from[base / sector] = (uint32_t)from;
	}
	return 0;
}

int tern_sim_flash_open_file(struct tern_sim_flash *f, const struct tern_sim_geometry *g,
			     const char *path, bool create)
{
	int rc = layout(f, g);
	if (rc)
		return rc;
	int fd = open(path, create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0644);
	if (fd < 0)
		return errno == EEXIST	 ? TERN_E_EXISTS
		       : errno == ENOENT ? TERN_E_NOT_FOUND
					 : TERN_E_IO;
	struct stat st;
	if (fstat(fd, &st) != 0)
		goto out_io;
	f->fd = fd;
	uint64_t n_sectors = f->total / f->geo.sector_size;
	f->erased_from = malloc(n_sectors * sizeof(*f->erased_from));
	if (!f->erased_from) {
		close(fd);
		f->fd = -1;
		return TERN_E_NOMEM;
	}
	memset(f->erased_from, 0xff, n_sectors * sizeof(*f->erased_from)); /* unknown */
	if (create) {
		if (raw_fill(f, 0, f->total, false))
			goto out_io;
		memset(f->erased_from, 0, n_sectors * sizeof(*f->erased_from));
	} else if ((uint64_t)st.st_size != f->total) {
		tern_sim_flash_close(f);
		return TERN_E_MALFORMED;
	} else if (learn_erased(f)) {
		goto out_io;
	}
	return 0;
out_io:
	tern_sim_flash_close(f);
	return TERN_E_IO;
}

int tern_sim_flash_sync(struct tern_sim_flash *f)
{
	return f->fd >= 0 && fdatasync(f->fd) != 0 ? TERN_E_IO : 0;
}

void tern_sim_flash_close(struct tern_sim_flash *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->erased_from);
	f->erased_from = NULL;
}

void tern_sim_power_cut_at(struct tern_sim_flash *f, uint64_t n, bool torn)
{
	f->cut_at = n ? f->n_ops + n : 0;
	f->torn = torn;
	f->rng = (uint32_t)(n * 2654435761u) | 1u;
}

void tern_sim_power_restore(struct tern_sim_flash *f)
{
	f->powered_off = false;
	f->cut_at = 0;
}

static uint32_t rng_next(struct tern_sim_flash *f)
{
	uint32_t x = f->rng;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return f->rng = x;
}

static int raw_read(struct tern_sim_flash *f, uint64_t off, void *buf, size_t len)
{
	if (f->mem) {
		memcpy(buf, f->mem + off, len);
		return 0;
	}
	return pread(f->fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : TERN_E_IO;
}

static int raw_write(struct tern_sim_flash *f, uint64_t off, const void *buf, size_t len)
{
	if (f->mem) {
		memcpy(f->mem + off, buf, len);
		return 0;
	}
	return pwrite(f->fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : TERN_E_IO;
}

static int raw_fill(struct tern_sim_flash *f, uint64_t off, uint64_t len, bool garbage)
{
	uint8_t tmp[4096];
	while (len) {
		size_t n = len < sizeof(tmp) ? (size_t)len : sizeof(tmp);
		if (garbage)
			for (size_t i = 0; i < n; i++)
				tmp[i] = (uint8_t)rng_next(f);
		else
			memset(tmp, 0xff, n);
		int rc = raw_write(f, off, tmp, n);
		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

static int violation(struct tern_sim_flash *f, const char *what, enum tern_area a, uint64_t off,
		     uint64_t len)
{
	f->violations++;
	snprintf(f->last_violation, sizeof(f->last_violation),
		 "%s: area %d offset %llu length %llu", what, (int)a, (unsigned long long)off,
		 (unsigned long long)len);
	return TERN_E_FLASH;
}

/* Checks the area and range; TERN_E_INVAL for a range outside the area. */
static int range_ok(struct tern_sim_flash *f, enum tern_area a, uint64_t off, uint64_t len)
{
	if ((unsigned)a >= TERN_AREA__COUNT || off > f->area_size[a] || len > f->area_size[a] - off)
		return violation(f, "out of range", a, off, len);
	return 0;
}

/* Counts an operation; true when power fails during this one. */
static bool op_cut(struct tern_sim_flash *f, enum tern_area a)
{
	f->n_ops++;
	f->n_area_ops[a]++;
	if (f->cut_at && f->n_ops == f->cut_at) {
		f->powered_off = true;
		if (f->erased_from) /* what the cut left is unknown: read it from now on */
			memset(f->erased_from, 0xff,
			       f->total / f->geo.sector_size * sizeof(*f->erased_from));
		return true;
	}
	return false;
}

/* True when [base, base + len) reads erased: known from erased_from, or read. */
static bool known_erased(const struct tern_sim_flash *f, uint64_t pos)
{
	uint64_t s = pos / f->geo.sector_size, in = pos % f->geo.sector_size;
	return f->erased_from && f->erased_from[s] != UINT32_MAX && in >= f->erased_from[s];
}

static int check_erased(struct tern_sim_flash *f, uint64_t base, uint64_t len, bool *erased)
{
	uint8_t tmp[16384];
	uint32_t sector = f->geo.sector_size;
	uint64_t end = base + len;
	*erased = true;
	for (uint64_t pos = base; pos < end;) {
		uint64_t n = sector - pos % sector < end - pos ? sector - pos % sector : end - pos;
		if (known_erased(f, pos)) {
			pos += n;
			continue;
		}
		/* Read a run of unknown sectors at once. */
		while (pos + n < end && n < sizeof(tmp) && !known_erased(f, pos + n))
			n += sector < end - (pos + n) ? sector : end - (pos + n);
		size_t k = n < sizeof(tmp) ? (size_t)n : sizeof(tmp);
		int rc = raw_read(f, pos, tmp, k);
		if (rc)
			return rc;
		if (!reads_erased(tmp, k)) {
			*erased = false;
			return 0;
		}
		pos += k;
	}
	return 0;
}

/* After a write of [base, base + len): the known-erased part of its sectors shrinks. */
static void note_written(struct tern_sim_flash *f, uint64_t base, uint64_t len)
{
	uint32_t sector = f->geo.sector_size;
	if (!f->erased_from)
		return;
	for (uint64_t pos = base; pos < base + len;) {
		uint64_t s = pos / sector, in = pos % sector;
		uint64_t n = sector - in < base + len - pos ? sector - in : base + len - pos;
		if (f->erased_from[s] != UINT32_MAX && in >= f->erased_from[s])
			f->erased_from[s] = (uint32_t)(in + n);
		else
			f->erased_from[s] = UINT32_MAX;
		pos += n;
	}
}

static int sim_area_info(void *ctx, enum tern_area a, struct tern_area_info *info)
{
	struct tern_sim_flash *f = ctx;
	if ((unsigned)a >= TERN_AREA__COUNT)
		return TERN_E_INVAL;
	info->size = f->area_size[a];
	info->sector_size = f->geo.sector_size;
	info->write_align = f->geo.write_align;
	return 0;
}

static int sim_read(void *ctx, enum tern_area a, uint64_t off, void *buf, size_t len)
{
	struct tern_sim_flash *f = ctx;
	if (f->powered_off)
		return TERN_E_POWER_CUT;
	int rc = range_ok(f, a, off, len);
	return rc ? rc : raw_read(f, f->area_off[a] + off, buf, len);
}

static int sim_write(void *ctx, enum tern_area a, uint64_t off, const void *buf, size_t len)
{
	struct tern_sim_flash *f = ctx;
	if (f->powered_off)
		return TERN_E_POWER_CUT;
	int rc = range_ok(f, a, off, len);
	if (rc)
		return rc;
	if (off % f->geo.write_align || len % f->geo.write_align)
		return violation(f, "misaligned write", a, off, len);
	uint64_t base = f->area_off[a] + off;
	bool erased;
	if ((rc = check_erased(f, base, len, &erased)))
		return rc;
	if (!erased)
		return violation(f, "write to unerased flash", a, off, len);
	if (op_cut(f, a)) {
		if (!f->torn)
			return TERN_E_POWER_CUT;
		/* Torn: some whole units made it, the next one is garbage. */
		size_t units = len / f->geo.write_align;
		size_t ok = (size_t)(rng_next(f) % units) * f->geo.write_align;
		if ((rc = raw_write(f, base, buf, ok)) ||
		    (rc = raw_fill(f, base + ok, f->geo.write_align, true)))
			return rc;
		return TERN_E_POWER_CUT;
	}
	if ((rc = raw_write(f, base, buf, len)))
		return rc;
	note_written(f, base, len);
	return 0;
}

static int sim_erase(void *ctx, enum tern_area a, uint64_t off, uint64_t len)
{
	struct tern_sim_flash *f = ctx;
	if (f->powered_off)
		return TERN_E_POWER_CUT;
	int rc = range_ok(f, a, off, len);
	if (rc)
		return rc;
	if (off % f->geo.sector_size || len % f->geo.sector_size)
		return violation(f, "misaligned erase", a, off, len);
	uint64_t base = f->area_off[a] + off;
	if (op_cut(f, a)) {
		if (!f->torn)
			return TERN_E_POWER_CUT;
		/* Torn: the first sectors were erased, the next one holds garbage. */
		uint64_t sectors = len / f->geo.sector_size;
		uint64_t ok = (rng_next(f) % sectors) * f->geo.sector_size;
		if ((rc = raw_fill(f, base, ok, false)) ||
		    (rc = raw_fill(f, base + ok, f->geo.sector_size, true)))
			return rc;
		return TERN_E_POWER_CUT;
	}
	/* A range that already reads erased needs no rewriting. */
	bool erased;
	if ((rc = check_erased(f, base, len, &erased)))
		return rc;
	if (!erased && (rc = raw_fill(f, base, len, false)))
		return rc;
	if (f->erased_from)
		for (uint64_t s = base / f->geo.sector_size; s < (base + len) / f->geo.sector_size;
		     s++)
			f->erased_from[s] = 0;
	return 0;
}

static int sim_flush(void *ctx, enum tern_area a)
{
	struct tern_sim_flash *f = ctx;
	(void)a;
	if (f->powered_off)
		return TERN_E_POWER_CUT;
	if (f->sync_on_flush && f->fd >= 0 && fdatasync(f->fd) != 0)
		return TERN_E_IO;
	return 0;
}

static const struct tern_board_ops sim_ops = {
    .area_info = sim_area_info,
    .read = sim_read,
    .write = sim_write,
    .erase = sim_erase,
    .flush = sim_flush,
};

void tern_sim_flash_board(struct tern_sim_flash *f, struct tern_board *b)
{
	b->ops = &sim_ops;
	b->ctx = f;
}
