# USB: the frame protocol (cmocka, golden bytes) and `tern usb` against emulated devices
# (umockdev, tests/usb/test_usb.sh through scripts/usb-emu).
UNIT_TESTS += test_frame

$(BUILD)/tests/test_frame: $(BUILD)/obj/tests/usb/test_frame.o $(PROTO_SIGN_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $< -o $@ $(TEST_LIBS)

# libFuzzer targets, in tests/fuzz's framework (make fuzz, replayed by make check):
# fuzz_frame (frame decoder, reassembler, every body) and fuzz_usbdev (the device side).
FUZZ_TARGETS += fuzz_frame fuzz_usbdev
FUZZ_BINS += $(FUZZ_BUILD)/fuzz_frame $(FUZZ_BUILD)/fuzz_usbdev
$(BUILD)/fuzz_usbdev: $(BUILD)/obj/tests/fuzz/fuzz_usbdev.o $(DEVICE_LIB) $(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer $< -o $@ $(DEVICE_LIB) $(PROTO_LIB) $(PROTO_LIBS)

# The USB emulator (umockdev + glib, its own flags for their headers): build/tern-usb-emu,
# run through scripts/usb-emu. The device side is the portable transport device/usbdev.c.
EMU_PKGS := umockdev-1.0 glib-2.0 gobject-2.0
EMU_BIN := $(BUILD)/tern-usb-emu
EMU_OBJ := $(BUILD)/obj/tests/usb/emu/usb_emu.o $(BUILD)/obj/tests/usb/emu/emu_backend.o \
	$(BUILD)/obj/tests/usb/emu/emu_sim.o
$(BUILD)/obj/tests/usb/emu/usb_emu.o: ALL_CFLAGS += $(shell pkg-config --cflags $(EMU_PKGS) 2>/dev/null)
$(BUILD)/obj/tests/usb/emu/usb_emu.o: ALL_CFLAGS := $(filter-out -std=c11,$(ALL_CFLAGS)) -std=gnu11

$(EMU_BIN): $(EMU_OBJ) $(SIM_LIB) $(POSIX_LIB) $(DEVICE_LIB) $(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) $(EMU_OBJ) -o $@ $(SIM_LIB) $(POSIX_LIB) $(DEVICE_LIB) $(PROTO_LIB) $(PROTO_LIBS) \
		$(shell pkg-config --libs $(EMU_PKGS) 2>/dev/null) -lpthread

all: $(EMU_BIN) $(BUILD)/ternd
SCRIPT_TESTS += tests/usb/test_usb.sh
SCRIPT_TESTS += tests/usb/test_usb_flash.sh

# The device side on the real Linux USB stack: Debian's kernel in QEMU (TCG) with
# dummy_hcd and FunctionFS, ternd as the gadget, tern through libusb on the same kernel
# (tests/usb/kernel/, docs/usb.md). Not part of `make check`: .ci/run runs it after.
.PHONY: check-usb-kernel
check-usb-kernel: all
	BUILD=$(BUILD) tests/usb/kernel/test_usb_kernel.sh
