/*
 * The Linux board: flash areas on files and block devices, the running slot from the
 * kernel command line, and the bootloader's half of the boot control contract played
 * once per boot from what the bootloader left in its environment (docs/linux.md).
 */
#include "tern/tern_linux.h"

#include "tern/tern_err.h"
#include "tern/tern_release.h"

#include "linux_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define BOOTCTL_SECTOR 512u
#define ERASE_BUF      65536u

static uint64_t round_up(uint64_t v, uint64_t unit)
{
	return (v + unit - 1) / unit * unit;
}

static bool is_slot(enum tern_area a)
{
	return a <= TERN_AREA_CFG_B;
}

static int err_line(char *err, size_t size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int err_line(char *err, size_t size, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
	return rc;
}

/* --- mounts --- */

/* Decodes the octal escapes of /proc/self/mounts (\040 for a space) in place. */
static void unescape_mount(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

/* True when mount source @src is the slot @st / @real (same block device, same file,
 * or a loop device backed by that file). */
static bool source_is(const char *src, const struct stat *st, const char *real)
{
	char buf[PATH_MAX];
	if (real && realpath(src, buf) && !strcmp(buf, real))
		return true;
	struct stat ss;
	if (stat(src, &ss) != 0 || !S_ISBLK(ss.st_mode))
		return false;
	if (S_ISBLK(st->st_mode))
		return ss.st_rdev == st->st_rdev;
	/* A loop device: /sys/dev/block/MAJ:MIN/loop/backing_file names its file. */
	char path[128];
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop/backing_file", major(ss.st_rdev),
		 minor(ss.st_rdev));
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool same = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!same)
		return false;
	buf[strcspn(buf, "\n")] = '\0';
	return real && !strcmp(buf, real);
}

/* TERN_E_MOUNTED when area @a's file or device is mounted. */
static int check_not_mounted(struct tern_linux *lx, enum tern_area a)
{
	struct stat st;
	if (fstat(lx->fd[a], &st) != 0)
		return TERN_E_IO;
	char real[PATH_MAX];
	const char *r = realpath(lx->cfg.slot[a], real) ? real : NULL;
	FILE *f = fopen(lx->cfg.mounts, "r");
	if (!f)
		return 0; /* no mount table (not Linux /proc): nothing to compare with */
	char line[8192];
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		unescape_mount(line);
		if (line[0] == '/' && source_is(line, &st, r))
			rc = TERN_E_MOUNTED;
	}
	fclose(f);
	return rc;
}

/* --- board operations --- */

static int op_area_info(void *ctx, enum tern_area a, struct tern_area_info *info)
{
	struct tern_linux *lx = ctx;
	*info = lx->info[a];
	return 0;
}

/*
 * Group commit. The core flushes a slot after every verified chunk and then writes the
 * chunk's journal marker; what it needs is that no marker reaches the disk before the
 * data it vouches for. One fdatasync per chunk gives that but costs a device cache
 * flush per chunk. Instead a slot's flush only marks it unsynced, and small journal
 * writes made meanwhile (the markers) wait in RAM; reads of the journal see them. Any
 * other state write, a full queue, an old queue, or closing commits: fdatasync of the
 * unsynced slots first, then the waiting writes. A crash loses at most the waiting
 * markers, and their chunks are fetched again.
 */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int commit(struct tern_linux *lx)
{
	for (int a = TERN_AREA_FW_A; a <= TERN_AREA_CFG_B; a++) {
		if (!lx->unsynced[a])
			continue;
		if (fdatasync(lx->fd[a]) != 0)
			return TERN_E_FLASH;
		lx->unsynced[a] = false;
	}
	for (unsigned i = 0; i < lx->n_pending; i++) {
		const struct tern_linux_pending *p = &lx->pending[i];
		if (tern_pwrite_full(lx->fd[TERN_AREA_JOURNAL], p->data, p->len, p->off))
			return TERN_E_FLASH;
	}
	lx->n_pending = 0;
	return 0;
}

static bool any_unsynced(const struct tern_linux *lx)
{
	for (int a = TERN_AREA_FW_A; a <= TERN_AREA_CFG_B; a++)
		if (lx->unsynced[a])
			return true;
	return false;
}

static int op_read(void *ctx, enum tern_area a, uint64_t off, void *buf, size_t len)
{
	struct tern_linux *lx = ctx;
	if (lx->fd[a] < 0 || off > lx->info[a].size || len > lx->info[a].size - off)
		return TERN_E_FLASH;
	int rc = tern_pread_full(lx->fd[a], buf, len, off);
	if (rc)
		return TERN_E_FLASH;
	if (a != TERN_AREA_JOURNAL)
		return 0;
	for (unsigned i = 0; i < lx->n_pending; i++) { /* in order: later writes win */
		const struct tern_linux_pending *p = &lx->pending[i];
		uint64_t lo = p->off > off ? p->off : off;
		uint64_t hi = p->off + p->len < off + len ? p->off + p->len : off + len;
		if (lo < hi)
			memcpy((uint8_t *)buf + (lo - off), p->data + (lo - p->off),
			       (size_t)(hi - lo));
	}
	return 0;
}

/*
 * Before the first write to a firmware slot in this process: the slot must not run,
 * must not be mounted, and the bootloader must not boot it (BOOT_x_LEFT 0, the other
 * slot first), so a half-written slot is never started.
 */
static int before_slot_write(struct tern_linux *lx, enum tern_area a)
{
	int rc;
	if (!is_slot(a))
		return 0;
	unsigned pair = a / 2u, slot = a & 1u;
	if (lx->boot.slot[pair] == slot)
		return TERN_E_STATE; /* never write the slot that runs */
	if (!lx->mount_checked[a]) {
		if ((rc = check_not_mounted(lx, a)))
			return rc;
		lx->mount_checked[a] = true;
	}
	if (pair != TERN_PAIR_FW || lx->disarmed[slot])
		return 0;
	struct tern_bootvars v;
	if ((rc = tern_bootloader_read(&lx->bl, &v)))
		return rc;
	struct tern_bootvars w = v;
	w.left[slot] = 0;
	w.primary = (uint8_t)(slot ^ 1u);
	if ((rc = tern_bootloader_write(&lx->bl, &w, &v)))
		return rc;
	lx->disarmed[slot] = true;
	return 0;
}

static int op_write(void *ctx, enum tern_area a, uint64_t off, const void *buf, size_t len)
{
	struct tern_linux *lx = ctx;
	if (lx->fd[a] < 0 || off > lx->info[a].size || len > lx->info[a].size - off)
		return TERN_E_FLASH;
	int rc = before_slot_write(lx, a);
	if (rc)
		return rc;
	if (is_slot(a)) {
		lx->unsynced[a] = true;
	} else if (a == TERN_AREA_JOURNAL && len <= TERN_WRITE_ALIGN_MAX && any_unsynced(lx)) {
		if (lx->n_pending == 0)
			lx->pending_since_ms = now_ms();
		struct tern_linux_pending *p = &lx->pending[lx->n_pending++];
		p->off = off;
		p->len = (uint8_t)len;
		memcpy(p->data, buf, len);
		if (lx->n_pending == TERN_LINUX_PENDING_MAX ||
		    now_ms() - lx->pending_since_ms > TERN_LINUX_PENDING_MS)
			return commit(lx);
		return 0;
	} else if ((rc = commit(lx))) {
		return rc;
	}
	return tern_pwrite_full(lx->fd[a], buf, len, off) ? TERN_E_FLASH : 0;
}

/* Slots need no erase (a chunk is written whole and then checked against its digest);
 * the state files are filled with 0xFF, which the journal's markers rely on. */
static int op_erase(void *ctx, enum tern_area a, uint64_t off, uint64_t len)
{
	struct tern_linux *lx = ctx;
	if (lx->fd[a] < 0 || off > lx->info[a].size || len > lx->info[a].size - off)
		return TERN_E_FLASH;
	int rc = before_slot_write(lx, a);
	if (rc || is_slot(a) || (rc = commit(lx)))
		return rc;
	uint8_t *ff = malloc(ERASE_BUF);
	if (!ff)
		return TERN_E_NOMEM;
	memset(ff, 0xff, ERASE_BUF);
	while (len && rc == 0) {
		size_t n = len < ERASE_BUF ? (size_t)len : ERASE_BUF;
		rc = tern_pwrite_full(lx->fd[a], ff, n, off) ? TERN_E_FLASH : 0;
		off += n;
		len -= n;
	}
	free(ff);
	return rc;
}

static int op_flush(void *ctx, enum tern_area a)
{
	struct tern_linux *lx = ctx;
	if (is_slot(a))
		return 0; /* deferred: committed before anything that depends on it */
	int rc = commit(lx);
	if (rc)
		return rc;
	return fdatasync(lx->fd[a]) == 0 ? 0 : TERN_E_FLASH;
}

static const struct tern_board_ops linux_ops = {
    .area_info = op_area_info,
    .read = op_read,
    .write = op_write,
    .erase = op_erase,
    .flush = op_flush,
};

/* --- opening --- */

static int open_slot(struct tern_linux *lx, enum tern_area a, char *err, size_t err_size)
{
	const char *path = lx->cfg.slot[a];
	struct tern_area_info *ai = &lx->info[a];
	ai->sector_size = lx->cfg.sector_size;
	ai->write_align = 1;
	ai->size = 0;
	if (!path[0])
		return 0; /* no config slots: a config component is refused as too large */
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_line(err, err_size, errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO,
				"%s: cannot open slot: %s", path, strerror(errno));
	lx->fd[a] = fd;
	struct stat st;
	uint64_t size = 0;
	if (fstat(fd, &st) != 0)
		return err_line(err, err_size, TERN_E_IO, "%s: %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) != 0)
			return err_line(err, err_size, TERN_E_IO, "%s: cannot get its size: %s",
					path, strerror(errno));
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		return err_line(err, err_size, TERN_E_IO, "%s: not a file or block device", path);
	}
	ai->size = size - size % ai->sector_size;
	if (ai->size == 0)
		return err_line(err, err_size, TERN_E_SLOT_TOO_SMALL,
				"%s: slot smaller than one sector (%u bytes); create it first",
				path, ai->sector_size);
	return 0;
}

/* Opens (creating when missing) state file @name of @size bytes. */
static int open_state(struct tern_linux *lx, enum tern_area a, const char *name, uint64_t size,
		      uint32_t sector, char *err, size_t err_size)
{
	char path[TERN_LINUX_PATH_MAX + 32];
	int n = snprintf(path, sizeof(path), "%s/%s", lx->cfg.state_dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return err_line(err, err_size, TERN_E_TOO_LARGE, "%s: path too long",
				lx->cfg.state_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_line(err, err_size, TERN_E_IO, "%s: %s", path, strerror(errno));
	lx->fd[a] = fd;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return err_line(err, err_size, TERN_E_IO, "%s: %s", path, strerror(errno));
	if ((uint64_t)st.st_size < size) {
		/* Grows sparse; the new bytes read as 0x00, which no record or marker trusts
		 * (CRC, and the core erases a journal extent before it uses it). */
		if (ftruncate(fd, (off_t)size) != 0)
			return err_line(err, err_size, TERN_E_IO, "%s: %s", path, strerror(errno));
	}
	lx->info[a] = (struct tern_area_info){size, sector, 1};
	return 0;
}

/* Journal big enough for the job record, one marker per chunk of the smallest chunk
 * size, and the chunk indexes. */
static uint64_t journal_size(const struct tern_linux *lx)
{
	uint64_t s = lx->cfg.sector_size, total = s;
	uint64_t n_fw =
	    (lx->info[0].size > lx->info[1].size ? lx->info[0].size : lx->info[1].size) / s;
	uint64_t n_cfg =
	    (lx->info[2].size > lx->info[3].size ? lx->info[2].size : lx->info[3].size) / s;
	total += round_up(2 + n_fw + n_cfg, s);
	total += round_up(n_fw * TERN_SHA256_LEN, s) + round_up(n_cfg * TERN_SHA256_LEN, s);
	return total + s;
}

static int load_keyring(struct tern_linux *lx, char *err, size_t err_size)
{
	memset(&lx->keyring, 0, sizeof(lx->keyring));
	DIR *d = opendir(lx->cfg.keyring_dir);
	if (!d)
		return err_line(err, err_size, TERN_E_KEY, "%s: cannot open the keyring folder: %s",
				lx->cfg.keyring_dir, strerror(errno));
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 5 || strcmp(e->d_name + n - 4, ".pub"))
			continue;
		char path[TERN_LINUX_PATH_MAX + 256], pem[4096];
		snprintf(path, sizeof(path), "%s/%s", lx->cfg.keyring_dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f) {
			rc = err_line(err, err_size, TERN_E_KEY, "%s: %s", path, strerror(errno));
			break;
		}
		size_t len = fread(pem, 1, sizeof(pem) - 1, f);
		fclose(f);
		pem[len] = '\0';
		struct tern_pubkey pk;
		if (tern_pubkey_parse(&pk, (const uint8_t *)pem, len) ||
		    tern_keyring_add(&lx->keyring, &pk))
			rc = err_line(err, err_size, TERN_E_KEY,
				      "%s: not a P-256 public key, or more than %d keys", path,
				      TERN_KEYRING_MAX);
	}
	closedir(d);
	/* A blank device (no id) may wait for its keys: `tern usb provision` brings them,
	 * and until then every release is refused (unknown key). */
	if (rc == 0 && lx->keyring.n_keys == 0 && lx->cfg.device_id[0])
		rc = err_line(err, err_size, TERN_E_KEY, "%s: no public key (*.pub) in the keyring",
			      lx->cfg.keyring_dir);
	return rc;
}

/* --- which slot runs --- */

static int read_text(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	size_t n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return 0;
}

/* The running firmware slot from the kernel command line: "MARKER=A|B" and "root=",
 * which must agree when both are there. */
static int running_slot(struct tern_linux *lx, unsigned *slot, char *err, size_t err_size)
{
	char cmdline[4096];
	if (read_text(lx->cfg.cmdline, cmdline, sizeof(cmdline)))
		return err_line(err, err_size, TERN_E_RUNNING_SLOT, "%s: cannot read it",
				lx->cfg.cmdline);
	int by_marker = -1, by_root = -1;
	size_t mlen = strlen(lx->cfg.slot_marker);
	char root[512] = "";
	for (char *p = cmdline; *p;) {
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		size_t n = strcspn(p, " \n\t");
		if (n > mlen && !strncmp(p, lx->cfg.slot_marker, mlen) && p[mlen] == '=') {
			const char *v = p + mlen + 1;
			size_t vl = n - mlen - 1;
			if (vl == 1 && (v[0] == 'A' || v[0] == 'a'))
				by_marker = 0;
			else if (vl == 1 && (v[0] == 'B' || v[0] == 'b'))
				by_marker = 1;
			else
				return err_line(err, err_size, TERN_E_RUNNING_SLOT,
						"%s: %s must be A or B", lx->cfg.cmdline,
						lx->cfg.slot_marker);
		} else if (n > 5 && !strncmp(p, "root=", 5) && n - 5 < sizeof(root)) {
			memcpy(root, p + 5, n - 5);
			root[n - 5] = '\0';
		}
		p += n;
	}
	if (root[0]) {
		for (int s = 0; s < 2; s++) {
			const char *want = lx->cfg.root[s][0] ? lx->cfg.root[s] : lx->cfg.slot[s];
			if (!strcmp(root, want))
				by_root = s;
		}
	}
	if (by_marker >= 0 && by_root >= 0 && by_marker != by_root)
		return err_line(err, err_size, TERN_E_RUNNING_SLOT,
				"%s: %s=%c but root=%s is slot %c; refusing to guess",
				lx->cfg.cmdline, lx->cfg.slot_marker, 'A' + by_marker, root,
				'A' + by_root);
	if (by_marker < 0 && by_root < 0)
		return err_line(err, err_size, TERN_E_RUNNING_SLOT,
				"%s: names no slot: add %s=A|B to the kernel command line, or set "
				"firmware.A.root and firmware.B.root to its root= values",
				lx->cfg.cmdline, lx->cfg.slot_marker);
	*slot = (unsigned)(by_marker >= 0 ? by_marker : by_root);
	return 0;
}

/* --- the per-boot record: what runs, decided once per boot --- */

static int state_path(const struct tern_linux *lx, const char *name, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", lx->cfg.state_dir, name);
	return n < 0 || (size_t)n >= size ? TERN_E_TOO_LARGE : 0;
}

static void read_boot_id(const struct tern_linux *lx, char *id, size_t size)
{
	if (read_text(lx->cfg.boot_id, id, size))
		id[0] = '\0';
	id[strcspn(id, "\n")] = '\0';
}

/* Loads state/boot when it is about this boot and this running slot. */
static bool load_boot(struct tern_linux *lx, const char *boot_id, unsigned fw)
{
	char path[TERN_LINUX_PATH_MAX + 32], text[512], saved[128] = "";
	unsigned long v[3];
	if (state_path(lx, "boot", path, sizeof(path)) || read_text(path, text, sizeof(text)))
		return false;
	const char *names[3] = {"fw=", "cfg=", "trial="};
	for (int i = 0; i < 3; i++) {
		const char *p = strstr(text, names[i]);
		if (!p)
			return false;
		v[i] = strtoul(p + strlen(names[i]), NULL, 10);
	}
	const char *b = strstr(text, "boot_id=");
	if (!b)
		return false;
	b += 8;
	size_t n = strcspn(b, "\n");
	if (n >= sizeof(saved))
		return false;
	memcpy(saved, b, n);
	saved[n] = '\0';
	if (strcmp(saved, boot_id) || v[0] != fw || v[1] > 255)
		return false;
	lx->boot.slot[TERN_PAIR_FW] = (uint8_t)fw;
	lx->boot.slot[TERN_PAIR_CFG] = (uint8_t)v[1];
	lx->boot.trial = v[2] != 0;
	const char *note = strstr(text, "\nnote=");
	if (note) {
		note += 6;
		snprintf(lx->note.text, sizeof(lx->note.text), "%.*s", (int)strcspn(note, "\n"),
			 note);
	}
	return true;
}

static int save_boot(struct tern_linux *lx, const char *boot_id)
{
	char path[TERN_LINUX_PATH_MAX + 32], text[512];
	int rc = state_path(lx, "boot", path, sizeof(path));
	if (rc)
		return rc;
	int n = snprintf(text, sizeof(text), "boot_id=%s\nfw=%u\ncfg=%u\ntrial=%u\nnote=%s\n",
			 boot_id, lx->boot.slot[TERN_PAIR_FW], lx->boot.slot[TERN_PAIR_CFG],
			 lx->boot.trial ? 1u : 0u, lx->note.text);
	if (n < 0 || (size_t)n >= sizeof(text))
		return TERN_E_TOO_LARGE;
	return tern_linux_replace_file(path, text, (size_t)n);
}

/* --- reconciling the record with what the bootloader did --- */

static unsigned clamp_left(unsigned n)
{
	return n == 0 ? 1 : n > TERN_BOOT_LEFT_MAX ? TERN_BOOT_LEFT_MAX : n;
}

static bool slot_good(const struct tern_bootctl *bc, unsigned slot)
{
	const struct tern_slot_meta *m = &bc->slots[tern_slot_area(TERN_PAIR_FW, slot)];
	return m->state == TERN_SLOT_GOOD &&
	       m->security_counter >= bc->security_floor[TERN_PAIR_FW];
}

/* What the bootloader's variables should say for record @bc, given what they say now. */
static void wanted_vars(const struct tern_linux *lx, const struct tern_bootctl *bc,
			const struct tern_bootvars *cur, struct tern_bootvars *w)
{
	unsigned full = lx->cfg.attempts;
	unsigned t = bc->trial_pending ? bc->trial_slot[TERN_PAIR_FW] : TERN_SLOT_NONE;
	unsigned a = bc->active[TERN_PAIR_FW] & 1u;
	if (t <= 1) {
		/* A firmware trial: armed once (attempts from the release), then the bootloader
		 * counts down; the active slot stays the fallback. */
		w->primary = (uint8_t)t;
		w->left[t] = cur->primary == t ? cur->left[t] : clamp_left(bc->attempts_left);
		w->left[t ^ 1u] = slot_good(bc, t ^ 1u) ? full : 0;
		return;
	}
	w->primary = (uint8_t)a;
	w->left[a] = full; /* "mark good": the attempt this boot used is given back */
	w->left[a ^ 1u] = slot_good(bc, a ^ 1u) ? full : 0;
}

int tern_linux_sync_bootloader(struct tern_linux *lx)
{
	struct tern_bootvars cur, want;
	int rc = tern_bootloader_read(&lx->bl, &cur);
	if (rc)
		return rc;
	wanted_vars(lx, &lx->agent.bc, &cur, &want);
	/* A slot this process is writing stays unbootable. */
	for (unsigned s = 0; s < 2; s++)
		if (lx->disarmed[s] && lx->agent.bc.slots[s].state != TERN_SLOT_STAGED &&
		    lx->agent.bc.slots[s].state != TERN_SLOT_GOOD)
			want.left[s] = 0;
	return tern_bootloader_write(&lx->bl, &want, &cur);
}

/* Ends a trial that never reached the agent (as tern_boot_select's fall back). */
static void trial_fell_back(struct tern_bootctl *bc, int reason)
{
	for (int p = 0; p < TERN_N_PAIRS; p++) {
		if (bc->trial_slot[p] != TERN_SLOT_NONE)
			bc->slots[tern_slot_area((enum tern_pair)p, bc->trial_slot[p])].state =
			    TERN_SLOT_BAD;
		bc->trial_slot[p] = TERN_SLOT_NONE;
	}
	bc->trial_pending = 0;
	bc->attempts_left = 0;
	bc->last_event = TERN_EV_ROLLED_BACK;
	bc->last_reason = reason;
}

static void provision(struct tern_linux *lx, struct tern_bootctl *bc, unsigned fw)
{
	memset(bc, 0, sizeof(*bc));
	bc->active[TERN_PAIR_FW] = (uint8_t)fw;
	bc->active[TERN_PAIR_CFG] = lx->cfg.slot[TERN_AREA_CFG_A][0] ? 0 : TERN_SLOT_NONE;
	bc->trial_slot[TERN_PAIR_FW] = bc->trial_slot[TERN_PAIR_CFG] = TERN_SLOT_NONE;
	bc->last_event = TERN_EV_PROVISIONED;
	struct tern_slot_meta *m = &bc->slots[tern_slot_area(TERN_PAIR_FW, fw)];
	m->state = TERN_SLOT_GOOD;
	snprintf(m->version, sizeof(m->version), "%s", lx->cfg.factory_version);
	if (bc->active[TERN_PAIR_CFG] == 0) {
		m = &bc->slots[TERN_AREA_CFG_A];
		m->state = TERN_SLOT_GOOD;
		snprintf(m->version, sizeof(m->version), "%s", lx->cfg.factory_version);
	}
}

/*
 * The bootloader's half, after the fact: compares the record with the slot that runs
 * and the bootloader's variables, records what the bootloader did (a trial that fell
 * back, a confirmed slot that stopped booting), finishes an interrupted activation, and
 * decides the boot result. Then the variables are made to follow the record.
 */
static int reconcile(struct tern_linux *lx, unsigned fw, char *err, size_t err_size)
{
	struct tern_bootctl bc;
	struct tern_linux_boot_note *note = &lx->note;
	int rc = tern_bootctl_load(&lx->board, &bc, lx->scratch);
	bool dirty = false;
	if (rc == TERN_E_NO_BOOTCTL) {
		provision(lx, &bc, fw);
		dirty = true;
		snprintf(note->text, sizeof(note->text),
			 "first start: slot %c provisioned as good (%s)", 'A' + fw,
			 lx->cfg.factory_version);
	} else if (rc) {
		return err_line(err, err_size, rc, "%s/bootctl: %s", lx->cfg.state_dir,
				tern_strerror(rc));
	}
	struct tern_bootvars v;
	if ((rc = tern_bootloader_read(&lx->bl, &v)))
		return err_line(err, err_size, rc, "bootloader: %s", tern_strerror(rc));
	struct tern_boot_result *res = &lx->boot;
	res->trial = false;
	unsigned t = bc.trial_pending ? bc.trial_slot[TERN_PAIR_FW] : TERN_SLOT_NONE;
	unsigned a = bc.active[TERN_PAIR_FW];
	if (bc.trial_pending && t <= 1) {
		if (fw == t) {
			res->trial = true;
			snprintf(note->text, sizeof(note->text),
				 "trial boot of slot %c, %u attempts left", 'A' + t, v.left[t]);
			dirty = bc.attempts_left != v.left[t]; /* for status */
			bc.attempts_left = (uint8_t)(v.left[t] > 255 ? 255 : v.left[t]);
		} else if (v.primary == t) {
			trial_fell_back(&bc, TERN_E_TRIAL_BOOT);
			dirty = true;
			note->fell_back = true;
			snprintf(
			    note->text, sizeof(note->text),
			    "the trial of slot %c never reached ternd; the bootloader went back "
			    "to slot %c",
			    'A' + t, 'A' + fw);
		} else {
			note->rearmed = true;
			snprintf(
			    note->text, sizeof(note->text),
			    "the activation of slot %c had not reached the bootloader; armed now: "
			    "the next reboot starts the trial",
			    'A' + t);
		}
	} else if (bc.trial_pending) {
		/* A configuration-only trial: the firmware does not change, so ternd counts
		 * the attempts in the record, one per boot, consumed before it runs. */
		if (bc.attempts_left == 0) {
			trial_fell_back(&bc, TERN_E_TRIAL_BOOT);
			note->fell_back = true;
			snprintf(
			    note->text, sizeof(note->text),
			    "the configuration trial used up its attempts; back to the previous "
			    "configuration");
		} else {
			bc.attempts_left--;
			res->trial = true;
		}
		dirty = true;
	} else if (fw != a) {
		if (slot_good(&bc, fw) && v.primary == a && v.left[a] == 0) {
			bc.slots[tern_slot_area(TERN_PAIR_FW, a)].state = TERN_SLOT_BAD;
			bc.active[TERN_PAIR_FW] = (uint8_t)fw;
			bc.last_event = TERN_EV_ROLLED_BACK;
			bc.last_reason = TERN_E_BOOT_FAILED;
			bc.event_sequence = bc.slots[tern_slot_area(TERN_PAIR_FW, fw)].sequence;
			dirty = true;
			note->fell_back = true;
			snprintf(note->text, sizeof(note->text),
				 "slot %c stopped booting; the bootloader went back to slot %c",
				 'A' + a, 'A' + fw);
		} else if (slot_good(&bc, fw)) {
			snprintf(
			    note->text, sizeof(note->text),
			    "slot %c runs, but slot %c is the active one; the next reboot starts "
			    "slot %c",
			    'A' + fw, 'A' + a, 'A' + a);
		} else {
			note->reboot_needed = true;
			snprintf(
			    note->text, sizeof(note->text),
			    "slot %c runs but is %s; the bootloader now points at slot %c: reboot",
			    'A' + fw,
			    tern_slot_state_name(bc.slots[tern_slot_area(TERN_PAIR_FW, fw)].state),
			    'A' + a);
		}
	}
	if (dirty && (rc = tern_bootctl_store(&lx->board, &bc, lx->scratch)))
		return err_line(err, err_size, rc, "%s/bootctl: %s", lx->cfg.state_dir,
				tern_strerror(rc));
	res->slot[TERN_PAIR_FW] = (uint8_t)fw;
	unsigned tc = bc.trial_pending ? bc.trial_slot[TERN_PAIR_CFG] : TERN_SLOT_NONE;
	res->slot[TERN_PAIR_CFG] = res->trial && tc <= 1 ? (uint8_t)tc : bc.active[TERN_PAIR_CFG];
	lx->agent.bc = bc; /* for the sync below; the agent loads it again at start */
	note->new_boot = true;
	return 0;
}

int tern_linux_open(struct tern_linux *lx, const struct tern_linux_config *cfg, unsigned flags,
		    char *err, size_t err_size)
{
	memset(lx, 0, sizeof(*lx));
	lx->cfg = *cfg;
	for (int a = 0; a < TERN_AREA__COUNT; a++)
		lx->fd[a] = -1;
	lx->lock_fd = -1;
	lx->board.ops = &linux_ops;
	lx->board.ctx = lx;
	for (int p = 0; p < TERN_N_PAIRS; p++)
		lx->boot.slot[p] = TERN_SLOT_NONE;
	int rc;
	if ((rc = load_keyring(lx, err, err_size)))
		return rc;
	if ((rc = tern_bootloader_open(&lx->bl, &lx->cfg, err, err_size)))
		return rc;
	for (int a = TERN_AREA_FW_A; a <= TERN_AREA_CFG_B; a++)
		if ((rc = open_slot(lx, (enum tern_area)a, err, err_size)))
			return rc;
	if (mkdir(lx->cfg.state_dir, 0700) != 0 && errno != EEXIST)
		return err_line(err, err_size, TERN_E_IO, "%s: cannot create the state folder: %s",
				lx->cfg.state_dir, strerror(errno));
	/* One ternd at a time per device: the lock is held until tern_linux_close(). */
	char lock[TERN_LINUX_PATH_MAX + 32];
	if (state_path(lx, "lock", lock, sizeof(lock)))
		return err_line(err, err_size, TERN_E_TOO_LARGE, "%s: path too long",
				lx->cfg.state_dir);
	lx->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lx->lock_fd < 0)
		return err_line(err, err_size, TERN_E_IO, "%s: %s", lock, strerror(errno));
	bool locked = flock(lx->lock_fd, LOCK_EX | LOCK_NB) == 0;
	if (!locked && !(flags & TERN_LINUX_READ_ONLY))
		return err_line(err, err_size, TERN_E_BUSY,
				"%s: another ternd is working on this device; try again when it "
				"is done",
				lx->cfg.state_dir);
	if ((rc = open_state(lx, TERN_AREA_BOOTCTL, "bootctl", 2 * BOOTCTL_SECTOR, BOOTCTL_SECTOR,
			     err, err_size)) ||
	    (rc = open_state(lx, TERN_AREA_JOURNAL, "journal", journal_size(lx),
			     lx->cfg.sector_size, err, err_size)))
		return rc;
	unsigned fw = 0;
	if ((rc = running_slot(lx, &fw, err, err_size)))
		return rc;
	char boot_id[128];
	read_boot_id(lx, boot_id, sizeof(boot_id));
	if (!boot_id[0]) /* without it every command would count as a new boot */
		return err_line(err, err_size, TERN_E_IO, "%s: cannot read the boot id",
				lx->cfg.boot_id);
	struct tern_agent_config acfg = {
	    .board = &lx->board,
	    .keyring = &lx->keyring,
	    .board_id = lx->cfg.board_id,
	    .verify_on_finish = true,
	};
	tern_agent_init(&lx->agent, &acfg);
	if (!load_boot(lx, boot_id, fw)) {
		/* A reader without the lock (status while `run` checks health) only reads;
		 * the first command of a boot must hold the lock. */
		if (!locked)
			return err_line(err, err_size, TERN_E_BUSY,
					"%s: another ternd is starting this boot; try again",
					lx->cfg.state_dir);
		if ((rc = reconcile(lx, fw, err, err_size)))
			return rc;
		if ((rc = tern_linux_sync_bootloader(lx)))
			return err_line(err, err_size, rc, "bootloader: %s", tern_strerror(rc));
		if ((rc = save_boot(lx, boot_id)))
			return err_line(err, err_size, rc, "%s/boot: %s", lx->cfg.state_dir,
					tern_strerror(rc));
	}
	if ((rc = tern_agent_start(&lx->agent, &lx->boot)))
		return err_line(err, err_size, rc, "agent: %s", tern_strerror(rc));
	/* Outside a trial only a good slot may stay running (e.g. a power cut between a
	 * rollback's record write and its bootloader write started the bad slot again). */
	const struct tern_slot_meta *m = &lx->agent.bc.slots[tern_slot_area(TERN_PAIR_FW, fw)];
	lx->note.reboot_needed = !lx->boot.trial && m->state != TERN_SLOT_GOOD;
	return 0;
}

void tern_linux_close(struct tern_linux *lx)
{
	if (commit(lx) == 0 && lx->fd[TERN_AREA_JOURNAL] >= 0)
		fdatasync(lx->fd[TERN_AREA_JOURNAL]); /* best effort: lost markers cost a refetch */
	for (int a = 0; a < TERN_AREA__COUNT; a++)
		if (lx->fd[a] >= 0)
			close(lx->fd[a]);
	if (lx->lock_fd >= 0)
		close(lx->lock_fd); /* releases the lock */
	tern_bootloader_close(&lx->bl);
}

/* --- install from a file --- */

/*
 * The release file is read through a mapped window (RELEASE_WINDOW bytes, moved as
 * needed), so a release of any size installs with bounded memory and address space
 * (32-bit devices) and no copy: the core writes slots straight from the mapping.
 */
#define RELEASE_WINDOW (8u * 1024 * 1024)

struct release_file {
	int fd;
	uint64_t size;
	const uint8_t *win;
	uint64_t win_off;
	size_t win_len;
};

static void release_unmap(struct release_file *rf)
{
	if (rf->win)
		munmap((void *)(uintptr_t)rf->win, rf->win_len);
	rf->win = NULL;
}

/* Points @p at @want bytes at @pos (fewer at the end of the file: @got). @want is at most
 * RELEASE_WINDOW. */
static int release_at(struct release_file *rf, uint64_t pos, size_t want, const uint8_t **p,
		      size_t *got)
{
	*got = 0;
	if (pos >= rf->size)
		return 0;
	if (want > rf->size - pos)
		want = (size_t)(rf->size - pos);
	if (!rf->win || pos < rf->win_off || pos + want > rf->win_off + rf->win_len) {
		release_unmap(rf);
		uint64_t start = pos - pos % RELEASE_WINDOW; /* page aligned */
		uint64_t len = rf->size - start;
		if (len > 2ull * RELEASE_WINDOW)
			len = 2ull * RELEASE_WINDOW;
		void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, rf->fd, (off_t)start);
		if (m == MAP_FAILED)
			return TERN_E_IO;
		rf->win = m;
		rf->win_off = start;
		rf->win_len = (size_t)len;
	}
	*p = rf->win + (pos - rf->win_off);
	*got = want;
	return 0;
}

/* Feeds the byte string of @len bytes at *@pos (its head first) to the agent. */
static int feed_part(struct tern_linux *lx, struct release_file *rf, unsigned comp, bool index,
		     uint64_t *pos, uint64_t len)
{
	const size_t piece = 1024 * 1024;
	const uint8_t *p;
	size_t got, head;
	int rc = release_at(rf, *pos, 9, &p, &got);
	if (rc || (rc = tern_release_expect_bstr(p, got, len, &head)))
		return rc;
	*pos += head;
	for (uint64_t off = 0; off < len;) {
		size_t want = len - off < piece ? (size_t)(len - off) : piece;
		if ((rc = release_at(rf, *pos + off, want, &p, &got)))
			return rc;
		if (got == 0)
			return TERN_E_TRUNCATED;
		rc = index ? tern_agent_feed_index(&lx->agent, comp, off, p, got)
			   : tern_agent_feed(&lx->agent, comp, off, p, got);
		if (rc)
			return rc;
		off += got;
	}
	*pos += len;
	return 0;
}

int tern_linux_check_targets(struct tern_linux *lx)
{
	for (unsigned pr = 0; pr < TERN_N_PAIRS; pr++) {
		unsigned active = lx->agent.bc.active[pr];
		enum tern_area a =
		    tern_slot_area((enum tern_pair)pr, active <= 1 ? active ^ 1u : 0);
		int rc;
		if (lx->fd[a] < 0)
			continue;
		if ((rc = check_not_mounted(lx, a)))
			return rc;
		lx->mount_checked[a] = true;
	}
	return 0;
}

int tern_linux_end_trial(struct tern_linux *lx, bool healthy)
{
	int rc;
	struct tern_bootctl *bc = &lx->agent.bc;
	unsigned t = bc->trial_slot[TERN_PAIR_FW];
	if (healthy && t <= 1) {
		struct tern_bootvars cur, w;
		if ((rc = tern_bootloader_read(&lx->bl, &cur)))
			return rc;
		w = cur;
		w.primary = (uint8_t)t;
		w.left[t] = lx->cfg.attempts;
		if ((rc = tern_bootloader_write(&lx->bl, &w, &cur)))
			return rc;
	}
	if ((rc = tern_agent_health(&lx->agent, healthy)))
		return rc;
	return tern_linux_sync_bootloader(lx);
}

int tern_linux_install_file(struct tern_linux *lx, const char *path, bool revert)
{
	struct release_file rf = {.fd = open(path, O_RDONLY | O_CLOEXEC)};
	if (rf.fd < 0)
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	struct stat st;
	int rc = 0;
	if (fstat(rf.fd, &st) != 0 || !S_ISREG(st.st_mode))
		rc = TERN_E_IO;
	else if (st.st_size == 0)
		rc = TERN_E_TRUNCATED;
	rf.size = (uint64_t)st.st_size;
	struct tern_release_head rh;
	const uint8_t *p;
	size_t got;
	if (rc == 0 && (rc = release_at(&rf, 0, TERN_SIGNED_MANIFEST_MAX, &p, &got)) == 0)
		rc = tern_release_parse_unverified(&rh, p, got);
	if (rc == 0)
		rc = tern_linux_check_targets(lx);
	if (rc == 0)
		rc = revert ? tern_agent_offer_revert(&lx->agent, p, rh.head_len)
			    : tern_agent_offer(&lx->agent, p, rh.head_len);
	if (rc || lx->agent.state == TERN_ST_STAGED)
		goto out; /* refused (nothing written), or staged already */
	uint64_t pos = rh.head_len;
	const struct tern_manifest *m = &rh.manifest; /* sizes only: its notes are not used */
	for (unsigned i = 0; i < m->n_components && rc == 0; i++) {
		const struct tern_component *c = &m->components[i];
		rc = feed_part(lx, &rf, i, true, &pos, tern_index_size(c->size, m->chunk_size));
		if (rc == 0)
			rc = feed_part(lx, &rf, i, false, &pos, c->size);
	}
	if (rc == 0 && pos != rf.size)
		rc = TERN_E_TRAILING;
	if (rc == 0)
		rc = tern_agent_finish(&lx->agent);
	if (rc && lx->agent.state == TERN_ST_DOWNLOADING) {
		int crc = tern_agent_cancel(&lx->agent, rc);
		(void)crc; /* the first error is the one to report */
	}
out:
	release_unmap(&rf);
	close(rf.fd);
	return rc;
}
