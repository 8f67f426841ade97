/*
 * The Linux board's C code under cmocka (and so under ASan+UBSan too): the variable
 * list, the U-Boot and GRUB formats, the config parser, commands with a timeout, and
 * an install + trial + confirm cycle through tern_linux_open() on files in a temp dir.
 */
#include "tern/tern_bootenv.h"
#include "tern/tern_err.h"
#include "tern/tern_linux.h"
#include "tern/tern_linux_usb.h"

#include "relbuild.h"
#include "tern/tern_sign.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tern-linux-unit.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path(char *out, size_t size, const char *name)
{
	int n = snprintf(out, size, "%s/%s", tmpdir, name);
	assert_true(n > 0 && (size_t)n < size);
}

static void write_file(const char *name, const char *text)
{
	char p[256];
	path(p, sizeof(p), name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void make_sized(const char *name, long size)
{
	char p[256];
	path(p, sizeof(p), name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), size), 0);
	fclose(f);
}

static void test_envvars(void **state)
{
	(void)state;
	struct tern_envvars v = {0};
	assert_int_equal(tern_envvars_set(&v, "a", "1"), 0);
	assert_int_equal(tern_envvars_set(&v, "bb", "two"), 0);
	assert_int_equal(tern_envvars_set(&v, "c", "3"), 0);
	assert_int_equal(tern_envvars_set(&v, "bb", "a longer value"), 0);
	assert_string_equal(tern_envvars_get(&v, "bb"), "a longer value");
	assert_int_equal(tern_envvars_set(&v, "bb", "x"), 0);
	assert_memory_equal(v.buf, "a=1\0bb=x\0c=3\0", v.len);
	assert_int_equal(tern_envvars_set(&v, "a", NULL), 0);
	assert_null(tern_envvars_get(&v, "a"));
	assert_null(tern_envvars_get(&v, "b")); /* a prefix of "bb" is not "bb" */
	assert_int_equal(tern_envvars_set(&v, "x=y", "1"), TERN_E_INVAL);
	assert_int_equal(tern_envvars_set(&v, "", "1"), TERN_E_INVAL);
	tern_envvars_free(&v);
}

static void test_uboot(void **state)
{
	(void)state;
	char cfg[256], err[512];
	write_file("fw_env.config", "# two copies\nenv.0 0 0x400\nenv.1 0x0 1024\n");
	make_sized("env.0", 1024);
	make_sized("env.1", 1024);
	path(cfg, sizeof(cfg), "fw_env.config");
	struct tern_uboot_loc loc;
	assert_int_equal(tern_uboot_loc_parse(&loc, cfg, err, sizeof(err)), 0);
	assert_int_equal(loc.n_copies, 2);
	struct tern_envvars v = {0}, r = {0};
	assert_int_equal(tern_uboot_env_load(&loc, &v), TERN_E_NO_BOOTCTL);
	char num[16];
	for (int i = 0; i < 300; i++) { /* the flag byte wraps */
		snprintf(num, sizeof(num), "%d", i);
		assert_int_equal(tern_envvars_set(&v, "n", num), 0);
		assert_int_equal(tern_uboot_env_store(&loc, &v), 0);
		assert_int_equal(tern_uboot_env_load(&loc, &r), 0);
		assert_string_equal(tern_envvars_get(&r, "n"), num);
	}
	/* Garble the copy just written: the other (previous) one is read. */
	char p[256];
	path(p, sizeof(p), "env.1");
	FILE *f = fopen(p, "r+");
	assert_non_null(f);
	unsigned char flag0, flag1;
	fseek(f, 4, SEEK_SET);
	assert_int_equal(fread(&flag1, 1, 1, f), 1);
	path(p, sizeof(p), "env.0");
	FILE *g = fopen(p, "r+");
	assert_non_null(g);
	fseek(g, 4, SEEK_SET);
	assert_int_equal(fread(&flag0, 1, 1, g), 1);
	FILE *newer = (unsigned char)(flag1 - flag0) == 1 ? f : g;
	fseek(newer, 20, SEEK_SET);
	fputs("garbage", newer);
	fclose(f);
	fclose(g);
	assert_int_equal(tern_uboot_env_load(&loc, &r), 0);
	assert_string_equal(tern_envvars_get(&r, "n"), "298");
	/* Too many variables for the copy. */
	char big[1100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(tern_envvars_set(&v, "big", big), 0);
	assert_int_equal(tern_uboot_env_store(&loc, &v), TERN_E_TOO_LARGE);
	/* fw_env.config mistakes name the line. */
	write_file("bad.config", "\nenv.0 0 zero\n");
	path(cfg, sizeof(cfg), "bad.config");
	assert_int_equal(tern_uboot_loc_parse(&loc, cfg, err, sizeof(err)), TERN_E_MALFORMED);
	assert_non_null(strstr(err, "bad.config:2: SIZE"));
	tern_envvars_free(&v);
	tern_envvars_free(&r);
}

static void test_grub(void **state)
{
	(void)state;
	char p[256];
	path(p, sizeof(p), "grubenv");
	struct tern_envvars v = {0}, r = {0};
	assert_int_equal(tern_grubenv_load(p, &v), TERN_E_NOT_FOUND);
	assert_int_equal(tern_envvars_set(&v, "BOOT_ORDER", "A B"), 0);
	assert_int_equal(tern_envvars_set(&v, "odd", "back\\slash\nnewline"), 0);
	assert_int_equal(tern_grubenv_store(p, &v), 0);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 1024);
	assert_int_equal(tern_grubenv_load(p, &r), 0);
	assert_string_equal(tern_envvars_get(&r, "odd"), "back\\slash\nnewline");
	assert_string_equal(tern_envvars_get(&r, "BOOT_ORDER"), "A B");
	char big[1100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(tern_envvars_set(&v, "big", big), 0);
	assert_int_equal(tern_grubenv_store(p, &v), TERN_E_TOO_LARGE);
	write_file("notgrub", "hello\n");
	path(p, sizeof(p), "notgrub");
	assert_int_equal(tern_grubenv_load(p, &r), TERN_E_MALFORMED);
	tern_envvars_free(&v);
	tern_envvars_free(&r);
}

static void test_config(void **state)
{
	(void)state;
	struct tern_linux_config *c = malloc(sizeof(*c));
	char p[256], err[512];
	assert_non_null(c);
	assert_int_equal(tern_linux_config_load(c, "boards/linux/examples/files-uboot/ternd.conf",
						err, sizeof(err)),
			 0);
	assert_string_equal(c->board_id, "example");
	assert_string_equal(c->slot[TERN_AREA_FW_B],
			    "boards/linux/examples/files-uboot/slots/firmware-b.img");
	assert_string_equal(c->mqtt_client_id, "example-uboot-1"); /* defaults to the id */
	assert_int_equal(c->bootloader, TERN_BOOT_UBOOT);
	write_file("c.conf", "[device]\nboard = x\n\n[health]\ntimeout = 0\n");
	path(p, sizeof(p), "c.conf");
	assert_int_equal(tern_linux_config_load(c, p, err, sizeof(err)), TERN_E_MALFORMED);
	assert_non_null(strstr(err, "c.conf:5: timeout: must be from 1 to 86400"));
	write_file("c.conf", "[device]\nboard = x\nkeyring = /k\n");
	assert_int_equal(tern_linux_config_load(c, p, err, sizeof(err)), TERN_E_MALFORMED);
	assert_non_null(strstr(err, "c.conf:3: missing key 'state' in [device]"));
	free(c);
}

static void test_run_command(void **state)
{
	(void)state;
	struct tern_health_result r;
	assert_int_equal(
	    tern_linux_run_command("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i; "
				   "done; echo err >&2; exit 3",
				   tmpdir, 5, &r),
	    0);
	assert_false(r.passed);
	assert_int_equal(r.exit_code, 3);
	assert_null(strstr(r.output, "line 2\n")); /* only the last 10 lines */
	assert_non_null(strstr(r.output, "line 12\nerr"));
	assert_int_equal(tern_linux_run_command("pwd", tmpdir, 5, &r), 0);
	assert_true(r.passed);
	assert_string_equal(r.output, tmpdir);
	assert_int_equal(tern_linux_run_command("echo started; sleep 30", NULL, 1, &r), 0);
	assert_true(r.timed_out);
	assert_false(r.passed);
	assert_non_null(strstr(r.output, "started"));
}

/* Plays the bootloader over the GRUB environment: first slot of BOOT_ORDER with
 * attempts left, one attempt taken; writes the cmdline and a new boot id. */
static unsigned boot(const struct tern_linux_config *c, unsigned n)
{
	struct tern_bootloader_ctx bl;
	struct tern_bootvars v;
	char err[256], text[64];
	assert_int_equal(tern_bootloader_open(&bl, c, err, sizeof(err)), 0);
	assert_int_equal(tern_bootloader_read(&bl, &v), 0);
	unsigned s = v.primary;
	if (v.left[s] == 0)
		s ^= 1u;
	assert_true(v.left[s] > 0);
	v.left[s]--;
	assert_int_equal(tern_bootloader_write(&bl, &v, NULL), 0);
	tern_bootloader_close(&bl);
	snprintf(text, sizeof(text), "root=/dev/x tern.slot=%c\n", 'A' + s);
	write_file("cmdline", text);
	snprintf(text, sizeof(text), "boot-%u\n", n);
	write_file("boot_id", text);
	return s;
}

static void test_board_cycle(void **state)
{
	(void)state;
	struct tern_signer sg;
	char p[256], err[512], pem[1024];
	assert_int_equal(tern_signer_generate(&sg), 0);
	path(p, sizeof(p), "keys");
	assert_int_equal(mkdir(p, 0700), 0);
	assert_true(tern_signer_public_pem(&sg, pem, sizeof(pem)) > 0);
	write_file("keys/k.pub", pem);
	make_sized("a.img", 256 * 1024);
	make_sized("b.img", 256 * 1024);
	struct tern_envvars v = {0};
	path(p, sizeof(p), "grubenv");
	assert_int_equal(tern_envvars_set(&v, "BOOT_ORDER", "A B"), 0);
	assert_int_equal(tern_envvars_set(&v, "BOOT_A_LEFT", "3"), 0);
	assert_int_equal(tern_grubenv_store(p, &v), 0);
	tern_envvars_free(&v);
	write_file("t.conf", "[device]\nboard = unit\nkeyring = keys\nstate = state\n"
			     "[slots]\nfirmware.A = a.img\nfirmware.B = b.img\n"
			     "[boot]\nbootloader = grub\ngrubenv = grubenv\ncmdline = cmdline\n"
			     "boot_id = boot_id\nmounts = /nonexistent\n");
	struct tern_linux_config *c = malloc(sizeof(*c));
	struct tern_linux *lx = malloc(sizeof(*lx));
	assert_non_null(c);
	assert_non_null(lx);
	path(p, sizeof(p), "t.conf");
	assert_int_equal(tern_linux_config_load(c, p, err, sizeof(err)), 0);
	assert_int_equal(boot(c, 1), 0);
	assert_int_equal(tern_linux_open(lx, c, 0, err, sizeof(err)), 0);
	assert_int_equal(lx->agent.bc.last_event, TERN_EV_PROVISIONED);
	/* The board never writes the running slot, and makes the other unbootable first. */
	const struct tern_board_ops *ops = lx->board.ops;
	struct tern_bootvars bv;
	assert_int_equal(ops->write(lx->board.ctx, TERN_AREA_FW_A, 0, "x", 1), TERN_E_STATE);
	assert_int_equal(ops->erase(lx->board.ctx, TERN_AREA_FW_A, 0, 4096), TERN_E_STATE);
	assert_int_equal(tern_linux_sync_bootloader(lx), 0);
	assert_int_equal(tern_bootloader_read(&lx->bl, &bv), 0);
	bv.left[1] = 3; /* as if B were a good fallback */
	assert_int_equal(tern_bootloader_write(&lx->bl, &bv, NULL), 0);
	assert_int_equal(ops->write(lx->board.ctx, TERN_AREA_FW_B, 0, "x", 1), 0);
	assert_int_equal(tern_bootloader_read(&lx->bl, &bv), 0);
	assert_int_equal(bv.primary, 0);
	assert_int_equal(bv.left[1], 0);
	assert_int_equal(ops->write(lx->board.ctx, TERN_AREA_FW_B, 256 * 1024, "x", 1),
			 TERN_E_FLASH);

	/* A release of 100 KiB + 1 with 4 KiB chunks. */
	static uint8_t img[100 * 1024 + 1];
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (uint8_t)(i * 7 + 1);
	struct relbuild rb = {
	    .version = "2.0.0", .sequence = 2, .board = "unit", .chunk_size = 4096, .n_comp = 1};
	rb.comp[0] = (struct relbuild_comp){"fw", TERN_KIND_FIRMWARE, img, sizeof(img)};
	size_t cap = relbuild_size(&rb);
	uint8_t *rel = malloc(cap);
	assert_non_null(rel);
	size_t len = relbuild_make(&sg, &rb, rel, cap, NULL);
	assert_true(len > 0);
	path(p, sizeof(p), "r2.tern");
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(rel, 1, len, f), len);
	fclose(f);
	assert_int_equal(tern_linux_install_file(lx, p, false), 0);
	assert_int_equal(tern_agent_activate(&lx->agent), 0);
	assert_int_equal(tern_linux_sync_bootloader(lx), 0);
	tern_linux_close(lx);

	assert_int_equal(boot(c, 2), 1); /* the trial */
	assert_int_equal(tern_linux_open(lx, c, 0, err, sizeof(err)), 0);
	assert_int_equal(lx->agent.state, TERN_ST_TRIAL);
	assert_int_equal(tern_agent_health(&lx->agent, true), 0);
	assert_int_equal(tern_linux_sync_bootloader(lx), 0);
	tern_linux_close(lx);

	assert_int_equal(boot(c, 3), 1);
	assert_int_equal(tern_linux_open(lx, c, 0, err, sizeof(err)), 0);
	assert_int_equal(lx->agent.state, TERN_ST_CONFIRMED);
	assert_int_equal(tern_bootloader_read(&lx->bl, &bv), 0);
	assert_int_equal(bv.primary, 1);
	assert_int_equal(bv.left[1], 3);
	tern_linux_close(lx);
	free(rel);
	free(lx);
	free(c);
	tern_signer_free(&sg);
}

/* The FunctionFS blobs, byte for byte: v2 descriptors (full and high speed) and strings. */
static void test_ffs_descriptors(void **state)
{
	(void)state;
	uint8_t d[TERN_FFS_DESCS_SIZE], str[TERN_FFS_STRINGS_SIZE];
	static const uint8_t head[20] = {3, 0, 0, 0, 66, 0, 0, 0, 3, 0,
					 0, 0, 3, 0, 0,	 0, 3, 0, 0, 0};
	static const uint8_t fs[23] = {9, 4, 0,	   0, 2,  0xff, 0, 0, 1, /* vendor interface */
				       7, 5, 0x01, 2, 64, 0,	0,	 /* bulk OUT 1 */
				       7, 5, 0x82, 2, 64, 0,	0};	 /* bulk IN 2 */
	assert_int_equal(tern_ffs_descriptors(d, 65), 0);
	assert_int_equal(tern_ffs_descriptors(d, sizeof(d)), 66);
	assert_memory_equal(d, head, sizeof(head));
	assert_memory_equal(d + 20, fs, sizeof(fs));
	assert_int_equal(d[20 + 23 + 9 + 4], 0x00); /* high speed: 512-byte packets */
	assert_int_equal(d[20 + 23 + 9 + 5], 0x02);
	assert_int_equal(d[20 + 23 + 16 + 2], 0x82);
	static const uint8_t strs[] = {2,   0,	 0,   0,   29,	0,   0,	   0,	1,   0,
				       0,   0,	 1,   0,   0,	0,   0x09, 4,	't', 'e',
				       'r', 'n', ' ', 'S', 'N', '-', '4',  '2', 0};
	assert_int_equal(tern_ffs_strings("SN-42", str, sizeof(str)), sizeof(strs));
	assert_memory_equal(str, strs, sizeof(strs));
	assert_int_equal(tern_ffs_strings("SN-42", str, sizeof(strs) - 1), 0);
}

/* One request through the device side of the transport; the reply's type, body in @rb. */
static uint8_t usb_call(struct tern_usbdev *d, uint8_t type, const uint8_t *body, size_t len,
			uint8_t *rb, size_t rb_size, struct tern_frame *reply)
{
	static uint8_t frame[TERN_FRAME_MAX];
	static uint32_t seq;
	size_t n = tern_frame_encode(frame, sizeof(frame), type, 0, ++seq, body, len);
	assert_true(n > 0);
	assert_int_equal(tern_usbdev_out(d, frame, n), 0);
	size_t got = tern_usbdev_in(d, rb, rb_size), used;
	assert_int_equal(tern_frame_decode(rb, got, reply, &used), 0);
	assert_int_equal(used, got);
	assert_int_equal(reply->seq, seq);
	return reply->type;
}

/* Length of a CBOR byte string's head for @len bytes. */
static size_t bstr_head(size_t len)
{
	return len < 24 ? 1 : len < 256 ? 2 : len < 65536 ? 3 : 5;
}

/* The Linux board behind USB (usb.c): HELLO, OFFER, DATA, DONE, ACTIVATE as `tern usb
 * flash` sends them; after the trial boot, CONFIRM. */
static void test_usb_backend(void **state)
{
	(void)state;
	static struct tern_usbdev dev;
	static uint8_t body[TERN_FRAME_BODY_MAX], rb[4096];
	struct tern_frame r;
	struct tern_signer sg;
	char p[256], err[512], pem[1024];
	assert_int_equal(tern_signer_generate(&sg), 0);
	path(p, sizeof(p), "ukeys");
	assert_int_equal(mkdir(p, 0700), 0);
	assert_true(tern_signer_public_pem(&sg, pem, sizeof(pem)) > 0);
	write_file("ukeys/k.pub", pem);
	make_sized("ua.img", 256 * 1024);
	make_sized("ub.img", 256 * 1024);
	struct tern_envvars v = {0};
	path(p, sizeof(p), "ugrubenv");
	assert_int_equal(tern_envvars_set(&v, "BOOT_ORDER", "A B"), 0);
	assert_int_equal(tern_envvars_set(&v, "BOOT_A_LEFT", "3"), 0);
	assert_int_equal(tern_grubenv_store(p, &v), 0);
	tern_envvars_free(&v);
	write_file("u.conf", "[device]\nid = dev-7\nboard = unit\nkeyring = ukeys\n"
			     "state = ustate\nfactory_version = 1.0.0\n"
			     "[slots]\nfirmware.A = ua.img\nfirmware.B = ub.img\n"
			     "[boot]\nbootloader = grub\ngrubenv = ugrubenv\ncmdline = cmdline\n"
			     "boot_id = boot_id\nmounts = /nonexistent\n"
			     "[usb]\nenabled = yes\nfunctionfs = /dev/ffs-tern\nserial = SN-7\n");
	struct tern_linux_config *c = malloc(sizeof(*c));
	struct tern_linux *lx = malloc(sizeof(*lx));
	assert_non_null(c);
	assert_non_null(lx);
	path(p, sizeof(p), "u.conf");
	assert_int_equal(tern_linux_config_load(c, p, err, sizeof(err)), 0);
	assert_int_equal(boot(c, 10), 0);
	assert_int_equal(tern_linux_open(lx, c, 0, err, sizeof(err)), 0);
	tern_usbdev_init(&dev, &tern_linux_usb_ops, lx);

	size_t n = tern_msg_hello_encode(1, body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_HELLO, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_INFO);
	struct tern_msg_info info;
	assert_int_equal(tern_msg_info_decode(r.body, r.body_len, &info), 0);
	assert_string_equal(info.board, "unit");
	assert_string_equal(info.serial, "SN-7");
	assert_string_equal(info.device_id, "dev-7");
	assert_string_equal(info.version, "1.0.0");
	assert_int_equal(info.slot, 0);

	/* A release of 40 KiB + 3 with 4 KiB chunks, sent as tern usb flash does. */
	static uint8_t img[40 * 1024 + 3];
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (uint8_t)(i * 13 + 5);
	struct relbuild rbd = {
	    .version = "2.0.0", .sequence = 2, .board = "unit", .chunk_size = 4096, .n_comp = 1};
	rbd.comp[0] = (struct relbuild_comp){"fw", TERN_KIND_FIRMWARE, img, sizeof(img)};
	size_t cap = relbuild_size(&rbd), head_len;
	uint8_t *rel = malloc(cap);
	assert_non_null(rel);
	size_t len = relbuild_make(&sg, &rbd, rel, cap, &head_len);
	assert_true(len > 0);
	n = tern_msg_offer_encode(rel, head_len, false, body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_OFFER, body, n, rb, sizeof(rb), &r), TERN_MSG_ACK);
	struct tern_msg_ack ack;
	assert_int_equal(tern_msg_ack_decode(r.body, r.body_len, &ack), 0);
	assert_true(ack.has_next);
	assert_int_equal(ack.kind, TERN_DATA_INDEX);
	assert_int_equal(ack.offset, 0);
	size_t index_len = 11 * 32; /* 11 chunks */
	const uint8_t *index = rel + head_len + bstr_head(index_len);
	const uint8_t *payload = index + index_len + bstr_head(sizeof(img));
	assert_int_equal(payload + sizeof(img), rel + len);
	struct tern_msg_data dm = {0, TERN_DATA_INDEX, 0, index, index_len};
	n = tern_msg_data_encode(&dm, body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_DATA, body, n, rb, sizeof(rb), &r), TERN_MSG_ACK);
	for (uint64_t off = 0; off < sizeof(img); off += 16384) {
		size_t piece = sizeof(img) - off < 16384 ? sizeof(img) - off : 16384;
		dm = (struct tern_msg_data){0, TERN_DATA_PAYLOAD, off, payload + off, piece};
		n = tern_msg_data_encode(&dm, body, sizeof(body));
		assert_int_equal(usb_call(&dev, TERN_MSG_DATA, body, n, rb, sizeof(rb), &r),
				 TERN_MSG_ACK);
	}
	assert_int_equal(tern_msg_ack_decode(r.body, r.body_len, &ack), 0);
	assert_false(ack.has_next);
	n = tern_msg_empty_encode(body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_CONFIRM, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_ERROR); /* nothing on trial */
	assert_int_equal(usb_call(&dev, TERN_MSG_DONE, body, n, rb, sizeof(rb), &r), TERN_MSG_ACK);
	assert_int_equal(lx->agent.state, TERN_ST_STAGED);
	assert_int_equal(usb_call(&dev, TERN_MSG_ACTIVATE, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_ACK);
	struct tern_bootvars bv;
	assert_int_equal(tern_bootloader_read(&lx->bl, &bv), 0);
	assert_int_equal(bv.primary, 1); /* the bootloader follows the record */
	assert_true(bv.left[1] > 0);
	n = tern_msg_offer_encode(rel, head_len, false, body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_OFFER, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_ERROR); /* activated already: not taken twice */
	tern_linux_close(lx);

	assert_int_equal(boot(c, 11), 1); /* the trial */
	assert_int_equal(tern_linux_open(lx, c, 0, err, sizeof(err)), 0);
	assert_int_equal(lx->agent.state, TERN_ST_TRIAL);
	tern_usbdev_init(&dev, &tern_linux_usb_ops, lx);
	n = tern_msg_empty_encode(body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_CONFIRM, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_ACK);
	assert_int_equal(lx->agent.state, TERN_ST_CONFIRMED);
	assert_int_equal(usb_call(&dev, TERN_MSG_STATE, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_STATE);
	struct tern_msg_state st;
	assert_int_equal(tern_msg_state_decode(r.body, r.body_len, &st), 0);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(st.slot, 1);
	assert_string_equal(st.version, "2.0.0");
	assert_int_equal(tern_bootloader_read(&lx->bl, &bv), 0);
	assert_int_equal(bv.primary, 1);
	/* Going back over USB: an older release is refused as a plain offer, and taken
	 * when offered as a revert (tern usb flash --revert). */
	struct relbuild older = rbd;
	older.version = "1.5.0";
	older.sequence = 1;
	size_t older_head;
	assert_true(relbuild_make(&sg, &older, rel, cap, &older_head) > 0);
	n = tern_msg_offer_encode(rel, older_head, false, body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_OFFER, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_ERROR);
	struct tern_msg_error em;
	assert_int_equal(tern_msg_error_decode(r.body, r.body_len, &em), 0);
	assert_int_equal(tern_frame_status_to_err(em.status), TERN_E_OLD_SEQUENCE);
	assert_int_equal(lx->agent.state, TERN_ST_CONFIRMED);
	n = tern_msg_offer_encode(rel, older_head, true, body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_OFFER, body, n, rb, sizeof(rb), &r), TERN_MSG_ACK);
	assert_int_equal(tern_msg_ack_decode(r.body, r.body_len, &ack), 0);
	assert_true(ack.has_next);
	assert_int_equal(lx->agent.state, TERN_ST_DOWNLOADING);
	tern_linux_close(lx);
	free(rel);
	free(lx);
	free(c);
	tern_signer_free(&sg);
}

/* The ERROR reply in @r, as the host reads it: its wire status as an internal code. */
static int error_status(const struct tern_frame *r)
{
	struct tern_msg_error e;
	assert_int_equal(r->type, TERN_MSG_ERROR);
	assert_int_equal(tern_msg_error_decode(r->body, r->body_len, &e), 0);
	return tern_frame_status_to_err(e.status);
}

static bool exists(const char *name)
{
	char p[256];
	path(p, sizeof(p), name);
	return access(p, F_OK) == 0;
}

/* A PROVISION request: plain, or signed by @signer for @serial when not NULL. */
static size_t provision_req(const char *id, const uint8_t *point, const char *config, uint64_t gen,
			    const struct tern_signer *signer, const char *serial, uint8_t *out,
			    size_t size)
{
	struct tern_msg_provision p = {.n_keys = 1, .generation = gen};
	uint8_t body[TERN_FRAME_BODY_MAX], aad[128], cose[TERN_FRAME_BODY_MAX];
	snprintf(p.device_id, sizeof(p.device_id), "%s", id);
	p.keys[0] = point;
	if (config) {
		p.config = (const uint8_t *)config;
		p.config_len = strlen(config);
	}
	size_t n = tern_msg_provision_encode(&p, signer ? body : out, signer ? sizeof(body) : size);
	assert_true(n > 0);
	if (!signer)
		return n;
	size_t alen = tern_provision_aad(serial, aad, sizeof(aad));
	size_t clen = tern_cose_sign1_sign(signer, body, n, aad, alen, cose, sizeof(cose));
	assert_true(clen > 0);
	n = tern_msg_provision_encode_signed(cose, clen, out, size);
	assert_true(n > 0);
	return n;
}

/*
 * Provisioning on the Linux board. The file side (tern_linux_provision_write): a bad
 * request writes nothing; a good one writes the keys (PEM) and the drop-in, removes the
 * old keys, and ternd.conf + drop-in load as the new identity. The USB side (PROVISION
 * through tern_linux_usb_ops): a blank device with no key takes a plain request, then
 * only a signed one of a newer generation from a key it trusts; the keys work at once.
 */
static void test_provision(void **state)
{
	(void)state;
	static struct tern_usbdev dev;
	static uint8_t body[TERN_FRAME_BODY_MAX], rb[4096];
	struct tern_frame r;
	struct tern_signer k1, k2, stranger;
	char p[256], err[512], pem[1024];
	assert_int_equal(tern_signer_generate(&k1), 0);
	assert_int_equal(tern_signer_generate(&k2), 0);
	assert_int_equal(tern_signer_generate(&stranger), 0);
	path(p, sizeof(p), "pkeys");
	assert_int_equal(mkdir(p, 0700), 0);
	path(p, sizeof(p), "pstate");
	assert_int_equal(mkdir(p, 0700), 0);
	assert_true(tern_signer_public_pem(&stranger, pem, sizeof(pem)) > 0);
	write_file("pkeys/factory.pub", pem);
	write_file("pkeys/README", "not a key\n");
	write_file("p.conf", "[device]\nboard = unit\nkeyring = pkeys\nstate = pstate\n"
			     "[slots]\nfirmware.A = pa.img\nfirmware.B = pb.img\n"
			     "[boot]\nbootloader = grub\ngrubenv = pgrubenv\ncmdline = cmdline\n"
			     "boot_id = boot_id\nmounts = /nonexistent\n"
			     "[usb]\nenabled = yes\nfunctionfs = /dev/ffs-tern\nserial = SN-9\n");
	struct tern_linux_config *c = malloc(sizeof(*c)), *out = malloc(sizeof(*out));
	struct tern_linux *lx = malloc(sizeof(*lx));
	assert_non_null(c);
	assert_non_null(out);
	assert_non_null(lx);
	path(p, sizeof(p), "p.conf");
	assert_int_equal(tern_linux_config_load(c, p, err, sizeof(err)), 0);
	assert_string_equal(c->device_id, "");
	assert_int_equal(c->provision_gen, 0);

	/* --- the file side */
	struct tern_keyring kr = {.n_keys = 0};
	assert_int_equal(tern_keyring_add(&kr, &k1.pub), 0);
	assert_int_equal(tern_keyring_add(&kr, &k2.pub), 0);
	struct tern_linux_provisioning prov = {"lab-7", &kr, NULL, 0, 3};
	const char *bad_conf = "[mqtt]\nurl = mqtt://10.1.2.3\n[slots]\nfirmware.A = /dev/sda\n";
	prov.config = (const uint8_t *)bad_conf;
	prov.config_len = strlen(bad_conf);
	assert_int_equal(tern_linux_provision_write(c, &prov, out, err, sizeof(err)),
			 TERN_E_MALFORMED);
	assert_non_null(
	    strstr(err, "pstate/provisioned.conf:10: [slots] firmware.A cannot be set"));
	const char *bad_url = "[mqtt]\nurl = http://10.1.2.3\n";
	prov.config = (const uint8_t *)bad_url;
	prov.config_len = strlen(bad_url);
	assert_int_equal(tern_linux_provision_write(c, &prov, out, err, sizeof(err)),
			 TERN_E_MALFORMED);
	assert_non_null(strstr(err, "provisioned.conf:8: url: must start with mqtt://"));
	prov.config = (const uint8_t *)"[mqtt]\nurl = mqtt://h\0x";
	prov.config_len = 23;
	assert_int_equal(tern_linux_provision_write(c, &prov, out, err, sizeof(err)),
			 TERN_E_MALFORMED); /* a NUL byte: not text */
	prov.config = NULL;
	prov.config_len = 0;
	prov.device_id = "lab 7";
	assert_int_equal(tern_linux_provision_write(c, &prov, out, err, sizeof(err)), TERN_E_INVAL);
	prov.device_id = "lab-7";
	struct tern_keyring none = {.n_keys = 0};
	prov.keyring = &none;
	assert_int_equal(tern_linux_provision_write(c, &prov, out, err, sizeof(err)), TERN_E_KEY);
	/* Refused: nothing was written, nothing removed. */
	assert_true(exists("pkeys/factory.pub"));
	assert_false(exists("pkeys/provisioned-0.pub"));
	assert_false(exists("pstate/provisioned.conf"));

	const char *conf = "[mqtt]\nurl = mqtt://10.1.2.3:1884\nusername = lab-7";
	prov =
	    (struct tern_linux_provisioning){"lab-7", &kr, (const uint8_t *)conf, strlen(conf), 3};
	assert_int_equal(tern_linux_provision_write(c, &prov, out, err, sizeof(err)), 0);
	assert_string_equal(out->device_id, "lab-7");
	assert_string_equal(out->mqtt_url, "mqtt://10.1.2.3:1884");
	assert_true(exists("pkeys/provisioned-0.pub"));
	assert_true(exists("pkeys/provisioned-1.pub"));
	assert_false(exists("pkeys/factory.pub")); /* the new keys replace the keyring */
	assert_true(exists("pkeys/README"));	   /* what is not a key stays */
	assert_false(exists("pstate/provisioned.conf.tmp"));
	assert_int_equal(tern_linux_config_load(c, p, err, sizeof(err)), 0);
	assert_string_equal(c->device_id, "lab-7");
	assert_int_equal(c->provision_gen, 3);
	assert_string_equal(c->mqtt_url, "mqtt://10.1.2.3:1884");
	assert_string_equal(c->mqtt_username, "lab-7");
	assert_string_equal(c->mqtt_client_id, "lab-7");
	assert_string_equal(c->usb_serial, "SN-9"); /* the gadget's, from ternd.conf */
	for (int i = 0; i < 2; i++) {
		char name[64], kp[256];
		snprintf(name, sizeof(name), "pkeys/provisioned-%d.pub", i);
		path(kp, sizeof(kp), name);
		FILE *f = fopen(kp, "r");
		assert_non_null(f);
		size_t len = fread(pem, 1, sizeof(pem), f);
		fclose(f);
		assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----\n"));
		struct tern_pubkey pk;
		assert_int_equal(tern_pubkey_parse(&pk, (const uint8_t *)pem, len), 0);
		assert_memory_equal(pk.point, kr.keys[i].point, TERN_P256_POINT_LEN);
	}
	/* Back to blank for the USB side: no id, no key. */
	path(p, sizeof(p), "pstate/provisioned.conf");
	assert_int_equal(unlink(p), 0);
	path(p, sizeof(p), "pkeys/provisioned-0.pub");
	assert_int_equal(unlink(p), 0);
	path(p, sizeof(p), "pkeys/provisioned-1.pub");
	assert_int_equal(unlink(p), 0);

	/* --- the USB side: a blank device opens with no key */
	make_sized("pa.img", 256 * 1024);
	make_sized("pb.img", 256 * 1024);
	struct tern_envvars v = {0};
	path(p, sizeof(p), "pgrubenv");
	assert_int_equal(tern_envvars_set(&v, "BOOT_ORDER", "A B"), 0);
	assert_int_equal(tern_envvars_set(&v, "BOOT_A_LEFT", "3"), 0);
	assert_int_equal(tern_grubenv_store(p, &v), 0);
	tern_envvars_free(&v);
	path(p, sizeof(p), "p.conf");
	assert_int_equal(tern_linux_config_load(c, p, err, sizeof(err)), 0);
	assert_int_equal(boot(c, 20), 0);
	assert_int_equal(tern_linux_open(lx, c, 0, err, sizeof(err)), 0);
	assert_int_equal(lx->keyring.n_keys, 0);
	tern_usbdev_init(&dev, &tern_linux_usb_ops, lx);
	static uint8_t rel[64 * 1024];
	static uint8_t img[8 * 1024];
	memset(img, 0x5a, sizeof(img));
	struct relbuild rbd = {
	    .version = "2.0.0", .sequence = 2, .board = "unit", .chunk_size = 4096, .n_comp = 1};
	rbd.comp[0] = (struct relbuild_comp){"fw", TERN_KIND_FIRMWARE, img, sizeof(img)};
	assert_true(relbuild_size(&rbd) <= sizeof(rel));
	size_t head_len;
	assert_true(relbuild_make(&k1, &rbd, rel, sizeof(rel), &head_len) > 0);
	size_t n = tern_msg_offer_encode(rel, head_len, false, body, sizeof(body));
	usb_call(&dev, TERN_MSG_OFFER, body, n, rb, sizeof(rb), &r);
	assert_int_equal(error_status(&r), TERN_E_UNKNOWN_KEY); /* it trusts nothing yet */

	n = provision_req("lab-7", k1.pub.point, "[mqtt]\nurl = mqtt://127.0.0.1\n", 0, NULL, NULL,
			  body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_PROVISION, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_ACK);
	assert_string_equal(lx->cfg.device_id, "lab-7");
	assert_int_equal(lx->keyring.n_keys, 1);
	n = tern_msg_hello_encode(1, body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_HELLO, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_INFO);
	struct tern_msg_info info;
	assert_int_equal(tern_msg_info_decode(r.body, r.body_len, &info), 0);
	assert_string_equal(info.device_id, "lab-7");
	assert_string_equal(info.serial, "SN-9");
	/* The key works at once: the release is taken now. */
	n = tern_msg_offer_encode(rel, head_len, false, body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_OFFER, body, n, rb, sizeof(rb), &r), TERN_MSG_ACK);
	/* Provisioned: a plain request is refused, and so is one signed by a stranger, one
	 * signed for another serial, and (after a signed one) a replay of its generation. */
	n = provision_req("lab-x", k1.pub.point, NULL, 0, NULL, NULL, body, sizeof(body));
	usb_call(&dev, TERN_MSG_PROVISION, body, n, rb, sizeof(rb), &r);
	assert_int_equal(error_status(&r), TERN_E_EXISTS);
	n = provision_req("lab-x", k1.pub.point, NULL, 1, &stranger, "SN-9", body, sizeof(body));
	usb_call(&dev, TERN_MSG_PROVISION, body, n, rb, sizeof(rb), &r);
	assert_int_equal(error_status(&r), TERN_E_UNKNOWN_KEY);
	n = provision_req("lab-x", k1.pub.point, NULL, 1, &k1, "SN-8", body, sizeof(body));
	usb_call(&dev, TERN_MSG_PROVISION, body, n, rb, sizeof(rb), &r);
	assert_int_equal(error_status(&r), TERN_E_BAD_SIGNATURE);
	n = provision_req("lab-8", k1.pub.point, NULL, 1, &k1, "SN-9", body, sizeof(body));
	assert_int_equal(usb_call(&dev, TERN_MSG_PROVISION, body, n, rb, sizeof(rb), &r),
			 TERN_MSG_ACK);
	assert_string_equal(lx->cfg.device_id, "lab-8");
	assert_int_equal(lx->cfg.provision_gen, 1);
	assert_int_equal(lx->keyring.n_keys, 1);
	assert_memory_equal(lx->keyring.keys[0].point, k1.pub.point, TERN_P256_POINT_LEN);
	usb_call(&dev, TERN_MSG_PROVISION, body, n, rb, sizeof(rb), &r); /* the same again */
	assert_int_equal(error_status(&r), TERN_E_OLD_GENERATION);
	/* A signed request whose configuration is refused changes nothing. */
	n = provision_req("lab-9", k2.pub.point, "[boot]\nattempts = 2\n", 2, &k1, "SN-9", body,
			  sizeof(body));
	usb_call(&dev, TERN_MSG_PROVISION, body, n, rb, sizeof(rb), &r);
	assert_int_equal(error_status(&r), TERN_E_MALFORMED);
	assert_string_equal(lx->cfg.device_id, "lab-8");
	tern_linux_close(lx);
	assert_int_equal(lx->keyring.n_keys, 1);
	/* What the next start reads: lab-8, generation 1, k1 only, no [mqtt] url now. */
	path(p, sizeof(p), "p.conf");
	assert_int_equal(tern_linux_config_load(c, p, err, sizeof(err)), 0);
	assert_string_equal(c->device_id, "lab-8");
	assert_int_equal(c->provision_gen, 1);
	assert_string_equal(c->mqtt_url, "");
	assert_true(exists("pkeys/provisioned-0.pub"));
	assert_false(exists("pkeys/provisioned-1.pub"));
	free(lx);
	free(out);
	free(c);
	tern_signer_free(&k1);
	tern_signer_free(&k2);
	tern_signer_free(&stranger);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_envvars),
	    cmocka_unit_test(test_uboot),
	    cmocka_unit_test(test_grub),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_run_command),
	    cmocka_unit_test(test_board_cycle),
	    cmocka_unit_test(test_ffs_descriptors),
	    cmocka_unit_test(test_usb_backend),
	    cmocka_unit_test(test_provision),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
