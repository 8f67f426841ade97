/* Small helpers shared by the host commands. */
#include "host_util.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

volatile sig_atomic_t host_stop_signal;

static void on_stop_signal(int sig)
{
	host_stop_signal = sig;
}

void host_catch_stop_signals(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int host_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	int rc = 0;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		rc = TERN_E_IO;
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		rc = TERN_E_TOO_LARGE;
		goto out_close;
	}
	size_t n = (size_t)st.st_size;
	uint8_t *buf = malloc(n + 1);
	if (!buf) {
		rc = TERN_E_NOMEM;
		goto out_close;
	}
	rc = tern_pread_full(fd, buf, n, 0);
	if (rc) {
		free(buf);
		goto out_close;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
out_close:
	close(fd);
	return rc;
}

int host_write_new_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return TERN_E_INVAL;
	if (access(path, F_OK) == 0)
		return TERN_E_EXISTS;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return TERN_E_IO;
	int rc = tern_pwrite_full(fd, data, len, 0);
	if (!rc && (fchmod(fd, mode) || fsync(fd)))
		rc = TERN_E_IO;
	if (close(fd) && !rc)
		rc = TERN_E_IO;
	/* link() refuses to replace a file that appeared meanwhile, unlike rename(). */
	if (!rc && link(tmp, path))
		rc = errno == EEXIST ? TERN_E_EXISTS : TERN_E_IO;
	unlink(tmp);
	return rc;
}

int host_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!s || !*s)
		return TERN_E_USAGE;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return TERN_E_USAGE;
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return TERN_E_USAGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int host_parse_size(const char *s, uint64_t *out)
{
	char digits[32];
	size_t n = 0;
	while (s[n] >= '0' && s[n] <= '9' && n < sizeof(digits) - 1) {
		digits[n] = s[n];
		n++;
	}
	digits[n] = '\0';
	uint64_t v, mult = 1;
	if (host_parse_u64(digits, UINT64_MAX, &v))
		return TERN_E_USAGE;
	const char *suffix = s + n;
	if (!strcmp(suffix, "") || !strcmp(suffix, "B"))
		mult = 1;
	else if (!strcmp(suffix, "K") || !strcmp(suffix, "k") || !strcmp(suffix, "KiB"))
		mult = 1024;
	else if (!strcmp(suffix, "M") || !strcmp(suffix, "MiB"))
		mult = 1024 * 1024;
	else if (!strcmp(suffix, "G") || !strcmp(suffix, "GiB"))
		mult = 1024 * 1024 * 1024;
	else
		return TERN_E_USAGE;
	if (v > UINT64_MAX / mult)
		return TERN_E_USAGE;
	*out = v * mult;
	return 0;
}

void host_hex(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

const char *host_human_size(uint64_t n, char *out, size_t size)
{
	static const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%llu bytes", (unsigned long long)n);
	else
		snprintf(out, size, "%.1f %s", v, units[u]);
	return out;
}

void host_json_str(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}
