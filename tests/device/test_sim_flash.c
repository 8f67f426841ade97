/* The sim board's flash rules, power cuts and images. */
#include "tern/tern_err.h"
#include "tern/tern_sim.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
	struct tern_sim_geometry geo;
	uint8_t *mem;
	struct tern_sim_flash f;
	struct tern_board b;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	tern_sim_geometry_default(&x->geo, 16 * 1024);
	x->geo.sector_size = 1024;
	x->mem = malloc(tern_sim_flash_size(&x->geo));
	if (!x->mem || tern_sim_flash_open_mem(&x->f, &x->geo, x->mem, true))
		return -1;
	tern_sim_flash_board(&x->f, &x->b);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	free(x->mem);
	free(x);
	return 0;
}

static int wr(struct fx *x, uint64_t off, const void *p, size_t n)
{
	return x->b.ops->write(x->b.ctx, TERN_AREA_FW_A, off, p, n);
}

static void test_erased_reads_ff(void **state)
{
	struct fx *x = *state;
	uint8_t buf[64];
	assert_int_equal(x->b.ops->read(x->b.ctx, TERN_AREA_FW_B, 100, buf, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xff);
}

static void test_write_rules(void **state)
{
	struct fx *x = *state;
	uint8_t data[16], back[16];
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(wr(x, 0, data, 16), 0);
	assert_int_equal(x->b.ops->read(x->b.ctx, TERN_AREA_FW_A, 0, back, 16), 0);
	assert_memory_equal(data, back, 16);
	/* Unerased, misaligned offset, misaligned length, out of range: all failures. */
	assert_int_equal(wr(x, 0, data, 8), TERN_E_FLASH);
	assert_int_equal(x->f.violations, 1);
	assert_int_equal(wr(x, 20, data, 8), TERN_E_FLASH);
	assert_int_equal(wr(x, 24, data, 5), TERN_E_FLASH);
	assert_int_equal(wr(x, 16 * 1024, data, 8), TERN_E_FLASH);
	assert_int_equal(x->b.ops->erase(x->b.ctx, TERN_AREA_FW_A, 512, 1024), TERN_E_FLASH);
	assert_int_equal(x->f.violations, 5);
	/* Erase the sector, and the write works again. */
	assert_int_equal(x->b.ops->erase(x->b.ctx, TERN_AREA_FW_A, 0, 1024), 0);
	assert_int_equal(wr(x, 0, data, 8), 0);
	assert_int_equal(x->f.n_ops, 3); /* two writes and an erase that were allowed */
}

static void test_power_cut_clean(void **state)
{
	struct fx *x = *state;
	uint8_t data[64], back[64];
	memset(data, 0x11, sizeof(data));
	tern_sim_power_cut_at(&x->f, 2, false);
	assert_int_equal(wr(x, 0, data, 64), 0);
	assert_int_equal(wr(x, 64, data, 64), TERN_E_POWER_CUT);
	assert_true(x->f.powered_off);
	assert_int_equal(x->b.ops->read(x->b.ctx, TERN_AREA_FW_A, 64, back, 64), TERN_E_POWER_CUT);
	tern_sim_power_restore(&x->f);
	assert_int_equal(x->b.ops->read(x->b.ctx, TERN_AREA_FW_A, 64, back, 64), 0);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(back[i], 0xff); /* a clean cut: nothing of it landed */
}

static void test_power_cut_torn(void **state)
{
	struct fx *x = *state;
	uint8_t data[256], back[256];
	memset(data, 0x22, sizeof(data));
	tern_sim_power_cut_at(&x->f, 1, true);
	assert_int_equal(wr(x, 0, data, 256), TERN_E_POWER_CUT);
	tern_sim_power_restore(&x->f);
	assert_int_equal(x->b.ops->read(x->b.ctx, TERN_AREA_FW_A, 0, back, 256), 0);
	/* A prefix of whole units, then one unit of garbage, then erased bytes. */
	size_t i = 0;
	while (i < 256 && back[i] == 0x22)
		i++;
	assert_int_equal(i % 8, 0);
	assert_true(i < 256);
	for (size_t k = i + 8; k < 256; k++)
		assert_int_equal(back[k], 0xff);
}

static void test_many_devices_independent(void **state)
{
	(void)state;
	struct tern_sim_geometry g;
	tern_sim_geometry_default(&g, 8192);
	uint64_t n = tern_sim_flash_size(&g);
	uint8_t *m1 = malloc(n), *m2 = malloc(n);
	struct tern_sim_flash f1, f2;
	struct tern_board b1, b2;
	assert_int_equal(tern_sim_flash_open_mem(&f1, &g, m1, true), 0);
	assert_int_equal(tern_sim_flash_open_mem(&f2, &g, m2, true), 0);
	tern_sim_flash_board(&f1, &b1);
	tern_sim_flash_board(&f2, &b2);
	tern_sim_power_cut_at(&f1, 1, false);
	uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	assert_int_equal(b1.ops->write(b1.ctx, TERN_AREA_FW_A, 0, d, 8), TERN_E_POWER_CUT);
	assert_int_equal(b2.ops->write(b2.ctx, TERN_AREA_FW_A, 0, d, 8), 0);
	assert_int_equal(f2.n_ops, 1);
	free(m1);
	free(m2);
}

static void test_file_backed(void **state)
{
	(void)state;
	char path[] = "/tmp/tern-sim-flash-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	struct tern_sim_geometry g;
	tern_sim_geometry_default(&g, 8192);
	struct tern_sim_flash f;
	struct tern_board b;
	assert_int_equal(tern_sim_flash_open_file(&f, &g, path, true), 0);
	tern_sim_flash_board(&f, &b);
	uint8_t d[8] = {9, 9, 9, 9, 9, 9, 9, 9}, back[8];
	assert_int_equal(b.ops->write(b.ctx, TERN_AREA_JOURNAL, 8, d, 8), 0);
	tern_sim_flash_close(&f);
	assert_int_equal(tern_sim_flash_open_file(&f, &g, path, true), TERN_E_EXISTS);
	assert_int_equal(tern_sim_flash_open_file(&f, &g, path, false), 0);
	tern_sim_flash_board(&f, &b);
	assert_int_equal(b.ops->read(b.ctx, TERN_AREA_JOURNAL, 8, back, 8), 0);
	assert_memory_equal(d, back, 8);
	assert_int_equal(b.ops->write(b.ctx, TERN_AREA_JOURNAL, 8, d, 8), TERN_E_FLASH);
	tern_sim_flash_close(&f);
	unlink(path);
}

static void test_image_header(void **state)
{
	(void)state;
	uint8_t img[1000];
	struct tern_sim_image h;
	assert_int_equal(tern_sim_image_make(img, sizeof(img), TERN_SIM_CRASH, "9.9.9"), 0);
	assert_true(tern_sim_image_parse(img, sizeof(img), &h));
	assert_int_equal(h.health, TERN_SIM_CRASH);
	assert_int_equal(h.size, sizeof(img));
	assert_string_equal(h.version, "9.9.9");
	img[0] ^= 1;
	assert_false(tern_sim_image_parse(img, sizeof(img), &h));
	assert_int_equal(tern_sim_image_make(img, 10, TERN_SIM_HEALTHY, "1"), TERN_E_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_erased_reads_ff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_power_cut_clean, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_power_cut_torn, setup, teardown),
	    cmocka_unit_test(test_many_devices_independent),
	    cmocka_unit_test(test_file_backed),
	    cmocka_unit_test(test_image_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
