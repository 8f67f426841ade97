/*
 * Provisioning on the Linux board (docs/linux.md, "Provisioning"): the device id, the
 * provisioning generation and the configuration go into the drop-in
 * STATE/provisioned.conf, the trusted keys into the keyring folder as PEM files. Every
 * file is replaced atomically (temporary file, fsync, rename, fsync of the folder), and
 * in an order that never leaves the device without a key it trusted before or after:
 * the new keys, then the drop-in, then the old keys go.
 */
#include "tern/tern_linux.h"

#include "tern/tern_err.h"

#include "linux_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_PREFIX "provisioned-"

/* SubjectPublicKeyInfo of a P-256 key up to the point (RFC 5480). */
static const uint8_t spki_p256[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
				      0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
				      0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};

/* @pk as a PEM "PUBLIC KEY" into @out; returns its length, or 0 when @size is too small. */
static size_t key_pem(const struct tern_pubkey *pk, char *out, size_t size)
{
	uint8_t der[sizeof(spki_p256) + TERN_P256_POINT_LEN];
	unsigned char b64[200];
	size_t b64_len = 0;
	memcpy(der, spki_p256, sizeof(spki_p256));
	memcpy(der + sizeof(spki_p256), pk->point, TERN_P256_POINT_LEN);
	if (mbedtls_base64_encode(b64, sizeof(b64), &b64_len, der, sizeof(der)))
		return 0;
	size_t n = 0;
	int w = snprintf(out, size, "-----BEGIN PUBLIC KEY-----\n");
	if (w < 0 || (size_t)w >= size)
		return 0;
	n = (size_t)w;
	for (size_t off = 0; off < b64_len; off += 64) {
		size_t line = b64_len - off < 64 ? b64_len - off : 64;
		w = snprintf(out + n, size - n, "%.*s\n", (int)line, (const char *)b64 + off);
		if (w < 0 || (size_t)w >= size - n)
			return 0;
		n += (size_t)w;
	}
	w = snprintf(out + n, size - n, "-----END PUBLIC KEY-----\n");
	if (w < 0 || (size_t)w >= size - n)
		return 0;
	return n + (size_t)w;
}

/* True for the name of a key file this provisioning wrote (provisioned-N.pub, N < @n). */
static bool is_new_key(const char *name, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char want[48];
		snprintf(want, sizeof(want), KEY_PREFIX "%zu.pub", i);
		if (!strcmp(name, want))
			return true;
	}
	return false;
}

/* Removes every *.pub of @dir but the @n just written, then syncs the folder. */
static int drop_old_keys(const char *dir, size_t n, char *err, size_t err_size)
{
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, err_size, "%s: %s", dir, strerror(errno));
		return TERN_E_IO;
	}
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".pub") || is_new_key(e->d_name, n))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
			snprintf(err, err_size, "%s/%s: cannot remove the old key: %s", dir,
				 e->d_name, strerror(errno));
			rc = TERN_E_IO;
		}
	}
	if (rc == 0)
		fsync(dirfd(d)); /* best effort, as for every replaced file */
	closedir(d);
	return rc;
}

/* The drop-in's text: ternd's own lines, then the request's configuration. */
static int dropin_text(const struct tern_linux_provisioning *p, char *out, size_t size, size_t *len)
{
	int n = snprintf(out, size,
			 "# Written by ternd when the device was provisioned over USB (tern usb "
			 "provision).\n# Its keys replace ternd.conf's; do not edit: the next "
			 "provisioning replaces it.\n[provisioned]\ngeneration = %llu\n[device]\n"
			 "id = %s\n",
			 (unsigned long long)p->generation, p->device_id);
	if (n < 0 || (size_t)n >= size)
		return TERN_E_TOO_LARGE;
	size_t used = (size_t)n;
	if (p->config_len) {
		bool newline = p->config[p->config_len - 1] == '\n';
		if (used + p->config_len + 2 > size)
			return TERN_E_TOO_LARGE;
		memcpy(out + used, p->config, p->config_len);
		used += p->config_len;
		if (!newline)
			out[used++] = '\n';
	}
	out[used] = '\0';
	*len = used;
	return 0;
}

/* Reads ternd.conf again (without the old drop-in) and the new drop-in @text over it
 * into @out: the request is refused before anything is written when they do not make a
 * valid configuration. */
static int check_merged(const struct tern_linux_config *cfg, const char *dropin_path, char *text,
			size_t len, struct tern_linux_config *out, char *err, size_t err_size)
{
	FILE *f = fopen(cfg->path, "r");
	if (!f) {
		snprintf(err, err_size, "%s: cannot open: %s", cfg->path, strerror(errno));
		return TERN_E_IO;
	}
	int rc = tern_linux_config_read(out, cfg->path, f, err, err_size);
	fclose(f);
	if (rc)
		return rc;
	f = fmemopen(text, len, "r");
	if (!f) {
		snprintf(err, err_size, "%s", tern_strerror(TERN_E_NOMEM));
		return TERN_E_NOMEM;
	}
	rc = tern_linux_dropin_read(out, dropin_path, f, err, err_size);
	fclose(f);
	if (rc == 0 && !out->mqtt_client_id[0])
		memcpy(out->mqtt_client_id, out->device_id, sizeof(out->mqtt_client_id));
	return rc;
}

int tern_linux_provision_write(const struct tern_linux_config *cfg,
			       const struct tern_linux_provisioning *p,
			       struct tern_linux_config *out, char *err, size_t err_size)
{
	char dropin[TERN_LINUX_PATH_MAX + 32];
	char path[TERN_LINUX_PATH_MAX + 64];
	size_t len = 0;
	int rc;
	if (!tern_linux_id_valid(p->device_id)) {
		snprintf(err, err_size, "device id '%.70s' is not 1 to 64 of A-Z a-z 0-9 . _ -",
			 p->device_id);
		return TERN_E_INVAL;
	}
	if (p->keyring->n_keys == 0) {
		snprintf(err, err_size, "a provisioning needs at least one key to trust");
		return TERN_E_KEY;
	}
	if (p->config_len > TERN_LINUX_PROVISION_CONFIG_MAX ||
	    (p->config_len && memchr(p->config, '\0', p->config_len))) {
		snprintf(err, err_size,
			 "the configuration must be text of at most %d bytes (ternd.conf lines)",
			 TERN_LINUX_PROVISION_CONFIG_MAX);
		return TERN_E_MALFORMED;
	}
	if ((rc = tern_linux_dropin_path(cfg, dropin, sizeof(dropin)))) {
		snprintf(err, err_size, "%s: path too long", cfg->state_dir);
		return rc;
	}
	char *text = malloc(TERN_LINUX_PROVISION_CONFIG_MAX + 512);
	if (!text) {
		snprintf(err, err_size, "%s", tern_strerror(TERN_E_NOMEM));
		return TERN_E_NOMEM;
	}
	if ((rc = dropin_text(p, text, TERN_LINUX_PROVISION_CONFIG_MAX + 512, &len))) {
		snprintf(err, err_size, "the configuration is too long");
		goto out_free;
	}
	if ((rc = check_merged(cfg, dropin, text, len, out, err, err_size)))
		goto out_free;
	/* The new keys beside the old ones, then the drop-in, then the old keys go. */
	for (size_t i = 0; i < p->keyring->n_keys; i++) {
		char pem[400];
		size_t pem_len = key_pem(&p->keyring->keys[i], pem, sizeof(pem));
		int n =
		    snprintf(path, sizeof(path), "%s/" KEY_PREFIX "%zu.pub", cfg->keyring_dir, i);
		if (!pem_len || n < 0 || (size_t)n >= sizeof(path)) {
			snprintf(err, err_size, "%s: path too long", cfg->keyring_dir);
			rc = TERN_E_TOO_LARGE;
			goto out_free;
		}
		if ((rc = tern_linux_replace_file(path, pem, pem_len))) {
			snprintf(err, err_size, "%s: cannot write the key: %s", path,
				 strerror(errno));
			goto out_free;
		}
	}
	if ((rc = tern_linux_replace_file(dropin, text, len))) {
		snprintf(err, err_size, "%s: cannot write it: %s", dropin, strerror(errno));
		goto out_free;
	}
	rc = drop_old_keys(cfg->keyring_dir, p->keyring->n_keys, err, err_size);
out_free:
	free(text);
	return rc;
}
