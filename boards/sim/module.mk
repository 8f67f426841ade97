# The simulated board (file- or memory-backed flash, boot simulator) and ternd.
ALL_CFLAGS += -Iboards/sim/include
SIM_SRC := boards/sim/flash.c boards/sim/device.c boards/sim/simdir.c
SIM_LIB := $(BUILD)/libternsim.a
TERND_OBJS := $(BUILD)/obj/boards/sim/ternd.o $(BUILD)/obj/boards/sim/fleet.o

$(SIM_LIB): $(SIM_SRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ternd: $(TERND_OBJS) $(TRANSPORT_LIB) $(SIM_LIB) $(DEVICE_LIB) $(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PROTO_LIBS) $(TRANSPORT_LIBS)

all: $(SIM_LIB) $(BUILD)/ternd
