/* A sim device kept in a folder (docs/device.md), shared by `ternd sim` and `ternd fleet`:
 *   DEVDIR/device.conf   board id and flash geometry
 *   DEVDIR/keyring-N.pub trusted public keys (PEM)
 *   DEVDIR/flash.img     the whole flash (slots, boot control, install journal)
 *   DEVDIR/running       what the bootloader started last (the device's RAM)
 */
#include "simdir_priv.h"
#include "tern/tern_fdio.h"
#include "tern/tern_kvtext.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
/* Parses "123", "64K", "8M", "1G" (binary units). */
bool parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	uint64_t mul = 1;
	if (*end == 'K' || *end == 'k')
		mul = 1024;
	else if (*end == 'M' || *end == 'm')
		mul = 1024 * 1024;
	else if (*end == 'G' || *end == 'g')
		mul = 1024ull * 1024 * 1024;
	else if (*end != '\0')
		return false;
	if (mul != 1 && end[1] != '\0')
		return false;
	if (v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end != '\0')
		return false;
	*out = v;
	return true;
}

int path_join(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= size ? TERN_E_TOO_LARGE : 0;
}

/* Reads a whole small file into @buf (NUL-terminated). */
int read_small(const char *path, char *buf, size_t size, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	size_t n = fread(buf, 1, size - 1, f);
	int rc = ferror(f) ? TERN_E_IO : !feof(f) ? TERN_E_TOO_LARGE : 0;
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return rc;
}

int write_small(const char *path, const char *text)
{
	char tmp[4096];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return TERN_E_TOO_LARGE;
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return TERN_E_IO;
	bool ok = fputs(text, f) >= 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0)
		return TERN_E_IO;
	return 0;
}

static bool conf_get_u64(const char *text, const char *key, uint64_t *v)
{
	char buf[32];
	return tern_kv_get(text, key, buf, sizeof(buf)) && parse_u64(buf, v);
}

int tern_sim_load_keyring(const char *dir, struct tern_keyring *kr)
{
	memset(kr, 0, sizeof(*kr));
	for (int i = 0; i < TERN_KEYRING_MAX; i++) {
		char name[32], path[2100], pem[4096];
		size_t len;
		snprintf(name, sizeof(name), "keyring-%d.pub", i);
		if (path_join(path, sizeof(path), dir, name))
			return TERN_E_TOO_LARGE;
		int rc = read_small(path, pem, sizeof(pem), &len);
		if (rc == TERN_E_NOT_FOUND)
			break;
		if (rc)
			return rc;
		struct tern_pubkey pk;
		if ((rc = tern_pubkey_parse(&pk, (const uint8_t *)pem, len)) ||
		    (rc = tern_keyring_add(kr, &pk)))
			return rc;
	}
	return kr->n_keys ? 0 : TERN_E_KEY;
}

/*
 * The running file is the device's RAM, written at every boot and power change: in place,
 * with fixed-width numbers so every version of it has the same length (a reader never
 * sees it short). A temporary file and a rename per boot made ext4 look for a free inode
 * each time, which cost a 1000-device fleet about 0.7 ms of CPU per boot.
 */
int save_running(const struct simdev *s)
{
	char path[2100], text[128];
	if (path_join(path, sizeof(path), s->dir, "running"))
		return TERN_E_TOO_LARGE;
	bool powered = s->dev.running && !s->dev.flash.powered_off;
	int n =
	    snprintf(text, sizeof(text), "fw=%u\ncfg=%03u\ntrial=%u\nboots=%010u\npowered=%u\n",
		     s->dev.boot.slot[TERN_PAIR_FW] & 1u, s->dev.boot.slot[TERN_PAIR_CFG] & 0xffu,
		     s->dev.boot.trial ? 1u : 0u, s->dev.n_boots, powered ? 1u : 0u);
	if (n < 0 || (size_t)n >= sizeof(text))
		return TERN_E_TOO_LARGE;
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return TERN_E_IO;
	struct stat st;
	int rc = tern_pwrite_full(fd, text, (size_t)n, 0) ? TERN_E_IO : 0;
	if (!rc && (fstat(fd, &st) != 0 || (st.st_size != n && ftruncate(fd, n) != 0)))
		rc = TERN_E_IO;
	if (close(fd) != 0 && !rc)
		rc = TERN_E_IO;
	return rc;
}

/* Opens DEVDIR: config, keyring, flash. The agent is attached by the caller. */
int simdev_open(struct simdev *s, const char *dir)
{
	char path[2100], conf[1024], board[TERN_NAME_MAX + 1];
	uint64_t v[5];
	int rc;
	struct stat st;
	memset(s, 0, sizeof(*s));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "ternd: %s: no such device folder (run 'ternd sim init' first)\n",
			dir);
		return TERN_E_NOT_FOUND;
	}
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	if ((rc = path_join(path, sizeof(path), dir, "device.conf")) ||
	    (rc = read_small(path, conf, sizeof(conf), NULL)))
		return rc;
	if (!tern_kv_get(conf, "board", board, sizeof(board)) ||
	    !conf_get_u64(conf, "slot_size", &v[0]) ||
	    !conf_get_u64(conf, "cfg_slot_size", &v[1]) ||
	    !conf_get_u64(conf, "journal_size", &v[2]) ||
	    !conf_get_u64(conf, "sector_size", &v[3]) ||
	    !conf_get_u64(conf, "write_align", &v[4]) || v[3] > UINT32_MAX || v[4] > UINT32_MAX)
		return TERN_E_MALFORMED;
	s->geo = (struct tern_sim_geometry){v[0], v[1], v[2], (uint32_t)v[3], (uint32_t)v[4]};
	struct tern_keyring kr;
	if ((rc = tern_sim_load_keyring(dir, &kr)))
		return rc;
	struct tern_sim_flash f;
	if ((rc = path_join(path, sizeof(path), dir, "flash.img")) ||
	    (rc = tern_sim_flash_open_file(&f, &s->geo, path, false)))
		return rc;
	tern_sim_device_init(&s->dev, &f, &kr, board);
	return 0;
}

/* Attaches the agent to what runs now (the "running" file). Sets s->powered. */
int simdev_attach(struct simdev *s)
{
	char path[2100], text[256];
	uint64_t fw, cfg, trial, boots = 0, powered = 1;
	int rc;
	if ((rc = path_join(path, sizeof(path), s->dir, "running")) ||
	    (rc = read_small(path, text, sizeof(text), NULL)))
		return rc;
	if (!conf_get_u64(text, "fw", &fw) || !conf_get_u64(text, "cfg", &cfg) ||
	    !conf_get_u64(text, "trial", &trial) || fw > 1 || (cfg > 1 && cfg != TERN_SLOT_NONE))
		return TERN_E_MALFORMED;
	conf_get_u64(text, "boots", &boots);
	conf_get_u64(text, "powered", &powered);
	struct tern_boot_result b = {{(uint8_t)fw, (uint8_t)cfg}, trial != 0};
	s->dev.n_boots = (unsigned)boots;
	s->powered = powered != 0;
	return tern_sim_attach(&s->dev, &b);
}

void simdev_close(struct simdev *s)
{
	tern_sim_flash_close(&s->dev.flash);
}

/* --- init --- */

static int copy_key(const char *src, const char *dir, int n)
{
	char pem[4096], path[2100], name[32];
	size_t len;
	int rc = read_small(src, pem, sizeof(pem), &len);
	if (rc)
		return rc;
	struct tern_pubkey pk;
	if ((rc = tern_pubkey_parse(&pk, (const uint8_t *)pem, len)))
		return rc;
	snprintf(name, sizeof(name), "keyring-%d.pub", n);
	if ((rc = path_join(path, sizeof(path), dir, name)))
		return rc;
	return write_small(path, pem);
}

int simdev_create(const struct simdev_params *p, tern_sim_log_fn log, void *log_arg)
{
	const char *dir = p->dir;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return TERN_E_IO;
	char path[2100], conf[512];
	if (path_join(path, sizeof(path), dir, "flash.img") == 0 && access(path, F_OK) == 0)
		return TERN_E_EXISTS;
	int rc;
	for (int i = 0; i < p->n_keys; i++)
		if ((rc = copy_key(p->keys[i], dir, i)))
			return rc;
	struct simdev *s = calloc(1, sizeof(*s));
	if (!s)
		return TERN_E_NOMEM;
	tern_sim_geometry_default(&s->geo, p->slot_size);
	struct tern_sim_flash f;
	uint8_t *img = NULL;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	if ((rc = tern_sim_flash_open_file(&f, &s->geo, path, true)))
		goto out;
	s->geo = f.geo; /* with defaults applied */
	snprintf(conf, sizeof(conf),
		 "board=%s\nslot_size=%llu\ncfg_slot_size=%llu\njournal_size=%llu\n"
		 "sector_size=%u\nwrite_align=%u\n",
		 p->board, (unsigned long long)s->geo.slot_size,
		 (unsigned long long)s->geo.cfg_slot_size, (unsigned long long)s->geo.journal_size,
		 s->geo.sector_size, s->geo.write_align);
	tern_sim_device_init(&s->dev, &f, NULL, p->board);
	if ((rc = path_join(path, sizeof(path), dir, "device.conf")) ||
	    (rc = write_small(path, conf)))
		goto out_close;
	if ((rc = tern_sim_load_keyring(dir, &s->dev.keyring)))
		goto out_close;
	img = malloc(p->image_size);
	if (!img) {
		rc = TERN_E_NOMEM;
		goto out_close;
	}
	if ((rc = tern_sim_image_make(img, p->image_size, TERN_SIM_HEALTHY, p->version)) ||
	    (rc = tern_sim_provision(&s->dev, img, p->image_size, p->version, TERN_CHUNK_DEFAULT)))
		goto out_close;
	s->dev.log = log;
	s->dev.log_arg = log_arg;
	if ((rc = tern_sim_boot(&s->dev, SIMDEV_MAX_BOOTS)) || (rc = save_running(s)) ||
	    (rc = tern_sim_flash_sync(&s->dev.flash)))
		goto out_close;
out_close:
	tern_sim_flash_close(&s->dev.flash);
out:
	free(img);
	free(s);
	return rc;
}

void tern_sim_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

void tern_sim_hex(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

const char *tern_sim_slot_name(unsigned slot)
{
	static const char *const names[TERN_N_SLOTS] = {"A", "B", "config-A", "config-B"};
	return slot < TERN_N_SLOTS ? names[slot] : "?";
}

static void json_slot(const struct tern_slot_meta *m, bool unsized_no_digest)
{
	char dg[2 * TERN_SHA256_LEN + 1];
	bool filled = m->state != TERN_SLOT_EMPTY;
	bool has_digest = filled && !(unsized_no_digest && m->size == 0);
	tern_sim_hex(m->index_digest, TERN_SHA256_LEN, dg);
	printf("{\"state\": \"%s\", \"version\": ", tern_slot_state_name(m->state));
	if (filled)
		tern_sim_json_str(m->version);
	else
		printf("null");
	printf(", \"sequence\": %llu, \"security_counter\": %u, \"size\": %llu, \"digest\": ",
	       (unsigned long long)m->sequence, m->security_counter, (unsigned long long)m->size);
	if (has_digest)
		printf("\"%s\"}", dg);
	else
		printf("null}");
}

void tern_sim_json_status(const struct tern_status *st, bool powered, bool unsized_no_digest)
{
	unsigned fw = st->running[TERN_PAIR_FW], cfg = st->running[TERN_PAIR_CFG];
	const struct tern_slot_meta *run = &st->slots[tern_slot_area(TERN_PAIR_FW, fw & 1u)];
	printf("{\"state\": \"%s\", \"powered\": %s, \"running_slot\": \"%s\", "
	       "\"running_version\": ",
	       tern_state_name(st->state), powered ? "true" : "false", tern_sim_slot_name(fw & 1u));
	tern_sim_json_str(run->version);
	printf(", \"running_sequence\": %llu, \"running_trial\": %s, \"running_config\": ",
	       (unsigned long long)run->sequence, st->running_trial ? "true" : "false");
	if (cfg <= 1) {
		const struct tern_slot_meta *c = &st->slots[tern_slot_area(TERN_PAIR_CFG, cfg)];
		char dg[2 * TERN_SHA256_LEN + 1];
		tern_sim_hex(c->index_digest, TERN_SHA256_LEN, dg);
		printf("{\"slot\": \"%s\", \"version\": ", tern_sim_slot_name(2 + cfg));
		tern_sim_json_str(c->version);
		if (unsized_no_digest && !c->size)
			printf(", \"digest\": null}");
		else
			printf(", \"digest\": \"%s\"}", dg);
	} else {
		printf("null");
	}
	printf(", \"slots\": {");
	for (unsigned i = 0; i < TERN_N_SLOTS; i++) {
		printf("%s\"%s\": ", i ? ", " : "", tern_sim_slot_name(i));
		json_slot(&st->slots[i], unsized_no_digest);
	}
	printf("}, \"security_floor\": %u, \"config_security_floor\": %u, "
	       "\"confirmed_sequence\": %llu, \"trial_pending\": %s, "
	       "\"attempts_left\": %u, \"last_event\": \"%s\", \"event_sequence\": %llu, "
	       "\"last_reason\": ",
	       st->security_floor, st->config_security_floor,
	       (unsigned long long)st->confirmed_sequence, st->trial_pending ? "true" : "false",
	       st->attempts_left, tern_event_name(st->last_event),
	       (unsigned long long)st->event_sequence);
	if (st->reason) {
		printf("\"%s\", \"last_reason_text\": ", tern_errname(st->reason));
		tern_sim_json_str(tern_strerror(st->reason));
	} else {
		printf("null, \"last_reason_text\": null");
	}
	if (st->state == TERN_ST_DOWNLOADING)
		printf(
		    ", \"progress\": {\"version\": \"%s\", \"chunks\": %llu, \"verified\": %llu}",
		    st->job_version, (unsigned long long)st->n_chunks,
		    (unsigned long long)st->n_verified);
}

const char *tern_sim_kept(const struct tern_slot_meta *before, const struct tern_slot_meta *after)
{
	bool kept = before->state == TERN_SLOT_GOOD && after->state == TERN_SLOT_STAGED &&
		    before->sequence == after->sequence &&
		    !memcmp(before->index_digest, after->index_digest, TERN_SHA256_LEN);
	return kept ? " (kept in the slot: nothing downloaded)" : "";
}

/* The lines of `ternd sim status` from "running:" to "download:" (the slots in @shown,
 * a bit per slot area). */
void tern_sim_text_slots(const struct tern_status *st, unsigned shown)
{
	unsigned fw = st->running[TERN_PAIR_FW];
	const struct tern_slot_meta *run = &st->slots[tern_slot_area(TERN_PAIR_FW, fw & 1u)];
	printf("running:        slot %s, version %s (sequence %llu)%s\n",
	       tern_sim_slot_name(fw & 1u), run->version, (unsigned long long)run->sequence,
	       st->running_trial ? " on trial" : "");
	for (unsigned i = 0; i < TERN_N_SLOTS; i++) {
		const struct tern_slot_meta *m = &st->slots[i];
		if (!(shown & (1u << i)))
			continue;
		if (m->state == TERN_SLOT_EMPTY)
			printf("slot %-9s empty\n", tern_sim_slot_name(i));
		else
			printf("slot %-9s %-10s %s (sequence %llu, security %u)\n",
			       tern_sim_slot_name(i), tern_slot_state_name(m->state), m->version,
			       (unsigned long long)m->sequence, m->security_counter);
	}
	printf("security floor: %u (config %u)\n", st->security_floor, st->config_security_floor);
	if (st->trial_pending)
		printf("trial:          pending, %u attempts left\n", st->attempts_left);
	if (st->state == TERN_ST_DOWNLOADING)
		printf("download:       %s, %llu of %llu chunks verified\n", st->job_version,
		       (unsigned long long)st->n_verified, (unsigned long long)st->n_chunks);
}

void tern_sim_text_last_event(const struct tern_status *st)
{
	printf("last event:     %s", tern_event_name(st->last_event));
	if (st->reason)
		printf(": %s (%s)", tern_strerror(st->reason), tern_errname(st->reason));
	printf("\n");
}
