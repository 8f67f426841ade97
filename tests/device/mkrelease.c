/*
 * Test helper for the scenario scripts: signing keys and signed releases built with
 * libternproto (the host CLI makes the real ones; this one also makes the bad ones).
 *   ternd-mkrelease genkey PRIV.pem PUB.pem
 *   ternd-mkrelease make --key PRIV.pem --fw FILE [--config FILE] --version V
 *       --sequence N [--security N] [--board B] [--chunk-size N] [--attempts N] --out OUT
 */
#include "relbuild.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		long n = ftell(f);
		if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
			*len = fread(buf, 1, (size_t)n, f);
			if (*len != (size_t)n) {
				free(buf);
				buf = NULL;
			}
		}
	}
	fclose(f);
	return buf;
}

static int spit(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	bool ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static bool num(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*v = x;
	return true;
}

static int genkey(const char *priv, const char *pub)
{
	struct tern_signer sg;
	char pem[2048];
	if (tern_signer_generate(&sg))
		return 1;
	int rc = 0;
	size_t n = tern_signer_private_pem(&sg, pem, sizeof(pem));
	if (n == 0 || spit(priv, pem, n))
		rc = 1;
	n = tern_signer_public_pem(&sg, pem, sizeof(pem));
	if (rc == 0 && (n == 0 || spit(pub, pem, n)))
		rc = 1;
	tern_signer_free(&sg);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "genkey"))
		return genkey(argv[2], argv[3]);
	if (argc < 2 || strcmp(argv[1], "make")) {
		fprintf(stderr, "usage: ternd-mkrelease genkey|make ...\n");
		return 2;
	}
	const char *key = NULL, *fw = NULL, *cfg = NULL, *out = NULL;
	struct relbuild rb = {.version = NULL, .board = "sim"};
	uint64_t v;
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *a = argv[i], *val = argv[i + 1];
		if (!strcmp(a, "--key"))
			key = val;
		else if (!strcmp(a, "--fw"))
			fw = val;
		else if (!strcmp(a, "--config"))
			cfg = val;
		else if (!strcmp(a, "--out"))
			out = val;
		else if (!strcmp(a, "--version"))
			rb.version = val;
		else if (!strcmp(a, "--board"))
			rb.board = val;
		else if (!strcmp(a, "--sequence") && num(val, &v))
			rb.sequence = v;
		else if (!strcmp(a, "--security") && num(val, &v) && v <= UINT32_MAX)
			rb.security_counter = (uint32_t)v;
		else if (!strcmp(a, "--chunk-size") && num(val, &v) && v <= UINT32_MAX)
			rb.chunk_size = (uint32_t)v;
		else if (!strcmp(a, "--attempts") && num(val, &v) && v <= 255)
			rb.trial_attempts = (uint32_t)v;
		else {
			fprintf(stderr, "ternd-mkrelease: bad argument %s\n", a);
			return 2;
		}
	}
	if (!key || (!fw && !cfg) || !out || !rb.version) {
		fprintf(stderr, "ternd-mkrelease: make needs --key, --fw or --config, --version, "
				"--out\n");
		return 2;
	}
	size_t klen = 0, flen = 0, clen = 0;
	uint8_t *kbuf = slurp(key, &klen);
	uint8_t *fbuf = fw ? slurp(fw, &flen) : NULL;
	uint8_t *cbuf = cfg ? slurp(cfg, &clen) : NULL;
	int rc = 1;
	struct tern_signer sg;
	if (!kbuf || (fw && !fbuf) || (cfg && !cbuf) || tern_signer_load(&sg, kbuf, klen)) {
		fprintf(stderr, "ternd-mkrelease: cannot read inputs\n");
		goto out;
	}
	if (fbuf)
		rb.comp[rb.n_comp++] =
		    (struct relbuild_comp){"firmware", TERN_KIND_FIRMWARE, fbuf, flen};
	if (cbuf)
		rb.comp[rb.n_comp++] =
		    (struct relbuild_comp){"config", TERN_KIND_CONFIG, cbuf, clen};
	size_t cap = relbuild_size(&rb);
	uint8_t *rel = malloc(cap);
	size_t len = rel ? relbuild_make(&sg, &rb, rel, cap, NULL) : 0;
	if (len && spit(out, rel, len) == 0)
		rc = 0;
	else
		fprintf(stderr, "ternd-mkrelease: could not build the release\n");
	free(rel);
	tern_signer_free(&sg);
out:
	free(kbuf);
	free(fbuf);
	free(cbuf);
	return rc;
}
