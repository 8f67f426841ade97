/* Test helper: builds signed releases in memory. */
#include "relbuild.h"

#include "tern/tern_cbor.h"
#include "tern/tern_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t relbuild_size(const struct relbuild *rb)
{
	uint32_t cs = rb->chunk_size ? rb->chunk_size : TERN_CHUNK_DEFAULT;
	size_t n = TERN_SIGNED_MANIFEST_MAX;
	for (size_t i = 0; i < rb->n_comp; i++)
		n += 18 + (size_t)tern_index_size(rb->comp[i].len, cs) + rb->comp[i].len;
	return n;
}

/* Writes the chunk index of @data into @index (caller-sized) and its digest. */
static void make_index(const uint8_t *data, size_t len, uint32_t cs, uint8_t *index,
		       uint8_t digest[TERN_SHA256_LEN])
{
	uint64_t n = tern_chunk_count(len, cs);
	for (uint64_t i = 0; i < n; i++)
		tern_sha256(data + i * cs, tern_chunk_len(len, cs, i), index + i * TERN_SHA256_LEN);
	tern_sha256(index, (size_t)n * TERN_SHA256_LEN, digest);
}

size_t relbuild_make(const struct tern_signer *sg, const struct relbuild *rb, uint8_t *out,
		     size_t size, size_t *head_len)
{
	struct tern_manifest m;
	struct tern_early_life el = TERN_EARLY_LIFE_DEFAULT;
	uint32_t cs = rb->chunk_size ? rb->chunk_size : TERN_CHUNK_DEFAULT;
	memset(&m, 0, sizeof(m));
	m.format_version = TERN_FORMAT_VERSION;
	snprintf(m.release_id, sizeof(m.release_id), "r%s-%llu", rb->version,
		 (unsigned long long)rb->sequence);
	snprintf(m.version, sizeof(m.version), "%s", rb->version);
	m.sequence = rb->sequence;
	m.security_counter = rb->security_counter;
	snprintf(m.boards[0], sizeof(m.boards[0]), "%s", rb->board ? rb->board : "sim");
	m.n_boards = 1;
	m.chunk_size = cs;
	m.early_life = el;
	if (rb->trial_attempts)
		m.early_life.trial_attempts = rb->trial_attempts;
	m.created = 1700000000;
	m.n_components = rb->n_comp;
	uint8_t *indexes[TERN_MAX_COMPONENTS] = {0};
	size_t total = 0;
	for (size_t i = 0; i < rb->n_comp; i++) {
		struct tern_component *c = &m.components[i];
		snprintf(c->name, sizeof(c->name), "%s", rb->comp[i].name);
		c->kind = rb->comp[i].kind;
		snprintf(c->slot_group, sizeof(c->slot_group), "%s",
			 c->kind == TERN_KIND_CONFIG ? "config" : "firmware");
		c->size = rb->comp[i].len;
		indexes[i] = malloc((size_t)tern_index_size(c->size, cs) + 1);
		if (!indexes[i])
			goto out;
		make_index(rb->comp[i].data, rb->comp[i].len, cs, indexes[i], c->index_digest);
	}
	uint8_t mbuf[TERN_MANIFEST_MAX];
	size_t mlen = tern_manifest_encode(&m, mbuf, sizeof(mbuf));
	if (mlen == 0)
		goto out;
	size_t slen = tern_cose_sign1_sign(sg, mbuf, mlen, NULL, 0, out, size);
	if (slen == 0)
		goto out;
	if (head_len)
		*head_len = slen;
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, out + slen, size - slen);
	for (size_t i = 0; i < rb->n_comp; i++) {
		uint64_t ilen = tern_index_size(rb->comp[i].len, cs);
		tern_cbor_put_bytes(&w, indexes[i], (size_t)ilen);
		tern_cbor_put_bytes(&w, rb->comp[i].data, rb->comp[i].len);
	}
	size_t body = tern_cbor_writer_len(&w);
	if (body == 0)
		goto out;
	total = slen + body;
out:
	for (size_t i = 0; i < rb->n_comp; i++)
		free(indexes[i]);
	return total;
}
