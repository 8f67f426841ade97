/* Release files on the host: open, walk the layout, verify chunks. */
#include "release_file.h"

#include "chunks.h"
#include "host_util.h"
#include "tern/tern_cbor.h"
#include "tern/tern_err.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int release_file_open(struct release_file *rf, const char *path, const struct tern_keyring *kr)
{
	struct stat st;
	int rc;
	memset(rf, 0, sizeof(*rf));
	rf->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (rf->fd < 0)
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	if (fstat(rf->fd, &st) || !S_ISREG(st.st_mode)) {
		rc = TERN_E_IO;
		goto out_close;
	}
	rf->file_size = (uint64_t)st.st_size;
	size_t n = rf->file_size < sizeof(rf->buf) ? (size_t)rf->file_size : sizeof(rf->buf);
	if ((rc = tern_pread_full(rf->fd, rf->buf, n, 0)))
		goto out_close;
	if (kr)
		rc = tern_release_open(&rf->head, rf->buf, n, kr);
	else
		rc = tern_release_parse_unverified(&rf->head, rf->buf, n);
	/* A head that does not fit the largest signed manifest is not a tern release. */
	if (rc == TERN_E_TRUNCATED && n == sizeof(rf->buf))
		rc = TERN_E_TOO_LARGE;
	if (!rc)
		return 0;
out_close:
	close(rf->fd);
	rf->fd = -1;
	return rc;
}

void release_file_close(struct release_file *rf)
{
	if (rf->fd >= 0)
		close(rf->fd);
	rf->fd = -1;
}

/* Reads the byte-string head at @off announcing @expect bytes; advances @off past it. */
static int expect_bstr(struct release_file *rf, uint64_t *off, uint64_t expect)
{
	uint8_t head[9];
	size_t head_len;
	if (*off >= rf->file_size)
		return TERN_E_TRUNCATED;
	uint64_t left = rf->file_size - *off;
	size_t n = left < sizeof(head) ? (size_t)left : sizeof(head);
	int rc = tern_pread_full(rf->fd, head, n, *off);
	if (!rc)
		rc = tern_release_expect_bstr(head, n, expect, &head_len);
	if (!rc)
		*off += head_len;
	return rc;
}

int release_file_layout(struct release_file *rf)
{
	const struct tern_manifest *m = &rf->head.manifest;
	uint64_t off = rf->head.head_len;
	for (size_t i = 0; i < m->n_components; i++) {
		struct comp_layout *l = &rf->layout[i];
		l->index_len = tern_index_size(m->components[i].size, m->chunk_size);
		l->bytes_len = m->components[i].size;
		int rc = expect_bstr(rf, &off, l->index_len);
		if (rc)
			return rc;
		l->index_off = off;
		off += l->index_len;
		if ((rc = expect_bstr(rf, &off, l->bytes_len)))
			return rc;
		l->bytes_off = off;
		off += l->bytes_len;
	}
	if (off > rf->file_size)
		return TERN_E_TRUNCATED;
	return off < rf->file_size ? TERN_E_TRAILING : 0;
}

/* Streams the index region through SHA-256 and compares with the manifest's digest. */
static int check_index(struct release_file *rf, const struct comp_layout *l,
		       const uint8_t digest[TERN_SHA256_LEN])
{
	uint8_t buf[64 * 1024];
	uint8_t d[TERN_SHA256_LEN];
	struct tern_sha256 h;
	tern_sha256_init(&h);
	for (uint64_t done = 0; done < l->index_len;) {
		size_t n =
		    l->index_len - done < sizeof(buf) ? (size_t)(l->index_len - done) : sizeof(buf);
		int rc = tern_pread_full(rf->fd, buf, n, l->index_off + done);
		if (rc)
			return rc;
		tern_sha256_update(&h, buf, n);
		done += n;
	}
	tern_sha256_final(&h, d);
	return memcmp(d, digest, TERN_SHA256_LEN) ? TERN_E_DIGEST : 0;
}

int release_file_check_component(struct release_file *rf, size_t i, uint64_t *bad_chunk)
{
	const struct tern_component *c = &rf->head.manifest.components[i];
	const struct comp_layout *l = &rf->layout[i];
	*bad_chunk = UINT64_MAX;
	int rc = check_index(rf, l, c->index_digest);
	if (rc)
		return rc;
	struct chunks_job job = {
	    .src_fd = rf->fd,
	    .src_off = l->bytes_off,
	    .size = l->bytes_len,
	    .chunk_size = rf->head.manifest.chunk_size,
	    .idx_fd = rf->fd,
	    .idx_off = l->index_off,
	};
	rc = chunks_run(&job, CHUNKS_VERIFY, 0);
	if (rc == TERN_E_DIGEST)
		*bad_chunk = job.bad_chunk;
	return rc;
}
