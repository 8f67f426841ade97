# The Linux board: environment formats cross-checked with fw_printenv/fw_setenv and
# grub-editenv, the configuration file's errors, the full update cycle on file-backed
# slots with a harness that plays the bootloader, `make install`, and `ternd run` updated
# over MQTT against a real mosquitto.
$(BUILD)/tests/ternd-envtool: $(BUILD)/obj/tests/linux/envtool.o $(LINUX_LIB) $(POSIX_LIB) $(DEVICE_LIB) \
		$(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PROTO_LIBS)

CHECK_BUILDS += $(BUILD)/tests/ternd-envtool
SCRIPT_TESTS += tests/linux/test_bootenv.sh
SCRIPT_TESTS += tests/linux/test_config.sh tests/linux/test_cycle.sh tests/linux/test_install.sh
SCRIPT_TESTS += tests/linux/test_mqtt_run.sh

# cmocka: the board's C code, run plain and under ASan+UBSan.
UNIT_TESTS += test_linux
$(BUILD)/obj/tests/linux/test_linux.o: ALL_CFLAGS += -Itests/device
$(BUILD)/tests/test_linux: $(BUILD)/obj/tests/linux/test_linux.o \
		$(BUILD)/obj/tests/device/relbuild.o $(LINUX_LIB) $(POSIX_LIB) $(DEVICE_LIB) $(PROTO_SIGN_LIB) \
		$(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $< $(BUILD)/obj/tests/device/relbuild.o -o $@ $(LINUX_LIB) \
		$(POSIX_LIB) $(DEVICE_LIB) $(TEST_LIBS)
