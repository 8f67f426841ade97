/* The configuration file: INI sections of key = value lines, checked key by key. */
#include "tern/tern_linux.h"

#include "tern/tern_err.h"

#include "linux_priv.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type {
	K_STR,	/* text, stored as is */
	K_PATH, /* a path, resolved against the config file's folder */
	K_UINT, /* decimal, within [min, max] */
	K_U16,	/* decimal or 0x hex, up to 0xffff */
	K_BOOL, /* yes/no, true/false, 1/0 */
	K_BOOTLOADER,
	K_URL, /* an MQTT broker URL (tern_linux_mqtt_url_why) */
	K_U64, /* decimal, 0 to 2^64 - 1 */
};

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t off;  /* in struct tern_linux_config */
	size_t size; /* of the field (strings) */
	unsigned min, max;
};

#define F(field)                                                                                   \
	offsetof(struct tern_linux_config, field), sizeof(((struct tern_linux_config *)0)->field)
#define FS(field, i)                                                                               \
	offsetof(struct tern_linux_config, field[i]),                                              \
	    sizeof(((struct tern_linux_config *)0)->field[i])

/* Every key the file may hold. docs/linux.md documents them in this order. */
static const struct key keys[] = {
    {"device", "id", K_STR, F(device_id), 0, 0},
    {"device", "board", K_STR, F(board_id), 0, 0},
    {"device", "keyring", K_PATH, F(keyring_dir), 0, 0},
    {"device", "state", K_PATH, F(state_dir), 0, 0},
    {"device", "factory_version", K_STR, F(factory_version), 0, 0},
    {"device", "sector_size", K_UINT, F(sector_size), 512, 1024 * 1024},
    {"slots", "firmware.A", K_PATH, FS(slot, TERN_AREA_FW_A), 0, 0},
    {"slots", "firmware.B", K_PATH, FS(slot, TERN_AREA_FW_B), 0, 0},
    {"slots", "config.A", K_PATH, FS(slot, TERN_AREA_CFG_A), 0, 0},
    {"slots", "config.B", K_PATH, FS(slot, TERN_AREA_CFG_B), 0, 0},
    {"slots", "firmware.A.root", K_STR, FS(root, 0), 0, 0},
    {"slots", "firmware.B.root", K_STR, FS(root, 1), 0, 0},
    {"boot", "bootloader", K_BOOTLOADER, F(bootloader), 0, 0},
    {"boot", "fw_env_config", K_PATH, F(fw_env_config), 0, 0},
    {"boot", "grubenv", K_PATH, F(grubenv), 0, 0},
    {"boot", "script", K_STR, F(script), 0, 0},
    {"boot", "attempts", K_UINT, F(attempts), 1, TERN_BOOT_LEFT_MAX},
    {"boot", "cmdline", K_PATH, F(cmdline), 0, 0},
    {"boot", "slot_marker", K_STR, F(slot_marker), 0, 0},
    {"boot", "boot_id", K_PATH, F(boot_id), 0, 0},
    {"boot", "mounts", K_PATH, F(mounts), 0, 0},
    {"health", "command", K_STR, F(health_cmd), 0, 0},
    {"health", "timeout", K_UINT, F(health_timeout), 1, 86400},
    {"health", "settle", K_UINT, F(settle), 0, 86400},
    {"system", "reboot", K_STR, F(reboot_cmd), 0, 0},
    {"mqtt", "url", K_URL, F(mqtt_url), 0, 0},
    {"mqtt", "client_id", K_STR, F(mqtt_client_id), 0, 0},
    {"mqtt", "username", K_STR, F(mqtt_username), 0, 0},
    {"mqtt", "password_file", K_PATH, F(mqtt_password_file), 0, 0},
    {"mqtt", "ca", K_PATH, F(mqtt_ca), 0, 0},
    {"mqtt", "cert", K_PATH, F(mqtt_cert), 0, 0},
    {"mqtt", "key", K_PATH, F(mqtt_key), 0, 0},
    {"mqtt", "prefix", K_STR, F(mqtt_prefix), 0, 0},
    {"mqtt", "keepalive", K_UINT, F(mqtt_keepalive), 5, 3600},
    {"usb", "enabled", K_BOOL, F(usb_enabled), 0, 0},
    {"usb", "functionfs", K_PATH, F(usb_functionfs), 0, 0},
    {"usb", "vid", K_U16, F(usb_vid), 0, 0},
    {"usb", "pid", K_U16, F(usb_pid), 0, 0},
    {"usb", "serial", K_STR, F(usb_serial), 0, 0},
    /* Only in STATE/provisioned.conf, which ternd writes (docs/linux.md "Provisioning"). */
    {"provisioned", "generation", K_U64, F(provision_gen), 0, 0},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(N_KEYS <= TERN_LINUX_KEYS_MAX, "struct tern_linux_config.key_line is too small");

static void defaults(struct tern_linux_config *c)
{
	memset(c, 0, sizeof(*c));
	c->sector_size = 4096;
	c->bootloader = TERN_BOOT_UBOOT;
	c->attempts = 3;
	snprintf(c->factory_version, sizeof(c->factory_version), "factory");
	snprintf(c->fw_env_config, sizeof(c->fw_env_config), "/etc/fw_env.config");
	snprintf(c->cmdline, sizeof(c->cmdline), "/proc/cmdline");
	snprintf(c->slot_marker, sizeof(c->slot_marker), "tern.slot");
	snprintf(c->boot_id, sizeof(c->boot_id), "/proc/sys/kernel/random/boot_id");
	snprintf(c->mounts, sizeof(c->mounts), "/proc/self/mounts");
	c->health_timeout = 60;
	c->settle = 10;
	snprintf(c->mqtt_prefix, sizeof(c->mqtt_prefix), "tern");
	c->mqtt_keepalive = 30;
	c->usb_vid = 0x1209;
	c->usb_pid = 0x0001;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

const char *tern_linux_mqtt_url_why(const char *url, char *why, size_t why_size)
{
	const char *host;
	if (!strncmp(url, "mqtt://", 7) || !strncmp(url, "mqtts://", 8) ||
	    !strncmp(url, "tcp://", 6) || !strncmp(url, "ssl://", 6))
		host = strstr(url, "://") + 3;
	else
		return "must start with mqtt:// or mqtts:// (mqtt://HOST[:PORT])";
	const char *port = NULL, *host_end;
	if (*host == '[') { /* [IPv6]:port */
		host_end = strchr(host, ']');
		if (!host_end || host_end == host + 1)
			return "an IPv6 host is written [ADDRESS]";
		host_end++;
		if (*host_end == ':')
			port = host_end + 1;
		else if (*host_end)
			return "expected :PORT after the host";
	} else {
		host_end = host + strcspn(host, ":/");
		if (*host_end == ':')
			port = host_end + 1;
	}
	if (host_end == host)
		return "no host (mqtt://HOST[:PORT])";
	if (strchr(host, '/'))
		return "no path after the host (mqtt://HOST[:PORT])";
	for (const char *c = host; c < host_end; c++)
		if ((unsigned char)*c <= ' ' || *c == '@' || *c == '?' || *c == '#')
			return "the host has a character that is not allowed";
	if (port) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(port, &end, 10);
		if (errno || end == port || *end || port[0] < '0' || port[0] > '9' || v < 1 ||
		    v > 65535) {
			int n = snprintf(why, why_size,
					 "port '%.12s' is not a number from 1 to 65535", port);
			return n > 0 ? why : "bad port";
		}
	}
	return NULL;
}

/* Stores @value for @k; returns NULL or the reason it is refused. */
static const char *set_value(struct tern_linux_config *c, const struct key *k, const char *value,
			     char *why, size_t why_size)
{
	char *field = (char *)c + k->off;
	char *end;
	unsigned long long v;
	int n;
	switch (k->type) {
	case K_STR:
		if (strlen(value) >= k->size)
			return "value too long";
		if (strlen(value) == 0)
			return "empty value";
		memcpy(field, value, strlen(value) + 1);
		return NULL;
	case K_PATH:
		if (strlen(value) == 0)
			return "empty path";
		return tern_linux_path_resolve(field, k->size, c->path, value) ? "path too long"
									       : NULL;
	case K_UINT:
		errno = 0;
		v = strtoull(value, &end, 10);
		if (errno || end == value || *end || value[0] == '-')
			return "not a whole number";
		if (v < k->min || v > k->max) {
			n = snprintf(why, why_size, "must be from %u to %u", k->min, k->max);
			return n > 0 ? why : "out of range";
		}
		*(unsigned *)(void *)field = (unsigned)v;
		if (k->off == offsetof(struct tern_linux_config, sector_size) && (v & (v - 1)))
			return "must be a power of two";
		return NULL;
	case K_U64:
		errno = 0;
		v = strtoull(value, &end, 10);
		if (errno || end == value || *end || value[0] == '-')
			return "not a whole number";
		*(uint64_t *)(void *)field = (uint64_t)v;
		return NULL;
	case K_U16:
		errno = 0;
		v = strtoull(value, &end, 0);
		if (errno || end == value || *end || value[0] == '-' || v > 0xffff)
			return "must be a number from 0 to 0xffff";
		*(uint16_t *)(void *)field = (uint16_t)v;
		return NULL;
	case K_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1"))
			*(bool *)(void *)field = true;
		else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0"))
			*(bool *)(void *)field = false;
		else
			return "must be yes or no";
		return NULL;
	case K_URL: {
		const char *bad = strlen(value) >= k->size
				      ? "value too long"
				      : tern_linux_mqtt_url_why(value, why, why_size);
		if (!bad)
			memcpy(field, value, strlen(value) + 1);
		return bad;
	}
	case K_BOOTLOADER:
		if (!strcmp(value, "uboot"))
			c->bootloader = TERN_BOOT_UBOOT;
		else if (!strcmp(value, "grub"))
			c->bootloader = TERN_BOOT_GRUB;
		else if (!strcmp(value, "script"))
			c->bootloader = TERN_BOOT_SCRIPT;
		else
			return "must be uboot, grub or script";
		return NULL;
	}
	return "unknown key type";
}

/* Requirements checked once the whole file is read; NULL when all is well. */
static const char *check_complete(const struct tern_linux_config *c, char *why, size_t size)
{
	if (!c->board_id[0])
		return "missing key 'board' in [device]";
	if (!c->keyring_dir[0])
		return "missing key 'keyring' in [device]";
	if (!c->state_dir[0])
		return "missing key 'state' in [device]";
	if (!c->slot[TERN_AREA_FW_A][0] || !c->slot[TERN_AREA_FW_B][0])
		return "[slots] needs firmware.A and firmware.B";
	if (!c->slot[TERN_AREA_CFG_A][0] != !c->slot[TERN_AREA_CFG_B][0])
		return "[slots] needs both config.A and config.B, or neither";
	for (int i = 0; i < TERN_N_SLOTS; i++)
		for (int k = 0; k < i; k++)
			if (c->slot[i][0] && !strcmp(c->slot[i], c->slot[k])) {
				snprintf(why, size, "two slots share the path %s", c->slot[i]);
				return why;
			}
	if (c->bootloader == TERN_BOOT_GRUB && !c->grubenv[0])
		return "bootloader = grub needs 'grubenv' in [boot]";
	if (c->bootloader == TERN_BOOT_SCRIPT && !c->script[0])
		return "bootloader = script needs 'script' in [boot]";
	if (strlen(c->factory_version) > TERN_VERSION_MAX)
		return "factory_version is longer than 32 bytes";
	return NULL;
}

static int config_read(struct tern_linux_config *c, const char *path, FILE *f, bool dropin,
		       char *err, size_t err_size);
static int dropin_load(struct tern_linux_config *c, char *err, size_t err_size);

int tern_linux_config_load(struct tern_linux_config *c, const char *path, char *err,
			   size_t err_size)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		defaults(c);
		snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	}
	int rc = tern_linux_config_read(c, path, f, err, err_size);
	fclose(f);
	if (rc == 0)
		rc = dropin_load(c, err, err_size);
	if (rc == 0 && !c->mqtt_client_id[0]) /* the id may come from the drop-in */
		memcpy(c->mqtt_client_id, c->device_id, sizeof(c->mqtt_client_id));
	return rc;
}

int tern_linux_config_read(struct tern_linux_config *c, const char *path, FILE *f, char *err,
			   size_t err_size)
{
	defaults(c);
	if (strlen(path) >= sizeof(c->path)) {
		snprintf(err, err_size, "%s: path too long", path);
		return TERN_E_TOO_LARGE;
	}
	memcpy(c->path, path, strlen(path) + 1);
	const char *slash = strrchr(path, '/');
	snprintf(c->dir, sizeof(c->dir), "%.*s", slash ? (int)(slash - path + (slash == path)) : 1,
		 slash ? path : ".");
	return config_read(c, path, f, false, err, err_size);
}

int tern_linux_dropin_path(const struct tern_linux_config *c, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/provisioned.conf", c->state_dir);
	return n < 0 || (size_t)n >= size ? TERN_E_TOO_LARGE : 0;
}

int tern_linux_dropin_read(struct tern_linux_config *c, const char *path, FILE *f, char *err,
			   size_t err_size)
{
	return config_read(c, path, f, true, err, err_size);
}

/* Applies STATE/provisioned.conf, when there is one, over the file's values. */
static int dropin_load(struct tern_linux_config *c, char *err, size_t err_size)
{
	char path[TERN_LINUX_PATH_MAX + 32];
	if (tern_linux_dropin_path(c, path, sizeof(path))) {
		snprintf(err, err_size, "%s: path too long", c->state_dir);
		return TERN_E_TOO_LARGE;
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
		return TERN_E_IO;
	}
	int rc = tern_linux_dropin_read(c, path, f, err, err_size);
	fclose(f);
	return rc;
}

/* NULL when the provisioning drop-in may set [@section] @name, else why not. */
static const char *dropin_refuses(const char *section, const char *name)
{
	if (!strcmp(section, "provisioned") || !strcmp(section, "mqtt"))
		return NULL;
	if (!strcmp(section, "device") && !strcmp(name, "id"))
		return NULL;
	return "cannot be set by provisioning (only [device] id and [mqtt] keys)";
}

/* Reads the lines of @f into @c (defaults and path already set). A @dropin (the
 * provisioning drop-in) may set only some keys, and replaces the file's values. */
static int config_read(struct tern_linux_config *c, const char *path, FILE *f, bool dropin,
		       char *err, size_t err_size)
{
	char line[8192], section[32] = "";
	bool seen[N_KEYS] = {false};
	unsigned lineno = 0;
	const char *why = NULL;
	char whybuf[160];
	while (!why && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			why = "line longer than 8191 bytes";
			break;
		}
		char *s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			if (!close || close[1] != '\0') {
				why = "a section header is [name]";
				break;
			}
			*close = '\0';
			const char *name = s + 1;
			bool known = false;
			for (size_t i = 0; i < N_KEYS; i++)
				known = known || !strcmp(keys[i].section, name);
			if (!known || strlen(name) >= sizeof(section)) {
				snprintf(whybuf, sizeof(whybuf), "unknown section [%.40s]", name);
				why = whybuf;
				break;
			}
			memcpy(section, name, strlen(name) + 1);
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq) {
			why = "expected key = value";
			break;
		}
		*eq = '\0';
		char *name = trim(s), *value = trim(eq + 1);
		if (!section[0]) {
			why = "key before the first [section]";
			break;
		}
		size_t i;
		for (i = 0; i < N_KEYS; i++)
			if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
				break;
		if (i == N_KEYS) {
			snprintf(whybuf, sizeof(whybuf), "unknown key '%.40s' in [%s]", name,
				 section);
			why = whybuf;
			break;
		}
		if (seen[i]) {
			snprintf(whybuf, sizeof(whybuf), "'%s' is set twice in [%s]", name,
				 section);
			why = whybuf;
			break;
		}
		const char *refused = dropin ? dropin_refuses(section, name)
				      : !strcmp(section, "provisioned")
					  ? "is written by ternd in STATE/provisioned.conf"
					  : NULL;
		if (refused) {
			snprintf(whybuf, sizeof(whybuf), "[%s] %s %s", section, name, refused);
			why = whybuf;
			break;
		}
		seen[i] = true;
		if (!dropin)
			c->key_line[i] = lineno;
		char badbuf[96];
		const char *bad = set_value(c, &keys[i], value, badbuf, sizeof(badbuf));
		if (bad) {
			snprintf(whybuf, sizeof(whybuf), "%s: %s", name, bad);
			why = whybuf;
		}
	}
	bool read_error = ferror(f) != 0;
	if (!why && read_error) {
		snprintf(err, err_size, "%s: read error", path);
		return TERN_E_IO;
	}
	if (!why && !dropin && (why = check_complete(c, whybuf, sizeof(whybuf))) != NULL)
		lineno = lineno ? lineno : 1; /* what is missing is missing at the end */
	if (!why && dropin && c->device_id[0] &&
	    !tern_linux_id_valid(c->device_id)) /* it names topics and files */
		why = "[device] id must be 1 to 64 of A-Z a-z 0-9 . _ -";
	if (why) {
		snprintf(err, err_size, "%s:%u: %s", path, lineno, why);
		return TERN_E_MALFORMED;
	}
	/* USB names the device by the file's id unless told otherwise: the gadget's serial
	 * number (usb-gadget-setup) comes from the file, not from a provisioned id. */
	if (!dropin && !c->usb_serial[0])
		memcpy(c->usb_serial, c->device_id, sizeof(c->usb_serial));
	return 0;
}

bool tern_linux_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > TERN_LINUX_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* The line of [@section] @name in the file, or 0 when it is not set there. */
static unsigned key_line(const struct tern_linux_config *c, const char *section, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
			return c->key_line[i];
	return 0;
}

/* NULL when @path can be opened for reading, else why not (into @why). */
static const char *unreadable(const char *path, char *why, size_t size)
{
	FILE *f = fopen(path, "rb");
	if (f) {
		fclose(f);
		return NULL;
	}
	snprintf(why, size, "cannot read %s: %s", path, strerror(errno));
	return why;
}

int tern_linux_config_check_files(const struct tern_linux_config *c, char *err, size_t err_size)
{
	static const char *const tls_keys[] = {"ca", "cert", "key"};
	const char *const tls_paths[] = {c->mqtt_ca, c->mqtt_cert, c->mqtt_key};
	char why[TERN_LINUX_PATH_MAX + 64];
	if (!c->mqtt_url[0])
		return 0;
	bool tls = !strncmp(c->mqtt_url, "mqtts://", 8) || !strncmp(c->mqtt_url, "ssl://", 6);
	if (c->mqtt_password_file[0] && unreadable(c->mqtt_password_file, why, sizeof(why))) {
		snprintf(err, err_size, "%s:%u: password_file: %s", c->path,
			 key_line(c, "mqtt", "password_file"), why);
		return TERN_E_NOT_FOUND;
	}
	for (size_t i = 0; i < 3; i++) {
		unsigned line = key_line(c, "mqtt", tls_keys[i]);
		if (!tls_paths[i][0])
			continue;
		if (!tls) {
			snprintf(err, err_size,
				 "%s:%u: %s: TLS files need an mqtts:// url (line %u is %.40s)",
				 c->path, line, tls_keys[i], key_line(c, "mqtt", "url"),
				 c->mqtt_url);
			return TERN_E_MALFORMED;
		}
		if (unreadable(tls_paths[i], why, sizeof(why))) {
			snprintf(err, err_size, "%s:%u: %s: %s", c->path, line, tls_keys[i], why);
			return TERN_E_NOT_FOUND;
		}
	}
	if (!c->mqtt_cert[0] != !c->mqtt_key[0]) {
		snprintf(err, err_size, "%s:%u: a client certificate needs both cert and key",
			 c->path, key_line(c, "mqtt", c->mqtt_cert[0] ? "cert" : "key"));
		return TERN_E_MALFORMED;
	}
	return 0;
}
