# The Linux board (files or block devices as slots; U-Boot, GRUB or script boot control)
# and the ternd binary, which also carries `ternd sim` (boards/sim).
ALL_CFLAGS += -Iboards/linux/include
LINUX_SRC := boards/linux/config.c boards/linux/bootenv.c boards/linux/bootloader.c \
	boards/linux/board.c boards/linux/command.c boards/linux/fileio.c \
	boards/linux/usb.c boards/linux/usb_ffs.c boards/linux/provision.c
LINUX_LIB := $(BUILD)/libternlinux.a
TERND_OBJS := $(BUILD)/obj/boards/linux/ternd.o $(BUILD)/obj/boards/linux/mqtt.o \
	$(BUILD)/obj/boards/sim/ternd.o \
	$(BUILD)/obj/boards/sim/fleet.o

$(LINUX_LIB): $(LINUX_SRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ternd: $(TERND_OBJS) $(LINUX_LIB) $(TRANSPORT_LIB) $(SIM_LIB) $(DEVICE_LIB) $(POSIX_LIB) \
		$(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PROTO_LIBS) $(TRANSPORT_LIBS) -lpthread

all: $(LINUX_LIB) $(BUILD)/ternd
