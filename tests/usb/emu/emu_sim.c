/*
 * The "sim" kind behind the emulated bus: the real agent core on the sim board, kept in
 * DIR/<serial>/ in `ternd sim`'s folder layout (device.conf, keyring-N.pub, flash.img,
 * running), so `ternd sim status DIR/<serial>` shows the device the host flashed. A new
 * device is made by the real `ternd sim init` (found next to tern-usb-emu).
 */
#include "emu_backend.h"

#include "tern/tern_err.h"
#include "tern/tern_kvtext.h"
#include "tern/tern_sim_usb.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_BOOTS 16

struct emu_sim {
	char dir[PATH_MAX];
	struct tern_sim_device dev;
	struct tern_sim_usb usb;
	bool flash_open;
};

static int path_join(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= size ? TERN_E_TOO_LARGE : 0;
}

static int read_small(const char *path, char *buf, size_t size, size_t *len)
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

/* "key=value" lines: the value of @key as a number. */
static bool conf_u64(const char *text, const char *key, uint64_t *v)
{
	size_t klen = strlen(key);
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (!strncmp(line, key, klen) && line[klen] == '=') {
			uint64_t x = 0;
			const char *p = line + klen + 1;
			if (*p < '0' || *p > '9')
				return false;
			for (; *p >= '0' && *p <= '9'; p++) {
				if (x > (UINT64_MAX - 9) / 10)
					return false;
				x = x * 10 + (uint64_t)(*p - '0');
			}
			*v = x;
			return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

/* Runs `ternd sim init DIR --keyring KEYRING` (ternd lives next to this program),
 * without the umockdev preload. */
static int ternd_init(const char *dir, const char *keyring)
{
	char self[PATH_MAX], ternd[PATH_MAX + 8];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return TERN_E_IO;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return TERN_E_IO;
	*slash = '\0';
	if (path_join(ternd, sizeof(ternd), self, "ternd"))
		return TERN_E_TOO_LARGE;
	pid_t pid = fork();
	if (pid < 0)
		return TERN_E_IO;
	if (pid == 0) {
		unsetenv("LD_PRELOAD");
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execl(ternd, "ternd", "sim", "init", dir, "--keyring", keyring, (char *)NULL);
		fprintf(stderr, "tern-usb-emu: %s: %s\n", ternd, strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return TERN_E_IO;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : TERN_E_IO;
}

static int sim_open(void *ctx, const char *root, const char *serial, const char *keyring)
{
	struct emu_sim *s = ctx;
	char path[PATH_MAX + 40], conf[1024], board[TERN_NAME_MAX + 1];
	uint64_t v[5];
	struct tern_keyring kr;
	struct tern_sim_geometry geo;
	struct tern_sim_flash f;
	int rc;
	int n = snprintf(s->dir, sizeof(s->dir), "%s/%s", root, serial);
	if (n < 0 || (size_t)n >= sizeof(s->dir))
		return TERN_E_TOO_LARGE;
	if ((rc = path_join(path, sizeof(path), s->dir, "flash.img")))
		return rc;
	if (access(path, F_OK) != 0) {
		if (!keyring)
			return TERN_E_KEY;
		if ((rc = ternd_init(s->dir, keyring)))
			return rc;
	}
	if ((rc = path_join(path, sizeof(path), s->dir, "device.conf")) ||
	    (rc = read_small(path, conf, sizeof(conf), NULL)))
		return rc;
	if (!tern_kv_get(conf, "board", board, sizeof(board)) ||
	    !conf_u64(conf, "slot_size", &v[0]) || !conf_u64(conf, "cfg_slot_size", &v[1]) ||
	    !conf_u64(conf, "journal_size", &v[2]) || !conf_u64(conf, "sector_size", &v[3]) ||
	    !conf_u64(conf, "write_align", &v[4]) || v[3] > UINT32_MAX || v[4] > UINT32_MAX)
		return TERN_E_MALFORMED;
	geo = (struct tern_sim_geometry){v[0], v[1], v[2], (uint32_t)v[3], (uint32_t)v[4]};
	if ((rc = tern_sim_load_keyring(s->dir, &kr)))
		return rc;
	if ((rc = path_join(path, sizeof(path), s->dir, "flash.img")) ||
	    (rc = tern_sim_flash_open_file(&f, &geo, path, false)))
		return rc;
	tern_sim_device_init(&s->dev, &f, &kr, board);
	s->flash_open = true;
	s->usb.dev = &s->dev;
	snprintf(s->usb.serial, sizeof(s->usb.serial), "%s", serial);
	/* Provisioned devices have an id (tern usb provision). */
	char id[TERN_FRAME_DEVICE_ID_MAX + 2];
	size_t len = 0;
	if (!path_join(path, sizeof(path), s->dir, "device_id") &&
	    !read_small(path, id, sizeof(id), &len)) {
		while (len && id[len - 1] == '\n')
			id[--len] = '\0';
		if (len >= sizeof(s->usb.device_id))
			return TERN_E_MALFORMED;
		memcpy(s->usb.device_id, id, len + 1);
	}
	if (!path_join(path, sizeof(path), s->dir, "provision_gen") &&
	    !read_small(path, id, sizeof(id), &len)) {
		char *end;
		id[len < sizeof(id) ? len : sizeof(id) - 1] = '\0';
		unsigned long long g = strtoull(id, &end, 10);
		if (end == id)
			return TERN_E_MALFORMED;
		s->usb.provision_gen = g;
	}
	return 0;
}

/* Writes @len bytes to DIR/@name through a temporary file and a rename. */
static int write_file(const struct emu_sim *s, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX + 40], tmp[PATH_MAX + 48];
	if (path_join(path, sizeof(path), s->dir, name) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", path) < 0)
		return TERN_E_TOO_LARGE;
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return TERN_E_IO;
	bool ok = fwrite(data, 1, len, f) == len;
	if (fclose(f) || !ok || rename(tmp, path))
		return TERN_E_IO;
	return 0;
}

/*
 * PROVISION: a blank device (no id yet) takes a plain request; a provisioned one only a
 * request signed by a key it trusts, bound to its serial. The new keyring replaces the
 * old one, in the files ternd reads (keyring-N.pub, DER) and in the running agent.
 */
static int sim_provision(void *be, const struct tern_msg_provision *req)
{
	static const uint8_t spki_p256[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
					      0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
					      0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
	struct emu_sim *s = be;
	struct tern_msg_provision opened;
	const struct tern_msg_provision *p = req;
	struct tern_keyring kr;
	int rc;
	if (req->signed_req) {
		rc = tern_msg_provision_open(req, &s->dev.keyring, s->usb.serial, &opened);
		if (rc)
			return rc;
		p = &opened;
	} else if (s->usb.device_id[0]) {
		return TERN_E_EXISTS; /* wire status "provisioned": a signed request is needed */
	}
	/* A signed request must be newer than the last one taken: no replay. */
	if ((rc = tern_provision_generation_check(req->signed_req != NULL, p->generation,
						  s->usb.provision_gen)))
		return rc;
	memset(&kr, 0, sizeof(kr));
	for (size_t i = 0; i < p->n_keys; i++) {
		struct tern_pubkey pk;
		if ((rc = tern_pubkey_from_point(&pk, p->keys[i], TERN_P256_POINT_LEN)) ||
		    (rc = tern_keyring_add(&kr, &pk)))
			return rc;
	}
	for (size_t i = 0; i < TERN_KEYRING_MAX; i++) {
		char name[32], path[PATH_MAX + 40];
		uint8_t der[sizeof(spki_p256) + TERN_P256_POINT_LEN];
		snprintf(name, sizeof(name), "keyring-%zu.pub", i);
		if (i >= kr.n_keys) {
			if (!path_join(path, sizeof(path), s->dir, name))
				unlink(path);
			continue;
		}
		memcpy(der, spki_p256, sizeof(spki_p256));
		memcpy(der + sizeof(spki_p256), kr.keys[i].point, TERN_P256_POINT_LEN);
		if ((rc = write_file(s, name, der, sizeof(der))))
			return rc;
	}
	if (p->config && (rc = write_file(s, "provisioned.conf", p->config, p->config_len)))
		return rc;
	char line[TERN_FRAME_DEVICE_ID_MAX + 2];
	int n = snprintf(line, sizeof(line), "%s\n", p->device_id);
	if (n < 0 || (rc = write_file(s, "device_id", line, (size_t)n)))
		return rc ? rc : TERN_E_IO;
	uint64_t gen = p->generation > s->usb.provision_gen ? p->generation : s->usb.provision_gen;
	n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)gen);
	if (n < 0 || (rc = write_file(s, "provision_gen", line, (size_t)n)))
		return rc ? rc : TERN_E_IO;
	s->usb.provision_gen = gen;
	s->dev.keyring = kr; /* the agent reads its keyring through this pointer */
	memcpy(s->usb.device_id, p->device_id, sizeof(s->usb.device_id));
	return 0;
}

static int save_running(struct emu_sim *s)
{
	char path[PATH_MAX + 40], tmp[PATH_MAX + 48];
	if (path_join(path, sizeof(path), s->dir, "running") ||
	    path_join(tmp, sizeof(tmp), s->dir, "running.tmp"))
		return TERN_E_TOO_LARGE;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return TERN_E_IO;
	fprintf(f, "fw=%u\ncfg=%u\ntrial=%u\nboots=%u\npowered=1\n", s->dev.boot.slot[TERN_PAIR_FW],
		s->dev.boot.slot[TERN_PAIR_CFG], s->dev.boot.trial ? 1u : 0u, s->dev.n_boots);
	if (fclose(f) || rename(tmp, path))
		return TERN_E_IO;
	return 0;
}

/* First appearance: attach to what runs (the "running" file); after a reboot: boot. */
static int sim_boot(void *ctx, bool first)
{
	struct emu_sim *s = ctx;
	char path[PATH_MAX + 40], text[256];
	int rc;
	if (!first) {
		rc = tern_sim_boot(&s->dev, MAX_BOOTS);
		if (!rc)
			rc = save_running(s);
		if (!rc)
			rc = tern_sim_flash_sync(&s->dev.flash);
		return rc;
	}
	uint64_t fw, cfg, trial, boots = 0;
	if ((rc = path_join(path, sizeof(path), s->dir, "running")) ||
	    (rc = read_small(path, text, sizeof(text), NULL)))
		return rc;
	if (!conf_u64(text, "fw", &fw) || !conf_u64(text, "cfg", &cfg) ||
	    !conf_u64(text, "trial", &trial) || fw > 1 || cfg > 255)
		return TERN_E_MALFORMED;
	conf_u64(text, "boots", &boots);
	struct tern_boot_result b = {{(uint8_t)fw, (uint8_t)cfg}, trial != 0};
	s->dev.n_boots = (unsigned)boots;
	return tern_sim_attach(&s->dev, &b);
}

static void sim_close(void *ctx)
{
	struct emu_sim *s = ctx;
	if (s->flash_open) {
		tern_sim_flash_sync(&s->dev.flash);
		tern_sim_flash_close(&s->dev.flash);
	}
	s->flash_open = false;
}

static void sim_set_log(void *ctx, void (*log)(void *arg, const char *line), void *arg)
{
	struct emu_sim *s = ctx;
	s->dev.log = log;
	s->dev.log_arg = arg;
}

/* The backend context the usbdev ops see is the struct tern_sim_usb inside. */
static int sim_info(void *be, struct tern_msg_info *info)
{
	return tern_sim_usb_ops.info(&((struct emu_sim *)be)->usb, info);
}

static int sim_state(void *be, struct tern_msg_state *st)
{
	return tern_sim_usb_ops.state(&((struct emu_sim *)be)->usb, st);
}

static int sim_offer(void *be, const uint8_t *m, size_t len, bool revert, struct tern_msg_ack *next)
{
	return tern_sim_usb_ops.offer(&((struct emu_sim *)be)->usb, m, len, revert, next);
}

static int sim_data(void *be, const struct tern_msg_data *d, struct tern_msg_ack *next)
{
	return tern_sim_usb_ops.data(&((struct emu_sim *)be)->usb, d, next);
}

static int sim_done(void *be)
{
	return tern_sim_usb_ops.done(&((struct emu_sim *)be)->usb);
}

static int sim_activate(void *be)
{
	return tern_sim_usb_ops.activate(&((struct emu_sim *)be)->usb);
}

static int sim_confirm(void *be)
{
	return tern_sim_usb_ops.confirm(&((struct emu_sim *)be)->usb);
}

static const struct tern_usbdev_ops emu_sim_ops = {
    .info = sim_info,
    .state = sim_state,
    .offer = sim_offer,
    .data = sim_data,
    .done = sim_done,
    .activate = sim_activate,
    .confirm = sim_confirm,
    .provision = sim_provision,
};

const struct emu_kind emu_kind_sim = {
    .name = "sim",
    .size = sizeof(struct emu_sim),
    .open = sim_open,
    .boot = sim_boot,
    .close = sim_close,
    .set_log = sim_set_log,
    .ops = &emu_sim_ops,
};
