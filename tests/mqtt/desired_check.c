/*
 * Test helper: what a device does with a retained desired state, through the protocol
 * library's decoder. Usage: desired_check MSG_FILE PUBKEY DEVICE_ID LAST_GENERATION
 * Prints "accepted DEVICE generation N release R action A activate M" and exits 0, or
 * prints "refused: <errname>" and exits 1.
 */
#include "tern/tern_err.h"
#include "tern/tern_msg.h"

#include <stdio.h>
#include <stdlib.h>

static size_t slurp(const char *path, uint8_t *buf, size_t size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, size, f);
	fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	static uint8_t msg[TERN_SIGNED_DESIRED_MAX + 16], key[4096];
	struct tern_keyring kr = {0};
	struct tern_pubkey pk;
	struct tern_desired d;
	if (argc != 5) {
		fprintf(stderr, "usage: desired_check MSG_FILE PUBKEY DEVICE_ID LAST_GENERATION\n");
		return 2;
	}
	size_t n = slurp(argv[1], msg, sizeof(msg));
	size_t kn = slurp(argv[2], key, sizeof(key));
	if (!kn || tern_pubkey_parse(&pk, key, kn) || tern_keyring_add(&kr, &pk)) {
		fprintf(stderr, "desired_check: cannot read the public key %s\n", argv[2]);
		return 2;
	}
	unsigned long long last = strtoull(argv[4], NULL, 10);
	int rc = tern_desired_open(&d, msg, n, &kr, argv[3], last);
	if (rc) {
		printf("refused: %s\n", tern_errname(rc));
		return 1;
	}
	printf("accepted %s generation %llu release %s sequence %llu action %s activate %s\n",
	       d.device_id, (unsigned long long)d.generation, d.release_id,
	       (unsigned long long)d.sequence, tern_action_name(d.action),
	       tern_activate_name(d.activate));
	return 0;
}
