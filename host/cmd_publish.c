/* `tern publish`: a verified release into the broker, retained, resumable. */
#include "broker.h"
#include "db.h"
#include "host.h"
#include "host_util.h"
#include "mqtt.h"
#include "release_file.h"

#include "tern/tern_err.h"
#include "tern/tern_topic.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char publish_help[] =
    "usage: tern publish RELEASE.tern [--pubkey FILE.pub ...] [--force] --broker URL\n"
    "\n"
    "Checks the release here first (with --pubkey: its signature too; always: the chunk\n"
    "index and every chunk), then publishes it retained under PREFIX/rel/RELEASE/: every\n"
    "chunk (in windows of 64), each component's chunk index, and the signed manifest\n"
    "last, so a device that sees the manifest finds everything else. Prints the release\n"
    "id. Progress is kept in the host database window by window: run the same command\n"
    "again after an interruption and it continues where the broker stopped\n"
    "acknowledging. --force publishes everything again (e.g. after the broker lost its\n"
    "retained messages).\n"
    "\n" BROKER_HELP;

struct publish_args {
	const char *path;
	struct tern_keyring kr;
	bool force;
	struct broker_opts bo;
};

/* Test hook: exit as if killed once this many windows are recorded
 * ($TERN_TEST_PUBLISH_EXIT_AFTER). */
static uint64_t crash_after(void)
{
	const char *s = getenv("TERN_TEST_PUBLISH_EXIT_AFTER");
	uint64_t v;
	return s && !host_parse_u64(s, UINT64_MAX, &v) ? v : UINT64_MAX;
}

/* Verifies the release file the way `tern release verify` does; prints the reason. */
static int check_release(struct release_file *rf, const struct publish_args *a)
{
	int rc = release_file_open(rf, a->path, a->kr.n_keys ? &a->kr : NULL);
	if (rc)
		return host_fail(a->path, rc), rc;
	if ((rc = release_file_layout(rf))) {
		release_file_close(rf);
		return host_fail(a->path, rc), rc;
	}
	for (size_t i = 0; i < rf->head.manifest.n_components; i++) {
		uint64_t bad;
		if ((rc = release_file_check_component(rf, i, &bad))) {
			if (rc == TERN_E_DIGEST && bad != UINT64_MAX)
				fprintf(stderr, "tern: %s: component '%s' chunk %llu: %s\n",
					a->path, rf->head.manifest.components[i].name,
					(unsigned long long)bad, tern_strerror(rc));
			else
				host_fail(a->path, rc);
			release_file_close(rf);
			return rc;
		}
	}
	return 0;
}

/* Records in the database every window of the component the broker has acknowledged. */
static int record_acked(struct mqtt *mq, struct db *db, const char *sha,
			const struct broker_opts *bo, const char *component, uint64_t first,
			unsigned long long base, uint64_t n_windows, uint64_t *recorded)
{
	unsigned long long acked = mqtt_acked(mq);
	uint64_t chunks = acked > base ? acked - base : 0;
	uint64_t done = first + chunks / TERN_WINDOW_CHUNKS;
	if (done > n_windows)
		done = n_windows;
	if (done <= *recorded)
		return 0;
	*recorded = done;
	return db_progress_set(db, sha, broker_opt(bo, BF_BROKER), broker_opt(bo, BF_PREFIX),
			       component, done);
}

/*
 * Publishes one component's chunks from window @first on, keeping the pipeline full:
 * a window is recorded as done once the broker has acknowledged all of it (PUBACKs come
 * in order), without stopping to wait for it - waiting for each window would stall on
 * brokers that leave Nagle's algorithm on for their small PUBACKs.
 */
static int publish_chunks(struct mqtt *mq, struct db *db, struct release_file *rf, size_t ci,
			  const char *sha, const struct broker_opts *bo, uint64_t first,
			  uint64_t *windows_run, uint8_t *buf)
{
	const struct tern_manifest *m = &rf->head.manifest;
	const struct tern_component *c = &m->components[ci];
	const struct comp_layout *l = &rf->layout[ci];
	uint64_t n_chunks = tern_chunk_count(c->size, m->chunk_size);
	uint64_t n_windows = (n_chunks + TERN_WINDOW_CHUNKS - 1) / TERN_WINDOW_CHUNKS;
	uint64_t limit = crash_after(), recorded = first;
	unsigned long long base = mqtt_issued(mq);
	char topic[TERN_TOPIC_MAX];
	int rc;
	for (uint64_t i = first * TERN_WINDOW_CHUNKS; i < n_chunks; i++) {
		uint32_t len = tern_chunk_len(c->size, m->chunk_size, i);
		if ((rc = tern_pread_full(rf->fd, buf, len, l->bytes_off + i * m->chunk_size)))
			return host_fail(rf->head.manifest.release_id, rc), rc;
		if (!tern_topic_chunk(broker_opt(bo, BF_PREFIX), m->release_id, c->name, i, topic,
				      sizeof(topic)))
			return TERN_E_TOO_LARGE;
		if ((rc = mqtt_publish(mq, topic, buf, len, true)))
			return host_fail("publish", rc), rc;
		if ((i + 1) % TERN_WINDOW_CHUNKS == 0 &&
		    (rc =
			 record_acked(mq, db, sha, bo, c->name, first, base, n_windows, &recorded)))
			return rc;
		/* Test hook: die like a killed process once this many windows are recorded. */
		if (*windows_run + (recorded - first) >= limit)
			_exit(3);
	}
	if ((rc = mqtt_flush(mq)))
		return host_fail("publish", rc), rc;
	recorded = recorded > first ? recorded : first;
	if (n_windows > recorded &&
	    (rc = db_progress_set(db, sha, broker_opt(bo, BF_BROKER), broker_opt(bo, BF_PREFIX),
				  c->name, n_windows)))
		return rc;
	*windows_run += n_windows - first;
	return 0;
}

/* Publishes component @ci's chunk index (read whole: 32 bytes a chunk). */
static int publish_index(struct mqtt *mq, struct release_file *rf, size_t ci, const char *prefix)
{
	const struct tern_manifest *m = &rf->head.manifest;
	const struct comp_layout *l = &rf->layout[ci];
	char topic[TERN_TOPIC_MAX];
	uint8_t *index = malloc(l->index_len ? (size_t)l->index_len : 1);
	if (!index)
		return TERN_E_NOMEM;
	int rc = tern_pread_full(rf->fd, index, (size_t)l->index_len, l->index_off);
	if (!rc &&
	    !tern_topic_index(prefix, m->release_id, m->components[ci].name, topic, sizeof(topic)))
		rc = TERN_E_TOO_LARGE;
	if (!rc)
		rc = mqtt_publish(mq, topic, index, (size_t)l->index_len, true);
	free(index);
	if (rc)
		host_fail("publish index", rc);
	return rc;
}

static int parse_publish(int argc, char **argv, struct publish_args *a)
{
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	int c, rc;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&a->bo, c, optarg))
			continue;
		switch (c) {
		case 'p':
			if ((rc = host_keyring_add_file(&a->kr, optarg)))
				return host_fail(optarg, rc);
			break;
		case 'f':
			a->force = true;
			break;
		case 'h':
			fputs(publish_help, stdout);
			return 0;
		default:
			return host_usage("publish", NULL);
		}
	}
	if (optind + 1 != argc)
		return host_usage("publish", "give one release file");
	a->path = argv[optind];
	if (broker_opts_finish(&a->bo, true))
		return 2;
	return -1;
}

int cmd_publish(int argc, char **argv)
{
	static struct publish_args a;
	static struct release_file rf;
	int status = parse_publish(argc, argv, &a);
	if (status >= 0)
		goto out_opts;
	status = 1;
	struct db *db = NULL;
	struct mqtt *mq = NULL;
	uint8_t *buf = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (check_release(&rf, &a))
		goto out_opts;
	const struct tern_manifest *m = &rf.head.manifest;
	const char *prefix = broker_opt(&a.bo, BF_PREFIX);
	const char *broker = broker_opt(&a.bo, BF_BROKER);
	uint8_t digest[TERN_SHA256_LEN];
	char sha[2 * TERN_SHA256_LEN + 1], client_id[64], topic[TERN_TOPIC_MAX];
	tern_sha256(rf.buf, rf.head.head_len, digest);
	host_hex(digest, sizeof(digest), sha);

	if (db_open(&db, broker_opt(&a.bo, BF_DB)))
		goto out_release;
	struct db_release rec = {
	    .m = m, .manifest_sha256 = sha, .file = a.path, .broker = broker, .prefix = prefix};
	if (db_release_put(db, &rec) || (a.force && db_progress_clear(db, sha, broker, prefix)))
		goto out_db;
	snprintf(client_id, sizeof(client_id), "tern-publish-%ld", (long)getpid());
	struct mqtt_params mp = {.client_id = client_id};
	if (mqtt_connect(&mq, &a.bo, &mp))
		goto out_db;
	buf = malloc(m->chunk_size);
	if (!buf) {
		host_fail(NULL, TERN_E_NOMEM);
		goto out_mqtt;
	}
	uint64_t total_chunks = 0, skipped = 0, windows_run = 0;
	for (size_t i = 0; i < m->n_components; i++) {
		uint64_t n = tern_chunk_count(m->components[i].size, m->chunk_size), done;
		if (db_progress_get(db, sha, broker, prefix, m->components[i].name, &done))
			goto out_mqtt;
		uint64_t skip = done * TERN_WINDOW_CHUNKS < n ? done * TERN_WINDOW_CHUNKS : n;
		total_chunks += n;
		skipped += skip;
		if (publish_chunks(mq, db, &rf, i, sha, &a.bo, done, &windows_run, buf) ||
		    publish_index(mq, &rf, i, prefix))
			goto out_mqtt;
	}
	/* The manifest last: whoever sees it finds every index and chunk already there. */
	if (!tern_topic_manifest(prefix, m->release_id, topic, sizeof(topic)))
		goto out_mqtt;
	int rc = mqtt_publish(mq, topic, rf.buf, rf.head.head_len, true);
	if (!rc)
		rc = mqtt_flush(mq);
	if (rc) {
		host_fail("publish manifest", rc);
		goto out_mqtt;
	}
	rec.complete = true;
	if (db_release_put(db, &rec))
		goto out_mqtt;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("published %s to %s: %llu chunks", m->release_id, broker,
	       (unsigned long long)total_chunks);
	if (skipped)
		printf(" (%llu already acknowledged, resumed)", (unsigned long long)skipped);
	printf(", %zu index%s, manifest; %.2f s\n", m->n_components,
	       m->n_components == 1 ? "" : "es", secs);
	status = 0;
out_mqtt:
	free(buf);
	mqtt_close(mq);
out_db:
	db_close(db);
out_release:
	release_file_close(&rf);
out_opts:
	broker_opts_free(&a.bo);
	return status;
}
