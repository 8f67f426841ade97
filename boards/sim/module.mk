# The simulated board (file- or memory-backed flash, boot simulator), `ternd sim` and
# `ternd fleet` (boards/sim/ternd.c, fleet.c; the ternd binary is linked in
# boards/linux/module.mk).
ALL_CFLAGS += -Iboards/sim/include
SIM_SRC := boards/sim/flash.c boards/sim/device.c boards/sim/usb.c boards/sim/simdir.c
SIM_LIB := $(BUILD)/libternsim.a

$(SIM_LIB): $(SIM_SRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

all: $(SIM_LIB)
