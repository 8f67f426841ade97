/* The USB emulator's interim device backend: identity and state in DIR/<serial>/state. */
#include "emu_backend.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_str(char *out, size_t size, const char *s)
{
	size_t n = strlen(s);
	if (n >= size)
		return TERN_E_TOO_LARGE;
	memcpy(out, s, n + 1);
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return TERN_E_MALFORMED;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return TERN_E_MALFORMED;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int save(const struct emu_backend *b)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 32];
	int n1 = snprintf(path, sizeof(path), "%s/state", b->dir);
	int n2 = snprintf(tmp, sizeof(tmp), "%s/state.tmp", b->dir);
	if (n1 < 0 || (size_t)n1 >= sizeof(path) || n2 < 0 || (size_t)n2 >= sizeof(tmp))
		return TERN_E_TOO_LARGE;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return TERN_E_IO;
	fprintf(f,
		"serial=%s\nboard=%s\ndevice_id=%s\nversion=%s\nsequence=%llu\nslot=%u\n"
		"state=%s\nboots=%llu\n",
		b->serial, b->board, b->device_id, b->version, (unsigned long long)b->sequence,
		b->slot, tern_frame_state_name(b->state), (unsigned long long)b->boots);
	if (fclose(f) || rename(tmp, path))
		return TERN_E_IO;
	return 0;
}

static int state_from_name(const char *s, uint32_t *out)
{
	for (uint32_t i = 0; i < TERN_DS__END; i++) {
		if (!strcmp(s, tern_frame_state_name(i))) {
			*out = i;
			return 0;
		}
	}
	return TERN_E_MALFORMED;
}

static int load_line(struct emu_backend *b, char *line)
{
	char *eq = strchr(line, '=');
	if (!eq)
		return TERN_E_MALFORMED;
	*eq = '\0';
	const char *k = line, *v = eq + 1;
	uint64_t n;
	if (!strcmp(k, "board"))
		return copy_str(b->board, sizeof(b->board), v);
	if (!strcmp(k, "device_id"))
		return copy_str(b->device_id, sizeof(b->device_id), v);
	if (!strcmp(k, "version"))
		return copy_str(b->version, sizeof(b->version), v);
	if (!strcmp(k, "sequence"))
		return parse_u64(v, &b->sequence);
	if (!strcmp(k, "boots"))
		return parse_u64(v, &b->boots);
	if (!strcmp(k, "state"))
		return state_from_name(v, &b->state);
	if (!strcmp(k, "slot")) {
		int rc = parse_u64(v, &n);
		if (rc || n > 1)
			return TERN_E_MALFORMED;
		b->slot = (uint32_t)n;
	}
	return 0; /* serial (the directory's name wins) and unknown keys */
}

int emu_backend_open(struct emu_backend *b, const char *root, const char *serial)
{
	memset(b, 0, sizeof(*b));
	int rc = copy_str(b->serial, sizeof(b->serial), serial);
	if (rc)
		return rc;
	int n = snprintf(b->dir, sizeof(b->dir), "%s/%s", root, serial);
	if (n < 0 || (size_t)n >= sizeof(b->dir))
		return TERN_E_TOO_LARGE;
	if (mkdir(b->dir, 0755) && errno != EEXIST)
		return TERN_E_IO;
	memcpy(b->board, "sim", 4);
	memcpy(b->version, "1.0.0", 6);
	b->sequence = 1;
	b->state = TERN_DS_IDLE;

	char path[PATH_MAX + 16];
	n = snprintf(path, sizeof(path), "%s/state", b->dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return TERN_E_TOO_LARGE;
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? save(b) : TERN_E_IO;
	char line[256];
	while (!rc && fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len)
			rc = load_line(b, line);
	}
	fclose(f);
	return rc;
}

int emu_backend_boot(struct emu_backend *b)
{
	b->boots++;
	return save(b);
}

static int be_info(void *ctx, struct tern_msg_info *info)
{
	struct emu_backend *b = ctx;
	memcpy(info->board, b->board, sizeof(info->board));
	memcpy(info->serial, b->serial, sizeof(info->serial));
	memcpy(info->device_id, b->device_id, sizeof(info->device_id));
	memcpy(info->version, b->version, sizeof(info->version));
	info->slot = b->slot;
	info->state = b->state;
	info->sequence = b->sequence;
	info->max_data = TERN_FRAME_DATA_MAX;
	return 0;
}

static int be_state(void *ctx, struct tern_msg_state *st)
{
	struct emu_backend *b = ctx;
	st->state = b->state;
	st->slot = b->slot;
	memcpy(st->version, b->version, sizeof(st->version));
	return 0;
}

const struct tern_usbdev_ops emu_backend_ops = {
    .info = be_info,
    .state = be_state,
};

static int kind_open(void *be, const char *root, const char *serial, const char *keyring)
{
	(void)keyring;
	return emu_backend_open(be, root, serial);
}

static int kind_boot(void *be, bool first)
{
	(void)first;
	return emu_backend_boot(be);
}

static void kind_close(void *be)
{
	(void)be;
}

const struct emu_kind emu_kind_file = {
    .name = "file",
    .size = sizeof(struct emu_backend),
    .open = kind_open,
    .boot = kind_boot,
    .close = kind_close,
    .set_log = NULL,
    .ops = &emu_backend_ops,
};
