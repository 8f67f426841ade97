/* Parallel chunk hashing for `tern release create` and `tern release verify`. */
#include "chunks.h"

#include "host_util.h"
#include "tern/tern_err.h"
#include "tern/tern_manifest.h"
#include "tern/tern_sha256.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH_BYTES (1024u * 1024u)
#define MAX_THREADS 16u

struct pool {
	struct chunks_job *job;
	enum chunks_mode mode;
	uint64_t n_chunks;
	uint64_t per_batch; /* chunks per batch */
	atomic_uint_fast64_t next_batch;
	atomic_int rc;			/* first error, 0 while all is well */
	atomic_uint_fast64_t bad_chunk; /* lowest bad chunk seen */
};

static void fail(struct pool *p, int rc)
{
	int expected = 0;
	atomic_compare_exchange_strong(&p->rc, &expected, rc);
}

static void note_bad(struct pool *p, uint64_t chunk)
{
	uint_fast64_t cur = atomic_load(&p->bad_chunk);
	while (chunk < cur && !atomic_compare_exchange_weak(&p->bad_chunk, &cur, chunk))
		;
	fail(p, TERN_E_DIGEST);
}

/* Hashes, copies or checks chunks [first, first + n). */
static int do_batch(struct pool *p, uint8_t *buf, uint8_t *digests, uint8_t *expect, uint64_t first,
		    uint64_t n)
{
	struct chunks_job *j = p->job;
	uint64_t off = first * j->chunk_size;
	uint64_t len = 0;
	for (uint64_t i = 0; i < n; i++)
		len += tern_chunk_len(j->size, j->chunk_size, first + i);
	int rc = tern_pread_full(j->src_fd, buf, (size_t)len, j->src_off + off);
	if (rc)
		return rc;
	for (uint64_t i = 0, pos = 0; i < n; i++) {
		uint32_t clen = tern_chunk_len(j->size, j->chunk_size, first + i);
		tern_sha256(buf + pos, clen, digests + i * TERN_SHA256_LEN);
		pos += clen;
	}
	size_t dlen = (size_t)n * TERN_SHA256_LEN;
	uint64_t doff = j->idx_off + first * TERN_SHA256_LEN;
	if (p->mode == CHUNKS_CREATE) {
		if ((rc = tern_pwrite_full(j->dst_fd, buf, (size_t)len, j->dst_off + off)))
			return rc;
		return tern_pwrite_full(j->idx_fd, digests, dlen, doff);
	}
	if ((rc = tern_pread_full(j->idx_fd, expect, dlen, doff)))
		return rc;
	for (uint64_t i = 0; i < n; i++) {
		if (memcmp(digests + i * TERN_SHA256_LEN, expect + i * TERN_SHA256_LEN,
			   TERN_SHA256_LEN)) {
			note_bad(p, first + i);
			return TERN_E_DIGEST;
		}
	}
	return 0;
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	size_t digests_len = (size_t)p->per_batch * TERN_SHA256_LEN;
	uint8_t *buf = malloc((size_t)p->per_batch * p->job->chunk_size);
	uint8_t *digests = malloc(digests_len * 2);
	if (!buf || !digests) {
		fail(p, TERN_E_NOMEM);
		goto out;
	}
	while (atomic_load(&p->rc) == 0) {
		uint64_t b = atomic_fetch_add(&p->next_batch, 1);
		uint64_t first = b * p->per_batch;
		if (first >= p->n_chunks)
			break;
		uint64_t n =
		    p->n_chunks - first < p->per_batch ? p->n_chunks - first : p->per_batch;
		int rc = do_batch(p, buf, digests, digests + digests_len, first, n);
		if (rc) {
			fail(p, rc);
			break;
		}
	}
out:
	free(digests);
	free(buf);
	return NULL;
}

unsigned chunks_default_threads(void)
{
	const char *env = getenv("TERN_THREADS");
	uint64_t v;
	if (env && host_parse_u64(env, MAX_THREADS, &v) == 0 && v > 0)
		return (unsigned)v;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > (long)MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

int chunks_run(struct chunks_job *job, enum chunks_mode mode, unsigned n_threads)
{
	struct pool p = {.job = job, .mode = mode};
	pthread_t threads[MAX_THREADS];
	unsigned started = 0;

	p.n_chunks = tern_chunk_count(job->size, job->chunk_size);
	p.per_batch = job->chunk_size >= BATCH_BYTES ? 1 : BATCH_BYTES / job->chunk_size;
	atomic_init(&p.next_batch, 0);
	atomic_init(&p.rc, 0);
	atomic_init(&p.bad_chunk, UINT64_MAX);
	if (n_threads == 0)
		n_threads = chunks_default_threads();
	if (n_threads > MAX_THREADS)
		n_threads = MAX_THREADS;
	uint64_t batches = (p.n_chunks + p.per_batch - 1) / p.per_batch;
	if (batches < n_threads)
		n_threads = batches ? (unsigned)batches : 1;

	/* The calling thread works too: one thread fewer to start. */
	for (unsigned i = 1; i < n_threads; i++) {
		if (pthread_create(&threads[started], NULL, worker, &p)) {
			fail(&p, TERN_E_NOMEM);
			break;
		}
		started++;
	}
	worker(&p);
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	job->bad_chunk = atomic_load(&p.bad_chunk);
	return atomic_load(&p.rc);
}
