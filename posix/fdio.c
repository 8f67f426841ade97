/* Whole reads and writes at an offset (see tern_fdio.h). */
#include "tern/tern_fdio.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

int tern_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return TERN_E_IO;
		if (n == 0)
			return TERN_E_TRUNCATED;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int tern_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return TERN_E_IO;
		if (n == 0) {
			errno = EIO;
			return TERN_E_IO;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}
