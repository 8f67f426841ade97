/* Deploy machinery: resolve a release, issue signed desired states, publish them. */
#include "deploy.h"

#include "host.h"
#include "host_util.h"
#include "release_file.h"

#include "tern/tern_err.h"
#include "tern/tern_topic.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Release notes and version from a release file, when it can be read. */
static int release_facts(const char *path, char *id, size_t id_size, uint64_t *sequence,
			 char *version, size_t version_size, char *notes, size_t notes_size)
{
	static struct release_file rf;
	int rc = release_file_open(&rf, path, NULL);
	if (rc)
		return rc;
	const struct tern_manifest *m = &rf.head.manifest;
	if (id)
		snprintf(id, id_size, "%s", m->release_id);
	if (sequence)
		*sequence = m->sequence;
	if (version)
		snprintf(version, version_size, "%s", m->version);
	if (notes)
		snprintf(notes, notes_size, "%.*s", (int)m->notes_len, m->notes ? m->notes : "");
	release_file_close(&rf);
	return 0;
}

int deploy_resolve_release(struct db *db, const char *release, char *id, size_t id_size,
			   uint64_t *sequence, char *version, size_t version_size, char *notes,
			   size_t notes_size)
{
	struct stat st;
	if (notes && notes_size)
		notes[0] = '\0';
	if (version && version_size)
		version[0] = '\0';
	if (stat(release, &st) == 0 && S_ISREG(st.st_mode)) {
		int rc = release_facts(release, id, id_size, sequence, version, version_size, notes,
				       notes_size);
		if (rc)
			host_fail(release, rc);
		return rc;
	}
	if (!tern_topic_id_valid(release, TERN_RELEASE_ID_MAX)) {
		fprintf(stderr, "tern: %s: no such release file, and not a release id\n", release);
		return TERN_E_NOT_FOUND;
	}
	bool complete;
	char file[512] = "";
	int rc = db_release_get(db, release, sequence, &complete);
	if (rc == TERN_E_NOT_FOUND) {
		fprintf(stderr,
			"tern: release %s is not in the database: publish it first ('tern "
			"publish FILE.tern') or give the release file\n",
			release);
		return rc;
	}
	if (!rc && !complete) {
		fprintf(stderr,
			"tern: release %s was not completely published: run 'tern publish' "
			"again to finish it\n",
			release);
		return TERN_E_STATE;
	}
	if (rc)
		return rc;
	snprintf(id, id_size, "%s", release);
	/* Version and notes from the file `tern publish` read, if it is still there. */
	if ((version || notes) && !db_release_file(db, release, file, sizeof(file)) && file[0]) {
		uint64_t seq;
		char other[TERN_RELEASE_ID_MAX + 1];
		if (release_facts(file, other, sizeof(other), &seq, version, version_size, notes,
				  notes_size) ||
		    strcmp(other, release) || seq != *sequence) {
			if (notes && notes_size)
				notes[0] = '\0';
		}
	}
	return 0;
}

int deploy_issue(struct db *db, const struct tern_signer *sg, struct tern_desired *d,
		 struct deploy_msg *out)
{
	uint64_t last;
	int rc = db_generation_last(db, d->device_id, &last);
	if (rc)
		return rc;
	d->generation = last + 1;
	snprintf(out->device_id, sizeof(out->device_id), "%s", d->device_id);
	out->generation = d->generation;
	out->len = tern_desired_sign(sg, d, out->bytes, sizeof(out->bytes));
	if (!out->len)
		return TERN_E_CRYPTO;
	return db_desired_put(db, d, out->bytes, out->len);
}

int deploy_publish(struct mqtt *mq, const char *prefix, const struct deploy_msg *msg)
{
	char topic[TERN_TOPIC_MAX];
	if (!tern_topic_dev(prefix, msg->device_id, TERN_DEV_DESIRED, topic, sizeof(topic)))
		return TERN_E_INVAL;
	return mqtt_publish(mq, topic, msg->bytes, msg->len, true);
}

void deploy_pace_start(struct deploy_pace *p, uint32_t rate)
{
	p->rate = rate;
	p->sent = 0;
	clock_gettime(CLOCK_MONOTONIC, &p->start);
}

void deploy_pace_wait(struct deploy_pace *p)
{
	uint64_t k = p->sent++;
	if (p->rate == 0 || k == 0)
		return;
	/* Due k / rate seconds after the start: an absolute time, so the time spent signing
	 * and publishing between two calls is not added to the gap. */
	uint64_t ns = k * 1000000000ull / p->rate;
	struct timespec due = {.tv_sec = p->start.tv_sec + (time_t)(ns / 1000000000ull),
			       .tv_nsec = p->start.tv_nsec + (long)(ns % 1000000000ull)};
	if (due.tv_nsec >= 1000000000L) {
		due.tv_sec++;
		due.tv_nsec -= 1000000000L;
	}
	/* A signal (EINTR) ends the sleep: the caller decides whether to go on. */
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
}

uint64_t deploy_pace_due(const struct deploy_pace *p, double ahead)
{
	if (p->rate == 0)
		return UINT64_MAX;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double elapsed = (double)(now.tv_sec - p->start.tv_sec) +
			 (double)(now.tv_nsec - p->start.tv_nsec) / 1e9 + ahead;
	/* State k is due k / rate seconds after the start, as in deploy_pace_wait(). */
	uint64_t due = elapsed > 0 ? (uint64_t)(elapsed * p->rate) + 1 : 1;
	return due > p->sent ? due - p->sent : 0;
}

int deploy_parse_rate(const char *arg, uint32_t *rate)
{
	uint64_t v;
	if (host_parse_u64(arg, DEPLOY_RATE_MAX, &v))
		return TERN_E_INVAL;
	*rate = (uint32_t)v;
	return 0;
}
