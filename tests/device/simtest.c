/* Test fixture: memory-backed sim devices. */
#include "simtest.h"

#include "tern/tern_err.h"

#include <stdlib.h>
#include <string.h>

int simtest_setup(struct simtest *t, uint64_t slot_size, uint32_t sector, uint64_t img_size)
{
	memset(t, 0, sizeof(*t));
	tern_sim_geometry_default(&t->geo, slot_size);
	t->geo.sector_size = sector;
	t->geo.cfg_slot_size = 4ull * sector;
	t->chunk_size = sector < TERN_CHUNK_MIN ? TERN_CHUNK_MIN : sector;
	t->mem_len = tern_sim_flash_size(&t->geo);
	t->mem = malloc(t->mem_len);
	t->dev = malloc(sizeof(*t->dev));
	if (!t->mem || !t->dev)
		return TERN_E_NOMEM;
	int rc = tern_signer_generate(&t->signer);
	if (rc)
		return rc;
	if ((rc = tern_keyring_add(&t->kr, &t->signer.pub)))
		return rc;
	struct tern_sim_flash f;
	if ((rc = tern_sim_flash_open_mem(&f, &t->geo, t->mem, true)))
		return rc;
	tern_sim_device_init(t->dev, &f, &t->kr, TERN_SIM_BOARD_ID);
	uint8_t *img = malloc(img_size);
	if (!img)
		return TERN_E_NOMEM;
	rc = tern_sim_image_make(img, img_size, TERN_SIM_HEALTHY, "1.0.0");
	if (rc == 0)
		rc = tern_sim_provision(t->dev, img, img_size, "1.0.0", t->chunk_size);
	free(img);
	if (rc == 0)
		rc = tern_sim_boot(t->dev, 8);
	return rc;
}

void simtest_reinit(struct simtest *t)
{
	struct tern_sim_flash f = t->dev->flash;
	struct tern_boot_result boot = t->dev->boot;
	tern_sim_device_init(t->dev, &f, &t->kr, TERN_SIM_BOARD_ID);
	tern_sim_attach(t->dev, &boot);
}

void simtest_teardown(struct simtest *t)
{
	tern_signer_free(&t->signer);
	free(t->mem);
	free(t->dev);
}

uint8_t *simtest_release_ex(struct simtest *t, const struct tern_signer *sg, const char *board,
			    const char *version, uint64_t seq, uint32_t sc,
			    enum tern_sim_health health, uint64_t img_size, const uint8_t *cfg,
			    size_t cfg_len, uint32_t trial_attempts, size_t *len, size_t *head_len)
{
	uint8_t *img = malloc(img_size);
	if (!img || tern_sim_image_make(img, img_size, health, version)) {
		free(img);
		return NULL;
	}
	struct relbuild rb = {
	    .version = version,
	    .sequence = seq,
	    .security_counter = sc,
	    .board = board,
	    .chunk_size = t->chunk_size,
	    .trial_attempts = trial_attempts,
	    .comp = {{"firmware", TERN_KIND_FIRMWARE, img, img_size}},
	    .n_comp = 1,
	};
	if (cfg) {
		rb.comp[1] = (struct relbuild_comp){"config", TERN_KIND_CONFIG, cfg, cfg_len};
		rb.n_comp = 2;
	}
	size_t cap = relbuild_size(&rb);
	uint8_t *out = malloc(cap);
	*len = out ? relbuild_make(sg ? sg : &t->signer, &rb, out, cap, head_len) : 0;
	free(img);
	if (*len == 0) {
		free(out);
		return NULL;
	}
	return out;
}

uint8_t *simtest_release(struct simtest *t, const struct tern_signer *sg, const char *version,
			 uint64_t seq, uint32_t sc, enum tern_sim_health health, uint64_t img_size,
			 const uint8_t *cfg, size_t cfg_len, size_t *len, size_t *head_len)
{
	return simtest_release_ex(t, sg, "sim", version, seq, sc, health, img_size, cfg, cfg_len, 0,
				  len, head_len);
}
