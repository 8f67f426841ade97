# USB: the frame protocol (cmocka, golden bytes) and `tern usb` against emulated devices
# (umockdev, tests/usb/test_usb.sh through scripts/usb-emu).
UNIT_TESTS += test_frame

$(BUILD)/tests/test_frame: $(BUILD)/obj/tests/usb/test_frame.o $(PROTO_SIGN_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $< -o $@ $(TEST_LIBS)

# libFuzzer on the frame decoders: `make fuzz-frame [FUZZ_SECONDS=60]`.
FUZZ_SECONDS ?= 30
FUZZ_FRAME_BIN := build/fuzz/fuzz_frame
.PHONY: fuzz-frame
$(FUZZ_FRAME_BIN): tests/fuzz/fuzz_frame.c protocol/frame.c protocol/cbor.c protocol/err.c
	@mkdir -p $(dir $@)
	clang -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 $(WARN) -Iprotocol/include \
		-fsanitize=fuzzer,address,undefined $^ -o $@ $(PKG_LIBS)
fuzz-frame: deps $(FUZZ_FRAME_BIN)
	@mkdir -p build/fuzz/corpus-frame
	$(FUZZ_FRAME_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=70000 build/fuzz/corpus-frame
fuzz: fuzz-frame

# The USB emulator (umockdev + glib, its own flags for their headers): build/tern-usb-emu,
# run through scripts/usb-emu. The device side is the portable transport device/usbdev.c.
EMU_PKGS := umockdev-1.0 glib-2.0 gobject-2.0
EMU_BIN := $(BUILD)/tern-usb-emu
EMU_OBJ := $(BUILD)/obj/tests/usb/emu/usb_emu.o $(BUILD)/obj/tests/usb/emu/emu_backend.o \
	$(BUILD)/obj/tests/usb/emu/emu_sim.o
$(BUILD)/obj/tests/usb/emu/usb_emu.o: ALL_CFLAGS += $(shell pkg-config --cflags $(EMU_PKGS) 2>/dev/null)
$(BUILD)/obj/tests/usb/emu/usb_emu.o: ALL_CFLAGS := $(filter-out -std=c11,$(ALL_CFLAGS)) -std=gnu11

$(EMU_BIN): $(EMU_OBJ) $(SIM_LIB) $(DEVICE_LIB) $(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) $(EMU_OBJ) -o $@ $(SIM_LIB) $(DEVICE_LIB) $(PROTO_LIB) $(PROTO_LIBS) \
		$(shell pkg-config --libs $(EMU_PKGS) 2>/dev/null) -lpthread

all: $(EMU_BIN) $(BUILD)/ternd
SCRIPT_TESTS += tests/usb/test_usb.sh
SCRIPT_TESTS += tests/usb/test_usb_flash.sh

# libFuzzer on the device side of the transport: `make fuzz-usbdev [FUZZ_SECONDS=60]`.
FUZZ_USBDEV_BIN := build/fuzz/fuzz_usbdev
.PHONY: fuzz-usbdev
$(FUZZ_USBDEV_BIN): tests/fuzz/fuzz_usbdev.c device/usbdev.c protocol/frame.c protocol/cbor.c \
		protocol/err.c
	@mkdir -p $(dir $@)
	clang -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 $(WARN) -Iprotocol/include \
		-Idevice/include -fsanitize=fuzzer,address,undefined $^ -o $@ $(PKG_LIBS)
fuzz-usbdev: deps $(FUZZ_USBDEV_BIN)
	@mkdir -p build/fuzz/corpus-usbdev
	$(FUZZ_USBDEV_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=140000 build/fuzz/corpus-usbdev \
		tests/fuzz/seeds-usbdev
fuzz: fuzz-usbdev
