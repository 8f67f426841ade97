/* File helpers for the Linux board: whole reads and writes, paths, atomic replace. */
#include "linux_priv.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int tern_linux_path_resolve(char *out, size_t size, const char *base_file, const char *name)
{
	int n;
	const char *slash = strrchr(base_file, '/');
	if (name[0] == '/' || !slash)
		n = snprintf(out, size, "%s", name);
	else
		n = snprintf(out, size, "%.*s/%s", (int)(slash - base_file), base_file, name);
	return n < 0 || (size_t)n >= size ? TERN_E_TOO_LARGE : 0;
}

int tern_linux_replace_file(const char *path, const void *data, size_t len)
{
	char tmp[4200], dir[4200];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return TERN_E_TOO_LARGE;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return TERN_E_IO;
	int rc = tern_pwrite_full(fd, data, len, 0);
	if (rc == 0 && fsync(fd) != 0)
		rc = TERN_E_IO;
	if (close(fd) != 0 && rc == 0)
		rc = TERN_E_IO;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = TERN_E_IO;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	const char *slash = strrchr(path, '/');
	n = slash ? snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path + (slash == path)), path)
		  : snprintf(dir, sizeof(dir), ".");
	if (n < 0 || (size_t)n >= sizeof(dir))
		return 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd); /* best effort: the data is in place already */
		close(dfd);
	}
	return 0;
}
