/* `tern release create|inspect|verify`. */
#include "chunks.h"
#include "host.h"
#include "host_util.h"
#include "release_file.h"
#include "rollout_plan.h"

#include "tern/tern_cbor.h"
#include "tern/tern_err.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char create_help[] =
    "usage: tern release create --key FILE.key --board BOARD --version V --sequence N\n"
    "           [--security-counter N] [--chunk-size 16K] [--firmware FILE] [--config FILE]\n"
    "           [--notes FILE] [--id ID] [--trial-attempts N] [--health-timeout D]\n"
    "           [--settle D] --out FILE.tern [--force]\n"
    "\n"
    "Makes a signed release of a firmware image, a configuration file, or both.\n"
    "  --board BOARD        board id the release is for (repeat for up to 4 boards)\n"
    "  --version V          human version string, e.g. 1.2.0\n"
    "  --sequence N         release number; devices take only releases newer than theirs\n"
    "  --security-counter N anti-rollback floor; devices never go below it once confirmed\n"
    "  --chunk-size SIZE    power of two from 1K to 1M (default 16K)\n"
    "  --notes FILE         release notes (up to 4096 bytes) carried in the signed manifest\n"
    "  --id ID              release id (default BOARD-VERSION-SEQUENCE)\n"
    "  --trial-attempts N, --health-timeout D, --settle D   early-life policy (3, 60s, 10s);\n"
    "                       D is seconds or 90s, 10m, 2h, 1d\n"
    "  --force              replace FILE.tern if it exists (else that is refused)\n"
    "The creation time is now, or $SOURCE_DATE_EPOCH for reproducible builds.\n";

static const char inspect_help[] =
    "usage: tern release inspect FILE.tern [--json]\n"
    "\n"
    "Shows what a release holds: board, version, sequence, components with sizes and\n"
    "digests, key id and notes. Does not check the signature (use 'tern release verify').\n";

static const char verify_help[] =
    "usage: tern release verify FILE.tern --pubkey FILE.pub [--pubkey FILE.pub ...]\n"
    "\n"
    "Checks the signature against the given public keys, the manifest, the chunk index\n"
    "and every byte of every component. Exit 0 when all is well, 1 with the reason if not.\n";

static const char *kind_name(enum tern_component_kind k)
{
	return k == TERN_KIND_CONFIG ? "config" : "firmware";
}

/* True when @s is a valid identifier: 1..@max of [A-Za-z0-9._-]. */
static bool valid_id(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

struct create_args {
	const char *key, *out, *firmware, *config, *notes, *id, *version;
	const char *boards[TERN_MAX_BOARDS];
	size_t n_boards;
	uint64_t sequence, security_counter, chunk_size;
	uint64_t trial_attempts, health_timeout, settle;
	bool have_sequence;
	bool force;			      /* replace an existing --out */
	char id_buf[TERN_RELEASE_ID_MAX + 1]; /* the default id when --id is not given */
};

/*
 * BOARD-VERSION-SEQUENCE with characters outside [A-Za-z0-9._-] replaced by '_'.
 * TERN_E_TOO_LARGE when it does not fit: cutting it could give two releases one id.
 */
static int default_release_id(const struct create_args *a, char *out, size_t size)
{
	int n = snprintf(out, size, "%s-%s-%llu", a->boards[0], a->version,
			 (unsigned long long)a->sequence);
	if (n < 0 || (size_t)n >= size)
		return TERN_E_TOO_LARGE;
	for (char *p = out; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			*p = '_';
	}
	return 0;
}

static int parse_create(int argc, char **argv, struct create_args *a)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"board", required_argument, NULL, 'b'},
	    {"version", required_argument, NULL, 'v'},
	    {"sequence", required_argument, NULL, 's'},
	    {"security-counter", required_argument, NULL, 'S'},
	    {"chunk-size", required_argument, NULL, 'c'},
	    {"firmware", required_argument, NULL, 'f'},
	    {"config", required_argument, NULL, 'C'},
	    {"notes", required_argument, NULL, 'n'},
	    {"id", required_argument, NULL, 'i'},
	    {"trial-attempts", required_argument, NULL, 'T'},
	    {"health-timeout", required_argument, NULL, 'H'},
	    {"settle", required_argument, NULL, 'E'},
	    {"out", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {0, 0, 0, 0},
	};
	const char *cmd = "release create";
	int c;
	a->chunk_size = TERN_CHUNK_DEFAULT;
	a->trial_attempts = 3;
	a->health_timeout = 60;
	a->settle = 10;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			a->key = optarg;
			break;
		case 'o':
			a->out = optarg;
			break;
		case 'F':
			a->force = true;
			break;
		case 'f':
			a->firmware = optarg;
			break;
		case 'C':
			a->config = optarg;
			break;
		case 'n':
			a->notes = optarg;
			break;
		case 'i':
			a->id = optarg;
			break;
		case 'v':
			a->version = optarg;
			break;
		case 'b':
			if (a->n_boards == TERN_MAX_BOARDS)
				return host_usage(cmd, "at most 4 --board");
			a->boards[a->n_boards++] = optarg;
			break;
		case 's':
			if (host_parse_u64(optarg, UINT64_MAX, &a->sequence))
				return host_usage(cmd, "--sequence takes a number");
			a->have_sequence = true;
			break;
		case 'S':
			if (host_parse_u64(optarg, UINT32_MAX, &a->security_counter))
				return host_usage(
				    cmd, "--security-counter takes a number up to 4294967295");
			break;
		case 'c':
			if (host_parse_size(optarg, &a->chunk_size) ||
			    a->chunk_size < TERN_CHUNK_MIN || a->chunk_size > TERN_CHUNK_MAX ||
			    (a->chunk_size & (a->chunk_size - 1)))
				return host_usage(
				    cmd, "--chunk-size must be a power of two from 1K to 1M");
			break;
		case 'T':
			if (host_parse_u64(optarg, 255, &a->trial_attempts) ||
			    a->trial_attempts == 0)
				return host_usage(cmd,
						  "--trial-attempts takes a number from 1 to 255");
			break;
		case 'H':
			if (rollout_parse_duration(optarg, &a->health_timeout))
				return host_usage(cmd,
						  "--health-timeout takes a duration: 90, 90s, "
						  "10m, 2h or 1d (at most a year)");
			break;
		case 'E':
			if (rollout_parse_duration(optarg, &a->settle))
				return host_usage(cmd,
						  "--settle takes a duration: 90, 90s, 10m, 2h "
						  "or 1d (at most a year)");
			break;
		case 'h':
			fputs(create_help, stdout);
			return 0;
		default:
			return host_usage(cmd, NULL);
		}
	}
	if (optind != argc)
		return host_usage(cmd, "unexpected argument");
	if (!a->key || !a->out || !a->version || !a->have_sequence || !a->n_boards)
		return host_usage(cmd,
				  "--key, --board, --version, --sequence and --out are required");
	if (!a->firmware && !a->config)
		return host_usage(cmd, "give --firmware, --config, or both");
	for (size_t i = 0; i < a->n_boards; i++)
		if (!valid_id(a->boards[i], TERN_NAME_MAX))
			return host_usage(cmd, "a board id is 1 to 32 of A-Z a-z 0-9 . _ -");
	if (a->id && !valid_id(a->id, TERN_RELEASE_ID_MAX))
		return host_usage(cmd, "a release id is 1 to 64 of A-Z a-z 0-9 . _ -");
	if (!*a->version || strlen(a->version) > TERN_VERSION_MAX)
		return host_usage(cmd, "a version is 1 to 32 bytes");
	if (!a->id) {
		if (default_release_id(a, a->id_buf, sizeof(a->id_buf)))
			return host_usage(cmd, "BOARD-VERSION-SEQUENCE is longer than 64 bytes; "
					       "name the release with --id");
		a->id = a->id_buf;
	}
	return -1; /* parsed; go on */
}

static uint64_t creation_time(void)
{
	const char *env = getenv("SOURCE_DATE_EPOCH");
	uint64_t v;
	if (env && host_parse_u64(env, UINT64_MAX, &v) == 0)
		return v;
	return (uint64_t)time(NULL);
}

/* Size of a CBOR byte-string head for @len bytes. */
static uint64_t bstr_head_len(uint64_t len)
{
	return len < 24 ? 1 : len <= 0xff ? 2 : len <= 0xffff ? 3 : len <= 0xffffffff ? 5 : 9;
}

static int write_bstr_head(int fd, uint64_t len, uint64_t off)
{
	uint8_t head[9];
	struct tern_cbor_writer w;
	tern_cbor_writer_init(&w, head, sizeof(head));
	tern_cbor_put_bytes_head(&w, len);
	return tern_pwrite_full(fd, head, tern_cbor_writer_len(&w), off);
}

/* Hashes the index region just written, giving the component's digest. */
static int digest_index(int fd, uint64_t off, uint64_t len, uint8_t out[TERN_SHA256_LEN])
{
	uint8_t buf[64 * 1024];
	struct tern_sha256 h;
	tern_sha256_init(&h);
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < sizeof(buf) ? (size_t)(len - done) : sizeof(buf);
		int rc = tern_pread_full(fd, buf, n, off + done);
		if (rc)
			return rc;
		tern_sha256_update(&h, buf, n);
		done += n;
	}
	tern_sha256_final(&h, out);
	return 0;
}

/* An input component: its file and where it goes. */
struct input {
	const char *path;
	int fd;
	struct comp_layout at;
};

/* Fills the manifest from the arguments; components get sizes, not yet digests. */
static int build_manifest(const struct create_args *a, struct input *in, size_t n_in,
			  const char *notes, size_t notes_len, struct tern_manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->format_version = TERN_FORMAT_VERSION;
	snprintf(m->release_id, sizeof(m->release_id), "%s", a->id);
	if (strlen(a->version) > TERN_VERSION_MAX)
		return TERN_E_TOO_LARGE;
	snprintf(m->version, sizeof(m->version), "%s", a->version);
	m->sequence = a->sequence;
	m->security_counter = (uint32_t)a->security_counter;
	for (size_t i = 0; i < a->n_boards; i++) {
		if (strlen(a->boards[i]) > TERN_NAME_MAX)
			return TERN_E_TOO_LARGE;
		snprintf(m->boards[i], sizeof(m->boards[i]), "%s", a->boards[i]);
	}
	m->n_boards = a->n_boards;
	m->chunk_size = (uint32_t)a->chunk_size;
	m->notes = notes;
	m->notes_len = notes_len;
	m->created = creation_time();
	m->early_life.trial_attempts = (uint32_t)a->trial_attempts;
	m->early_life.health_timeout_s = (uint32_t)a->health_timeout;
	m->early_life.settle_s = (uint32_t)a->settle;
	for (size_t i = 0; i < n_in; i++) {
		struct tern_component *c = &m->components[i];
		bool cfg = in[i].path == a->config;
		snprintf(c->name, sizeof(c->name), "%s", cfg ? "config" : "firmware");
		snprintf(c->slot_group, sizeof(c->slot_group), "%s", c->name);
		c->kind = cfg ? TERN_KIND_CONFIG : TERN_KIND_FIRMWARE;
		c->size = in[i].at.bytes_len;
	}
	m->n_components = n_in;
	return tern_manifest_check(m);
}

/* Lays out the file after a head of @head_len bytes; returns the total size. */
static uint64_t plan_layout(struct input *in, size_t n_in, uint32_t chunk_size, uint64_t head_len)
{
	uint64_t off = head_len;
	for (size_t i = 0; i < n_in; i++) {
		struct comp_layout *l = &in[i].at;
		l->index_len = tern_index_size(l->bytes_len, chunk_size);
		l->index_off = off + bstr_head_len(l->index_len);
		l->bytes_off = l->index_off + l->index_len + bstr_head_len(l->bytes_len);
		off = l->bytes_off + l->bytes_len;
	}
	return off;
}

/* Writes heads, chunks and index of every component into @fd; fills the digests in @m. */
static int write_body(int fd, struct input *in, size_t n_in, struct tern_manifest *m)
{
	for (size_t i = 0; i < n_in; i++) {
		struct comp_layout *l = &in[i].at;
		int rc =
		    write_bstr_head(fd, l->index_len, l->index_off - bstr_head_len(l->index_len));
		if (!rc)
			rc = write_bstr_head(fd, l->bytes_len,
					     l->bytes_off - bstr_head_len(l->bytes_len));
		if (rc)
			return rc;
		struct chunks_job job = {
		    .src_fd = in[i].fd,
		    .src_off = 0,
		    .size = l->bytes_len,
		    .chunk_size = m->chunk_size,
		    .dst_fd = fd,
		    .dst_off = l->bytes_off,
		    .idx_fd = fd,
		    .idx_off = l->index_off,
		};
		if ((rc = chunks_run(&job, CHUNKS_CREATE, 0)))
			return rc;
		if ((rc = digest_index(fd, l->index_off, l->index_len,
				       m->components[i].index_digest)))
			return rc;
	}
	return 0;
}

static int open_input(struct input *in, const char *path)
{
	struct stat st;
	in->path = path;
	in->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (in->fd < 0)
		return TERN_E_NOT_FOUND;
	if (fstat(in->fd, &st) || !S_ISREG(st.st_mode))
		return TERN_E_IO;
	if (st.st_size == 0)
		return TERN_E_MALFORMED;
	in->at.bytes_len = (uint64_t)st.st_size;
	posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

int cmd_release_create(int argc, char **argv)
{
	struct create_args a = {0};
	int rc = parse_create(argc, argv, &a);
	if (rc >= 0)
		return rc;

	struct tern_signer sg = {0};
	struct input in[2] = {{.fd = -1}, {.fd = -1}};
	size_t n_in = 0;
	uint8_t *notes = NULL, *head = NULL;
	size_t notes_len = 0;
	struct tern_manifest m;
	uint8_t mbuf[TERN_MANIFEST_MAX];
	char tmp[PATH_MAX] = "";
	int fd = -1;
	const char *what = NULL;
	int status = 1;

	/* Refused before any work (a release can take a while to hash); checked again
	 * atomically when the file is put in place. */
	if (!a.force && access(a.out, F_OK) == 0) {
		rc = TERN_E_EXISTS;
		goto out;
	}
	if ((rc = host_load_signer(a.key, &sg))) {
		what = a.key;
		goto out;
	}
	if (a.notes) {
		rc = host_read_file(a.notes, TERN_NOTES_MAX, &notes, &notes_len);
		if (rc == TERN_E_TOO_LARGE) {
			fprintf(stderr, "tern: %s: release notes are limited to %u bytes\n",
				a.notes, TERN_NOTES_MAX);
			goto out;
		}
		if (rc) {
			what = a.notes;
			goto out;
		}
	}
	const char *paths[2] = {a.firmware, a.config};
	for (size_t i = 0; i < 2; i++) {
		if (!paths[i])
			continue;
		if ((rc = open_input(&in[n_in++], paths[i]))) {
			if (rc == TERN_E_MALFORMED) {
				fprintf(stderr, "tern: %s: file is empty\n", paths[i]);
				goto out;
			}
			what = paths[i];
			goto out;
		}
	}
	if ((rc = build_manifest(&a, in, n_in, (const char *)notes, notes_len, &m))) {
		if (a.notes && rc == TERN_E_MALFORMED)
			fprintf(stderr,
				"tern: %s: release notes must be UTF-8 text without NUL bytes\n",
				a.notes);
		else
			fprintf(stderr, "tern: manifest not valid: %s\n", tern_strerror(rc));
		goto out;
	}
	/* Digests have a fixed size: the manifest's length is known before hashing, so the
	 * payload can be written in place and the signed head filled in last. */
	size_t mlen = tern_manifest_encode(&m, mbuf, sizeof(mbuf));
	if (!mlen) {
		rc = TERN_E_TOO_LARGE;
		what = "manifest";
		goto out;
	}
	size_t head_len = tern_cose_sign1_size(mlen);
	uint64_t total = plan_layout(in, n_in, m.chunk_size, head_len);

	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", a.out, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		rc = TERN_E_INVAL;
		what = a.out;
		goto out;
	}
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)total)) {
		rc = TERN_E_IO;
		what = a.out;
		goto out;
	}
	if ((rc = write_body(fd, in, n_in, &m))) {
		what = a.out;
		goto out;
	}
	head = malloc(head_len);
	if (!head || tern_manifest_encode(&m, mbuf, sizeof(mbuf)) != mlen ||
	    tern_cose_sign1_sign(&sg, mbuf, mlen, NULL, 0, head, head_len) != head_len) {
		rc = head ? TERN_E_CRYPTO : TERN_E_NOMEM;
		what = "signing";
		goto out;
	}
	if ((rc = tern_pwrite_full(fd, head, head_len, 0)) || (rc = close(fd) ? TERN_E_IO : 0)) {
		fd = -1;
		what = a.out;
		goto out;
	}
	fd = -1;
	/* Without --force an existing file is never replaced: link() refuses it atomically. */
	if (a.force ? rename(tmp, a.out) != 0 : link(tmp, a.out) != 0) {
		rc = errno == EEXIST ? TERN_E_EXISTS : TERN_E_IO;
		what = a.out;
		goto out;
	}
	if (!a.force)
		unlink(tmp);
	tmp[0] = '\0';

	char kid[2 * TERN_KID_LEN + 1], size_text[32];
	host_hex(sg.pub.kid, TERN_KID_LEN, kid);
	printf("wrote %s: release %s, version %s, sequence %llu, %zu component%s, %s, key id %s\n",
	       a.out, m.release_id, m.version, (unsigned long long)m.sequence, m.n_components,
	       m.n_components == 1 ? "" : "s", host_human_size(total, size_text, sizeof(size_text)),
	       kid);
	status = 0;
out:
	if (rc == TERN_E_EXISTS)
		fprintf(stderr,
			"tern: %s: the file exists already; remove it, choose another name or "
			"give --force\n",
			a.out);
	else if (status && rc && what)
		host_fail(what, rc);
	if (fd >= 0)
		close(fd);
	if (status && tmp[0])
		unlink(tmp);
	for (size_t i = 0; i < 2; i++)
		if (in[i].fd >= 0)
			close(in[i].fd);
	free(head);
	free(notes);
	tern_signer_free(&sg);
	return status;
}

static void print_time(uint64_t t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) && strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm))
		return;
	snprintf(out, size, "%llu", (unsigned long long)t);
}

static void inspect_text(const struct release_file *rf, int layout_rc)
{
	const struct tern_manifest *m = &rf->head.manifest;
	const struct tern_sign1 *s = &rf->head.sign1;
	char buf[128], hex[2 * TERN_KID_MAX + 1], size_text[32];

	printf("release     %s\n", m->release_id);
	printf("version     %s (sequence %llu, security counter %u)\n", m->version,
	       (unsigned long long)m->sequence, m->security_counter);
	printf("boards     ");
	for (size_t i = 0; i < m->n_boards; i++)
		printf(" %s", m->boards[i]);
	printf("\n");
	print_time(m->created, buf, sizeof(buf));
	printf("created     %s\n", buf);
	host_hex(s->kid ? s->kid : (const uint8_t *)"", s->kid_len, hex);
	printf("key id      %s (signature not checked here: use 'tern release verify')\n",
	       s->kid_len ? hex : "(none)");
	printf("chunk size  %s\n", host_human_size(m->chunk_size, size_text, sizeof(size_text)));
	printf("early life  %u trial boot%s, health check within %u s, settle %u s\n",
	       m->early_life.trial_attempts, m->early_life.trial_attempts == 1 ? "" : "s",
	       m->early_life.health_timeout_s, m->early_life.settle_s);
	printf("components\n");
	for (size_t i = 0; i < m->n_components; i++) {
		const struct tern_component *c = &m->components[i];
		host_hex(c->index_digest, TERN_SHA256_LEN, hex);
		uint64_t n_chunks = tern_chunk_count(c->size, m->chunk_size);
		char human[48] = "";
		if (c->size >= 1024) /* "24 bytes (24 bytes)" says nothing twice */
			snprintf(human, sizeof(human), " (%s)",
				 host_human_size(c->size, size_text, sizeof(size_text)));
		printf("  %-10s %-8s -> slot group %s, %llu bytes%s, %llu chunk%s\n", c->name,
		       kind_name(c->kind), c->slot_group, (unsigned long long)c->size, human,
		       (unsigned long long)n_chunks, n_chunks == 1 ? "" : "s");
		printf("             index sha256 %s\n", hex);
	}
	printf("file        %s\n", layout_rc ? tern_strerror(layout_rc) : "complete");
	if (m->notes_len) {
		printf("notes\n  ");
		for (size_t i = 0; i < m->notes_len; i++) {
			putchar(m->notes[i]);
			if (m->notes[i] == '\n' && i + 1 < m->notes_len)
				fputs("  ", stdout);
		}
		if (m->notes[m->notes_len - 1] != '\n')
			putchar('\n');
	}
}

static void inspect_json(const struct release_file *rf, int layout_rc)
{
	const struct tern_manifest *m = &rf->head.manifest;
	const struct tern_sign1 *s = &rf->head.sign1;
	char hex[2 * TERN_KID_MAX + 1];

	printf("{\"release_id\":");
	host_json_str(stdout, m->release_id, strlen(m->release_id));
	printf(",\"version\":");
	host_json_str(stdout, m->version, strlen(m->version));
	printf(",\"format_version\":%u,\"sequence\":%llu,\"security_counter\":%u,\"boards\":[",
	       m->format_version, (unsigned long long)m->sequence, m->security_counter);
	for (size_t i = 0; i < m->n_boards; i++) {
		printf(i ? "," : "");
		host_json_str(stdout, m->boards[i], strlen(m->boards[i]));
	}
	host_hex(s->kid ? s->kid : (const uint8_t *)"", s->kid_len, hex);
	printf("],\"created\":%llu,\"kid\":\"%s\",\"chunk_size\":%u,",
	       (unsigned long long)m->created, hex, m->chunk_size);
	printf("\"early_life\":{\"trial_attempts\":%u,\"health_timeout_s\":%u,\"settle_s\":%u},",
	       m->early_life.trial_attempts, m->early_life.health_timeout_s,
	       m->early_life.settle_s);
	printf("\"components\":[");
	for (size_t i = 0; i < m->n_components; i++) {
		const struct tern_component *c = &m->components[i];
		host_hex(c->index_digest, TERN_SHA256_LEN, hex);
		printf("%s{\"name\":\"%s\",\"kind\":\"%s\",\"slot_group\":\"%s\",\"size\":%llu,"
		       "\"chunks\":%llu,\"index_digest\":\"%s\"}",
		       i ? "," : "", c->name, kind_name(c->kind), c->slot_group,
		       (unsigned long long)c->size,
		       (unsigned long long)tern_chunk_count(c->size, m->chunk_size), hex);
	}
	printf("],\"notes\":");
	host_json_str(stdout, m->notes ? m->notes : "", m->notes_len);
	printf(",\"file_size\":%llu,\"file_complete\":%s", (unsigned long long)rf->file_size,
	       layout_rc ? "false" : "true");
	if (layout_rc)
		printf(",\"file_error\":\"%s\"", tern_errname(layout_rc));
	printf("}\n");
}

int cmd_release_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0, 0, 0, 0},
	};
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'h')
			return fputs(inspect_help, stdout), 0;
		else
			return host_usage("release inspect", NULL);
	}
	if (optind + 1 != argc)
		return host_usage("release inspect", "give one release file");
	const char *path = argv[optind];
	static struct release_file rf;
	int rc = release_file_open(&rf, path, NULL);
	if (rc)
		return host_fail(path, rc);
	int layout_rc = release_file_layout(&rf);
	if (json)
		inspect_json(&rf, layout_rc);
	else
		inspect_text(&rf, layout_rc);
	release_file_close(&rf);
	return 0;
}

int cmd_release_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {0, 0, 0, 0},
	};
	static struct tern_keyring kr;
	static struct release_file rf;
	int c, rc;
	while ((c = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		if (c == 'p') {
			if ((rc = host_keyring_add_file(&kr, optarg)))
				return host_fail(optarg, rc);
		} else if (c == 'h') {
			return fputs(verify_help, stdout), 0;
		} else {
			return host_usage("release verify", NULL);
		}
	}
	if (optind + 1 != argc)
		return host_usage("release verify", "give one release file");
	if (kr.n_keys == 0)
		return host_usage("release verify", "--pubkey FILE is required");
	const char *path = argv[optind];
	if ((rc = release_file_open(&rf, path, &kr))) {
		if (rc == TERN_E_UNKNOWN_KEY && rf.head.sign1.kid_len) {
			char kid[2 * TERN_KID_MAX + 1];
			host_hex(rf.head.sign1.kid, rf.head.sign1.kid_len, kid);
			fprintf(
			    stderr,
			    "tern: %s: signed by key id %s, which is not among the --pubkey keys\n",
			    path, kid);
			return 1;
		}
		return host_fail(path, rc);
	}
	if ((rc = release_file_layout(&rf))) {
		release_file_close(&rf);
		return host_fail(path, rc);
	}
	const struct tern_manifest *m = &rf.head.manifest;
	uint64_t total = 0;
	for (size_t i = 0; i < m->n_components; i++) {
		uint64_t bad;
		rc = release_file_check_component(&rf, i, &bad);
		if (rc == TERN_E_DIGEST && bad == UINT64_MAX) {
			fprintf(stderr,
				"tern: %s: component '%s': chunk index does not match the signed "
				"manifest: the file is corrupted - copy it again\n",
				path, m->components[i].name);
		} else if (rc == TERN_E_DIGEST) {
			fprintf(stderr, "tern: %s: component '%s' chunk %llu (bytes %llu..): %s\n",
				path, m->components[i].name, (unsigned long long)bad,
				(unsigned long long)(bad * m->chunk_size), tern_strerror(rc));
		} else if (rc) {
			host_fail(path, rc);
		}
		if (rc) {
			release_file_close(&rf);
			return 1;
		}
		total += m->components[i].size;
	}
	char kid[2 * TERN_KID_LEN + 1], size_text[32];
	host_hex(rf.head.signer->kid, TERN_KID_LEN, kid);
	printf("%s: ok: release %s, version %s, sequence %llu, signed by key %s, %s verified\n",
	       path, m->release_id, m->version, (unsigned long long)m->sequence, kid,
	       host_human_size(total, size_text, sizeof(size_text)));
	release_file_close(&rf);
	return 0;
}
