/* U-Boot and GRUB environments, byte for byte as their own tools write them. */
#include "tern/tern_bootenv.h"

#include "tern/tern_bootctl.h"
#include "tern/tern_err.h"

#include "linux_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- the variable list --- */

void tern_envvars_free(struct tern_envvars *v)
{
	free(v->buf);
	memset(v, 0, sizeof(*v));
}

/* Finds the entry of @name: its offset and length (with its NUL). */
static bool find(const struct tern_envvars *v, const char *name, size_t *at, size_t *len)
{
	size_t nlen = strlen(name);
	for (size_t pos = 0; pos < v->len;) {
		const char *e = v->buf + pos;
		size_t elen = strlen(e) + 1;
		if (elen > nlen + 1 && !strncmp(e, name, nlen) && e[nlen] == '=') {
			*at = pos;
			*len = elen;
			return true;
		}
		pos += elen;
	}
	return false;
}

const char *tern_envvars_get(const struct tern_envvars *v, const char *name)
{
	size_t at, len;
	if (!find(v, name, &at, &len))
		return NULL;
	return v->buf + at + strlen(name) + 1;
}

/* Makes room for @extra more bytes. */
static int reserve(struct tern_envvars *v, size_t extra)
{
	if (v->len + extra <= v->cap)
		return 0;
	size_t cap = v->cap ? v->cap : 256;
	while (cap < v->len + extra)
		cap *= 2;
	char *p = realloc(v->buf, cap);
	if (!p)
		return TERN_E_NOMEM;
	v->buf = p;
	v->cap = cap;
	return 0;
}

/* Appends "@name=@value\0" (lengths given). */
static int append(struct tern_envvars *v, const char *name, size_t nlen, const char *value,
		  size_t vlen)
{
	size_t need = nlen + 1 + vlen + 1;
	int rc = reserve(v, need);
	if (rc)
		return rc;
	memcpy(v->buf + v->len, name, nlen);
	v->buf[v->len + nlen] = '=';
	memcpy(v->buf + v->len + nlen + 1, value, vlen);
	v->buf[v->len + need - 1] = '\0';
	v->len += need;
	return 0;
}

int tern_envvars_set(struct tern_envvars *v, const char *name, const char *value)
{
	size_t nlen = strlen(name), at, len;
	if (nlen == 0 || strchr(name, '=') || strchr(name, '\n'))
		return TERN_E_INVAL;
	if (!find(v, name, &at, &len))
		return value ? append(v, name, nlen, value, strlen(value)) : 0;
	const char *old = v->buf + at + nlen + 1;
	if (value && !strcmp(old, value))
		return 0;
	/* Replace in place, so the variables keep their order (as grub-editenv does). */
	size_t tail = at + len, tail_len = v->len - tail;
	size_t new_len = value ? nlen + 1 + strlen(value) + 1 : 0;
	if (new_len > len) {
		int rc = reserve(v, new_len - len);
		if (rc)
			return rc;
	}
	memmove(v->buf + at + new_len, v->buf + tail, tail_len);
	v->len = at + new_len + tail_len;
	if (value)
		memcpy(v->buf + at + nlen + 1, value, strlen(value) + 1);
	return 0;
}

/* --- file helpers --- */

static int read_at(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	int rc = tern_pread_full(fd, buf, len, off);
	close(fd);
	return rc;
}

/* --- U-Boot --- */

static bool parse_num(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end != '\0' || s[0] == '-')
		return false;
	*out = v;
	return true;
}

int tern_uboot_loc_parse(struct tern_uboot_loc *loc, const char *config_path, char *err,
			 size_t err_size)
{
	FILE *f = fopen(config_path, "r");
	if (!f) {
		memset(loc, 0, sizeof(*loc));
		snprintf(err, err_size, "%s: cannot open: %s", config_path, strerror(errno));
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	}
	int rc = tern_uboot_loc_read(loc, config_path, f, err, err_size);
	fclose(f);
	return rc;
}

int tern_uboot_loc_read(struct tern_uboot_loc *loc, const char *config_path, FILE *f, char *err,
			size_t err_size)
{
	memset(loc, 0, sizeof(*loc));
	char line[4096 + 256];
	unsigned lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *word[6];
		unsigned n = 0;
		for (char *p = line; *p && n < 6;) {
			while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
				*p++ = '\0';
			if (!*p)
				break;
			word[n++] = p;
			while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
				p++;
		}
		if (n == 0)
			continue;
		const char *why = NULL;
		uint64_t off = 0, size = 0;
		if (n < 3 || n > 5)
			why = "want PATH OFFSET SIZE [SECTOR_SIZE [SECTORS]]";
		else if (loc->n_copies == 2)
			why = "more than two environment copies";
		else if (!parse_num(word[1], &off))
			why = "OFFSET is not a number";
		else if (!parse_num(word[2], &size) || size < 16 || size > 16u * 1024 * 1024)
			why = "SIZE must be a number from 16 bytes to 16 MiB";
		if (why) {
			snprintf(err, err_size, "%s:%u: %s", config_path, lineno, why);
			rc = TERN_E_MALFORMED;
			break;
		}
		unsigned i = loc->n_copies++;
		if (tern_linux_path_resolve(loc->path[i], sizeof(loc->path[i]), config_path,
					    word[0])) {
			snprintf(err, err_size, "%s:%u: path too long", config_path, lineno);
			rc = TERN_E_MALFORMED;
			break;
		}
		loc->off[i] = off;
		loc->size[i] = size;
	}
	if (rc == 0 && loc->n_copies == 0) {
		snprintf(err, err_size, "%s:%u: no environment location (PATH OFFSET SIZE)",
			 config_path, lineno);
		rc = TERN_E_MALFORMED;
	}
	if (rc == 0 && loc->n_copies == 2 && loc->size[0] != loc->size[1]) {
		snprintf(err, err_size, "%s:%u: the two copies must have the same size",
			 config_path, lineno);
		rc = TERN_E_MALFORMED;
	}
	return rc;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* One copy as read: valid when its CRC matches; flag only with two copies. */
struct uboot_copy {
	bool valid;
	uint8_t flag;
};

/* Reads both copies' headers and CRCs; @cur is the current copy, -1 when none is valid.
 * Leaves the current copy's bytes in @img (loc->size[0] bytes). */
static int uboot_read(const struct tern_uboot_loc *loc, uint8_t *img, uint8_t *other, int *cur,
		      uint8_t *cur_flag)
{
	size_t hdr = loc->n_copies == 2 ? 5 : 4;
	struct uboot_copy c[2] = {{false, 0}, {false, 0}};
	uint8_t *buf[2] = {img, other};
	int rc;
	for (unsigned i = 0; i < loc->n_copies; i++) {
		rc = read_at(loc->path[i], loc->off[i], buf[i], (size_t)loc->size[i]);
		if (rc == TERN_E_TRUNCATED) { /* a copy cut short is not valid */
			memset(buf[i], 0, (size_t)loc->size[i]);
			continue;
		}
		if (rc)
			return rc;
		uint32_t crc = tern_crc32(0, buf[i] + hdr, (size_t)loc->size[i] - hdr);
		c[i].valid = crc == get_le32(buf[i]);
		c[i].flag = loc->n_copies == 2 ? buf[i][4] : 0;
	}
	if (loc->n_copies == 1) {
		*cur = c[0].valid ? 0 : -1;
	} else if (c[0].valid && c[1].valid) {
		/* The newer flag wins; 0 after 255 is newer (U-Boot, libubootenv). */
		uint8_t f0 = c[0].flag, f1 = c[1].flag;
		if (f0 == 0xff && f1 == 0)
			*cur = 1;
		else if (f1 == 0xff && f0 == 0)
			*cur = 0;
		else
			*cur = f1 > f0 ? 1 : 0;
	} else {
		*cur = c[0].valid ? 0 : c[1].valid ? 1 : -1;
	}
	if (*cur == 1)
		memcpy(img, other, (size_t)loc->size[0]);
	*cur_flag = *cur >= 0 ? c[*cur].flag : 0;
	return 0;
}

int tern_uboot_env_parse(const void *data_area, size_t len, struct tern_envvars *v)
{
	const char *data = data_area;
	size_t pos = 0;
	int rc;
	tern_envvars_free(v);
	while (pos < len && data[pos]) {
		const char *e = data + pos;
		const char *nul = memchr(e, '\0', len - pos);
		if (!nul)
			return TERN_E_MALFORMED; /* runs past the end */
		const char *eq = memchr(e, '=', (size_t)(nul - e));
		if (eq && eq != e &&
		    (rc = append(v, e, (size_t)(eq - e), eq + 1, (size_t)(nul - eq - 1))))
			return rc;
		pos = (size_t)(nul - data) + 1;
	}
	return 0;
}

int tern_uboot_env_load(const struct tern_uboot_loc *loc, struct tern_envvars *v)
{
	size_t size = (size_t)loc->size[0], hdr = loc->n_copies == 2 ? 5 : 4;
	uint8_t *img = malloc(2 * size);
	if (!img)
		return TERN_E_NOMEM;
	int cur;
	uint8_t flag;
	int rc = uboot_read(loc, img, img + size, &cur, &flag);
	if (rc)
		goto out;
	if (cur < 0) {
		rc = TERN_E_NO_BOOTCTL;
		goto out;
	}
	rc = tern_uboot_env_parse(img + hdr, size - hdr, v);
out:
	free(img);
	return rc;
}

int tern_uboot_env_store(const struct tern_uboot_loc *loc, const struct tern_envvars *v)
{
	size_t size = (size_t)loc->size[0], hdr = loc->n_copies == 2 ? 5 : 4;
	if (v->len + 1 > size - hdr)
		return TERN_E_TOO_LARGE;
	uint8_t *img = malloc(2 * size);
	if (!img)
		return TERN_E_NOMEM;
	int cur = -1, fd = -1;
	uint8_t flag = 0;
	int rc = 0;
	if (loc->n_copies == 2 && (rc = uboot_read(loc, img, img + size, &cur, &flag)) &&
	    rc != TERN_E_NOT_FOUND)
		goto out;
	unsigned target = loc->n_copies == 2 && cur == 0 ? 1 : 0;
	memset(img, 0, size);
	memcpy(img + hdr, v->buf, v->len);
	if (loc->n_copies == 2)
		img[4] = cur >= 0 ? (uint8_t)(flag + 1) : 1;
	put_le32(img, tern_crc32(0, img + hdr, size - hdr));
	fd = open(loc->path[target], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = TERN_E_IO;
		goto out;
	}
	if ((rc = tern_pwrite_full(fd, img, size, loc->off[target])) == 0 && fdatasync(fd) != 0)
		rc = TERN_E_IO;
	if (close(fd) != 0 && rc == 0)
		rc = TERN_E_IO;
out:
	free(img);
	return rc;
}

/* --- GRUB --- */

static const char grub_header[] = "# GRUB Environment Block\n";

int tern_grubenv_parse(const void *block, size_t len, struct tern_envvars *v)
{
	const char *blk = block, *end = blk + len;
	size_t hlen = sizeof(grub_header) - 1;
	int rc;
	if (len != TERN_GRUBENV_SIZE || memcmp(blk, grub_header, hlen))
		return TERN_E_MALFORMED;
	tern_envvars_free(v);
	char value[TERN_GRUBENV_SIZE];
	for (const char *line = blk + hlen; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		if (*line == '#') { /* padding, or a comment line */
			if (!nl)
				break;
			line = nl + 1;
			continue;
		}
		const char *eq = nl ? memchr(line, '=', (size_t)(nl - line)) : NULL;
		if (!eq || memchr(line, '\0', (size_t)(eq - line)))
			return TERN_E_MALFORMED;
		/* The value ends at the first newline not escaped by a backslash. */
		size_t n = 0;
		const char *p = eq + 1;
		for (; p < end && *p != '\n'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (*p == '\0')
				return TERN_E_MALFORMED;
			value[n++] = *p;
		}
		if (p >= end)
			return TERN_E_MALFORMED;
		if (eq > line && (rc = append(v, line, (size_t)(eq - line), value, n)))
			return rc;
		line = p + 1;
	}
	return 0;
}

int tern_grubenv_load(const char *path, struct tern_envvars *v)
{
	char blk[TERN_GRUBENV_SIZE];
	int rc = read_at(path, 0, blk, TERN_GRUBENV_SIZE);
	if (rc)
		return rc == TERN_E_TRUNCATED ? TERN_E_MALFORMED : rc;
	return tern_grubenv_parse(blk, sizeof(blk), v);
}

int tern_grubenv_format(const struct tern_envvars *v, const void *old, void *block)
{
	char *blk = block;
	const char *prev = old;
	size_t pos = sizeof(grub_header) - 1;
	/* Keep the comment lines that follow the header in the old block (Debian's
	 * grub-editenv writes a warning line), so tern changes only the variables. */
	if (prev && !memcmp(prev, grub_header, pos)) {
		while (pos < TERN_GRUBENV_SIZE && prev[pos] == '#') {
			const char *nl = memchr(prev + pos, '\n', TERN_GRUBENV_SIZE - pos);
			if (!nl)
				break;
			pos = (size_t)(nl - prev) + 1;
		}
		memmove(blk, prev, pos);
	} else {
		memcpy(blk, grub_header, pos);
	}
	for (size_t e = 0; e < v->len;) {
		const char *ent = v->buf + e;
		size_t elen = strlen(ent);
		const char *eq = strchr(ent, '=');
		for (const char *p = ent; p < ent + elen; p++) {
			bool esc = p > eq && (*p == '\\' || *p == '\n');
			if (pos + (esc ? 2 : 1) >= TERN_GRUBENV_SIZE)
				return TERN_E_TOO_LARGE;
			if (esc)
				blk[pos++] = '\\';
			blk[pos++] = *p;
		}
		blk[pos++] = '\n';
		e += elen + 1;
	}
	memset(blk + pos, '#', TERN_GRUBENV_SIZE - pos);
	return 0;
}

int tern_grubenv_store(const char *path, const struct tern_envvars *v)
{
	char old[TERN_GRUBENV_SIZE], blk[TERN_GRUBENV_SIZE];
	bool have_old = read_at(path, 0, old, sizeof(old)) == 0;
	int rc = tern_grubenv_format(v, have_old ? old : NULL, blk);
	return rc ? rc : tern_linux_replace_file(path, blk, sizeof(blk));
}
