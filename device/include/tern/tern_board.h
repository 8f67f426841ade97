/*
 * The board API: the only way the device core reaches flash (MCUboot flash_area style).
 *
 * A board names a fixed set of flash areas and implements read, write and erase on them
 * through a struct of function pointers. The core never looks inside a board's context.
 * Flash rules the core obeys and boards may enforce: erase whole sectors before writing,
 * write offsets and lengths multiples of the write alignment, erased flash reads 0xFF.
 */
#ifndef TERN_BOARD_H
#define TERN_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Flash areas. Slots come in pairs: firmware A/B and configuration A/B. */
enum tern_area {
	TERN_AREA_FW_A = 0,
	TERN_AREA_FW_B = 1,
	TERN_AREA_CFG_A = 2,
	TERN_AREA_CFG_B = 3,
	TERN_AREA_BOOTCTL = 4, /* two sectors: one copy of the boot control record each */
	TERN_AREA_JOURNAL = 5, /* the install record: signed manifest, indexes, progress */
	TERN_AREA__COUNT
};

#define TERN_N_SLOTS 4

/* Slot pairs: a release's firmware component goes to the FW pair, config to CFG. */
enum tern_pair { TERN_PAIR_FW = 0, TERN_PAIR_CFG = 1, TERN_N_PAIRS };

/* The area of slot @slot (0 = A, 1 = B) of @pair. */
static inline enum tern_area tern_slot_area(enum tern_pair pair, unsigned slot)
{
	return (enum tern_area)(pair * 2u + (slot & 1u));
}

struct tern_area_info {
	uint64_t size;	      /* bytes, a multiple of sector_size */
	uint32_t sector_size; /* erase unit, a power of two */
	uint32_t write_align; /* write unit, a power of two, at most TERN_WRITE_ALIGN_MAX */
};

#define TERN_WRITE_ALIGN_MAX 64

/*
 * Flash operations. Every function returns 0 or a negative TERN_E_* code (TERN_E_FLASH,
 * or TERN_E_POWER_CUT on the simulator). @ctx is the board's, passed back unchanged.
 * flush may be NULL: then writes are durable when write returns.
 */
struct tern_board_ops {
	int (*area_info)(void *ctx, enum tern_area area, struct tern_area_info *info);
	int (*read)(void *ctx, enum tern_area area, uint64_t off, void *buf, size_t len);
	int (*write)(void *ctx, enum tern_area area, uint64_t off, const void *buf, size_t len);
	int (*erase)(void *ctx, enum tern_area area, uint64_t off, uint64_t len);
	int (*flush)(void *ctx, enum tern_area area);
};

/* A board: its operations and its context. Owned by the caller. */
struct tern_board {
	const struct tern_board_ops *ops;
	void *ctx;
};

#endif
