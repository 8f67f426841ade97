/* `tern key generate`, and loading keys for the other commands. */
#include "host.h"
#include "host_util.h"

#include "tern/tern_err.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int host_load_signer(const char *path, struct tern_signer *sg)
{
	struct stat st;
	uint8_t *buf;
	size_t len;
	int rc = host_read_file(path, HOST_KEY_FILE_MAX, &buf, &len);
	if (rc)
		return rc == TERN_E_TOO_LARGE ? TERN_E_KEY : rc;
	rc = tern_signer_load(sg, buf, len);
	/* Key material is checked first so a public key gets the more useful message. */
	if (!rc && stat(path, &st) == 0 && (st.st_mode & 077)) {
		tern_signer_free(sg);
		rc = TERN_E_KEY_PERMS;
	}
	memset(buf, 0, len);
	free(buf);
	return rc;
}

int host_keyring_add_file(struct tern_keyring *kr, const char *path)
{
	uint8_t *buf;
	size_t len;
	struct tern_pubkey pk;
	int rc = host_read_file(path, HOST_KEY_FILE_MAX, &buf, &len);
	if (rc)
		return rc == TERN_E_TOO_LARGE ? TERN_E_KEY : rc;
	rc = tern_pubkey_parse(&pk, buf, len);
	if (rc) {
		/* A private key file names its public key too, but a keyring (checked by
		 * scripts, copied onto devices) is no place for it: refused, by name. */
		struct tern_signer sg;
		if (tern_signer_load(&sg, buf, len) == 0) {
			tern_signer_free(&sg);
			rc = TERN_E_PRIVATE_KEY;
		}
	}
	if (!rc)
		rc = tern_keyring_add(kr, &pk);
	memset(buf, 0, len);
	free(buf);
	return rc;
}

/* "signing.key" -> "signing.pub"; otherwise PATH + ".pub". */
static int public_path(const char *key_path, char *out, size_t size)
{
	size_t n = strlen(key_path);
	int w;
	if (n > 4 && strcmp(key_path + n - 4, ".key") == 0)
		w = snprintf(out, size, "%.*s.pub", (int)(n - 4), key_path);
	else
		w = snprintf(out, size, "%s.pub", key_path);
	return w < 0 || (size_t)w >= size ? TERN_E_INVAL : 0;
}

static const char key_generate_help[] =
    "usage: tern key generate --out FILE.key\n"
    "\n"
    "Makes a new P-256 signing key. Writes FILE.key (PEM, readable by you only) and\n"
    "FILE.pub (PEM public key, to put in device keyrings). Refuses to overwrite either.\n"
    "Prints the key id that releases signed with it will carry.\n";

int cmd_key_generate(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {0, 0, 0, 0},
	};
	const char *out = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else if (c == 'h')
			return fputs(key_generate_help, stdout), 0;
		else
			return host_usage("key generate", NULL);
	}
	if (!out || optind != argc)
		return host_usage("key generate", "--out FILE is required");

	char pub_path[4096];
	char pem[2048];
	char kid[2 * TERN_KID_LEN + 1];
	struct tern_signer sg;
	int rc = public_path(out, pub_path, sizeof(pub_path));
	if (rc)
		return host_fail(out, rc);
	if ((rc = tern_signer_generate(&sg)))
		return host_fail("generating key", rc);
	size_t n = tern_signer_private_pem(&sg, pem, sizeof(pem));
	rc = n ? host_write_new_file(out, pem, n, 0600) : TERN_E_CRYPTO;
	memset(pem, 0, sizeof(pem));
	if (rc) {
		tern_signer_free(&sg);
		return host_fail(out, rc);
	}
	n = tern_signer_public_pem(&sg, pem, sizeof(pem));
	rc = n ? host_write_new_file(pub_path, pem, n, 0644) : TERN_E_CRYPTO;
	host_hex(sg.pub.kid, TERN_KID_LEN, kid);
	tern_signer_free(&sg);
	if (rc) {
		remove(out); /* a private key without its public half helps nobody */
		return host_fail(pub_path, rc);
	}
	printf("wrote %s (signing key, keep it secret) and %s (public key)\nkey id %s\n", out,
	       pub_path, kid);
	return 0;
}
